"""The real service (``python -m services.ai_core`` under uvicorn on a free port) over real HTTP."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from ethixctl.procs import Service
from services.ai_core.synthetic import biased_csv

PROBES = 30


@pytest.mark.e2e
def test_liveness_answers_while_a_10k_row_analysis_runs_without_waiting_for_it(
    ai_core_service: Service,
) -> None:
    """Behaviour only: each probe is answered while an analysis request is still outstanding. How fast
    (p99 while analyses saturate the CPU) is measured by bench/bench_ai_core.py."""
    request = {
        "target": "approved",
        "protected_attribute": "group",
        "positive_label": 1,
        "csv": biased_csv(10_000, 10),
    }
    analyses: list[tuple[float, float, int]] = []
    probes_done = threading.Event()

    def analyse_until_probes_done() -> None:
        with httpx.Client(base_url=ai_core_service.url, timeout=60) as client:
            for _ in range(10):
                started = time.monotonic()
                status = client.post("/api/v1/analyze", json=request).status_code
                analyses.append((started, time.monotonic(), status))
                if probes_done.is_set():
                    return

    worker = threading.Thread(target=analyse_until_probes_done)
    worker.start()
    probes: list[tuple[float, float]] = []
    try:
        with httpx.Client(base_url=ai_core_service.url, timeout=5) as client:
            time.sleep(0.3)  # let the first analysis reach the worker process
            for _ in range(PROBES):
                started = time.monotonic()
                response = client.get("/health/liveness")
                probes.append((started, time.monotonic()))
                assert response.json() == {"status": "alive"}
                time.sleep(0.02)
    finally:
        probes_done.set()
        worker.join(timeout=120)

    assert all(status == 200 for _, _, status in analyses), analyses
    # A probe that began and ended while one analysis request stayed outstanding did not wait for it.
    # Analyses run back to back, so only the short gaps between two of them may hold a probe.
    inside = [any(a < p and q < b for a, b, _ in analyses) for p, q in probes]
    assert sum(inside) >= PROBES * 0.8, (probes, analyses)


@pytest.mark.e2e
def test_10k_rows_are_analysed_on_a_bounded_shap_sample(ai_core_service: Service) -> None:
    response = httpx.post(
        ai_core_service.url + "/api/v1/analyze",
        json={
            "target": "approved",
            "protected_attribute": "group",
            "positive_label": "1",
            "csv": biased_csv(10_000, 10),
        },
        timeout=60,
    )
    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["n_rows"], result["n_columns"], result["explained_rows"]) == (10_000, 10, 2_000)
    assert result["model"]["accuracy_basis"] == "holdout" and result["model"]["accuracy"] > 0.7
    # f0 drives approval and favours group "a": the model must both use it most and select "a" most.
    assert next(iter(result["feature_importance"])) == "f0"
    rates = result["fairness"]["selection_rate"]
    assert max(rates, key=rates.__getitem__) == "a"
    assert result["fairness"]["disparate_impact_ratio"] < 0.9
    assert "group" not in result["feature_importance"]

    metrics = httpx.get(ai_core_service.url + "/metrics").text
    assert 'ethix_analyses_total{outcome="succeeded",revision="local",service="ai_core"}' in metrics
