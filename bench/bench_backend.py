"""The backend's password handling, each figure against a baseline measured in the same run.

1. **Login throughput** against argon2id itself: the baseline is the same verification done in-process
   with the same concurrency (one client per hashing slot, i.e. per core); the ratio shows what HTTP,
   FastAPI, the thread pool, the throttle and the SQLite lookups add (1.0 would be free).
2. **Flood** (issue #15): 16 clients post wrong passwords for one account as fast as they can while
   another user reads ``/api/v1/users/me``. Its p50 against the same user's idle p50 (goal ≤ 3×).
   Also counted: how many wrong passwords reached the password check, and how many got 429.
3. **Unknown email vs wrong password**: median login latency of each (goal: indistinguishable, ≈ 1.0).
4. **Readiness while the document store hangs** (a real pymongo client on a closed port: it would wait
   3 s for server selection): the probe must answer within its contract, 500 ms (its own timeout is
   0.4 s). Baseline: the same probe with the healthy SQLite store, same app, same run.
"""

from __future__ import annotations

import json
import os
import secrets
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from argon2 import PasswordHasher

from ethixctl import procs

CONCURRENCY = len(os.sched_getaffinity(0))  # the backend's default hashing slots
DURATION_S = 8.0
FLOOD_CLIENTS = 16
FLOOD_S = 6.0
PROBES = 200
READINESS_RUNS = 10
READINESS_GOAL_MS = 500.0


def _rate(work: Callable[[], object], duration: float = DURATION_S) -> float:
    """Calls per second of ``work()`` from CONCURRENCY threads for ``duration`` seconds."""
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
    return total / (time.perf_counter() - started)


def _p50_ms(client: httpx.Client, path: str, headers: dict[str, str], count: int = PROBES) -> float:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        client.get(path, headers=headers).raise_for_status()
        samples.append((time.perf_counter() - started) * 1000)
        time.sleep(0.01)
    return statistics.median(samples)


def _failed_login_ms(client: httpx.Client, email: str, client_address: str) -> float:
    headers = {"X-Forwarded-For": client_address}  # a fresh client each time: the throttle stays out
    started = time.perf_counter()
    status = client.post(
        "/api/v1/auth/login", json={"email": email, "password": "wrong-pw!"}, headers=headers
    )
    assert status.status_code == 401, status.status_code
    return (time.perf_counter() - started) * 1000


def _unknown_vs_wrong(client: httpx.Client, password: str, rounds: int = 12) -> tuple[float, float]:
    """Median ms of a wrong password for existing accounts and of unknown emails, interleaved so both
    see the same machine load; one attempt per account keeps each under the throttle."""
    known = [f"known{i}@example.invalid" for i in range(rounds)]
    for email in known:
        client.post("/api/v1/auth/register", json={"email": email, "password": password}).raise_for_status()
    wrong, unknown = [], []
    for i, email in enumerate(known):
        wrong.append(_failed_login_ms(client, email, f"192.0.2.{i + 1}"))
        unknown.append(_failed_login_ms(client, f"nobody{i}@example.invalid", f"192.0.2.{i + 101}"))
    return statistics.median(wrong), statistics.median(unknown)


def _flood(service: procs.Service, reader: dict[str, str]) -> dict[str, object]:
    statuses: list[int] = []
    lock = threading.Lock()
    stop = threading.Event()

    def attacker(number: int) -> None:
        headers = {"X-Forwarded-For": f"198.51.100.{number}"}
        with httpx.Client(base_url=service.url, timeout=30, headers=headers) as client:
            while not stop.is_set():
                body = {"email": "victim@example.invalid", "password": secrets.token_hex(8)}
                status = client.post("/api/v1/auth/login", json=body).status_code
                with lock:
                    statuses.append(status)

    with httpx.Client(base_url=service.url, timeout=30) as client:
        idle = _p50_ms(client, "/api/v1/users/me", reader)
        threads = [threading.Thread(target=attacker, args=(n,)) for n in range(1, FLOOD_CLIENTS + 1)]
        for thread in threads:
            thread.start()
        time.sleep(1.0)  # the flood is in full swing
        started = time.perf_counter()
        flooded = _p50_ms(client, "/api/v1/users/me", reader)
        while time.perf_counter() - started < FLOOD_S:
            time.sleep(0.1)
        stop.set()
        for thread in threads:
            thread.join()
    return {
        "clients": FLOOD_CLIENTS,
        "users_me_p50_idle_ms": round(idle, 2),
        "users_me_p50_flooded_ms": round(flooded, 2),
        "ratio_flooded_vs_idle": round(flooded / idle, 2),
        "goal_ratio": 3.0,
        "login_attempts": len(statuses),
        "reached_password_check_401": statuses.count(401),
        "refused_429": statuses.count(429),
    }


def run() -> dict[str, object]:
    password = secrets.token_urlsafe(16)
    with tempfile.TemporaryDirectory() as tmp:
        service = procs.start_service("services.backend", Path(tmp))
        try:
            credentials = {"email": "bench@example.invalid", "password": password}
            with httpx.Client(base_url=service.url, timeout=30) as client:
                client.post("/api/v1/auth/register", json=credentials).raise_for_status()
                token = client.post("/api/v1/auth/login", json=credentials).json()["access_token"]
                reader = {"Authorization": f"Bearer {token}"}

                def login() -> None:
                    client.post("/api/v1/auth/login", json=credentials).raise_for_status()

                http_rate = _rate(login)
                client.post(
                    "/api/v1/auth/register", json={"email": "victim@example.invalid", "password": password}
                ).raise_for_status()
                wrong_ms, unknown_ms = _unknown_vs_wrong(client, password)
            flood = _flood(service, reader)
        finally:
            service.process.stop()
    hasher = PasswordHasher()  # the backend's defaults: argon2id, 64 MiB, 3 passes
    stored = hasher.hash(password)
    baseline_rate = _rate(lambda: hasher.verify(stored, password))
    return {
        "concurrency": CONCURRENCY,
        "login_per_s": round(http_rate, 2),
        "baseline_argon2_verify_per_s": round(baseline_rate, 2),
        "ratio_login_vs_argon2": round(http_rate / baseline_rate, 2),
        "wrong_password_login_median_ms": round(wrong_ms, 1),
        "unknown_email_login_median_ms": round(unknown_ms, 1),
        "ratio_unknown_vs_wrong": round(unknown_ms / wrong_ms, 2),
        "flood": flood,
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
