"""services/backend/cloudrun.yaml and Dockerfile agree with the app: probe paths, port, env names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ethixctl.procs import REPO_ROOT
from services.backend.app import create_app
from services.backend.settings import BackendSettings

BACKEND_DIR = REPO_ROOT / "services" / "backend"


def _container() -> dict[str, Any]:
    doc = yaml.safe_load((BACKEND_DIR / "cloudrun.yaml").read_text())
    assert doc["apiVersion"] == "serving.knative.dev/v1" and doc["kind"] == "Service"
    assert doc["metadata"]["name"] == "backend"
    [container] = doc["spec"]["template"]["spec"]["containers"]
    return dict(container)


def test_probes_point_to_real_get_routes_on_the_container_port(tmp_path: Path) -> None:
    container = _container()
    app = create_app(BackendSettings(data_dir=tmp_path))
    get_routes = {path for path, ops in app.openapi()["paths"].items() if "get" in ops}
    [port] = container["ports"]
    assert port["containerPort"] == BackendSettings.model_fields["port"].default == 8080
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        http_get = container[probe]["httpGet"]
        assert http_get["path"] in get_routes, probe
        assert http_get["port"] == port["containerPort"]
    assert container["startupProbe"]["httpGet"]["path"] == "/health/startup"
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/readiness"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/liveness"


def test_env_names_are_settings_the_backend_reads_and_secrets_come_from_secret_manager() -> None:
    env = {item["name"]: item for item in _container()["env"]}
    known = {"AI_CORE_URL", "PORT", "K_SERVICE", "K_REVISION"}
    for name in BackendSettings.model_fields:
        known.add(f"ETHIX_{name.upper()}")
    assert set(env) <= known, set(env) - known
    for secret in ("ETHIX_JWT_KEYS", "ETHIX_DATABASE_URL"):
        ref = env[secret]["valueFrom"]["secretKeyRef"]
        assert ref["name"] and ref["key"] == "latest"
        assert "value" not in env[secret]
    assert env["ETHIX_ENV"]["value"] == "production"


def test_dockerfile_runs_the_module_on_port_8080_as_non_root() -> None:
    text = (BACKEND_DIR / "Dockerfile").read_text()
    assert 'CMD ["python", "-m", "services.backend"]' in text
    assert "PORT=8080" in text and "EXPOSE 8080" in text and "USER 10001" in text
