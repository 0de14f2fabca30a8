"""Process helpers against real child processes."""

from __future__ import annotations

import os
import socket
import subprocess
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


def _reuseport_listener() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


LISTEN_AND_WAIT = """
import socket, sys
sock = socket.socket()
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
sock.bind(("127.0.0.1", int(sys.argv[1])))
sock.listen()
print("listening", flush=True)
sys.stdin.read()
"""


def test_port_holding_tells_a_port_held_alone_from_one_shared_through_so_reuseport() -> None:
    with _reuseport_listener() as mine:
        port = mine.getsockname()[1]
        alone = procs.port_holding(os.getpid(), [port])
        assert alone is not None and alone.exclusive
        other = subprocess.Popen(
            [sys.executable, "-c", LISTEN_AND_WAIT, str(port)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert other.stdout is not None and other.stdout.readline() == "listening\n"
            shared = procs.port_holding(os.getpid(), [port])
            assert shared is not None and shared.shared == {port} and not shared.missing
            theirs = procs.port_holding(other.pid, [port])
            assert theirs is not None and theirs.shared == {port}
        finally:
            other.communicate("")
    gone = procs.port_holding(os.getpid(), [port])
    assert gone is not None and gone.missing == {port} and not gone.shared


# Caddy on every config load: a new SO_REUSEPORT socket on the same port first, then the old one closed.
# Here every millisecond; a traffic flip loads the split Caddy every 100 ms at the fastest.
REPLACE_LISTENER_IN_A_LOOP = """
import socket, sys, time
def listen():
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", int(sys.argv[1])))
    sock.listen()
    return sock
old = listen()
print("listening", flush=True)
while True:
    time.sleep(0.001)
    new = listen()
    old.close()
    old = new
"""


def test_a_listener_replaced_by_its_own_process_stays_held_alone() -> None:
    """Regression: a Caddy replaces its admin socket on every config load. When the old socket closed
    between the kernel's socket table and the reading of the owner's descriptors, the port looked
    shared, and the router killed its own split Caddy in the middle of a traffic flip (502s)."""
    port = procs.free_port()
    owner = subprocess.Popen(
        [sys.executable, "-c", REPLACE_LISTENER_IN_A_LOOP, str(port)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert owner.stdout is not None and owner.stdout.readline() == "listening\n"
        looks = [procs.port_holding(owner.pid, [port]) for _ in range(1000)]
    finally:
        owner.kill()
        owner.wait()
    wrong = [holding for holding in looks if holding is None or not holding.exclusive]
    assert wrong == [], f"{len(wrong)} of {len(looks)} looks: {wrong[:3]}"
