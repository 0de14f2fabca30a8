"""Request and response bodies of ``POST /api/v1/analyze`` (the contract in docs/architecture.md)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

Scalar = str | int | float | bool | None


class AnalyzeRequest(BaseModel):
    """A dataset, given either as ``rows`` (list of objects) or as ``csv`` text, and what to analyse in it."""

    model_config = ConfigDict(extra="forbid")

    target: str = Field(min_length=1, description="Binary outcome column the model predicts.")
    protected_attribute: str = Field(
        min_length=1, description="Column whose groups are compared; it is not used as a model feature."
    )
    positive_label: str | int | float | bool = Field(
        description="The target value meaning the favourable outcome (matched as text or as a number)."
    )
    rows: list[dict[str, Scalar]] | None = None
    csv: str | None = None

    @model_validator(mode="after")
    def _one_data_source(self) -> AnalyzeRequest:
        if (self.rows is None) == (self.csv is None):
            raise ValueError("give exactly one of 'rows' or 'csv'")
        if self.target == self.protected_attribute:
            raise ValueError("target and protected_attribute must be different columns")
        return self


class ModelInfo(BaseModel):
    type: str
    max_depth: int
    accuracy: float = Field(description="Share of correct predictions on the rows named by accuracy_basis.")
    accuracy_basis: str = Field(description="'holdout' (25% stratified split) or 'training' for small data.")
    features: list[str]


class Fairness(BaseModel):
    """Computed with fairlearn on the model's predictions over every row. ``null`` when undefined."""

    selection_rate: dict[str, float]
    group_sizes: dict[str, int]
    demographic_parity_difference: float
    equalized_odds_difference: float | None = Field(
        description="null when some group lacks positive or negative true outcomes, so TPR/FPR are undefined."
    )
    disparate_impact_ratio: float | None = Field(
        description="min/max selection rate; null when no group is selected."
    )


class AnalyzeResponse(BaseModel):
    n_rows: int
    n_columns: int
    rows_dropped: int = Field(description="Rows left out because target or protected attribute was missing.")
    model: ModelInfo
    fairness: Fairness
    feature_importance: dict[str, float] = Field(
        description="Mean |SHAP value| per feature, in log-odds of positive_label, largest first."
    )
    explained_rows: int = Field(description="Rows SHAP explained: all, or a seeded sample of large datasets.")
    duration_ms: float


class ErrorItem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ErrorBody(BaseModel):
    """FastAPI's request-validation error shape; analysis errors use it too, ``loc`` naming the field."""

    detail: list[ErrorItem]


class Message(BaseModel):
    """A refusal that is not about a field: undecodable body (400), too busy or worker lost (503)."""

    detail: str


class Starting(BaseModel):
    status: str
    detail: str


class Readiness(BaseModel):
    status: str
    checks: dict[str, str]
