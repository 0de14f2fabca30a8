"""Process helpers against real child processes."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from ethixctl import procs
from ethixctl.errors import EthixError


def test_start_wait_and_stop_a_real_http_server(tmp_path: Path) -> None:
    port = procs.free_port()
    process = procs.start(
        "http",
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        log_path=tmp_path / "log",
    )
    try:
        waited = procs.wait_http(f"http://127.0.0.1:{port}/", timeout=20, process=process)
        assert waited < 20
        assert procs.port_in_use(port)
    finally:
        process.stop()
    assert not process.alive()
    assert not procs.pid_alive(process.pid)
    assert not procs.port_in_use(port)


def test_wait_fails_early_when_the_process_dies(tmp_path: Path) -> None:
    process = procs.start(
        "crasher", [sys.executable, "-c", "print('boom'); raise SystemExit(3)"], log_path=tmp_path / "log"
    )
    with pytest.raises(EthixError, match="exited with code 3") as caught:
        procs.wait_http(f"http://127.0.0.1:{procs.free_port()}/", timeout=20, process=process)
    assert caught.value.hint == "boom"


def test_stop_escalates_to_sigkill(tmp_path: Path) -> None:
    ignore_term = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
        "print('ready', flush=True); time.sleep(60)"
    )
    process = procs.start("stubborn", [sys.executable, "-c", ignore_term], log_path=tmp_path / "log")
    deadline = time.monotonic() + 10
    while "ready" not in process.log_tail() and time.monotonic() < deadline:
        time.sleep(0.05)
    process.stop(timeout=0.5)
    assert not procs.pid_alive(process.pid)


def test_free_port_never_hands_out_a_port_twice_or_a_claimed_one() -> None:
    claimed = procs.free_port() + 1
    procs.claim_port(claimed)
    ports = [procs.free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)
    assert claimed not in ports


def test_a_process_is_adopted_only_while_pid_and_start_time_match(tmp_path: Path) -> None:
    process = procs.start(
        "sleeper", [sys.executable, "-c", "import time; time.sleep(60)"], log_path=tmp_path / "l"
    )
    try:
        assert process.started is not None and process.started == procs.start_time(process.pid)
        adopted = procs.adopt("sleeper", process.pid, process.started)
        assert adopted is not None and adopted.alive() and adopted.returncode is None
        # The same pid with another start time is another process (a pid reused after a reboot).
        assert procs.adopt("sleeper", process.pid, process.started + 1) is None
        adopted.stop()
        assert not process.alive()
        assert procs.adopt("sleeper", process.pid, process.started) is None
        adopted.stop()  # gone: nothing is signalled
    finally:
        process.stop()
