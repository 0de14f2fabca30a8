"""The cross-process operation lock: real processes, a real kernel lock (fcntl.flock)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ethixctl.ops.lock import LockHeld, OperationLock

HOLDER = """
import sys, time
from pathlib import Path
from ethixctl.ops.lock import OperationLock
lock = OperationLock(Path(sys.argv[1]), "release", "local", "backend")
lock.acquire("01JABCDEF")
print("locked", flush=True)
time.sleep(60)
"""

# Many processes start together and race for the lock the moment it is free.
RACER = """
import sys, time
from pathlib import Path
from ethixctl.ops.lock import LockHeld, OperationLock
lock = OperationLock(Path(sys.argv[1]), "release", "local", "backend")
start = float(sys.argv[2])
while time.time() < start:
    time.sleep(0.001)
try:
    lock.acquire()
except LockHeld:
    print("refused", flush=True)
else:
    print("won", flush=True)
    time.sleep(2)
"""


def _holder(state_dir: Path) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(state_dir)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None and process.stdout.readline().strip() == "locked"
    return process


def test_a_second_operation_is_refused_with_who_holds_it(tmp_path: Path) -> None:
    holder = _holder(tmp_path)
    try:
        with pytest.raises(LockHeld, match=r"release of backend in local is already running") as caught:
            OperationLock(tmp_path, "release", "local", "backend").acquire()
        assert f"pid {holder.pid} on {os.uname().nodename} since " in caught.value.message
        assert "operation 01JABCDEF" in caught.value.message
        with OperationLock(tmp_path, "release", "local", "ai-core"):  # other subjects are independent
            pass
        with OperationLock(tmp_path, "rotation", "local", "backend"):  # and other kinds
            pass
    finally:
        holder.kill()
        holder.wait()


def test_the_lock_of_a_killed_holder_is_free_at_once(tmp_path: Path) -> None:
    holder = _holder(tmp_path)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    lock = OperationLock(tmp_path, "release", "local", "backend")
    lock.acquire()  # the kernel released it with the process: nothing stale to break
    assert lock.held and f"pid {os.getpid()}" in lock.holder()
    lock.release()
    assert lock.path.exists()  # never unlinked: a waiter could otherwise lock a new inode


def test_processes_racing_for_a_freed_lock_exactly_one_wins(tmp_path: Path) -> None:
    """Regression: two processes taking over a stale lock file could both win."""
    import time

    holder = _holder(tmp_path)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    start = str(time.time() + 1.5)
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(tmp_path), start], stdout=subprocess.PIPE, text=True
        )
        for _ in range(6)
    ]
    outcomes = sorted(p.communicate(timeout=60)[0].strip() for p in racers)
    assert outcomes == ["refused"] * 5 + ["won"]
