"""Fault injection on a running local platform: kill -9 one part under steady load, see it come back.

Shared by the chaos test (tests/ethixctl/platform/test_resilience_e2e.py) and its benchmark
(bench/bench_resilience.py): what is killed, what "back, with its configuration" means, and how the
failed requests are counted are the same in both.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from ethixctl.platform import state

PARTS = ("revision", "router-edge", "router-split", "prometheus", "control-plane", "daemon")


class Prober:
    """A client asking the backend's liveness probe through the router every `interval` seconds."""

    def __init__(self, url: str, interval: float = 0.05):
        self.url = url + "/health/liveness"
        self.interval = interval
        self.results: list[tuple[float, bool]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="prober", daemon=True)

    def __enter__(self) -> Prober:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        with httpx.Client(timeout=2.0) as client:
            while not self._stop.is_set():
                at = time.monotonic()
                try:
                    ok = client.get(self.url).status_code == 200
                except httpx.HTTPError:
                    ok = False
                self.results.append((at, ok))
                self._stop.wait(self.interval)

    def failed_since(self, since: float) -> int:
        return sum(1 for at, ok in list(self.results) if at >= since and not ok)

    def serving_since(self, since: float, streak: int = 10) -> bool:
        """The last `streak` probes after `since` all succeeded: traffic resumed."""
        recent = [ok for at, ok in list(self.results) if at >= since][-streak:]
        return len(recent) == streak and all(recent)


@dataclass
class Recovery:
    part: str
    seconds: float
    failed_requests: int
    checks: dict[str, bool] = field(default_factory=dict)
    # What changed in the configuration, if anything: {key: (before, after)}.
    changed: dict[str, Any] = field(default_factory=dict)


def platform_info(state_dir: Path) -> dict[str, Any]:
    return state.read_json(state_dir / state.PLATFORM_FILE) or {}


def serving_revision(state_dir: Path, service: str = "backend") -> tuple[str, int]:
    runtime = state.read_json(state_dir / state.RUNTIME_FILE) or {}
    traffic = runtime["traffic"][service]["split"]
    name = max(traffic, key=traffic.get)
    return name, runtime["revisions"][name]["pid"]


def configuration(state_dir: Path) -> dict[str, Any]:
    """What must survive any restart: the split and tags in effect, the router's listeners, the
    Prometheus targets, the services the control plane knows."""
    info = platform_info(state_dir)
    runtime = state.read_json(state_dir / state.RUNTIME_FILE) or {}
    edge = httpx.get(info["router_admin_url"] + "/config/apps/http/servers", timeout=5).json()
    split_port = (state.read_json(state_dir / state.PORTS_FILE) or {})["router_split_admin"]
    split = httpx.get(f"http://127.0.0.1:{split_port}/config/apps/http/servers", timeout=5).json()
    targets = json.loads((state_dir / "prometheus" / "targets.json").read_text())
    services = httpx.get(
        info["control_plane_url"] + "/v2/projects/local/locations/local/services", timeout=5
    ).json()
    return {
        "traffic": runtime.get("traffic"),
        "edge_listeners": sorted((name, s["listen"][0]) for name, s in edge.items()),
        "split_upstreams": sorted(
            (name, json.dumps(s["routes"][-1]["handle"][-1].get("upstreams"))) for name, s in split.items()
        ),
        "targets": sorted(t["labels"]["revision"] for t in targets),
        "services": sorted(
            (s["name"], json.dumps(s.get("traffic"), sort_keys=True)) for s in services.get("services", [])
        ),
    }


def prometheus_scrapes(state_dir: Path, revision: str) -> bool:
    info = platform_info(state_dir)
    try:
        active = httpx.get(info["prometheus_url"] + "/api/v1/targets", timeout=2).json()["data"][
            "activeTargets"
        ]
    except (httpx.HTTPError, ValueError, KeyError):
        return False
    return any(t["labels"].get("revision") == revision and t["health"] == "up" for t in active)


def _restarts(state_dir: Path, part: str) -> int:
    return int(((platform_info(state_dir).get("parts") or {}).get(part) or {}).get("restarts") or 0)


def kill_and_recover(
    state_dir: Path, part: str, prober: Prober, timeout: float = 60.0, up_args: tuple[str, ...] = ()
) -> Recovery:
    """kill -9 `part`, wait until it is back with the configuration it had and traffic flows again.

    The recovery time runs from the kill until the part is back and the prober has seen traffic flow
    again; the daemon is brought back by `ethixctl up` two seconds after it died."""
    before = configuration(state_dir)
    info = platform_info(state_dir)
    revision, revision_pid = serving_revision(state_dir)
    started = time.monotonic()
    if part == "revision":
        restarts_before = _revision_restarts(state_dir, revision)
        os.kill(revision_pid, signal.SIGKILL)
    elif part == "daemon":
        os.kill(info["pids"]["daemon"], signal.SIGKILL)
        # Nothing restarts a dead daemon but `ethixctl up` (the data plane serves meanwhile).
        time.sleep(2.0)
        argv = [sys.executable, "-m", "ethixctl", "up", "--state-dir", str(state_dir), *up_args, "--json"]
        subprocess.run(argv, check=True, capture_output=True, timeout=timeout)
    else:
        restarts_before = _restarts(state_dir, part)
        os.kill(info["pids"][part], signal.SIGKILL)
    deadline = started + timeout
    while True:
        if part == "revision":
            back = _revision_restarts(state_dir, revision) > restarts_before and _revision_ready(
                state_dir, revision
            )
        elif part == "daemon":
            back = state.daemon_pid(state_dir) is not None
        else:
            parts = platform_info(state_dir).get("parts") or {}
            back = _restarts(state_dir, part) > restarts_before and parts.get(part, {}).get("state") == "up"
        if back and prober.serving_since(started, streak=5):
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"{part} not back with traffic flowing within {timeout:.0f}s")
        time.sleep(0.05)
    seconds = time.monotonic() - started
    after = configuration(state_dir)
    changed = {key: (before[key], after[key]) for key in before if before[key] != after[key]}
    checks = {"configuration": not changed}
    if part in ("prometheus", "revision"):
        scrape_deadline = time.monotonic() + 30
        while not prometheus_scrapes(state_dir, serving_revision(state_dir)[0]):
            if time.monotonic() > scrape_deadline:
                break
            time.sleep(0.5)
        checks["prometheus_scrapes"] = prometheus_scrapes(state_dir, serving_revision(state_dir)[0])
    return Recovery(part, round(seconds, 3), prober.failed_since(started), checks, changed)


def _revision_record(state_dir: Path, revision: str) -> dict[str, Any]:
    runtime = state.read_json(state_dir / state.RUNTIME_FILE) or {}
    return dict((runtime.get("revisions") or {}).get(revision) or {})


def _revision_restarts(state_dir: Path, revision: str) -> int:
    return int(_revision_record(state_dir, revision).get("restarts") or 0)


def _revision_ready(state_dir: Path, revision: str) -> bool:
    return _revision_record(state_dir, revision).get("state") == "READY"
