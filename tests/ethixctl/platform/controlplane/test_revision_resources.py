"""A service's container as the YAML gives it (probes, resources) through the local control plane.

Driven by the production Cloud Run adapter against the local control plane with the test runtime.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from google.cloud import run_v2

from ethixctl.adapters.cloudrun import CloudRun
from ethixctl.errors import EthixError
from ethixctl.platform import manifests
from ethixctl.platform.probes import Probes
from tests.ethixctl.platform.controlplane.testruntime import local_control_plane


def test_local_control_plane_keeps_the_yaml_container_and_passes_the_cpu_limit(tmp_path: Path) -> None:
    with local_control_plane(tmp_path) as (server, runtime):
        run = CloudRun("local", "local", endpoint=server.url)
        service = run.create_service(
            "backend", "envserver", {"APP_X": "1"}, timeout=30, container=manifests.container("backend")
        )
        [revision] = runtime.specs.values()
        assert revision.revision == service.latest_ready_revision
        assert revision.env["ETHIX_CPU_LIMIT"] == "1.0"  # resources.limits.cpu "1" in the YAML
        assert revision.env["APP_X"] == "1"
        # The reconciler hands the runtime the YAML's probes (readiness: 2 failures in a row).
        assert revision.probes == Probes.from_container(manifests.container("backend"))
        assert revision.probes.readiness is not None and revision.probes.readiness.failure_threshold == 2
        stored = run_v2.RevisionsClient(**_options(server.url)).get_revision(
            name=f"projects/local/locations/local/services/backend/revisions/{revision.revision}"
        )
        assert stored.containers[0].startup_probe.http_get.path == "/health/startup"
        assert stored.containers[0].resources.limits["cpu"] == "1"


def test_local_control_plane_refuses_a_cpu_limit_that_is_not_a_quantity(tmp_path: Path) -> None:
    with local_control_plane(tmp_path) as (server, runtime):
        container = run_v2.Container(resources=run_v2.ResourceRequirements(limits={"cpu": "lots"}))
        with pytest.raises(EthixError, match=r"resources\.limits\.cpu: 'lots' is not a CPU quantity"):
            CloudRun("local", "local", endpoint=server.url).create_service(
                "backend", "envserver", {}, timeout=30, container=container
            )
        assert runtime.specs == {}


def _options(url: str) -> dict[str, object]:
    from ethixctl.adapters import _google

    return _google.client_kwargs(url)
