"""End to end over HTTP against the real processes: backend and ai_core as uvicorn servers.

register → login → upload → analyze → poll → report → metrics, then the cleanup the smoke suite uses.
"""

from __future__ import annotations

import random
import re
import time

import httpx
import pytest

from ethixctl.procs import Service


def _loans_csv(rows: int = 120, seed: int = 3) -> bytes:
    rng = random.Random(seed)
    lines = ["income,age,group,approved"]
    for _ in range(rows):
        group = rng.choice(["a", "b"])
        # Group b earns less, so an income-based model approves it less often: the gap the report shows.
        income = rng.randint(50, 120) if group == "a" else rng.randint(20, 90)
        age = rng.randint(18, 80)
        approved = int(income + rng.randint(-10, 10) > 75)
        lines.append(f"{income},{age},{group},{approved}")
    return ("\n".join(lines) + "\n").encode()


@pytest.mark.e2e
def test_register_upload_analyze_report_and_metrics(backend_service: Service) -> None:
    with httpx.Client(base_url=backend_service.url, timeout=30) as http:
        credentials = {"email": "e2e@example.com", "password": "e2e-password"}
        assert http.post("/api/v1/auth/register", json=credentials).status_code == 201
        login = http.post("/api/v1/auth/login", json=credentials)
        assert login.status_code == 200
        auth = {"Authorization": f"Bearer {login.json()['access_token']}"}

        data = _loans_csv()
        upload = http.post("/api/v1/datasets", headers=auth, files={"file": ("loans.csv", data, "text/csv")})
        assert upload.status_code == 201, upload.text
        dataset = upload.json()
        assert dataset["rows"] == 120 and dataset["columns"] == ["income", "age", "group", "approved"]

        body = {
            "dataset_id": dataset["id"],
            "target": "approved",
            "protected_attribute": "group",
            "positive_label": 1,
        }
        accepted = http.post("/api/v1/analyses", headers=auth, json=body)
        assert accepted.status_code == 202 and accepted.json()["status"] == "queued"
        analysis_id = accepted.json()["id"]

        deadline = time.monotonic() + 60
        status = "queued"
        while time.monotonic() < deadline:
            current = http.get(f"/api/v1/analyses/{analysis_id}", headers=auth).json()
            status = current["status"]
            if status in ("succeeded", "failed"):
                break
            time.sleep(0.2)
        assert status == "succeeded", current

        report = http.get(f"/api/v1/analyses/{analysis_id}/report", headers=auth)
        assert report.status_code == 200
        result = report.json()
        assert result["n_rows"] == 120
        assert set(result["fairness"]["selection_rate"]) == {"a", "b"}
        assert result["fairness"]["selection_rate"]["a"] > result["fairness"]["selection_rate"]["b"]
        assert "income" in result["feature_importance"] and "group" not in result["feature_importance"]

        metrics = http.get("/metrics").text
        for route, code in [
            ("/api/v1/auth/register", "201"),
            ("/api/v1/datasets", "201"),
            ("/api/v1/analyses", "202"),
            ("/api/v1/analyses/{analysis_id}", "200"),
            ("/api/v1/analyses/{analysis_id}/report", "200"),
        ]:
            assert f'route="{route}",service="backend",status="{code}"' in metrics, route
        assert analysis_id not in metrics
        # The fixture's backend is shared by the session, so other tests may have added analyses too.
        succeeded = re.search(
            r'^ethix_analyses_total\{outcome="succeeded",revision="local",service="backend"\} (\S+)$',
            metrics,
            re.MULTILINE,
        )
        assert succeeded is not None and float(succeeded.group(1)) >= 1.0

        assert http.delete("/api/v1/users/me", headers=auth).status_code == 204
        assert http.get("/api/v1/users/me", headers=auth).status_code == 401
    assert not list((backend_service.data_dir / "bucket").glob("*/*"))
