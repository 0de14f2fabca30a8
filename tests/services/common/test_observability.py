"""Shared observability: the CPU fault, the process-tree CPU counter and the CPU-limit gauge."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from fastapi import FastAPI, Response
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from pydantic import ValidationError

from services.common import observability
from services.common.settings import ServiceSettings


def _process_cpu() -> float:
    value = REGISTRY.get_sample_value("process_cpu_seconds_total")
    assert value is not None
    return value


def test_production_refuses_the_cpu_fault(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ETHIX_ENV", "production")
    monkeypatch.setenv("ETHIX_FAULT_CPU_CORES", "1")
    with pytest.raises(ValidationError, match="fault injection"):
        ServiceSettings()
    monkeypatch.setenv("ETHIX_ENV", "development")
    assert ServiceSettings().fault_cpu_cores == 1.0


def test_the_cpu_fault_burns_cpu_and_no_more_than_asked() -> None:
    burner = observability.CpuBurner(0.5)
    cpu_before, wall_before = time.process_time(), time.monotonic()
    burner.start()
    try:
        # However loaded the machine, the burner must get through 0.3 s of CPU...
        deadline = time.monotonic() + 30
        while time.process_time() - cpu_before < 0.3 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        burner.stop()
    cpu, wall = time.process_time() - cpu_before, time.monotonic() - wall_before
    assert cpu >= 0.3
    # ...and its duty cycle keeps it to about half a core (sleeping the rest of each 100 ms period).
    assert cpu / wall < 0.7


def test_process_cpu_counts_worker_processes_live_and_finished() -> None:
    before = _process_cpu()
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time\nstart = time.process_time()\nwhile time.process_time() - start < 0.5: pass\n"
            "print('burnt', flush=True)\ntime.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "burnt"
        # The child is alive: its CPU is read from /proc (the parent's own CPU did not grow by 0.5 s).
        assert _process_cpu() - before >= 0.5
    finally:
        child.kill()
        child.wait()
    # Reaped: os.times() carries it, so the counter never goes down.
    assert _process_cpu() - before >= 0.5


@pytest.mark.parametrize(("limit", "expected"), [(1.5, 1.5), (None, observability.available_cpu_cores())])
def test_cpu_limit_gauge_is_the_setting_or_the_cpus_available(limit: float | None, expected: float) -> None:
    app = FastAPI()
    observability.install(app, ServiceSettings(cpu_limit=limit))
    text = TestClient(app).get("/metrics").text
    assert f"ethix_cpu_limit_cores {expected}" in text
    assert "process_cpu_seconds_total" in text and expected > 0


def test_health_check_total_counts_probe_answers_by_endpoint_and_status(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("K_SERVICE", "svc-hc")
    monkeypatch.setenv("K_REVISION", "svc-hc-00001-abc")
    app = FastAPI()
    observability.install(app, ServiceSettings())
    failing = {"readiness": False}

    @app.get("/health/readiness")
    def readiness() -> Response:
        return Response(status_code=503 if failing["readiness"] else 200)

    def count(endpoint: str, status: str) -> float | None:
        labels = {"service": "svc-hc", "revision": "svc-hc-00001-abc", "endpoint": endpoint, "status": status}
        return REGISTRY.get_sample_value("health_check_total", labels)

    # Every probe endpoint starts at zero, so a first failure is an increase Prometheus can see.
    assert [count(endpoint, "503") for endpoint in ("startup", "readiness", "liveness")] == [0.0] * 3
    client = TestClient(app)
    client.get("/health/readiness")
    failing["readiness"] = True
    client.get("/health/readiness")
    client.get("/health/readiness")
    assert (count("readiness", "200"), count("readiness", "503")) == (1.0, 2.0)
    assert client.get("/health/nope").status_code == 404
    assert count("nope", "404") is None  # unmatched paths never become label values
