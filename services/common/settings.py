"""Settings shared by both services (environment variables, like Cloud Run)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """Base settings. ``ETHIX_ENV=production`` refuses fault injection (and, in subclasses, dev secrets)."""

    model_config = SettingsConfigDict(env_prefix="ETHIX_", extra="ignore")

    env: Literal["development", "production"] = "development"
    host: str = "127.0.0.1"
    port: int = Field(default=8080, validation_alias="PORT")
    service_name: str = Field(default="local", validation_alias="K_SERVICE")
    revision: str = Field(default="local", validation_alias="K_REVISION")
    fault_error_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    fault_latency_ms: int = Field(default=0, ge=0, le=600_000)

    @model_validator(mode="after")
    def _no_faults_in_production(self) -> ServiceSettings:
        if self.env == "production" and (self.fault_error_rate or self.fault_latency_ms):
            raise ValueError("fault injection (ETHIX_FAULT_*) must be off when ETHIX_ENV=production")
        return self
