"""Probes and metrics of the in-process app."""

from __future__ import annotations

import shutil
from pathlib import Path

from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from pymongo import MongoClient

from ethixctl.procs import free_port
from services.common.docstore import MongoStore

from .conftest import register_and_login


def test_liveness_startup_and_readiness_answer(client: TestClient) -> None:
    assert client.get("/health/liveness").json() == {"status": "alive", "checks": {}}
    assert client.get("/health/startup").json() == {"status": "started", "checks": {}}
    ready = client.get("/health/readiness")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"docstore": "ok", "storage": "ok"}}


def test_readiness_is_503_when_storage_is_gone(client: TestClient, tmp_path: Path) -> None:
    shutil.rmtree(tmp_path / "data" / "bucket")
    response = client.get("/health/readiness")
    assert response.status_code == 503
    assert response.json() == {
        "status": "not_ready",
        "checks": {"docstore": "ok", "storage": "error: StorageError"},
    }


def test_readiness_gives_up_at_its_own_timeout_when_the_database_hangs(client: TestClient) -> None:
    """A real pymongo client pointed at a closed port waits 3 s for server selection; the probe reports
    its own 0.4 s timeout instead of that error. How long the answer takes is measured by
    bench/bench_backend.py (goal < 500 ms, the probe contract)."""
    backend = client.app.state.backend  # type: ignore[attr-defined]
    unreachable: MongoClient[dict[str, object]] = MongoClient(
        f"mongodb://127.0.0.1:{free_port()}/x", serverSelectionTimeoutMS=3000
    )
    healthy = backend.store
    backend.store = MongoStore(unreachable, "x")
    try:
        response = client.get("/health/readiness")
    finally:
        backend.store = healthy
        unreachable.close()
    assert response.status_code == 503
    assert response.json()["checks"] == {"docstore": "timeout after 0.4 s", "storage": "ok"}


def test_metrics_count_requests_by_route_template(client: TestClient) -> None:
    labels = {
        "method": "GET",
        "revision": "local",
        "route": "/api/v1/datasets/{dataset_id}",
        "service": "local",
        "status": "404",
    }
    before = REGISTRY.get_sample_value("http_requests_total", labels) or 0.0
    headers = register_and_login(client)
    client.get("/api/v1/datasets/some-id", headers=headers)
    client.get("/api/v1/datasets/other-id", headers=headers)
    text = client.get("/metrics").text
    assert REGISTRY.get_sample_value("http_requests_total", labels) == before + 2
    assert 'route="/api/v1/datasets/{dataset_id}"' in text and "some-id" not in text
