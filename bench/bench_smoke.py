"""The smoke suite against real local services (backend + ai_core uvicorn processes, SQLite).

Baseline: the same flow written as plain sequential httpx calls (same requests, same 0.2 s poll
interval), interleaved with the suite runs so both see the same machine load. Goal: suite median
≤ 3 s; the ratio shows what the suite machinery (templating, assertions, masking) costs.
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


def _plain_flow(base: str, csv_path: Path) -> float:
    started = time.perf_counter()
    run_id = secrets.token_hex(5)
    credentials = {"email": f"smoke+{run_id}@example.invalid", "password": secrets.token_urlsafe(18)}
    with httpx.Client(base_url=base, timeout=10) as client:
        assert client.get("/health/liveness").json()["status"] == "alive"
        assert client.get("/health/readiness").json()["status"] == "ready"
        assert client.post("/api/v1/auth/register", json=credentials).status_code == 201
        token = client.post("/api/v1/auth/login", json=credentials).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        files = {"file": (csv_path.name, csv_path.read_bytes(), "text/csv")}
        dataset = client.post("/api/v1/datasets", headers=auth, files=files).json()
        body = {
            "dataset_id": dataset["id"],
            "target": "approved",
            "protected_attribute": "gender",
            "positive_label": "yes",
        }
        analysis = client.post("/api/v1/analyses", headers=auth, json=body).json()
        while (state := client.get(f"/api/v1/analyses/{analysis['id']}", headers=auth).json())[
            "status"
        ] not in (
            "succeeded",
            "failed",
        ):
            time.sleep(0.2)
        assert state["status"] == "succeeded"
        assert client.get(f"/api/v1/analyses/{analysis['id']}/report", headers=auth).json()["n_rows"] == 10
        assert "http_requests_total" in client.get("/metrics").text
        assert client.delete("/api/v1/users/me", headers=auth).status_code == 204
    return time.perf_counter() - started


def run() -> dict[str, object]:
    suite = load_suite()
    csv_path = DEFAULT_SUITE.parent / "fixtures" / "smoke_loans.csv"
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
                _plain_flow(url, csv_path)
                suite_times: list[float] = []
                plain_times: list[float] = []
                for _ in range(RUNS):
                    report = run_suite(url, suite)
                    if not report.passed:
                        raise RuntimeError(f"smoke suite failed during the benchmark: {report.to_dict()}")
                    suite_times.append(report.duration)
                    plain_times.append(_plain_flow(url, csv_path))
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
