"""Stale state dirs: a pid is only signalled when the process behind it is provably ours."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ethixctl import procs
from ethixctl.platform import state


def test_reused_pid_of_another_program_is_never_killed(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        # A crashed daemon left its pid file and platform.json; the pids now belong to someone else.
        (state_dir / state.PID_FILE).write_text(f"{stranger.pid}\n")
        state.write_json(
            state_dir / state.PLATFORM_FILE, {"pids": {"daemon": stranger.pid, "router": stranger.pid}}
        )
        assert state.daemon_pid(state_dir) is None
        assert not state.owned(stranger.pid, state_dir)
        assert state.clean_stale(state_dir) == []
        assert stranger.poll() is None
        assert not (state_dir / state.PID_FILE).exists()
        assert not (state_dir / state.PLATFORM_FILE).exists()
    finally:
        stranger.kill()
        stranger.wait()


def test_leftover_process_of_this_state_dir_is_stopped(tmp_path: Path) -> None:
    state_dir = (tmp_path / "state").resolve()
    state_dir.mkdir()
    other_dir = (tmp_path / "state2").resolve()
    other_dir.mkdir()
    ours = procs.start("leftover", [sys.executable, "-c", "import time; time.sleep(60)"], cwd=state_dir)
    neighbour = procs.start("neighbour", [sys.executable, "-c", "import time; time.sleep(60)"], cwd=other_dir)
    try:
        state.write_json(state_dir / state.RUNTIME_FILE, {"revisions": {"r": {"pid": ours.pid, "port": 1}}})
        state.write_json(state_dir / state.PLATFORM_FILE, {"pids": {"router": neighbour.pid}})
        assert state.owned(ours.pid, state_dir)
        # /x/state must not claim /x/state2's processes.
        assert not state.owned(neighbour.pid, state_dir)
        assert state.clean_stale(state_dir) == [ours.pid]
        assert not ours.alive()
        assert neighbour.alive()
    finally:
        ours.stop()
        neighbour.stop()


def test_lock_is_released_when_its_holder_dies(tmp_path: Path) -> None:
    lock = tmp_path / state.LOCK_FILE
    lock.touch()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import fcntl,time; f=open({str(lock)!r},'a'); fcntl.flock(f, fcntl.LOCK_EX); "
            "print('locked', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"locked"
        assert state.lock_held(tmp_path)
    finally:
        holder.kill()
        holder.wait()
    assert not state.lock_held(tmp_path)
