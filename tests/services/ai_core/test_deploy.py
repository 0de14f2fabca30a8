"""services/ai_core/cloudrun.yaml and Dockerfile agree with the app: routes, port, settings."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.routing import APIRoute

from services.ai_core.app import create_app
from services.ai_core.settings import AiCoreSettings

SERVICE_DIR = Path(__file__).resolve().parents[3] / "services" / "ai_core"


@pytest.fixture
def manifest() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((SERVICE_DIR / "cloudrun.yaml").read_text())
    return document


@pytest.fixture
def container(manifest: dict[str, Any]) -> dict[str, Any]:
    [only] = manifest["spec"]["template"]["spec"]["containers"]
    return dict(only)


def default_port(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.delenv("PORT", raising=False)
    return AiCoreSettings().port


def test_manifest_is_a_knative_service(manifest: dict[str, Any]) -> None:
    assert manifest["apiVersion"] == "serving.knative.dev/v1"
    assert manifest["kind"] == "Service"
    assert re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", manifest["metadata"]["name"])


def test_probes_point_at_real_routes_on_the_container_port(
    container: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    routes = {route.path for route in create_app(AiCoreSettings()).routes if isinstance(route, APIRoute)}
    [port] = container["ports"]
    assert port["containerPort"] == default_port(monkeypatch)
    assert container["startupProbe"]["httpGet"]["path"] == "/health/startup"
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/readiness"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/liveness"
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] in routes
        assert container[probe]["httpGet"]["port"] == port["containerPort"]
    startup = container["startupProbe"]
    # The warm-up takes ~3-5 s on 2 vCPU; leave Cloud Run room before it gives up on the instance.
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 30


def test_resources_are_set(container: dict[str, Any]) -> None:
    limits = container["resources"]["limits"]
    assert float(limits["cpu"]) >= 1
    assert re.fullmatch(r"\d+(Mi|Gi)", limits["memory"])


def test_env_names_are_settings_the_app_reads(
    container: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {item["name"]: item["value"] for item in container["env"]}
    assert "PORT" not in env  # Cloud Run reserves PORT and sets it from containerPort
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = AiCoreSettings()
    for name, value in env.items():
        field = name.removeprefix("ETHIX_").lower()
        assert field in AiCoreSettings.model_fields, f"{name} is not an ai_core setting"
        assert str(getattr(settings, field)) == value


def test_dockerfile_runs_the_module_on_the_manifest_port(
    container: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    dockerfile = (SERVICE_DIR / "Dockerfile").read_text()
    port = container["ports"][0]["containerPort"]
    assert re.search(rf"^EXPOSE {port}$", dockerfile, re.MULTILINE)
    assert re.search(rf"PORT={port}\b", dockerfile)
    assert 'CMD ["python", "-m", "services.ai_core"]' in dockerfile
    assert re.search(r"^USER \d+", dockerfile, re.MULTILINE), "the container must not run as root"
    assert port == default_port(monkeypatch)
