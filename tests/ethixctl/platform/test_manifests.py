"""services/*/cloudrun.yaml read through the Cloud Run v2 types."""

from __future__ import annotations

from pathlib import Path

import pytest

from ethixctl.errors import PlaybookError
from ethixctl.platform import manifests


def test_both_services_yaml_parse_into_v2_containers() -> None:
    backend = manifests.container("backend")
    assert backend.resources.limits["cpu"] == "1"
    assert backend.startup_probe.http_get.path == "/health/startup"
    ai_core = manifests.container("ai-core")
    assert ai_core.resources.limits["cpu"] == "2"
    assert ai_core.liveness_probe.http_get.path == "/health/liveness"


def test_a_field_the_v2_api_does_not_have_is_an_error_naming_the_file(tmp_path: Path) -> None:
    manifest = tmp_path / "services" / "backend" / "cloudrun.yaml"
    manifest.parent.mkdir(parents=True)
    manifest.write_text(
        "spec:\n  template:\n    spec:\n      containers:\n"
        "        - livenessProbe: {httpGet: {path: /health/liveness}, failureTreshold: 3}\n"
    )
    with pytest.raises(PlaybookError, match="failureTreshold") as info:
        manifests.container("backend", tmp_path)
    assert info.value.path == str(manifest)


@pytest.mark.parametrize(("limit", "cores"), [("1", 1.0), ("2", 2.0), ("0.5", 0.5), ("500m", 0.5)])
def test_cpu_quantities(limit: str, cores: float) -> None:
    assert manifests.cpu_cores(limit) == cores


@pytest.mark.parametrize("limit", ["lots", "0", "-1", "m"])
def test_bad_cpu_quantities(limit: str) -> None:
    with pytest.raises(ValueError):
        manifests.cpu_cores(limit)
