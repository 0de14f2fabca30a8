"""Settings: production refuses dev keys, inline secrets and faults; secrets never show in repr or output."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from ethixctl.procs import REPO_ROOT
from services.backend.settings import BackendSettings, SettingsError, load_settings

PRODUCTION = {
    "ETHIX_ENV": "production",
    "ETHIX_SECRETS_PROJECT": "ethix-prod",
    "ETHIX_SECRET_JWT_SIGNING_KEY": "jwt-signing-key",
    "ETHIX_SECRET_SESSION_KEY": "session-key",
    "ETHIX_SECRET_DATABASE_URL": "database-url",
}
PRODUCTION_RATE_LIMITS = {
    "ETHIX_RATE_LIMIT_ENABLED": "true",
    "ETHIX_RATE_LIMIT_DEFAULT": "600/minute",
    "ETHIX_RATE_LIMIT_AUTH": "20/minute",
    "ETHIX_TRUSTED_PROXY_HOPS": "1",
}


def _env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **values: str) -> None:
    monkeypatch.setenv("ETHIX_DATA_DIR", str(tmp_path))
    for name, value in values.items():
        monkeypatch.setenv(name, value)


def test_development_defaults_need_no_configuration(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _env(monkeypatch, tmp_path)
    settings = load_settings()
    assert settings.port == 8080
    assert settings.secrets_project is None  # development keys, no Secret Manager
    assert settings.access_token_ttl_seconds == 900 and settings.secrets_refresh_seconds == 60
    assert settings.database == f"sqlite://{tmp_path.resolve()}/ethix.db"
    assert settings.storage == f"file://{tmp_path.resolve()}/bucket"
    assert settings.ai_core_url == "http://127.0.0.1:8081"


def test_production_refuses_the_development_keys(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _env(monkeypatch, tmp_path, ETHIX_ENV="production")
    with pytest.raises(SettingsError, match="production loads its keys from Secret Manager"):
        load_settings()


def test_production_refuses_inline_secret_values_and_faults(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _env(monkeypatch, tmp_path, **PRODUCTION, ETHIX_DATABASE_URL="mongodb://app:inline-pw@db.example/ethix")
    with pytest.raises(SettingsError, match="refuses secret values in the environment") as info:
        load_settings()
    assert "inline-pw" not in str(info.value)
    monkeypatch.delenv("ETHIX_DATABASE_URL")
    monkeypatch.setenv("ETHIX_FAULT_ERROR_RATE", "0.5")
    with pytest.raises(SettingsError, match="fault injection"):
        load_settings()
    monkeypatch.delenv("ETHIX_FAULT_ERROR_RATE")
    _env(monkeypatch, tmp_path, **PRODUCTION_RATE_LIMITS)
    settings = load_settings()
    assert (settings.secrets_project, settings.secret_database_url) == ("ethix-prod", "database-url")


def test_sentry_dsn_comes_from_the_environment_or_a_named_secret_never_both(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    dsn = "https://inline-public-key@o1.ingest.example/42"
    _env(monkeypatch, tmp_path, **PRODUCTION, **PRODUCTION_RATE_LIMITS, ETHIX_SECRET_SENTRY_DSN="sentry-dsn")
    assert load_settings().secret_sentry_dsn == "sentry-dsn"
    monkeypatch.setenv("SENTRY_DSN", dsn)
    with pytest.raises(SettingsError, match="SENTRY_DSN and ETHIX_SECRET_SENTRY_DSN are both set") as info:
        load_settings()
    assert "inline-public-key" not in str(info.value)
    # Production refuses the value in the environment, as it refuses ETHIX_DATABASE_URL.
    monkeypatch.delenv("ETHIX_SECRET_SENTRY_DSN")
    with pytest.raises(SettingsError, match="SENTRY_DSN holds a credential") as info:
        load_settings()
    assert "inline-public-key" not in str(info.value)
    # Development may keep it inline; a secret's name needs the project to read it from.
    monkeypatch.setenv("ETHIX_ENV", "development")
    monkeypatch.delenv("ETHIX_SECRETS_PROJECT")
    assert load_settings().sentry_dsn is not None
    monkeypatch.delenv("SENTRY_DSN")
    monkeypatch.setenv("ETHIX_SECRET_SENTRY_DSN", "sentry-dsn")
    with pytest.raises(SettingsError, match="ETHIX_SECRET_SENTRY_DSN names a Secret Manager secret"):
        load_settings()


def test_a_secrets_project_needs_the_secret_names(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _env(monkeypatch, tmp_path, ETHIX_SECRETS_PROJECT="local", ETHIX_SECRET_JWT_SIGNING_KEY="jwt-signing-key")
    with pytest.raises(SettingsError, match="ETHIX_SECRET_SESSION_KEY must name"):
        load_settings()


def test_an_empty_secret_name_is_unset(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A derived revision cannot drop a template's variable, only empty it (the DR drill's revision)."""
    _env(monkeypatch, tmp_path, **{**PRODUCTION, **PRODUCTION_RATE_LIMITS, "ETHIX_SECRET_DATABASE_URL": ""})
    assert load_settings().secret_database_url is None


def test_secrets_are_not_in_repr(tmp_path: Path) -> None:
    settings = BackendSettings(
        data_dir=tmp_path, database_url=SecretStr("mongodb+srv://app:pa55word@cluster.example/ethix")
    )
    text = repr(settings) + str(settings) + str(settings.model_dump())
    assert "pa55word" not in text
    assert settings.database.endswith("@cluster.example/ethix")


def test_server_process_refuses_production_dev_keys_with_exit_2(tmp_path: Path) -> None:
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
    assert "production loads its keys from Secret Manager" in done.stderr
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
        (
            {k: v for k, v in PRODUCTION_RATE_LIMITS.items() if k != "ETHIX_TRUSTED_PROXY_HOPS"},
            "ETHIX_TRUSTED_PROXY_HOPS must be set when ETHIX_ENV=production",
        ),
    ],
)
def test_production_needs_rate_limits_and_refuses_open_cors(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, env: dict[str, str], named: str
) -> None:
    _env(monkeypatch, tmp_path, **PRODUCTION, **env)
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
    _env(monkeypatch, tmp_path, **PRODUCTION, **PRODUCTION_RATE_LIMITS)
    assert load_settings().effective_log_level == "warning"


def test_server_process_without_rate_limits_in_production_exits_2_naming_the_setting(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "ETHIX_DATA_DIR": str(tmp_path), **PRODUCTION}
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
