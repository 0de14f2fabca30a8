"""The CPU gate end to end: a canary that burns CPU on the REAL local platform (`ethixctl up`: local
control plane, uvicorn revisions, Caddy, Prometheus scraping `process_cpu_seconds_total`) is rolled back.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ethixctl.cli import main
from ethixctl.exitcodes import ExitCode
from tests.conftest import running_platform

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, Any]]]:
    state_dir = tmp_path_factory.mktemp("platform")
    with running_platform(state_dir) as info:
        yield state_dir, info


def _set_cpu_limit(control_plane_url: str, service: str, limit: str) -> None:
    """Change the template's resources.limits.cpu (a new revision takes all traffic), as `gcloud` would."""
    from google.cloud import run_v2

    from ethixctl.adapters import _google

    services = run_v2.ServicesClient(**_google.client_kwargs(control_plane_url))
    current = services.get_service(name=f"projects/local/locations/local/services/{service}")
    current.template.containers[0].resources.limits["cpu"] = limit
    current.traffic = [
        run_v2.TrafficTarget(
            type_=run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST, percent=100
        )
    ]
    services.update_service(service=current).result(timeout=150)


def test_a_canary_burning_cpu_is_caught_by_the_cpu_gate_and_rolled_back(
    platform: tuple[Path, dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    from ethixctl.adapters.cloudrun import CloudRun

    state_dir, info = platform
    # 0.2 vCPU per instance (Cloud Run allows fractions): the gate's 80 % is 0.16 of a core, which a
    # burning canary exceeds even on a 2-core machine shared with other test suites.
    _set_cpu_limit(info["control_plane_url"], "backend", "200m")
    run = CloudRun("local", "local", endpoint=info["control_plane_url"])
    stable = next(iter(run.serving_split("backend")))
    assert run.get_revision("backend", stable).env.get("ETHIX_FAULT_CPU_CORES") is None
    code = main(
        ["release", "backend", "--image", run.get_service("backend").image, "--hold", "20", "--interval", "1",
         "--load", "40", "--yes", "--json", "--no-smoke", "--set-env", "ETHIX_FAULT_CPU_CORES=1",
         "--state-dir", str(state_dir)]
    )  # fmt: skip
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    result = events[-1]
    assert code == ExitCode.ROLLED_BACK, result
    assert dict(run.serving_split("backend")) == {stable: 100}
    assert run.get_revision("backend", result["canary"]).env["ETHIX_FAULT_CPU_CORES"] == "1"
    failed = [e["verdict"] for e in events if e["event"] == "gate" and e["verdict"]["outcome"] == "fail"]
    assert failed, [e["verdict"]["outcome"] for e in events if e["event"] == "gate"]
    gates = {gate["name"]: gate for gate in failed[0]["gates"]}
    assert gates["cpu"]["passed"] is False and gates["cpu"]["value"] >= 0.8
    # The canary answers correctly and fast: the CPU gate is what saw the fault.
    assert gates["error_rate"]["passed"] is True and gates["p95_latency"]["passed"] is True
    assert "cpu at or above its threshold" in failed[0]["reasons"]
