"""Settings shared by both services (environment variables, like Cloud Run)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

LogLevel = Literal["debug", "info", "warning", "error", "critical"]
# An origin is scheme://host[:port] with nothing after it: browsers send exactly that in `Origin`.
_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(:\d{1,5})?$")


class ServiceSettings(BaseSettings):
    """Base settings. ``ETHIX_ENV=production`` refuses fault injection, CORS ``*`` and debug logs (and, in
    subclasses, dev secrets)."""

    model_config = SettingsConfigDict(env_prefix="ETHIX_", extra="ignore")

    env: Literal["development", "production"] = "development"
    host: str = "127.0.0.1"
    port: int = Field(default=8080, validation_alias="PORT")
    service_name: str = Field(default="local", validation_alias="K_SERVICE")
    revision: str = Field(default="local", validation_alias="K_REVISION")
    fault_error_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    fault_latency_ms: int = Field(default=0, ge=0, le=600_000)
    # CPU cores kept busy by background threads, for as long as the process runs.
    fault_cpu_cores: float = Field(default=0.0, ge=0.0, le=16.0)
    # vCPUs this instance may use (the denominator of the CPU gate). Unset: the cgroup quota, else the
    # CPUs the process may run on. The local platform sets it from the template's resources.limits.cpu.
    cpu_limit: float | None = Field(default=None, gt=0)
    # None: info in development, warning in production (the pre-production checklist's LOG_LEVEL=warn).
    log_level: LogLevel | None = Field(
        default=None, validation_alias=AliasChoices("LOG_LEVEL", "ETHIX_LOG_LEVEL")
    )
    # Origins allowed to call the API from a browser; none by default. Comma-separated or a JSON list.
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Error reporting is off without a DSN. The DSN is a credential: it never shows in repr or logs.
    sentry_dsn: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("SENTRY_DSN", "ETHIX_SENTRY_DSN")
    )
    # Lets log lines link to Cloud Trace (`projects/PROJECT/traces/ID`); the bare trace id without it.
    gcp_project: str | None = Field(
        default=None, validation_alias=AliasChoices("GOOGLE_CLOUD_PROJECT", "ETHIX_GCP_PROJECT")
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _log_level_aliases(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip().lower()
            return {"warn": "warning", "fatal": "critical", "": None}.get(value, value)
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                import json

                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("cors_origins")
    @classmethod
    def _origins_are_origins(cls, origins: list[str]) -> list[str]:
        origins = [origin.rstrip("/") for origin in origins]
        for origin in origins:
            if origin != "*" and not _ORIGIN.match(origin):
                raise ValueError(
                    f"ETHIX_CORS_ORIGINS: {origin!r} is not an origin like https://app.example.com"
                )
        return origins

    @model_validator(mode="after")
    def _no_faults_in_production(self) -> ServiceSettings:
        if self.env != "production":
            return self
        if self.fault_error_rate or self.fault_latency_ms or self.fault_cpu_cores:
            raise ValueError("fault injection (ETHIX_FAULT_*) must be off when ETHIX_ENV=production")
        if "*" in self.cors_origins:
            raise ValueError("ETHIX_CORS_ORIGINS: '*' is refused when ETHIX_ENV=production; list the origins")
        if self.log_level == "debug":
            raise ValueError("LOG_LEVEL: debug is refused when ETHIX_ENV=production (warning is the default)")
        return self

    @property
    def effective_log_level(self) -> LogLevel:
        if self.log_level is not None:
            return self.log_level
        return "warning" if self.env == "production" else "info"
