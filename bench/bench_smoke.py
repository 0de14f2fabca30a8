"""The smoke suite against real local services (backend + ai_core uvicorn processes, SQLite).

Baseline: the same flow (all four categories) written as plain sequential httpx calls (same
requests, same poll intervals), interleaved with the suite runs so both see the same machine load.
Goal: suite median ≤ 3 s; the ratio shows what the suite machinery (templating, assertions,
masking) costs.
"""

from __future__ import annotations

import json
import secrets
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from ethixctl import procs
from ethixctl.smoke import DEFAULT_SUITE, load_suite, run_suite

RUNS = 5
GOAL_SECONDS = 3.0


def _plain_flow(base: str, fixtures: Path) -> float:
    started = time.perf_counter()
    run_id = secrets.token_hex(5)
    password = secrets.token_urlsafe(18)
    credentials = {"email": f"smoke+{run_id}@example.invalid", "password": password}
    other = {"email": f"smoke+{run_id}-other@example.invalid", "password": password}

    def upload(client: httpx.Client, auth: dict[str, str], name: str) -> httpx.Response:
        path = fixtures / name
        return client.post("/api/v1/datasets", headers=auth, files={"file": (path.name, path.read_bytes())})

    def wait_for(client: httpx.Client, auth: dict[str, str], analysis_id: str, interval: float) -> str:
        while (state := client.get(f"/api/v1/analyses/{analysis_id}", headers=auth).json())["status"] not in (
            "succeeded",
            "failed",
        ):
            time.sleep(interval)
        return str(state["status"])

    with httpx.Client(base_url=base, timeout=10) as client:
        # infrastructure health
        assert client.get("/health/liveness").json()["status"] == "alive"
        assert client.get("/health/startup").json()["status"] == "started"
        assert client.get("/health/readiness").json()["status"] == "ready"
        assert "http_requests_total" in client.get("/metrics").text
        # auth flow
        assert client.post("/api/v1/auth/register", json=credentials).status_code == 201
        token = client.post("/api/v1/auth/login", json=credentials).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        assert client.get("/api/v1/users/me", headers=auth).status_code == 200
        wrong = {**credentials, "password": "not-" + password}
        assert client.post("/api/v1/auth/login", json=wrong).status_code == 401
        # core analysis
        dataset = upload(client, auth, "smoke_loans.csv").json()
        assert client.get("/api/v1/datasets", headers=auth).json()["items"][0]["id"] == dataset["id"]
        body = {"dataset_id": dataset["id"], "target": "approved", "protected_attribute": "gender"}
        analysis = client.post(
            "/api/v1/analyses", headers=auth, json={**body, "positive_label": "yes"}
        ).json()
        assert wait_for(client, auth, analysis["id"], 0.2) == "succeeded"
        assert client.get(f"/api/v1/analyses/{analysis['id']}/report", headers=auth).json()["n_rows"] == 10
        # error handling
        assert client.get("/api/v1/users/me").status_code == 401
        assert (
            client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}x"}).status_code == 401
        )
        probe = upload(client, auth, "smoke_loans.csv").json()
        assert client.post("/api/v1/auth/register", json=other).status_code == 201
        other_token = client.post("/api/v1/auth/login", json=other).json()["access_token"]
        other_auth = {"Authorization": f"Bearer {other_token}"}
        assert client.get(f"/api/v1/datasets/{probe['id']}", headers=other_auth).status_code == 404
        assert client.get(f"/api/v1/analyses/smoke-{run_id}-unknown", headers=auth).status_code == 404
        assert upload(client, auth, "smoke_too_wide.csv").status_code == 413
        assert upload(client, auth, "smoke_malformed.csv").status_code == 422
        body["dataset_id"] = probe["id"]
        failing = client.post(
            "/api/v1/analyses", headers=auth, json={**body, "positive_label": "maybe"}
        ).json()
        assert client.get(f"/api/v1/analyses/{failing['id']}/report", headers=auth).status_code == 409
        assert wait_for(client, auth, failing["id"], 0.1) == "failed"
        # cleanup
        assert client.delete("/api/v1/users/me", headers=other_auth).status_code == 204
        assert client.delete("/api/v1/users/me", headers=auth).status_code == 204
    return time.perf_counter() - started


def run() -> dict[str, object]:
    suite = load_suite()
    fixtures = DEFAULT_SUITE.parent / "fixtures"
    with tempfile.TemporaryDirectory(prefix="bench-smoke-") as tmp:
        root = Path(tmp)
        ai_core = procs.start_service("services.ai_core", root / "ai_core")
        try:
            backend = procs.start_service(
                "services.backend", root / "backend", env={"AI_CORE_URL": ai_core.url}
            )
            url = backend.url
            try:
                run_suite(url, suite)  # warm both services (first analysis loads the model code)
                _plain_flow(url, fixtures)
                suite_times: list[float] = []
                plain_times: list[float] = []
                for _ in range(RUNS):
                    report = run_suite(url, suite)
                    if not report.passed:
                        raise RuntimeError(f"smoke suite failed during the benchmark: {report.to_dict()}")
                    suite_times.append(report.duration)
                    plain_times.append(_plain_flow(url, fixtures))
            finally:
                backend.process.stop()
        finally:
            ai_core.process.stop()
    suite_median = statistics.median(suite_times)
    plain_median = statistics.median(plain_times)
    return {
        "name": "smoke",
        "runs": RUNS,
        "suite_median_s": round(suite_median, 3),
        "plain_httpx_median_s": round(plain_median, 3),
        "ratio": round(suite_median / plain_median, 3),
        "goal_s": GOAL_SECONDS,
        "meets_goal": suite_median <= GOAL_SECONDS,
        "suite_runs_s": [round(t, 3) for t in suite_times],
        "plain_runs_s": [round(t, 3) for t in plain_times],
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
