"""Local platform benchmark: traffic-change propagation, failures while traffic flips, router overhead
(p50 through Caddy vs direct to the revision, both measured in this run) and `ethixctl up` cold start.

Uses the runtime directly with the tests' tiny "echo" service for the router figures, and the real
`ethixctl up` (backend + ai_core) for the cold start. ``python -m bench.bench_platform`` prints JSON.
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


def _p50_ms(client: httpx.Client, url: str, n: int = 300) -> float:
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        client.get(url)
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def _router_figures(base: Path) -> dict[str, Any]:
    from ethixctl.platform import images
    from tests.ethixctl.platform.conftest import make_source

    state_dir = base / "router-state"
    state_dir.mkdir()
    router = Router(state_dir, procs.free_port(), procs.free_port())
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
        # Both tagged, so that neither is scaled to zero when it has 0%: these figures are the router's.
        warm = {"one": "echo-1", "two": "echo-2"}
        runtime.apply_traffic("echo", {"echo-1": 100}, warm)
        direct = runtime.revision_status("echo-1").url
        assert direct is not None
        with httpx.Client(timeout=5) as client:
            _p50_ms(client, url, 50)
            via_caddy = _p50_ms(client, url)
            direct_p50 = _p50_ms(client, direct)
            # Propagation: from apply_traffic until a client sees only the new revision 20 times in a row.
            started = time.perf_counter()
            runtime.apply_traffic("echo", {"echo-2": 100}, warm)
            streak = 0
            while streak < 20:
                streak = streak + 1 if client.get(url).json()["revision"] == "echo-2" else 0
            propagation = time.perf_counter() - started - 20 * via_caddy / 1000

        stop = threading.Event()
        results: Counter[str] = Counter()

        def load() -> None:
            with httpx.Client(timeout=5) as c:
                while not stop.is_set():
                    try:
                        results["ok" if c.get(url).status_code == 200 else "http_error"] += 1
                    except httpx.HTTPError:
                        results["transport_error"] += 1

        workers = [threading.Thread(target=load) for _ in range(4)]
        for worker in workers:
            worker.start()
        started = time.perf_counter()
        for step in range(20):
            runtime.apply_traffic(
                "echo", {"echo-1": 100 - (step % 2) * 100, "echo-2": (step % 2) * 100}, warm
            )
            time.sleep(0.1)
        stop.set()
        for worker in workers:
            worker.join()
        elapsed = time.perf_counter() - started
        total = sum(results.values())
        return {
            "router_p50_ms": round(via_caddy, 3),
            "direct_p50_ms": round(direct_p50, 3),
            "router_added_ms": round(via_caddy - direct_p50, 3),
            "router_ratio": round(via_caddy / direct_p50, 2),
            "traffic_change_visible_s": round(max(propagation, 0.0), 4),
            "flip_requests": total,
            "flip_rate_rps": round(total / elapsed, 1),
            "flip_failed_requests": total - results["ok"],
            "flip_failures_by_kind": dict(results),
        }
    finally:
        runtime.shutdown()
        router.stop()


def _cold_up(base: Path) -> dict[str, Any]:
    state_dir = base / "up-state"
    started = time.perf_counter()
    try:
        lifecycle.up(state_dir, free_ports=True)
        return {"up_cold_to_ready_s": round(time.perf_counter() - started, 2)}
    finally:
        lifecycle.down(state_dir)


def run() -> dict[str, Any]:
    base = Path(tempfile.mkdtemp(prefix="bench-platform-"))
    try:
        figures = _router_figures(base)
        figures.update(_cold_up(base))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    figures["goals"] = {
        "traffic_change_visible_s": "<= 1",
        "flip_failed_requests": "0 at >= 50 req/s",
        "router_added_ms": "<= 2",
    }
    return figures


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
