"""Local platform: router overhead, traffic-change propagation, failures while traffic flips, cold `up`.

Each figure has a baseline measured in this run and a computed ratio:

* router overhead: p50 through Caddy vs p50 straight to the revision, in alternating batches.
* traffic change: clients probe the service URL back to back; for each change, the time from the
  runtime confirming it (``apply_traffic`` returned) until the first answer from the new revision, as
  the clients see it. Baseline: one request's round trip through the router (p50): a ratio near 1 means
  the change is visible by the next request. Requests sent after the confirmation and still answered by
  the old revision are counted (goal 0).
* flips: four clients load the service while traffic flips every 100 ms; baseline: the same load for the
  same time with no flip (its failures and rate). Ratio: rate while flipping / steady rate.
* cold `ethixctl up` (backend + ai_core + router + Prometheus + control plane; one run) vs starting one
  uvicorn process of the backend until its startup probe answers (median of three).

Uses the runtime directly with the tests' tiny "echo" service for the router figures, and the real
`ethixctl up` for the cold start. ``python -m bench platform`` prints JSON.
"""

from __future__ import annotations

import json
import shutil
import statistics
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from ethixctl import procs
from ethixctl.platform import lifecycle
from ethixctl.platform.router import Router
from ethixctl.platform.runtime import RevisionSpec, RevisionState
from ethixctl.platform.supervisor import LocalRuntime

GOAL_ROUTER_ADDED_MS = 2.0
GOAL_VISIBLE_S = 1.0
CHANGES = 10
FLIPS = 20
# Both revisions tagged, so that neither is scaled to zero when it has 0%: these figures are the router's.
WARM = {"one": "echo-1", "two": "echo-2"}
FLIP_INTERVAL_S = 0.1
LOAD_CLIENTS = 4
UVICORN_STARTS = 3


def _samples_ms(client: httpx.Client, url: str, n: int) -> list[float]:
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        client.get(url)
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def _interleaved_p50_ms(client: httpx.Client, url: str, baseline: str) -> tuple[float, float]:
    """p50 of ``url`` and of ``baseline``, measured in alternating batches (the same load for both)."""
    measured: list[float] = []
    base: list[float] = []
    for _ in range(6):
        measured += _samples_ms(client, url, 50)
        base += _samples_ms(client, baseline, 50)
    return statistics.median(measured), statistics.median(base)


class _Prober:
    """One client probing ``url`` back to back; keeps (sent, received, revision) of every answer."""

    def __init__(self, url: str):
        self.url = url
        self.answers: list[tuple[float, float, str]] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self._stop.is_set():
                sent = time.perf_counter()
                revision = client.get(self.url).json()["revision"]
                with self._lock:
                    self.answers.append((sent, time.perf_counter(), revision))

    def since(self, moment: float) -> list[tuple[float, float, str]]:
        with self._lock:
            return [answer for answer in self.answers if answer[1] >= moment]

    def __enter__(self) -> _Prober:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def _propagation(runtime: LocalRuntime, url: str) -> dict[str, Any]:
    confirm_s: list[float] = []
    visible_s: list[float] = []
    stale = 0
    with _Prober(url) as prober:
        for change in range(CHANGES):
            target = ("echo-2", "echo-1")[change % 2]
            other = "echo-1" if target == "echo-2" else "echo-2"
            time.sleep(0.3)  # settled: the probes see only the previous revision
            started = time.perf_counter()
            runtime.apply_traffic("echo", {target: 100, other: 0}, WARM)
            confirmed = time.perf_counter()
            deadline = confirmed + 10
            while not any(rev == target for _, _, rev in prober.since(confirmed)):
                if time.perf_counter() > deadline:
                    raise RuntimeError(f"{target} never answered after the change was confirmed")
                time.sleep(0.001)
            time.sleep(0.2)  # long enough to catch a late answer from the old revision
            answers = prober.since(confirmed)
            first_new = min(received for _, received, rev in answers if rev == target)
            confirm_s.append(confirmed - started)
            visible_s.append(first_new - confirmed)
            stale += sum(1 for sent, _, rev in answers if sent >= confirmed and rev != target)
    return {
        "confirm_median_s": statistics.median(confirm_s),
        "visible_median_s": statistics.median(visible_s),
        "visible_max_s": max(visible_s),
        "stale_answers": stale,
    }


def _load(url: str, seconds: float, change: Any = None) -> tuple[Counter[str], float]:
    """LOAD_CLIENTS clients for ``seconds``; ``change(step)`` every FLIP_INTERVAL_S when given."""
    stop = threading.Event()
    results: Counter[str] = Counter()
    lock = threading.Lock()

    def client_loop() -> None:
        with httpx.Client(timeout=5) as client:
            while not stop.is_set():
                try:
                    outcome = "ok" if client.get(url).status_code == 200 else "http_error"
                except httpx.HTTPError:
                    outcome = "transport_error"
                with lock:
                    results[outcome] += 1

    workers = [threading.Thread(target=client_loop) for _ in range(LOAD_CLIENTS)]
    for worker in workers:
        worker.start()
    started = time.perf_counter()
    step = 0
    while time.perf_counter() - started < seconds:
        if change is not None:
            step += 1
            change(step)
        time.sleep(FLIP_INTERVAL_S)
    stop.set()
    for worker in workers:
        worker.join()
    return results, sum(results.values()) / (time.perf_counter() - started)


def _router_figures(base: Path) -> dict[str, Any]:
    from ethixctl.platform import images
    from tests.ethixctl.platform.conftest import make_source

    state_dir = base / "router-state"
    state_dir.mkdir()
    router = Router(state_dir, procs.free_port())
    router.start()
    runtime = LocalRuntime(state_dir, router, None)
    try:
        for version in ("1", "2"):
            ref = images.build("echo", state_dir / "images", make_source(base / f"src{version}", version)).ref
            runtime.start_revision(RevisionSpec("echo", f"echo-{version}", "echo", ref, {}))
        deadline = time.monotonic() + 60
        while any(runtime.revision_status(r).state is not RevisionState.READY for r in ("echo-1", "echo-2")):
            if time.monotonic() > deadline:
                raise RuntimeError("echo revisions not ready")
            time.sleep(0.1)
        url = runtime.service_url("echo")
        runtime.apply_traffic("echo", {"echo-1": 100}, WARM)
        direct = runtime.revision_status("echo-1").url
        assert direct is not None
        with httpx.Client(timeout=5) as client:
            _samples_ms(client, url, 50)  # warm both paths
            _samples_ms(client, direct, 50)
            via_caddy, direct_p50 = _interleaved_p50_ms(client, url, direct)
        propagation = _propagation(runtime, url)

        def flip(step: int) -> None:
            runtime.apply_traffic(
                "echo", {"echo-1": 100 - (step % 2) * 100, "echo-2": (step % 2) * 100}, WARM
            )

        duration = FLIPS * FLIP_INTERVAL_S
        steady, steady_rate = _load(url, duration)
        flipping, flip_rate = _load(url, duration, flip)
    finally:
        runtime.shutdown()
        router.stop()
    flipping_total = sum(flipping.values())
    return {
        "router_p50_ms": round(via_caddy, 3),
        "router_baseline_direct_p50_ms": round(direct_p50, 3),
        "router_added_ms": round(via_caddy - direct_p50, 3),
        "router_ratio": round(via_caddy / direct_p50, 2),
        "traffic_change_confirm_median_s": round(propagation["confirm_median_s"], 4),
        "traffic_change_visible_after_confirm_median_s": round(propagation["visible_median_s"], 4),
        "traffic_change_visible_after_confirm_max_s": round(propagation["visible_max_s"], 4),
        "traffic_change_baseline_one_request_p50_s": round(via_caddy / 1000, 4),
        "traffic_change_ratio_visible_to_one_request": round(
            propagation["visible_median_s"] / (via_caddy / 1000), 2
        ),
        "traffic_change_stale_answers_after_confirm": propagation["stale_answers"],
        "traffic_changes_measured": CHANGES,
        "flip_requests": flipping_total,
        "flip_rate_rps": round(flip_rate, 1),
        "flip_failed_requests": flipping_total - flipping["ok"],
        "flip_failures_by_kind": dict(flipping),
        "flip_baseline_steady_requests": sum(steady.values()),
        "flip_baseline_steady_rate_rps": round(steady_rate, 1),
        "flip_baseline_steady_failed_requests": sum(steady.values()) - steady["ok"],
        "flip_ratio_rate_to_steady": round(flip_rate / steady_rate, 2),
    }


def _cold_up(base: Path) -> dict[str, Any]:
    starts = []
    for attempt in range(UVICORN_STARTS):
        started = time.perf_counter()
        service = procs.start_service("services.backend", base / f"one-uvicorn-{attempt}", timeout=90)
        starts.append(time.perf_counter() - started)
        service.process.stop()
    one_uvicorn = statistics.median(starts)
    state_dir = base / "up-state"
    started = time.perf_counter()
    try:
        lifecycle.up(state_dir, free_ports=True)
        up = time.perf_counter() - started
    finally:
        lifecycle.down(state_dir)
    return {
        "up_cold_to_ready_s": round(up, 2),
        "up_baseline_one_uvicorn_ready_s": round(one_uvicorn, 2),
        "up_ratio_to_one_uvicorn": round(up / one_uvicorn, 2),
    }


def run() -> dict[str, Any]:
    base = Path(tempfile.mkdtemp(prefix="bench-platform-"))
    try:
        figures = _router_figures(base)
        figures.update(_cold_up(base))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    figures["goals"] = {
        "router_added_ms": f"<= {GOAL_ROUTER_ADDED_MS:g}",
        "traffic_change_visible_after_confirm_max_s": f"<= {GOAL_VISIBLE_S:g}",
        "traffic_change_stale_answers_after_confirm": "0",
        "flip_failed_requests": "0",
    }
    figures["meets_goal"] = (
        figures["router_added_ms"] <= GOAL_ROUTER_ADDED_MS
        and figures["traffic_change_visible_after_confirm_max_s"] <= GOAL_VISIBLE_S
        and figures["traffic_change_stale_answers_after_confirm"] == 0
        and figures["flip_failed_requests"] == 0
    )
    return figures


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
