"""services/backend/cloudrun.yaml and Dockerfile agree with the app: probe paths, port, env names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from ethixctl.procs import REPO_ROOT
from services.backend.app import create_app
from services.backend.settings import BackendSettings, load_settings

BACKEND_DIR = REPO_ROOT / "services" / "backend"


def _container(text: str | None = None) -> dict[str, Any]:
    doc = yaml.safe_load(text or (BACKEND_DIR / "cloudrun.yaml").read_text())
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
    # Secret names only: no value and no secretKeyRef (resolved once at start, it would pin the value
    # into the instance's environment and a rotation would need a new revision).
    assert not [name for name, item in env.items() if "valueFrom" in item]
    for secret in ("ETHIX_SECRET_JWT_SIGNING_KEY", "ETHIX_SECRET_SESSION_KEY", "ETHIX_SECRET_DATABASE_URL"):
        assert env[secret]["value"]
    assert "ETHIX_DATABASE_URL" not in env and env["ETHIX_SECRETS_PROJECT"]["value"]
    assert env["ETHIX_ENV"]["value"] == "production"


def test_the_manifest_alone_is_a_valid_production_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    """Secrets are loaded at runtime: the manifest names them and holds or references no value."""
    env = _container()["env"]
    assert all("value" in item for item in env), "no secretKeyRef: nothing is resolved into the env"
    for item in env:
        monkeypatch.setenv(item["name"], item["value"])
    settings = load_settings()
    assert settings.env == "production" and settings.rate_limit_enabled
    assert (settings.secret_jwt_signing_key, settings.secret_database_url) == (
        "jwt-signing-key",
        "database-url",
    )
    assert settings.trusted_proxy_hops == 1  # the client as Cloud Run's front end reports it


def test_the_commented_sentry_entry_turns_on_error_reporting_from_a_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = (BACKEND_DIR / "cloudrun.yaml").read_text()
    commented = "            # - name: ETHIX_SECRET_SENTRY_DSN\n            #   value: sentry-dsn\n"
    assert commented in text
    env = _container(text.replace(commented, commented.replace("# ", "")))["env"]
    for item in env:
        monkeypatch.setenv(item["name"], item["value"])
    settings = load_settings()
    assert settings.secret_sentry_dsn == "sentry-dsn" and settings.sentry_dsn is None


def test_dockerfile_runs_the_module_on_port_8080_as_non_root() -> None:
    text = (BACKEND_DIR / "Dockerfile").read_text()
    assert 'CMD ["python", "-m", "services.backend"]' in text
    assert "PORT=8080" in text and "EXPOSE 8080" in text and "USER 10001" in text
