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
    # CPU cores kept busy by background threads, for as long as the process runs.
    fault_cpu_cores: float = Field(default=0.0, ge=0.0, le=16.0)
    # vCPUs this instance may use (the denominator of the CPU gate). Unset: the cgroup quota, else the
    # CPUs the process may run on. The local platform sets it from the template's resources.limits.cpu.
    cpu_limit: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _no_faults_in_production(self) -> ServiceSettings:
        faults = self.fault_error_rate or self.fault_latency_ms or self.fault_cpu_cores
        if self.env == "production" and faults:
            raise ValueError("fault injection (ETHIX_FAULT_*) must be off when ETHIX_ENV=production")
        return self
