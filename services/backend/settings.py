"""Backend settings from the environment (``ETHIX_*``, ``PORT``, ``AI_CORE_URL``): docs/architecture.md."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, model_validator

from services.common.settings import ServiceSettings

MIN_PRODUCTION_ARGON2_KIB = 19_456  # OWASP's floor for argon2id


def _default_data_dir() -> Path:
    return Path.home() / ".ethixctl" / "dev-data"


class BackendSettings(ServiceSettings):
    data_dir: Path = Field(default_factory=_default_data_dir)
    # SecretStr: a mongodb+srv:// URL carries the database password. Development only: production
    # reads it from Secret Manager (secret_database_url) and refuses it inline.
    database_url: SecretStr | None = None
    storage_url: str | None = None
    # Secret Manager: the project and the secrets' *names*; values are loaded at runtime
    # (services/common/secrets.py). Without a project, development uses built-in development keys.
    secrets_project: str | None = None
    secrets_endpoint: str | None = None  # a local control plane; unset = Google
    secret_jwt_signing_key: str | None = None
    secret_session_key: str | None = None
    secret_database_url: str | None = None
    secrets_refresh_seconds: float = Field(default=60.0, ge=0.2, le=3600)
    access_token_ttl_seconds: int = Field(default=900, ge=10, le=86_400)
    refresh_token_ttl_seconds: int = Field(default=14 * 86_400, ge=60, le=90 * 86_400)
    ai_core_url: str = Field(default="http://127.0.0.1:8081", validation_alias="AI_CORE_URL")
    ai_core_timeout_seconds: float = Field(default=60.0, gt=0)
    ai_core_attempts: int = Field(default=3, ge=1, le=10)
    ai_core_backoff_seconds: float = Field(default=0.5, ge=0)
    # An analysis whose worker has not written a heartbeat for this long is taken as orphaned.
    analysis_lease_seconds: float = Field(default=30.0, gt=0)
    max_upload_bytes: int = Field(default=10 * 1024 * 1024, ge=1)
    max_rows: int = Field(default=100_000, ge=1)
    max_columns: int = Field(default=100, ge=2)
    # argon2id cost; defaults follow RFC 9106's second recommendation (64 MiB, 3 passes).
    password_hash_memory_kib: int = Field(default=65_536, ge=1024)
    password_hash_time_cost: int = Field(default=3, ge=1)
    readiness_timeout_seconds: float = Field(default=0.4, gt=0, le=5)

    @model_validator(mode="after")
    def _secrets_are_named(self) -> BackendSettings:
        if self.secrets_project is not None:
            missing = [
                f"ETHIX_{name.upper()}"
                for name in ("secret_jwt_signing_key", "secret_session_key")
                if not getattr(self, name)
            ]
            if missing:
                raise ValueError(
                    f"ETHIX_SECRETS_PROJECT is set: {' and '.join(missing)} must name the secrets"
                )
        return self

    @model_validator(mode="after")
    def _no_dev_secrets(self) -> BackendSettings:
        if self.env != "production":
            return self
        if self.password_hash_memory_kib < MIN_PRODUCTION_ARGON2_KIB:
            raise ValueError(
                f"password_hash_memory_kib below {MIN_PRODUCTION_ARGON2_KIB} is too weak for production"
            )
        if self.secrets_project is None:
            raise ValueError(
                "production loads its keys from Secret Manager: set ETHIX_SECRETS_PROJECT and the"
                " ETHIX_SECRET_* names (the development keys are refused)"
            )
        if self.database_url is not None:
            raise ValueError(
                "ETHIX_DATABASE_URL holds a credential: production refuses secret values in the"
                " environment; name the secret with ETHIX_SECRET_DATABASE_URL"
            )
        return self

    @property
    def database(self) -> str:
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite://{self.data_dir.resolve() / 'ethix.db'}"

    @property
    def storage(self) -> str:
        return self.storage_url or f"file://{self.data_dir.resolve() / 'bucket'}"


class SettingsError(RuntimeError):
    """Invalid configuration; the message names settings and rules, never values (they may be secrets)."""


def load_settings() -> BackendSettings:
    from pydantic import ValidationError

    try:
        return BackendSettings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}"
            for e in exc.errors(include_input=False)
        )
        raise SettingsError(f"invalid backend configuration: {problems}") from None
