"""Backend: login throughput against the cost of argon2id itself, and readiness with a hung database.

Login is dominated by one argon2id verification (64 MiB, 3 passes by default). The baseline is the
same verification done in-process with the same concurrency, measured in alternating 2 s slices so both
see the same machine load; the ratio shows what HTTP, FastAPI, the thread pool and the SQLite lookup
cost on top (1.0 would be free).

Readiness while the document store hangs (a real pymongo client on a closed port: it would wait 3 s for
server selection): the probe must answer within its contract, 500 ms (its own timeout is 0.4 s).
Baseline: the same probe with the healthy SQLite store, same app, same run.
"""

from __future__ import annotations

import json
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from argon2 import PasswordHasher

from ethixctl import procs

CONCURRENCY = 4
SLICE_S = 2.0
SLICES = 4
READINESS_RUNS = 10
READINESS_GOAL_MS = 500.0


def _calls(work: Callable[[], None], duration: float) -> tuple[int, float]:
    """Calls of ``work()`` from CONCURRENCY threads for ``duration`` seconds, and the seconds it took."""
    deadline = time.perf_counter() + duration

    def loop() -> int:
        count = 0
        while time.perf_counter() < deadline:
            work()
            count += 1
        return count

    started = time.perf_counter()
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        total = sum(pool.map(lambda _: loop(), range(CONCURRENCY)))
    return total, time.perf_counter() - started


def run() -> dict[str, object]:
    password = secrets.token_urlsafe(16)
    hasher = PasswordHasher()  # the backend's defaults: argon2id, 64 MiB, 3 passes
    stored = hasher.hash(password)
    totals = {"login": [0, 0.0], "argon2": [0, 0.0]}
    with tempfile.TemporaryDirectory() as tmp:
        service = procs.start_service("services.backend", Path(tmp))
        try:
            credentials = {"email": "bench@example.invalid", "password": password}
            with httpx.Client(base_url=service.url, timeout=30) as client:
                client.post("/api/v1/auth/register", json=credentials).raise_for_status()

                def login() -> None:
                    client.post("/api/v1/auth/login", json=credentials).raise_for_status()

                def verify() -> None:
                    hasher.verify(stored, password)

                for _ in range(SLICES):
                    for name, work in (("login", login), ("argon2", verify)):
                        calls, seconds = _calls(work, SLICE_S)
                        totals[name][0] += calls
                        totals[name][1] += seconds
        finally:
            service.process.stop()
    http_rate = totals["login"][0] / totals["login"][1]
    baseline_rate = totals["argon2"][0] / totals["argon2"][1]
    return {
        "concurrency": CONCURRENCY,
        "login_per_s": round(http_rate, 2),
        "baseline_argon2_verify_per_s": round(baseline_rate, 2),
        "ratio_login_vs_argon2": round(http_rate / baseline_rate, 2),
        **_readiness_with_hung_database(),
    }


def _timed_readiness(client: Any, expect: int) -> float:
    started = time.perf_counter()
    status = client.get("/health/readiness").status_code
    elapsed = time.perf_counter() - started
    if status != expect:
        raise RuntimeError(f"readiness answered {status}, expected {expect}")
    return elapsed


def _readiness_with_hung_database() -> dict[str, object]:
    from fastapi.testclient import TestClient
    from pymongo import MongoClient

    from services.backend.app import create_app
    from services.backend.settings import BackendSettings
    from services.common.docstore import MongoStore

    timeout = BackendSettings.model_fields["readiness_timeout_seconds"].default
    with (
        tempfile.TemporaryDirectory() as tmp,
        TestClient(create_app(BackendSettings(data_dir=Path(tmp)))) as client,
    ):
        backend = client.app.state.backend  # type: ignore[attr-defined]
        healthy_store = backend.store
        healthy = [_timed_readiness(client, 200) for _ in range(READINESS_RUNS)]
        unreachable: MongoClient[dict[str, object]] = MongoClient(
            f"mongodb://127.0.0.1:{procs.free_port()}/x", serverSelectionTimeoutMS=3000
        )
        backend.store = MongoStore(unreachable, "x")
        try:
            hung = [_timed_readiness(client, 503) for _ in range(READINESS_RUNS)]
        finally:
            backend.store = healthy_store
            unreachable.close()
    hung_median = statistics.median(hung)
    return {
        "readiness_hung_database_median_ms": round(hung_median * 1000, 1),
        "readiness_hung_database_max_ms": round(max(hung) * 1000, 1),
        "readiness_baseline_healthy_median_ms": round(statistics.median(healthy) * 1000, 1),
        "readiness_ratio_hung_to_configured_timeout": round(hung_median / timeout, 2),
        "readiness_goal_ms": READINESS_GOAL_MS,
        "readiness_met": max(hung) * 1000 <= READINESS_GOAL_MS,
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
