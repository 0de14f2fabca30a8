"""A steady, bounded load generator: gates need requests (Flagger ships a load tester for the same reason).

Requests are scheduled at a fixed rate from one thread and sent by a small worker pool, so a slow
canary (latency fault) does not slow the schedule down until every worker is busy. Loopback only:
this is for the local platform, never a way to load someone else's service.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import httpx

from ethixctl.errors import UsageError

MAX_RPS = 200
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class LoadGenerator:
    """``with LoadGenerator(url, rps): ...`` sends ``rps`` requests per second until the block ends."""

    def __init__(self, url: str, rps: float, *, workers: int = 32, timeout: float = 10.0):
        host = urlsplit(url).hostname or ""
        if host not in LOOPBACK:
            raise UsageError(f"--load only targets loopback addresses, not {host!r}")
        if not 0 < rps <= MAX_RPS:
            raise UsageError(f"--load must be between 0 and {MAX_RPS} requests per second, got {rps:g}")
        self.url = url
        self.rps = rps
        self.statuses: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._client = httpx.Client(timeout=timeout, limits=httpx.Limits(max_connections=workers))
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="loadgen")
        self._thread = threading.Thread(target=self._schedule, name="loadgen-scheduler", daemon=True)

    def __enter__(self) -> LoadGenerator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._client.close()

    @property
    def sent(self) -> int:
        with self._lock:
            return sum(self.statuses.values())

    def _schedule(self) -> None:
        period = 1.0 / self.rps
        next_at = time.monotonic()
        while not self._stop.is_set():
            self._pool.submit(self._one)
            next_at += period
            delay = next_at - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            else:
                next_at = time.monotonic()  # fell behind: do not burst to catch up

    def _one(self) -> None:
        try:
            key = str(self._client.get(self.url).status_code)
        except httpx.HTTPError as exc:
            key = type(exc).__name__
        with self._lock:
            self.statuses[key] += 1


def run(url: str, rps: float, duration: float) -> Counter[str]:
    """Send load for ``duration`` seconds and return the answers by status code (or error name)."""
    with LoadGenerator(url, rps) as generator:
        time.sleep(duration)
    return generator.statuses
