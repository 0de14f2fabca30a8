"""Runs analyses in a worker process so the event loop (and so the health probes) never waits on the CPU.

A process, not a thread: pandas and fairlearn hold the GIL for most of an analysis, and a probe stuck
behind it would make Cloud Run restart a busy but healthy instance. The worker runs at a lower priority
for the same reason. It is started with ``spawn``: forking a process that already runs uvicorn's threads
is unsafe.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from services.ai_core import analysis
from services.ai_core.schemas import AnalyzeRequest

WORKER_NICENESS = 5


class Busy(Exception):
    """More analyses are waiting than the queue allows."""


class WorkerLost(Exception):
    """The worker process died (killed, out of memory) while analysing; the pool has been replaced."""


def _init_worker() -> None:
    os.nice(WORKER_NICENESS)


class Engine:
    def __init__(self, limits: analysis.Limits, workers: int, max_queued: int):
        self.limits = limits
        self._workers = workers
        self._max_queued = max_queued
        self._pending = 0
        self._lock = threading.Lock()
        self._pool = self._new_pool()
        self._warm_ups: list[Future[float]] = []

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self._workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
        )

    def start_warm_up(self) -> None:
        """Have every worker load the heavy libraries and compute one tiny analysis.

        A warm-up takes seconds while picking up a task takes microseconds, so each idle worker takes one.
        """
        self._warm_ups = [self._pool.submit(analysis.warm_up) for _ in range(self._workers)]

    @property
    def warm(self) -> bool:
        return bool(self._warm_ups) and all(f.done() and f.exception() is None for f in self._warm_ups)

    @property
    def warm_up_error(self) -> str | None:
        for future in self._warm_ups:
            if future.done() and (error := future.exception()) is not None:
                return f"{type(error).__name__}: {error}"
        return None

    @property
    def pending(self) -> int:
        return self._pending

    async def analyze(self, request: AnalyzeRequest) -> dict[str, Any]:
        with self._lock:
            if self._pending >= self._max_queued:
                raise Busy(f"{self._pending} analyses already waiting")
            self._pending += 1
        pool = self._pool
        try:
            return await asyncio.wrap_future(pool.submit(analysis.analyze, request, self.limits))
        except BrokenProcessPool as exc:
            self._replace(pool)
            raise WorkerLost("the analysis worker process died; retry the request") from exc
        finally:
            with self._lock:
                self._pending -= 1

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is broken:
                self._pool = self._new_pool()
                self.start_warm_up()
        broken.shutdown(wait=False, cancel_futures=True)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
