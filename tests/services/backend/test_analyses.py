"""Analyses against a wire-level fake of ai_core (a real HTTP server scripted per test).

The real ai_core is exercised by the end-to-end test; here the fake lets each test choose what ai_core
answers (success, 503 then success, 422, nothing at all) to check retries, errors and state changes.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from services.backend.app import create_app
from services.backend.runner import INTERRUPTED
from services.common.docstore import open_store

from .conftest import CSV, REPORT, FakeAiCore, MakeSettings, register_and_login, upload, wait_finished


def _analysis_body(dataset_id: str, **overrides: Any) -> dict[str, Any]:
    return {
        "dataset_id": dataset_id,
        "target": "approved",
        "protected_attribute": "group",
        "positive_label": "yes",
        **overrides,
    }


def _outcomes(outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "ethix_analyses_total", {"service": "local", "revision": "local", "outcome": outcome}
    )
    return value or 0.0


def test_analysis_succeeds_and_report_is_stored_ai_core_wire_level_fake(
    make_settings: MakeSettings, fake_ai_core: FakeAiCore
) -> None:
    fake_ai_core.gate.clear()  # ai_core answers nothing until the test opens the gate
    before = _outcomes("succeeded")
    with TestClient(create_app(make_settings(AI_CORE_URL=fake_ai_core.url))) as client:
        headers = register_and_login(client)
        dataset_id = upload(client, headers).json()["id"]
        accepted = client.post("/api/v1/analyses", headers=headers, json=_analysis_body(dataset_id))
        # Answered while ai_core still holds its answer: the analysis runs in the background.
        assert accepted.status_code == 202 and fake_ai_core.answered == 0
        body = accepted.json()
        assert body["status"] == "queued" and body["dataset_id"] == dataset_id and body["finished_at"] is None
        assert client.get(f"/api/v1/analyses/{body['id']}/report", headers=headers).status_code == 409
        fake_ai_core.gate.set()
        done = wait_finished(client, headers, body["id"])
        assert done["status"] == "succeeded" and done["error"] is None and done["finished_at"]
        report = client.get(f"/api/v1/analyses/{body['id']}/report", headers=headers)
        assert report.status_code == 200 and report.json() == REPORT
    [request] = fake_ai_core.requests
    assert request["path"] == "/api/v1/analyze"
    assert request["body"] == {
        "target": "approved",
        "protected_attribute": "group",
        "positive_label": "yes",
        "csv": CSV.decode(),
    }
    assert _outcomes("succeeded") == before + 1
    assert (
        REGISTRY.get_sample_value(
            "ethix_analysis_duration_seconds_count", {"service": "local", "revision": "local"}
        )
        or 0
    ) >= 1


def test_503_is_retried_with_backoff_ai_core_wire_level_fake(
    make_settings: MakeSettings, fake_ai_core: FakeAiCore
) -> None:
    fake_ai_core.script = [(503, {"detail": "warming up"}), (502, {}), (200, REPORT)]
    with TestClient(create_app(make_settings(AI_CORE_URL=fake_ai_core.url))) as client:
        headers = register_and_login(client)
        dataset_id = upload(client, headers).json()["id"]
        analysis_id = client.post(
            "/api/v1/analyses", headers=headers, json=_analysis_body(dataset_id)
        ).json()["id"]
        assert wait_finished(client, headers, analysis_id)["status"] == "succeeded"
    assert len(fake_ai_core.requests) == 3


def test_4xx_is_not_retried_and_its_detail_becomes_the_error_ai_core_wire_level_fake(
    make_settings: MakeSettings, fake_ai_core: FakeAiCore
) -> None:
    fake_ai_core.script = [(422, {"detail": "target 'approved' is not binary"})]
    before = _outcomes("failed")
    with TestClient(create_app(make_settings(AI_CORE_URL=fake_ai_core.url))) as client:
        headers = register_and_login(client)
        dataset_id = upload(client, headers).json()["id"]
        analysis_id = client.post(
            "/api/v1/analyses", headers=headers, json=_analysis_body(dataset_id)
        ).json()["id"]
        done = wait_finished(client, headers, analysis_id)
        assert done["status"] == "failed"
        assert done["error"] == "ai_core rejected the analysis (422): target 'approved' is not binary"
        report = client.get(f"/api/v1/analyses/{analysis_id}/report", headers=headers)
        assert report.status_code == 409 and "analysis is failed" in report.json()["detail"]
    assert len(fake_ai_core.requests) == 1
    assert _outcomes("failed") == before + 1


def test_unreachable_ai_core_fails_after_bounded_retries(make_settings: MakeSettings) -> None:
    from ethixctl.procs import free_port

    with TestClient(create_app(make_settings(AI_CORE_URL=f"http://127.0.0.1:{free_port()}"))) as client:
        headers = register_and_login(client)
        dataset_id = upload(client, headers).json()["id"]
        analysis_id = client.post(
            "/api/v1/analyses", headers=headers, json=_analysis_body(dataset_id)
        ).json()["id"]
        done = wait_finished(client, headers, analysis_id)
        assert done["status"] == "failed" and done["error"] == "ai_core unreachable after 3 attempts"


def test_bad_columns_unknown_dataset_and_foreign_analyses(client: TestClient) -> None:
    alice = register_and_login(client, "alice@example.com")
    mallory = register_and_login(client, "mallory@example.com")
    dataset_id = upload(client, alice).json()["id"]
    bad = client.post("/api/v1/analyses", headers=alice, json=_analysis_body(dataset_id, target="income"))
    assert bad.status_code == 422 and "dataset has no column 'income'" in bad.json()["detail"]
    same = client.post("/api/v1/analyses", headers=alice, json=_analysis_body(dataset_id, target="group"))
    assert same.status_code == 422 and "must differ" in same.json()["detail"]
    assert client.post("/api/v1/analyses", headers=alice, json=_analysis_body("nope")).status_code == 404
    # Mallory cannot start an analysis on Alice's dataset, nor see Alice's analysis or report.
    assert (
        client.post("/api/v1/analyses", headers=mallory, json=_analysis_body(dataset_id)).status_code == 404
    )
    analysis_id = client.post("/api/v1/analyses", headers=alice, json=_analysis_body(dataset_id)).json()["id"]
    assert client.get(f"/api/v1/analyses/{analysis_id}", headers=mallory).status_code == 404
    assert client.get(f"/api/v1/analyses/{analysis_id}/report", headers=mallory).status_code == 404
    assert client.get(f"/api/v1/analyses/{analysis_id}", headers=alice).status_code == 200


def test_analyses_left_by_a_dead_process_are_marked_failed_on_startup(make_settings: MakeSettings) -> None:
    settings = make_settings(analysis_lease_seconds=5)
    store = open_store(settings.database)
    common = {
        "owner_id": "u",
        "dataset_id": "d",
        "target": "t",
        "protected_attribute": "p",
        "positive_label": 1,
        "error": None,
        "created_at": "2026-01-01T00:00:00+00:00",
        "finished_at": None,
    }
    store["analyses"].insert_one(
        {"_id": "orphan", **common, "status": "running", "heartbeat_at": time.time() - 60}
    )
    store["analyses"].insert_one(
        {"_id": "queued", **common, "status": "queued", "heartbeat_at": time.time() - 60}
    )
    store["analyses"].insert_one(
        {"_id": "alive", **common, "status": "running", "heartbeat_at": time.time() + 60}
    )
    with TestClient(create_app(settings)):
        pass
    states = {d["_id"]: (d["status"], d["error"]) for d in store["analyses"].find({})}
    store.close()
    assert states == {
        "orphan": ("failed", INTERRUPTED),
        "queued": ("failed", INTERRUPTED),
        "alive": ("running", None),
    }


def test_shutdown_marks_in_flight_analyses_failed_ai_core_wire_level_fake(
    make_settings: MakeSettings, fake_ai_core: FakeAiCore
) -> None:
    fake_ai_core.delay = 3
    settings = make_settings(AI_CORE_URL=fake_ai_core.url)
    with TestClient(create_app(settings)) as client:
        headers = register_and_login(client)
        dataset_id = upload(client, headers).json()["id"]
        analysis_id = client.post(
            "/api/v1/analyses", headers=headers, json=_analysis_body(dataset_id)
        ).json()["id"]
        deadline = time.monotonic() + 5
        while not fake_ai_core.requests and time.monotonic() < deadline:
            time.sleep(0.02)
    store = open_store(settings.database)
    doc = store["analyses"].find_one({"_id": analysis_id})
    store.close()
    assert doc is not None and doc["status"] == "failed" and doc["error"] == INTERRUPTED
