"""One release per service and environment, across processes.

The lock file holds pid, hostname and the process start time (from /proc), so a recycled pid is not
mistaken for the owner. A lock whose owner is dead is *stale*: it is reported, and taken over only
when the caller says so (``--resume`` or ``--take-over-lock``), never silently broken.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ethixctl.errors import EthixError, UsageError
from ethixctl.files import write_atomic
from ethixctl.procs import pid_alive


def process_start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` in clock ticks since boot (None when unknown)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


@dataclass
class Owner:
    pid: int
    host: str
    started: str | None  # process start time, ticks since boot
    acquired_at: float
    release_id: str | None = None

    def alive(self) -> bool:
        if self.host != socket.gethostname():
            return True  # cannot tell from here: treat as live
        return pid_alive(self.pid) and process_start_time(self.pid) == self.started

    def describe(self) -> str:
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.acquired_at))
        release = f", release {self.release_id}" if self.release_id else ""
        return f"pid {self.pid} on {self.host} since {since}{release}"


class LockHeld(UsageError):
    """Another live process holds the lock."""


class StaleLock(EthixError):
    """The lock's owner is dead; taking it over needs an explicit decision."""


class ReleaseLock:
    def __init__(self, state_dir: Path, environment: str, service: str):
        self.path = state_dir / "locks" / f"release-{environment}-{service}.lock"
        self.service = service
        self.environment = environment
        self._held = False

    def owner(self) -> Owner | None:
        try:
            return Owner(**json.loads(self.path.read_text()))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError):
            # A half-written file from a crash between create and write: nobody can own it.
            return Owner(
                pid=0, host=socket.gethostname(), started=None, acquired_at=self.path.stat().st_mtime
            )

    def acquire(self, release_id: str | None = None, *, take_over_stale: bool = False) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        me = Owner(
            os.getpid(), socket.gethostname(), process_start_time(os.getpid()), time.time(), release_id
        )
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                current = self.owner()
                if current is None:
                    continue  # released between our attempt and the read
                if current.alive():
                    raise LockHeld(
                        f"a release of {self.service} in {self.environment} is already running"
                        f" ({current.describe()})",
                        hint="wait for it, or follow it with `ethixctl history " + self.service + "`",
                    ) from None
                if not take_over_stale:
                    raise StaleLock(
                        f"stale release lock for {self.service} in {self.environment}: its owner "
                        f"({current.describe()}) is no longer running",
                        hint=f"`ethixctl release --resume {self.service}` continues or rolls back that"
                        f" release; `--take-over-lock` starts anew; the lock file is {self.path}",
                    ) from None
                # Replace atomically so two processes taking over cannot both win.
                claim = self.path.with_suffix(f".{os.getpid()}.claim")
                claim.write_text(json.dumps(asdict(me)))
                os.replace(claim, self.path)
                if self.owner() == me:
                    self._held = True
                    return
                continue
            with os.fdopen(fd, "w") as handle:
                handle.write(json.dumps(asdict(me)))
            self._held = True
            return
        raise LockHeld(f"could not take the release lock for {self.service}: it keeps changing hands")

    def set_release(self, release_id: str) -> None:
        current = self.owner()
        if self._held and current is not None:
            current.release_id = release_id
            write_atomic(self.path, json.dumps(asdict(current)))

    def release(self) -> None:
        if self._held:
            current = self.owner()
            if current is not None and current.pid == os.getpid():
                self.path.unlink(missing_ok=True)
            self._held = False

    def __enter__(self) -> ReleaseLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
