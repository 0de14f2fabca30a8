"""The worker pool: bounded queue, and recovery when the worker process dies mid-analysis."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
from collections.abc import Iterator

import numpy as np
import pytest

from services.ai_core.analysis import Limits
from services.ai_core.engine import Busy, Engine, WorkerLost
from services.ai_core.schemas import AnalyzeRequest


def large_request(n: int) -> AnalyzeRequest:
    rng = np.random.default_rng(11)
    lines = ["a,b,c,g,y"] + [
        f"{a:.3f},{b:.3f},{c:.3f},{'pq'[i % 2]},{int(a + b > 0)}"
        for i, (a, b, c) in enumerate(rng.normal(size=(n, 3)))
    ]
    return AnalyzeRequest(target="y", protected_attribute="g", positive_label=1, csv="\n".join(lines))


@pytest.fixture
def engine() -> Iterator[Engine]:
    engine = Engine(Limits(), workers=1, max_queued=1)
    engine.start_warm_up()
    yield engine
    engine.shutdown()


def _new_children(before: set[int | None]) -> list[multiprocessing.process.BaseProcess]:
    return [child for child in multiprocessing.active_children() if child.pid not in before]


async def _wait_warm(engine: Engine) -> None:
    for _ in range(900):
        if engine.warm:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"warm-up did not finish: {engine.warm_up_error}")


def test_queue_beyond_the_limit_is_refused(engine: Engine) -> None:
    async def scenario() -> list[object]:
        await _wait_warm(engine)
        return await asyncio.gather(
            engine.analyze(large_request(3000)), engine.analyze(large_request(20)), return_exceptions=True
        )

    first, second = asyncio.run(scenario())
    assert isinstance(first, dict) and first["n_rows"] == 3000
    assert isinstance(second, Busy)
    assert engine.pending == 0


def test_a_killed_worker_is_replaced_and_reported() -> None:
    before = {child.pid for child in multiprocessing.active_children()}
    engine = Engine(Limits(), workers=1, max_queued=1)

    async def scenario() -> tuple[BaseException | dict[str, object], dict[str, object]]:
        engine.start_warm_up()
        await _wait_warm(engine)
        running = asyncio.ensure_future(engine.analyze(large_request(5_000)))
        # Every future still pending or running when a worker dies fails, so the exact moment is moot.
        await asyncio.sleep(0.05)
        [worker] = _new_children(before)
        os.kill(worker.pid or 0, signal.SIGKILL)
        try:
            outcome: BaseException | dict[str, object] = await running
        except WorkerLost as exc:
            outcome = exc
        await _wait_warm(engine)
        return outcome, await engine.analyze(large_request(50))

    try:
        lost, after = asyncio.run(scenario())
    finally:
        engine.shutdown()
    assert isinstance(lost, WorkerLost)
    assert "worker process died" in str(lost)
    assert after["n_rows"] == 50
