"""Settings: production refuses dev secrets and faults; secrets never show in repr or error output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from ethixctl.procs import REPO_ROOT
from services.backend.settings import DEV_JWT_SECRET, BackendSettings, SettingsError, load_settings

STRONG = "s3cr3t-" + "x" * 40
PRODUCTION_RATE_LIMITS = {
    "ETHIX_RATE_LIMIT_ENABLED": "true",
    "ETHIX_RATE_LIMIT_DEFAULT": "600/minute",
    "ETHIX_RATE_LIMIT_AUTH": "20/minute",
}


def _env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **values: str) -> None:
    monkeypatch.setenv("ETHIX_DATA_DIR", str(tmp_path))
    for name, value in values.items():
        monkeypatch.setenv(name, value)


def test_development_defaults_need_no_configuration(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _env(monkeypatch, tmp_path)
    settings = load_settings()
    assert settings.port == 8080
    assert settings.jwt_active_kid == "dev"
    assert settings.database == f"sqlite://{tmp_path.resolve()}/ethix.db"
    assert settings.storage == f"file://{tmp_path.resolve()}/bucket"
    assert settings.ai_core_url == "http://127.0.0.1:8081"


def test_production_refuses_the_development_jwt_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _env(monkeypatch, tmp_path, ETHIX_ENV="production")
    with pytest.raises(SettingsError, match="'dev' is the development key") as info:
        load_settings()
    assert DEV_JWT_SECRET not in str(info.value)


def test_production_refuses_short_keys_and_faults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _env(monkeypatch, tmp_path, ETHIX_ENV="production", ETHIX_JWT_KEYS=json.dumps({"k1": "short-secret"}))
    monkeypatch.setenv("ETHIX_JWT_ACTIVE_KID", "k1")
    with pytest.raises(SettingsError, match="shorter than 32 bytes") as info:
        load_settings()
    assert "short-secret" not in str(info.value)
    monkeypatch.setenv("ETHIX_JWT_KEYS", json.dumps({"k1": STRONG}))
    monkeypatch.setenv("ETHIX_FAULT_ERROR_RATE", "0.5")
    with pytest.raises(SettingsError, match="fault injection"):
        load_settings()
    monkeypatch.delenv("ETHIX_FAULT_ERROR_RATE")
    _env(monkeypatch, tmp_path, **PRODUCTION_RATE_LIMITS)
    assert load_settings().jwt_keys["k1"].get_secret_value() == STRONG


def test_active_kid_must_be_in_the_key_set(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _env(monkeypatch, tmp_path, ETHIX_JWT_KEYS=json.dumps({"k1": STRONG}), ETHIX_JWT_ACTIVE_KID="k2")
    with pytest.raises(SettingsError, match="must name a key"):
        load_settings()


def test_secrets_are_not_in_repr(tmp_path: Path) -> None:
    settings = BackendSettings(
        data_dir=tmp_path,
        jwt_keys={"k1": SecretStr(STRONG)},
        jwt_active_kid="k1",
        database_url=SecretStr("mongodb+srv://app:pa55word@cluster.example/ethix"),
    )
    text = repr(settings) + str(settings) + str(settings.model_dump())
    assert STRONG not in text and "pa55word" not in text
    assert settings.database.endswith("@cluster.example/ethix")


def test_server_process_refuses_production_dev_key_with_exit_2(tmp_path: Path) -> None:
    """``python -m services.backend`` as Cloud Run would start it, with a bad production config."""
    secret_db = "mongodb://app:topsecretpw@db.example/ethix"
    env = {
        "PATH": "/usr/bin:/bin",
        "ETHIX_ENV": "production",
        "ETHIX_DATA_DIR": str(tmp_path),
        "ETHIX_DATABASE_URL": secret_db,
    }
    done = subprocess.run(
        [sys.executable, "-m", "services.backend"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "development key" in done.stderr
    assert DEV_JWT_SECRET not in done.stderr + done.stdout
    assert "topsecretpw" not in done.stderr + done.stdout


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({}, "ETHIX_RATE_LIMIT_ENABLED must be true when ETHIX_ENV=production"),
        (
            {"ETHIX_RATE_LIMIT_ENABLED": "true"},
            "ETHIX_RATE_LIMIT_DEFAULT and ETHIX_RATE_LIMIT_AUTH must be set",
        ),
        (
            {**PRODUCTION_RATE_LIMITS, "ETHIX_CORS_ORIGINS": "https://app.example.com,*"},
            "ETHIX_CORS_ORIGINS: '*'",
        ),
        ({**PRODUCTION_RATE_LIMITS, "ETHIX_RATE_LIMIT_STORAGE_URL": "memory://"}, "memory:// is per process"),
        ({**PRODUCTION_RATE_LIMITS, "LOG_LEVEL": "debug"}, "LOG_LEVEL: debug is refused"),
    ],
)
def test_production_needs_rate_limits_and_refuses_open_cors(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, env: dict[str, str], named: str
) -> None:
    _env(monkeypatch, tmp_path, ETHIX_ENV="production", ETHIX_JWT_KEYS=json.dumps({"k1": STRONG}))
    _env(monkeypatch, tmp_path, ETHIX_JWT_ACTIVE_KID="k1", **env)
    with pytest.raises(SettingsError, match=named):
        load_settings()


def test_observability_and_cors_settings_parse(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _env(
        monkeypatch,
        tmp_path,
        ETHIX_CORS_ORIGINS="https://a.example.com, http://localhost:3000/",
        LOG_LEVEL="WARN",
    )
    settings = load_settings()
    assert settings.cors_origins == ["https://a.example.com", "http://localhost:3000"]
    assert settings.effective_log_level == "warning"
    monkeypatch.delenv("LOG_LEVEL")
    assert load_settings().effective_log_level == "info"
    _env(monkeypatch, tmp_path, ETHIX_CORS_ORIGINS="https://a.example.com/path")
    with pytest.raises(SettingsError, match="is not an origin"):
        load_settings()
    _env(
        monkeypatch,
        tmp_path,
        ETHIX_CORS_ORIGINS="[]",
        ETHIX_RATE_LIMIT_ENABLED="true",
        ETHIX_RATE_LIMIT_DEFAULT="often",
    )
    with pytest.raises(SettingsError, match="not a rate limit like"):
        load_settings()


def test_production_defaults_to_warning_logs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _env(monkeypatch, tmp_path, ETHIX_ENV="production", ETHIX_JWT_KEYS=json.dumps({"k1": STRONG}))
    _env(monkeypatch, tmp_path, ETHIX_JWT_ACTIVE_KID="k1", **PRODUCTION_RATE_LIMITS)
    assert load_settings().effective_log_level == "warning"


def test_server_process_without_rate_limits_in_production_exits_2_naming_the_setting(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "ETHIX_ENV": "production",
        "ETHIX_DATA_DIR": str(tmp_path),
        "ETHIX_JWT_KEYS": json.dumps({"k1": STRONG}),
        "ETHIX_JWT_ACTIVE_KID": "k1",
    }
    done = subprocess.run(
        [sys.executable, "-m", "services.backend"],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "ETHIX_RATE_LIMIT_ENABLED must be true" in done.stderr
    assert STRONG not in done.stderr + done.stdout
