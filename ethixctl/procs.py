"""Starting, watching and stopping local processes (services, Caddy, Prometheus).

Used by the local platform and by the end-to-end tests, so there is one way to pick a free port,
wait for readiness, stop a process group, tell which process holds a port and recognise a process
again after a restart.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from ethixctl.errors import EthixError

REPO_ROOT = Path(__file__).resolve().parent.parent


_handed_out: set[int] = set()
_handed_out_lock = threading.Lock()


def free_port() -> int:
    """A free loopback port that this process has not handed out (or claimed) before.

    The port is released before the caller binds it. Caddy binds with SO_REUSEPORT, so two parts of
    one platform given the same port would silently share it (requests to one reaching the other)
    instead of failing; never handing a port out twice rules that out within one process. Another
    process may still be handed the same port at the same moment: the router confirms each port it
    binds with :func:`port_holding`.
    """
    with _handed_out_lock:
        while True:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind(("127.0.0.1", 0))
                port = int(sock.getsockname()[1])
            if port not in _handed_out:
                _handed_out.add(port)
                return port


def claim_port(port: int) -> None:
    """Record a port chosen another way (a default, last run's) so ``free_port`` never returns it."""
    with _handed_out_lock:
        _handed_out.add(port)


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex((host, port)) == 0


# sock_diag over netlink (linux/inet_diag.h): the kernel lists only the listening TCP sockets, in about
# a millisecond; reading /proc/net/tcp walks every socket's hash bucket and took ~50 ms here.
_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST_DUMP = 0x301
_NLMSG_ERROR, _NLMSG_DONE = 2, 3
_TCP_LISTEN_STATE = 1 << 10
_DIAG_SOCKID_BYTES = 48  # sport, dport, src[16], dst[16], if, cookie[2]


def _listening_inodes(ports: set[int]) -> dict[int, set[int]]:
    """Inodes of the TCP sockets listening on each port (IPv4 and IPv6)."""
    found: dict[int, set[int]] = {port: set() for port in ports}
    for family in (socket.AF_INET, socket.AF_INET6):
        request = struct.pack("=BBBBI", family, socket.IPPROTO_TCP, 0, 0, _TCP_LISTEN_STATE)
        request += bytes(_DIAG_SOCKID_BYTES)
        header = struct.pack("=IHHII", 16 + len(request), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST_DUMP, 1, 0)
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, _NETLINK_SOCK_DIAG) as netlink:
            netlink.sendto(header + request, (0, 0))
            done = False
            while not done:
                data = netlink.recv(1 << 16)
                offset = 0
                while offset < len(data) and not done:
                    length, kind = struct.unpack_from("=IH", data, offset)
                    if kind == _NLMSG_ERROR:
                        raise OSError("sock_diag refused the request")
                    done = kind == _NLMSG_DONE
                    if not done:
                        body = offset + 16  # after the netlink header: family, state, timer, retrans, id...
                        port = struct.unpack_from("!H", data, body + 4)[0]
                        inode = struct.unpack_from("=I", data, body + 4 + _DIAG_SOCKID_BYTES + 16)[0]
                        if port in found:
                            found[port].add(inode)
                    offset += (length + 3) & ~3
    return found


@dataclass(frozen=True)
class PortHolding:
    """Who listens on some ports, from the kernel's socket tables, relative to one owner process."""

    shared: frozenset[int]  # another process listens on it too (SO_REUSEPORT) or instead
    missing: frozenset[int]  # the owner does not listen on it

    @property
    def exclusive(self) -> bool:
        return not self.shared and not self.missing


# How many looks at the socket tables must agree before a port counts as shared or missing, and the
# pause between them (see `port_holding`).
PORT_LOOKS = 3
PORT_LOOK_PAUSE = 0.02


def port_holding(owner_pid: int, ports: Iterable[int]) -> PortHolding | None:
    """Whether ``owner_pid`` alone listens on each of ``ports``; None off Linux (no sock_diag, no /proc).

    Caddy binds with SO_REUSEPORT, so a second Caddy (another platform, started at the same moment
    with the same port in mind) binds the same port without an error and the kernel splits the
    connections between the two. Only the socket tables show it: a port counts as held once the
    process that bound it is its only listener.

    A process may replace its own socket on a port (Caddy opens a new admin socket and closes the old
    one on every config load). Reading the listening sockets just before the old one closes, and the
    owner's descriptors just after, finds a listener the owner does not hold. So each look reads the
    socket table on both sides of the descriptors (`_look_at_listeners`), and a port is reported
    shared or missing only when PORT_LOOKS successive looks, PORT_LOOK_PAUSE apart, all say so: a
    socket being replaced has settled by then, a second listener or a missing one has not.
    """
    if not hasattr(socket, "AF_NETLINK") or not os.path.isdir(f"/proc/{os.getpid()}/fd"):
        return None
    shared = missing = set(ports)
    for look in range(PORT_LOOKS):
        if look:
            time.sleep(PORT_LOOK_PAUSE)
        holding = _look_at_listeners(owner_pid, shared | missing)
        shared, missing = shared & holding.shared, missing & holding.missing
        if not shared and not missing:
            break
    return PortHolding(shared=frozenset(shared), missing=frozenset(missing))


def _look_at_listeners(owner_pid: int, ports: set[int]) -> PortHolding:
    """One look, taken so that the owner replacing a socket meanwhile does not count against it.

    A listener is another process's only when the socket table lists it both before and after the
    owner's descriptors are read (so it existed all along) and no reading finds it among them; the
    owner listens when either reading finds one of the port's listeners."""
    before = _listening_inodes(ports)
    owned = _socket_inodes(owner_pid)
    after = _listening_inodes(ports)
    owned |= _socket_inodes(owner_pid)
    return PortHolding(
        shared=frozenset(port for port in ports if (before[port] & after[port]) - owned),
        missing=frozenset(port for port in ports if not (before[port] | after[port]) & owned),
    )


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    with contextlib.suppress(OSError):  # a process that is gone holds nothing
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(int(target[len("socket:[") : -1]))
    return inodes


@dataclass
class Process:
    """A process we started (`popen` set), or one adopted from an earlier run by pid and start time.

    The kernel's start time tells a process apart from a later one that got the same pid, so an
    adopted process is only ever signalled while it is still the one that was recorded.
    """

    name: str
    pid: int
    started: int | None
    log_path: Path | None
    popen: subprocess.Popen[bytes] | None = None

    def alive(self) -> bool:
        if self.popen is not None:
            return self.popen.poll() is None
        return self.started is not None and start_time(self.pid) == self.started and pid_alive(self.pid)

    @property
    def returncode(self) -> int | None:
        """The exit code of a child that ended; None while it runs, and for an adopted process."""
        return self.popen.returncode if self.popen is not None else None

    def log_tail(self, lines: int = 20) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 10.0) -> None:
        if self.popen is None and not self.alive():
            return  # gone, and its pid may be someone else's by now
        stop_pid(self.pid, timeout)
        if self.popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=1)


def start_time(pid: int) -> int | None:
    """When the process started, in clock ticks since boot (/proc/PID/stat field 22); None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return int(stat.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def adopt(name: str, pid: int, started: int | None, log_path: Path | None = None) -> Process | None:
    """The recorded process if it still runs (same pid and start time), else None."""
    process = Process(name, pid, started, log_path)
    return process if process.alive() else None


def start(
    name: str,
    argv: list[str],
    *,
    env: Mapping[str, str] | None = None,
    log_path: Path | None = None,
    cwd: Path | None = None,
) -> Process:
    """Start ``argv`` in its own process group with a clean, explicit environment overlay."""
    full_env = {**os.environ, **(env or {})}
    full_env.setdefault("PYTHONUNBUFFERED", "1")
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(log_path, "ab")  # noqa: SIM115 - the child owns the descriptor from here on
    else:
        log = subprocess.DEVNULL  # type: ignore[assignment]
    try:
        popen = subprocess.Popen(
            argv,
            env=full_env,
            cwd=cwd or REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    finally:
        if log_path is not None:
            log.close()
    return Process(name, popen.pid, start_time(popen.pid), log_path, popen)


def python_module(module: str) -> list[str]:
    return [sys.executable, "-m", module]


def stop_pid(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM the process group, then SIGKILL whatever is left after ``timeout``."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    except PermissionError:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped) is not alive for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def wait_http(url: str, *, timeout: float, process: Process | None = None, expect: int = 200) -> float:
    """Poll ``url`` until it answers ``expect``; returns the seconds waited.

    Fails early, with the log tail, if ``process`` dies first.
    """
    started = time.monotonic()
    deadline = started + timeout
    last = "no answer"
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if process is not None and not process.alive():
                raise EthixError(
                    f"{process.name} exited with code {process.returncode} before it became ready",
                    hint=process.log_tail() or None,
                )
            try:
                response = client.get(url)
                if response.status_code == expect:
                    return time.monotonic() - started
                last = f"HTTP {response.status_code}"
            except httpx.TransportError as exc:
                last = type(exc).__name__
            time.sleep(0.1)
    raise EthixError(f"{url} not ready after {timeout:.0f}s (last: {last})")


@dataclass
class Service:
    """A bundled service (``services.backend`` / ``services.ai_core``) running as a uvicorn process."""

    name: str
    url: str
    process: Process
    data_dir: Path


def start_service(
    module: str,
    data_dir: Path,
    *,
    env: Mapping[str, str] | None = None,
    log_dir: Path | None = None,
    probe: str = "/health/startup",
    timeout: float = 120.0,
) -> Service:
    """Start ``python -m MODULE`` on a free port with its own data dir and wait for its startup probe."""
    port = free_port()
    name = module.rsplit(".", 1)[-1]
    process = start(
        name,
        python_module(module),
        env={"PORT": str(port), "ETHIX_DATA_DIR": str(data_dir), "K_SERVICE": name, **(env or {})},
        log_path=(log_dir or data_dir) / f"{name}-{port}.log",
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + probe, timeout=timeout, process=process)
    except BaseException:
        process.stop()
        raise
    return Service(name, url, process, data_dir)
