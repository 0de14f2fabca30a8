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
