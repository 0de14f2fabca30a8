"""Backend login throughput against the cost of argon2id itself, measured in the same run.

Login is dominated by one argon2id verification (64 MiB, 3 passes by default). The baseline is the
same verification done in-process with the same concurrency; the ratio shows what HTTP, FastAPI, the
thread pool and the SQLite lookup add on top (1.0 would be free).
"""

from __future__ import annotations

import json
import secrets
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from argon2 import PasswordHasher

from ethixctl import procs

CONCURRENCY = 4
DURATION_S = 8.0


def _rate(work: object, duration: float = DURATION_S) -> float:
    """Calls per second of ``work()`` from CONCURRENCY threads for ``duration`` seconds."""
    deadline = time.perf_counter() + duration

    def loop() -> int:
        count = 0
        while time.perf_counter() < deadline:
            work()  # type: ignore[operator]
            count += 1
        return count

    started = time.perf_counter()
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        total = sum(pool.map(lambda _: loop(), range(CONCURRENCY)))
    return total / (time.perf_counter() - started)


def run() -> dict[str, object]:
    password = secrets.token_urlsafe(16)
    with tempfile.TemporaryDirectory() as tmp:
        service = procs.start_service("services.backend", Path(tmp))
        try:
            credentials = {"email": "bench@example.invalid", "password": password}
            with httpx.Client(base_url=service.url, timeout=30) as client:
                client.post("/api/v1/auth/register", json=credentials).raise_for_status()

                def login() -> None:
                    client.post("/api/v1/auth/login", json=credentials).raise_for_status()

                http_rate = _rate(login)
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
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
