"""Backend settings from the environment (``ETHIX_*``, ``PORT``, ``AI_CORE_URL``): docs/architecture.md."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator

from services.common.settings import ServiceSettings

MIN_PRODUCTION_ARGON2_KIB = 19_456  # OWASP's floor for argon2id


def _default_data_dir() -> Path:
    return Path.home() / ".ethixctl" / "dev-data"


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


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
    # Optional: Sentry's DSN, loaded like the keys; when it cannot load, the service runs without Sentry.
    secret_sentry_dsn: str | None = None
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
    # The heartbeat document that measures RPO after a restore (services/backend/heartbeat.py); 0: off.
    heartbeat_seconds: float = Field(default=60.0, ge=0)
    # Password hashes computed at once; more concurrent register/login requests get 429 at once.
    password_hash_concurrency: int = Field(default_factory=_cores, ge=1, le=64)
    # The runbook's four rate-limiting variables: per client address, in `limits` notation ("120/minute").
    # Off in development; production refuses to start without them.
    rate_limit_enabled: bool = False
    rate_limit_default: str | None = None  # every /api route
    rate_limit_auth: str | None = None  # /api/v1/auth/* (on top of the failed-login throttle)
    # Shared counter storage; unset means the document store, shared by every revision. Any `limits`
    # storage URI (redis://, memcached://, mongodb://) works too; memory:// is per process (development).
    rate_limit_storage_url: SecretStr | None = None
    # Failed-login throttle, per account and per client address, counted in the document store: after
    # the allowed failures each further one blocks for base × 2^k seconds (capped), until the window
    # passes without a failure. A successful login clears the account's count.
    login_failures_per_account: int = Field(default=5, ge=1)
    login_failures_per_client: int = Field(default=20, ge=1)
    login_backoff_base_seconds: float = Field(default=1.0, gt=0)
    login_backoff_max_seconds: float = Field(default=900.0, gt=0)
    login_failure_window_seconds: float = Field(default=900.0, gt=0)

    @field_validator("rate_limit_default", "rate_limit_auth")
    @classmethod
    def _limit_parses(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from limits import parse_many

        try:
            parse_many(value)
        except ValueError:
            raise ValueError(
                f"{value!r} is not a rate limit like '120/minute' or '10/second;500/hour'"
            ) from None
        return value

    @field_validator(
        "secrets_project",
        "secrets_endpoint",
        "secret_jwt_signing_key",
        "secret_session_key",
        "secret_database_url",
        "secret_sentry_dsn",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # A revision derived from a template cannot drop one of its variables, only set it: the DR
        # drill's revision on scratch data empties ETHIX_SECRET_DATABASE_URL to use ETHIX_DATABASE_URL.
        return None if value == "" else value

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
        if self.secret_sentry_dsn is not None:
            if self.sentry_dsn is not None:
                raise ValueError(
                    "SENTRY_DSN and ETHIX_SECRET_SENTRY_DSN are both set: keep one (the secret's name"
                    " in production, where SENTRY_DSN is refused)"
                )
            if self.secrets_project is None:
                raise ValueError(
                    "ETHIX_SECRET_SENTRY_DSN names a Secret Manager secret: set ETHIX_SECRETS_PROJECT"
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
        if self.sentry_dsn is not None:
            raise ValueError(
                "SENTRY_DSN holds a credential: production refuses secret values in the"
                " environment; name the secret with ETHIX_SECRET_SENTRY_DSN"
            )
        return self

    @model_validator(mode="after")
    def _rate_limits_are_complete(self) -> BackendSettings:
        if self.env == "production" and not self.rate_limit_enabled:
            raise ValueError(
                "ETHIX_RATE_LIMIT_ENABLED must be true when ETHIX_ENV=production "
                "(with ETHIX_RATE_LIMIT_DEFAULT and ETHIX_RATE_LIMIT_AUTH)"
            )
        if self.rate_limit_enabled:
            limits = {
                "ETHIX_RATE_LIMIT_DEFAULT": self.rate_limit_default,
                "ETHIX_RATE_LIMIT_AUTH": self.rate_limit_auth,
            }
            missing = [name for name, value in limits.items() if value is None]
            if missing:
                raise ValueError(f"{' and '.join(missing)} must be set when ETHIX_RATE_LIMIT_ENABLED is true")
        if self.env == "production" and "trusted_proxy_hops" not in self.model_fields_set:
            # Per-client limits need the client: unset, every client would share the front end's address.
            raise ValueError(
                "ETHIX_TRUSTED_PROXY_HOPS must be set when ETHIX_ENV=production "
                "(1 on Cloud Run, 2 behind an external Application Load Balancer)"
            )
        storage = self.rate_limit_storage_url
        if self.env == "production" and storage and storage.get_secret_value().startswith("memory://"):
            raise ValueError(
                "ETHIX_RATE_LIMIT_STORAGE_URL: memory:// is per process and refused when ETHIX_ENV=production"
            )
        return self

    @model_validator(mode="after")
    def _backoff_fits_the_window(self) -> BackendSettings:
        # The count must outlive the longest block it imposes, or a block would end early.
        if self.login_backoff_max_seconds > self.login_failure_window_seconds:
            raise ValueError(
                "ETHIX_LOGIN_BACKOFF_MAX_SECONDS must not exceed ETHIX_LOGIN_FAILURE_WINDOW_SECONDS"
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
