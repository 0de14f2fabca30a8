"""Request and response bodies of the ``/api/v1`` API (docs/architecture.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

AnalysisStatus = Literal["queued", "running", "succeeded", "failed"]
Label = str | int | float | bool


class Credentials(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    # argon2 hashes any length; the cap keeps one request from burning CPU on a megabyte password.
    # Login takes what accounts made under the former 8-character minimum still use.
    password: str = Field(min_length=8, max_length=256)


class Registration(Credentials):
    # ASVS 2.1.1: new passwords have at least 12 characters (2.1.2: up to 128 and more are allowed).
    password: str = Field(min_length=12, max_length=256)


class UserOut(BaseModel):
    id: str
    email: str


class MeOut(UserOut):
    created_at: datetime


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    # Opaque; exchanged at POST /api/v1/auth/refresh for a new pair (each one works once).
    refresh_token: str
    refresh_expires_in: int


class RefreshIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    refresh_token: str = Field(min_length=1, max_length=512)


class LogoutIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # True: end every session of the user (all devices), not only this one.
    all: bool = False


class DatasetOut(BaseModel):
    id: str
    filename: str
    rows: int
    columns: list[str]
    size_bytes: int
    created_at: datetime


class DatasetPage(BaseModel):
    items: list[DatasetOut]
    next_cursor: str | None = Field(
        description="Pass it as `cursor` to get the next page; null on the last page."
    )


class AnalysisIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset_id: str = Field(min_length=1, max_length=64)
    target: str = Field(min_length=1, max_length=256)
    protected_attribute: str = Field(min_length=1, max_length=256)
    positive_label: Label


class AnalysisOut(BaseModel):
    id: str
    dataset_id: str
    target: str
    protected_attribute: str
    positive_label: Label
    status: AnalysisStatus
    error: str | None
    created_at: datetime
    finished_at: datetime | None


class Problem(BaseModel):
    detail: str


class FieldError(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class InvalidInput(BaseModel):
    """422: request validation gives a list of field errors, content checks (CSV, columns) a sentence."""

    detail: str | list[FieldError]


Report = dict[str, Any]


class Health(BaseModel):
    status: str
    checks: dict[str, str] = Field(default_factory=dict)
