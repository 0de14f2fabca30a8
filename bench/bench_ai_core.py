"""ai_core: analyze latency over HTTP, and probe latency while analyses saturate the worker.

Goals: median ≤ 100 ms for a 10-row CSV and ≤ 2 s for a 10,000-row × 10-column CSV; liveness p99
≤ 50 ms while 10k-row analyses run back to back (the only latency goal for the probe: the tests check
behaviour, not speed). Baselines measured in the same run, interleaved so both sides see the same
machine load: the same analysis computed in this process without HTTP (ratio HTTP/in-process:
the cost of the service around the computation), and the probe latency when the service is idle
(ratio loaded/idle).
"""

from __future__ import annotations

import json
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from ethixctl import procs
from services.ai_core.analysis import analyze, warm_up
from services.ai_core.schemas import AnalyzeRequest
from services.ai_core.synthetic import biased_csv

GOAL_SMALL_MEDIAN_MS = 100.0
GOAL_LARGE_MEDIAN_MS = 2000.0
GOAL_LOADED_PROBE_P99_MS = 50.0
SMALL_RUNS = 30
LARGE_RUNS = 7
IDLE_PROBES = 100
LOADED_ANALYSES = 5
PROBE_INTERVAL_S = 0.01


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _request(csv: str) -> dict[str, Any]:
    return {"target": "approved", "protected_attribute": "group", "positive_label": 1, "csv": csv}


def _timed_post(client: httpx.Client, body: bytes) -> float:
    started = time.perf_counter()
    response = client.post("/api/v1/analyze", content=body, headers={"content-type": "application/json"})
    elapsed = time.perf_counter() - started
    response.raise_for_status()
    return elapsed


def _timed_in_process(request: AnalyzeRequest) -> float:
    started = time.perf_counter()
    analyze(request)
    return time.perf_counter() - started


def _latency(client: httpx.Client, name: str, csv: str, runs: int) -> dict[str, Any]:
    body = json.dumps(_request(csv)).encode()
    request = AnalyzeRequest.model_validate(_request(csv))
    _timed_post(client, body)
    _timed_in_process(request)
    http: list[float] = []
    local: list[float] = []
    for _ in range(runs):
        http.append(_timed_post(client, body))
        local.append(_timed_in_process(request))
    median = statistics.median(http)
    baseline = statistics.median(local)
    return {
        f"{name}_median_ms": _ms(median),
        f"{name}_p95_ms": _ms(_percentile(http, 0.95)),
        f"{name}_baseline_in_process_median_ms": _ms(baseline),
        f"{name}_ratio_http_to_in_process": round(median / baseline, 2),
        f"{name}_runs": runs,
    }


def _probe(client: httpx.Client) -> float:
    started = time.perf_counter()
    client.get("/health/liveness").raise_for_status()
    return time.perf_counter() - started


def _probes_under_load(client: httpx.Client, url: str, large_csv: str) -> tuple[list[float], int]:
    body = json.dumps(_request(large_csv)).encode()
    done = threading.Event()
    finished: list[float] = []

    def saturate() -> None:
        with httpx.Client(base_url=url, timeout=120) as loader:
            for _ in range(LOADED_ANALYSES):
                finished.append(_timed_post(loader, body))
        done.set()

    loader = threading.Thread(target=saturate)
    loader.start()
    latencies: list[float] = []
    try:
        time.sleep(0.2)  # let the first analysis reach the worker
        while not done.is_set():
            latencies.append(_probe(client))
            time.sleep(PROBE_INTERVAL_S)
    finally:
        loader.join(timeout=300)
    return latencies, len(finished)


def run() -> dict[str, Any]:
    small_csv = biased_csv(10, 10, seed=1)
    large_csv = biased_csv(10_000, 10, seed=2)
    warm_up()  # the in-process baseline pays its imports here, as the service's warm-up does
    with tempfile.TemporaryDirectory(prefix="bench-ai-core-") as tmp:
        started = time.perf_counter()
        service = procs.start_service("services.ai_core", Path(tmp), timeout=90)
        startup_s = time.perf_counter() - started
        try:
            with httpx.Client(base_url=service.url, timeout=120) as client:
                result: dict[str, Any] = {
                    "startup_until_warm_s": round(startup_s, 2),
                    **_latency(client, "analyze_10_rows", small_csv, SMALL_RUNS),
                    **_latency(client, "analyze_10k_rows", large_csv, LARGE_RUNS),
                }
                idle = [_probe(client) for _ in range(IDLE_PROBES)]
                loaded, analyses = _probes_under_load(client, service.url, large_csv)
        finally:
            service.process.stop()
    idle_p99 = _percentile(idle, 0.99)
    loaded_p99 = _percentile(loaded, 0.99)
    result.update(
        {
            "probe_baseline_idle_p50_ms": _ms(_percentile(idle, 0.5)),
            "probe_baseline_idle_p99_ms": _ms(idle_p99),
            "probe_loaded_p50_ms": _ms(_percentile(loaded, 0.5)),
            "probe_loaded_p99_ms": _ms(loaded_p99),
            "probe_ratio_loaded_to_idle_p99": round(loaded_p99 / idle_p99, 2),
            "probe_loaded_samples": len(loaded),
            "probe_loaded_during_analyses": analyses,
            "goal_analyze_10_rows_median_ms": GOAL_SMALL_MEDIAN_MS,
            "goal_analyze_10k_rows_median_ms": GOAL_LARGE_MEDIAN_MS,
            "goal_probe_loaded_p99_ms": GOAL_LOADED_PROBE_P99_MS,
        }
    )
    result["meets_goal"] = (
        result["analyze_10_rows_median_ms"] <= GOAL_SMALL_MEDIAN_MS
        and result["analyze_10k_rows_median_ms"] <= GOAL_LARGE_MEDIAN_MS
        and result["probe_loaded_p99_ms"] <= GOAL_LOADED_PROBE_P99_MS
    )
    return result


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
