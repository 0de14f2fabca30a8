"""Backend settings from the environment (``ETHIX_*``, ``PORT``, ``AI_CORE_URL``): docs/architecture.md."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator

from services.common.settings import ServiceSettings

# Development only: production refuses to start with it (see ``_no_dev_secrets``).
DEV_JWT_KID = "dev"
DEV_JWT_SECRET = "ethix-development-jwt-key-not-for-production"
MIN_PRODUCTION_KEY_BYTES = 32
MIN_PRODUCTION_ARGON2_KIB = 19_456  # OWASP's floor for argon2id


def _default_data_dir() -> Path:
    return Path.home() / ".ethixctl" / "dev-data"


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class BackendSettings(ServiceSettings):
    data_dir: Path = Field(default_factory=_default_data_dir)
    # SecretStr: a mongodb+srv:// URL carries the database password.
    database_url: SecretStr | None = None
    storage_url: str | None = None
    jwt_keys: dict[str, SecretStr] = Field(default_factory=lambda: {DEV_JWT_KID: SecretStr(DEV_JWT_SECRET)})
    jwt_active_kid: str = DEV_JWT_KID
    access_token_ttl_seconds: int = Field(default=3600, ge=60, le=86_400)
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

    @model_validator(mode="after")
    def _keys_are_usable(self) -> BackendSettings:
        if not self.jwt_keys:
            raise ValueError("ETHIX_JWT_KEYS must hold at least one key")
        if self.jwt_active_kid not in self.jwt_keys:
            raise ValueError("ETHIX_JWT_ACTIVE_KID must name a key in ETHIX_JWT_KEYS")
        return self

    @model_validator(mode="after")
    def _no_dev_secrets(self) -> BackendSettings:
        if self.env != "production":
            return self
        if self.password_hash_memory_kib < MIN_PRODUCTION_ARGON2_KIB:
            raise ValueError(
                f"password_hash_memory_kib below {MIN_PRODUCTION_ARGON2_KIB} is too weak for production"
            )
        for kid, secret in self.jwt_keys.items():
            value = secret.get_secret_value()
            if value == DEV_JWT_SECRET:
                raise ValueError(f"JWT key {kid!r} is the development key; set ETHIX_JWT_KEYS for production")
            if len(value.encode()) < MIN_PRODUCTION_KEY_BYTES:
                raise ValueError(f"JWT key {kid!r} is shorter than {MIN_PRODUCTION_KEY_BYTES} bytes")
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
