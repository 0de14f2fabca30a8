"""The RPO heartbeat: written at start-up and on its schedule, one document per service."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient

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
