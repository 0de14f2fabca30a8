"""One operation per subject at a time, across processes: a kernel lock that dies with its holder.

``fcntl.flock`` on ``state_dir/locks/KIND-ENV-SUBJECT.lock``: the kernel releases it when the holding
process exits, however it exits, so there is no stale lock to detect or break, and two processes can
never both hold it. The file also carries who holds it (pid, host, since, operation), written after
the lock is taken, for the "held by pid N on HOST since …" message. The file is never deleted:
unlinking a lock file while another process waits on it would let a third one lock a new inode.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import IO

from ethixctl.errors import UsageError


class LockHeld(UsageError):
    """Another live process holds the lock."""


class OperationLock:
    def __init__(self, state_dir: Path, kind: str, environment: str, subject: str):
        self.path = state_dir / "locks" / f"{kind}-{environment}-{subject}.lock"
        self.kind = kind
        self.environment = environment
        self.subject = subject
        self._handle: IO[str] | None = None
        self._since = 0.0

    @property
    def held(self) -> bool:
        return self._handle is not None

    def holder(self) -> str:
        """Who holds the lock, as recorded in the file (it may be stale once the lock is free)."""
        try:
            owner = json.loads(self.path.read_text() or "{}")
            since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(owner["since"]))
            operation = f", operation {owner['operation']}" if owner.get("operation") else ""
            return f"pid {owner['pid']} on {owner['host']} since {since}{operation}"
        except (OSError, ValueError, KeyError, TypeError):
            return "another process"

    def acquire(self, operation_id: str | None = None) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")  # noqa: SIM115 - held open for as long as the lock is held
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise LockHeld(
                f"a {self.kind} of {self.subject} in {self.environment} is already running"
                f" (held by {self.holder()})",
                hint=f"wait for it, or follow it with `ethixctl history {self.subject}`",
            ) from None
        self._handle = handle
        self._since = time.time()
        self._write_owner(operation_id)

    def set_operation(self, operation_id: str) -> None:
        if self._handle is not None:
            self._write_owner(operation_id)

    def _write_owner(self, operation_id: str | None) -> None:
        assert self._handle is not None
        owner = {"pid": os.getpid(), "host": socket.gethostname(), "since": self._since}
        if operation_id:
            owner["operation"] = operation_id
        self._handle.seek(0)
        self._handle.truncate()
        self._handle.write(json.dumps(owner))
        self._handle.flush()

    def release(self) -> None:
        if self._handle is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None

    def __enter__(self) -> OperationLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
