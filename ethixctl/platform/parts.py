"""The daemon's supervision of the platform's parts: both router processes, Prometheus, the control plane.

Like the revisions (``ethixctl.platform.supervisor``): a dead part is restarted with exponential
backoff, the restart is counted (``status`` shows it, from ``platform.json``) and the reason goes to
the daemon log. A part restarts on its own files in the state dir, so it comes back configured: the
router with its split and tags, Prometheus with its targets, the control plane with its services.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ethixctl import procs
from ethixctl.errors import EthixError

FIRST_BACKOFF = 0.5
MAX_BACKOFF = 30.0
# A part that stayed up this long starts again from the first backoff when it dies.
STABLE_AFTER = 30.0


class Part(Protocol):
    name: str
    process: procs.Process | None

    def start(self, timeout: float = ...) -> None:
        """Start the process and wait until it answers; raise EthixError if it does not."""

    def stop(self) -> None: ...


@dataclass
class _Watch:
    restarts: int = 0
    backoff: float = FIRST_BACKOFF
    next_restart: float | None = None
    up_since: float = 0.0
    last_exit: str = ""


def exit_reason(process: procs.Process | None) -> str:
    if process is None:
        return "not running"
    code = process.returncode
    if code is None:
        return "exited (adopted from an earlier daemon: its exit status is not known)"
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"


class PartSupervisor:
    def __init__(self, parts: list[Part], on_change: Callable[[], None], log: Callable[[str], None]):
        self.parts = parts
        self._on_change = on_change
        self._log = log
        self._watches = {part.name: _Watch(up_since=time.monotonic()) for part in parts}

    def check(self) -> None:
        """One supervision round: notice dead parts, restart those whose backoff is over (in order)."""
        now = time.monotonic()
        for part in self.parts:
            watch = self._watches[part.name]
            if part.process is not None and part.process.alive():
                if now - watch.up_since > STABLE_AFTER:
                    watch.backoff = FIRST_BACKOFF
                continue
            if watch.next_restart is None:
                watch.last_exit = exit_reason(part.process)
                watch.next_restart = now + watch.backoff
                self._log(f"{part.name} {watch.last_exit}; restarting in {watch.backoff:.1f}s")
                self._on_change()
            elif now >= watch.next_restart:
                self._restart(part, watch)

    def restart_dead_now(self) -> None:
        """`ethixctl up` asked for a repair: no more waiting for the backoff."""
        now = time.monotonic()
        for watch in self._watches.values():
            if watch.next_restart is not None:
                watch.next_restart = now
        self.check()

    def _restart(self, part: Part, watch: _Watch) -> None:
        try:
            part.start()
        except EthixError as exc:
            watch.backoff = min(watch.backoff * 2, MAX_BACKOFF)
            watch.next_restart = time.monotonic() + watch.backoff
            self._log(f"{part.name} did not restart: {exc.message}; next try in {watch.backoff:.1f}s")
            return
        watch.restarts += 1
        watch.next_restart = None
        watch.up_since = time.monotonic()
        watch.backoff = min(watch.backoff * 2, MAX_BACKOFF)
        pid = part.process.pid if part.process is not None else "?"
        self._log(f"{part.name} restarted (restart {watch.restarts}, pid {pid})")
        self._on_change()

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Per part: pid and start time (to adopt it again), state, restarts, why it last went down."""
        out: dict[str, dict[str, Any]] = {}
        for part in self.parts:
            watch = self._watches[part.name]
            alive = part.process is not None and part.process.alive()
            out[part.name] = {
                "pid": part.process.pid if alive and part.process else None,
                "started": part.process.started if alive and part.process else None,
                "state": "up" if alive else "restarting",
                "restarts": watch.restarts,
                "last_exit": watch.last_exit or None,
            }
        return out
