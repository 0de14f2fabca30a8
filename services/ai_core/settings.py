"""ai_core settings: the shared service settings plus the analysis limits (``ETHIX_ANALYSIS_*``)."""

from __future__ import annotations

from pydantic import Field

from services.common.settings import ServiceSettings


class AiCoreSettings(ServiceSettings):
    port: int = Field(default=8081, validation_alias="PORT")
    analysis_max_rows: int = Field(default=100_000, ge=1)
    analysis_max_columns: int = Field(default=100, ge=2)
    # Protected attributes with more distinct values than this are almost always a continuous column
    # (age, income) given by mistake; per-group rates over hundreds of groups mean nothing.
    analysis_max_groups: int = Field(default=50, ge=2)
    # SHAP cost grows with the rows explained; a seeded sample of this size gives stable global
    # importances while keeping a 10k-row analysis under its latency goal.
    analysis_explain_rows: int = Field(default=2_000, ge=1)
    # One worker process: the machine this runs on has 2 cores and the model already uses both.
    analysis_workers: int = Field(default=1, ge=1)
    # Analyses waiting for a worker beyond this are refused with 503 instead of queueing without bound.
    analysis_max_queued: int = Field(default=8, ge=1)
