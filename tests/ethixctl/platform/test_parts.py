"""The daemon's supervision of parts, with real processes standing in for Caddy/Prometheus."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

from ethixctl import procs
from ethixctl.errors import EthixError
from ethixctl.platform import parts
from ethixctl.platform.parts import PartSupervisor


class SleeperPart:
    """A part whose process sleeps; `broken` makes its start fail, as a port still taken would."""

    def __init__(self, name: str, log_dir: Path):
        self.name = name
        self.log_dir = log_dir
        self.process: procs.Process | None = None
        self.broken = False
        self.starts = 0

    def start(self, timeout: float = 5.0) -> None:
        self.starts += 1
        if self.broken:
            raise EthixError(f"{self.name} could not bind its port")
        self.process = procs.start(
            self.name, [sys.executable, "-c", "import time; time.sleep(60)"], log_path=self.log_dir / "p.log"
        )

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


def wait(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.02)


def supervise_until_started(
    supervisor: PartSupervisor, part: SleeperPart, starts: int, timeout: float = 10.0
) -> None:
    def started() -> bool:
        supervisor.check()
        return part.starts == starts

    wait(started, timeout)


def dead(part: SleeperPart) -> Callable[[], bool]:
    return lambda: part.process is not None and not part.process.alive()


def test_a_killed_part_is_restarted_with_backoff_counted_and_explained(tmp_path: Path) -> None:
    part = SleeperPart("router-edge", tmp_path)
    part.start()
    log: list[str] = []
    changes: list[int] = []
    supervisor = PartSupervisor([part], on_change=lambda: changes.append(1), log=log.append)
    try:
        assert part.process is not None
        first = part.process.pid
        os.kill(first, signal.SIGKILL)
        wait(dead(part))
        supervisor.check()  # noticed: scheduled after the first backoff, not at once
        assert part.starts == 1 and log == [
            f"router-edge killed by SIGKILL; restarting in {parts.FIRST_BACKOFF}s"
        ]
        supervise_until_started(supervisor, part, 2)
        snapshot = supervisor.snapshot()["router-edge"]
        assert snapshot["restarts"] == 1 and snapshot["state"] == "up"
        assert part.process is not None
        assert snapshot["last_exit"] == "killed by SIGKILL" and snapshot["pid"] == part.process.pid != first
        assert changes  # platform.json is rewritten

        # A restart that fails waits twice as long before the next try.
        part.broken = True
        os.kill(part.process.pid, signal.SIGKILL)
        wait(dead(part))
        supervisor.check()
        supervise_until_started(supervisor, part, 3)
        failed_at = time.monotonic()
        assert "did not restart: router-edge could not bind its port; next try in" in log[-1]
        part.broken = False
        supervise_until_started(supervisor, part, 4, timeout=30)
        assert time.monotonic() - failed_at >= 2 * parts.FIRST_BACKOFF * 0.9
        assert supervisor.snapshot()["router-edge"]["restarts"] == 2
    finally:
        part.stop()


def test_restart_dead_now_skips_the_backoff(tmp_path: Path) -> None:
    part = SleeperPart("prometheus", tmp_path)
    part.start()
    supervisor = PartSupervisor([part], on_change=lambda: None, log=lambda line: None)
    try:
        assert part.process is not None
        part.process.stop()
        supervisor.check()
        supervisor.restart_dead_now()
        assert part.starts == 2 and part.process.alive()
    finally:
        part.stop()
