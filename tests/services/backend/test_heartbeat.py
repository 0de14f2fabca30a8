"""The RPO heartbeat: written at start-up and on its schedule, one document per service."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time

import pytest
from fastapi.testclient import TestClient

from services.backend import heartbeat
from services.backend.app import create_app
from services.common.docstore import open_store
from tests.services.backend.conftest import MakeSettings


def test_backend_writes_a_heartbeat_on_its_schedule(make_settings: MakeSettings) -> None:
    settings = make_settings(heartbeat_seconds=0.2, K_SERVICE="backend", K_REVISION="backend-00007-xyz")
    store = open_store(settings.database)
    started = time.time()
    with TestClient(create_app(settings)):
        deadline = time.monotonic() + 10
        beat = None
        while time.monotonic() < deadline:
            beat = store["heartbeats"].find_one({"_id": "backend"})
            if beat is not None and beat["beats"] >= 3:
                break
            time.sleep(0.05)
    assert beat is not None and beat["beats"] >= 3, beat
    assert started <= beat["at"] <= time.time()
    assert beat["revision"] == "backend-00007-xyz"
    assert store["heartbeats"].count({}) == 1
    store.close()


def test_heartbeat_zero_writes_nothing(make_settings: MakeSettings) -> None:
    settings = make_settings(heartbeat_seconds=0)
    with TestClient(create_app(settings)) as client:
        assert client.get("/health/liveness").status_code == 200
    store = open_store(settings.database)
    assert store["heartbeats"].count({}) == 0
    store.close()


def test_a_stopped_heartbeat_waits_for_the_beat_in_flight(
    make_settings: MakeSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Shutdown cancels the heartbeat and then closes the store: a beat still running in its worker
    thread must finish first (it used to be left writing to a closed SQLite connection: a segfault)."""
    settings = make_settings(heartbeat_seconds=60)
    started, finished = threading.Event(), threading.Event()

    def slow_beat(store: object, settings: object) -> float:
        started.set()
        time.sleep(0.3)
        finished.set()
        return time.time()

    monkeypatch.setattr(heartbeat, "beat", slow_beat)

    async def start_then_stop() -> None:
        task = asyncio.create_task(heartbeat.beat_forever(None, settings))  # type: ignore[arg-type]
        await asyncio.to_thread(started.wait, 10)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert task.cancelled()

    asyncio.run(start_then_stop())
    assert finished.is_set()
