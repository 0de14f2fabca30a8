"""The HTTP layer through FastAPI's TestClient, with the real worker process pool behind it."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from services.ai_core.app import create_app
from services.ai_core.settings import AiCoreSettings
from tests.services.ai_core.test_analysis import HAND_ROWS

MAX_ROWS = 20
MAX_COLUMNS = 5


def body(**overrides: object) -> dict[str, object]:
    fields: dict[str, object] = {
        "target": "approved",
        "protected_attribute": "group",
        "positive_label": "yes",
        "rows": HAND_ROWS,
    }
    fields.update(overrides)
    return {k: v for k, v in fields.items() if v is not None}


@pytest.fixture(scope="module")
def started() -> Iterator[tuple[TestClient, list[int]]]:
    """A client whose app has warmed up, and the startup-probe codes seen while it did."""
    settings = AiCoreSettings(analysis_max_rows=MAX_ROWS, analysis_max_columns=MAX_COLUMNS)
    with TestClient(create_app(settings)) as client:
        codes = [client.get("/health/startup").status_code]
        deadline = time.monotonic() + 90
        while codes[-1] != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
            codes.append(client.get("/health/startup").status_code)
        yield client, codes


@pytest.fixture
def client(started: tuple[TestClient, list[int]]) -> TestClient:
    return started[0]


def test_startup_probe_is_503_until_warm_up_then_200(started: tuple[TestClient, list[int]]) -> None:
    _, codes = started
    assert codes[0] == 503
    assert codes[-1] == 200
    assert set(codes) == {503, 200}


def test_liveness_and_readiness(client: TestClient) -> None:
    assert client.get("/health/liveness").json() == {"status": "alive"}
    readiness = client.get("/health/readiness")
    assert readiness.status_code == 200
    assert readiness.json() == {"status": "ready", "checks": {"warm_up": "ok", "queue": "0/8"}}


def test_analyze_answers_the_contract_shape(client: TestClient) -> None:
    response = client.post("/api/v1/analyze", json=body())
    assert response.status_code == 200, response.text
    result = response.json()
    assert {
        "n_rows",
        "n_columns",
        "model",
        "fairness",
        "feature_importance",
        "duration_ms",
    } <= set(result)
    assert {"type", "max_depth", "accuracy"} <= set(result["model"])
    assert result["fairness"]["selection_rate"] == pytest.approx({"A": 4 / 6, "B": 1 / 6}, abs=1e-6)
    assert result["fairness"]["disparate_impact_ratio"] == pytest.approx(0.25, abs=1e-6)


def _metric(client: TestClient, line_start: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_analyses_are_counted_by_outcome(client: TestClient) -> None:
    succeeded = 'ethix_analyses_total{outcome="succeeded",revision="local",service="local"}'
    failed = 'ethix_analyses_total{outcome="failed",revision="local",service="local"}'
    duration = 'ethix_analysis_duration_seconds_count{revision="local",service="local"}'
    before = (_metric(client, succeeded), _metric(client, failed), _metric(client, duration))

    assert client.post("/api/v1/analyze", json=body()).status_code == 200
    assert client.post("/api/v1/analyze", json=body(target="nope")).status_code == 422

    after = (_metric(client, succeeded), _metric(client, failed), _metric(client, duration))
    assert after == (before[0] + 1, before[1] + 1, before[2] + 1)


CSV_HEADER = "score,colour,group,approved"


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"target": "outcome"}, "target", "missing column(s): target 'outcome' not in the data"),
        (
            {"target": "outcome", "protected_attribute": "race"},
            "target",
            "target 'outcome' and protected_attribute 'race'",
        ),
        ({"protected_attribute": "race"}, "protected_attribute", "protected_attribute 'race'"),
        ({"target": "score"}, "target", "target 'score' must be binary: found 12 distinct value(s)"),
        ({"positive_label": "maybe"}, "positive_label", "positive_label 'maybe' is not one of the values"),
        (
            {"rows": [{**r, "group": "A"} for r in HAND_ROWS]},
            "protected_attribute",
            "has only one group ('A')",
        ),
        ({"rows": HAND_ROWS * 2}, "rows", f"too many rows: 24 > limit {MAX_ROWS}"),
        (
            {"rows": [{**r, "a": 1, "b": 2} for r in HAND_ROWS]},
            "rows",
            f"too many columns: 6 > limit {MAX_COLUMNS}",
        ),
        ({"rows": []}, "rows", "no data"),
        ({"rows": None, "csv": ""}, "csv", "no data"),
        ({"rows": None, "csv": CSV_HEADER + "\n"}, "csv", "header but no rows"),
        ({"rows": None, "csv": CSV_HEADER + '\n1,"red,A,yes\n'}, "csv", "CSV could not be parsed"),
        ({"rows": None, "csv": "a,b\n1,2\n3,4,5,6\n"}, "csv", "CSV could not be parsed"),
        ({"rows": None, "csv": CSV_HEADER + "\n" + "1,red,A,yes\n" * 21}, "csv", "too many rows"),
    ],
)
def test_bad_data_is_a_422_that_says_why(
    client: TestClient, overrides: dict[str, object], field: str, message: str
) -> None:
    response = client.post("/api/v1/analyze", json=body(**overrides))
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", field]
    assert message in error["msg"]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (body(csv="a,b\n1,2"), "exactly one of 'rows' or 'csv'"),
        ({"target": "approved", "protected_attribute": "group", "positive_label": "yes"}, "exactly one"),
        (body(protected_attribute="approved"), "must be different columns"),
        (body(positive_label=None), "Field required"),
    ],
)
def test_malformed_request_is_a_422(client: TestClient, payload: dict[str, object], message: str) -> None:
    response = client.post("/api/v1/analyze", json=payload)
    assert response.status_code == 422
    assert any(message in error["msg"] for error in response.json()["detail"])


def test_app_import_leaves_the_heavy_libraries_to_the_worker() -> None:
    code = (
        "import sys, services.ai_core.app; "
        "print(sorted(m for m in ('pandas', 'sklearn', 'shap', 'fairlearn', 'numpy') if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"
