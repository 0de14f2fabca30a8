"""The smoke suite as data: ``playbooks/smoke.yaml`` loaded into pydantic models.

Validation happens at load time, so a typo in a field, an unknown variable or a missing fixture
is reported as ``file:line: field: problem`` (exit code 2) before any request is sent.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from ethixctl import PLAYBOOKS, yamldoc
from ethixctl.errors import PlaybookError
from ethixctl.smoke import jsonpath, template

DEFAULT_SUITE = PLAYBOOKS / "smoke.yaml"
BUILTIN_VARIABLES = ("run_id", "email", "password", "base_url")
HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class JsonAssertion(_Strict):
    """One check on the JSON body: exactly one of ``equals``, ``exists``, ``matches``, ``in``."""

    path: str
    equals: Any = None
    exists: bool | None = None
    matches: str | None = None
    in_: list[Any] | None = Field(default=None, alias="in")

    @field_validator("path")
    @classmethod
    def _path_in_subset(cls, value: str) -> str:
        try:
            jsonpath.parse(value)
        except jsonpath.JsonPathError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("matches")
    @classmethod
    def _valid_regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regular expression: {exc}") from None
        return value

    @model_validator(mode="after")
    def _exactly_one_check(self) -> JsonAssertion:
        checks = self.model_fields_set & {"equals", "exists", "matches", "in_"}
        if len(checks) != 1:
            raise ValueError("give exactly one of equals, exists, matches, in")
        return self

    @property
    def kind(self) -> str:
        return next(iter(self.model_fields_set & {"equals", "exists", "matches", "in_"})).rstrip("_")

    def describe(self) -> str:
        kind = self.kind
        expected = {"equals": self.equals, "exists": self.exists, "matches": self.matches, "in": self.in_}[
            kind
        ]
        return f"{self.path} {kind} {expected!r}"


class Request(_Strict):
    method: HttpMethod = "GET"
    path: str
    headers: dict[str, str] = {}
    json_body: Any = Field(default=None, alias="json")
    # form field -> fixture file, relative to the suite file
    multipart: dict[str, str] | None = None
    timeout: float | None = Field(default=None, gt=0)

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("the path starts with '/' and is relative to the target URL")
        return value

    @model_validator(mode="after")
    def _one_body(self) -> Request:
        if self.json_body is not None and self.multipart is not None:
            raise ValueError("give either json or multipart, not both")
        return self


class Poll(_Strict):
    """Repeat the request until ``until`` holds; stop early with a failure when ``fail_if`` holds."""

    until: JsonAssertion
    fail_if: JsonAssertion | None = None
    interval: float = Field(default=0.5, gt=0)
    deadline: float = Field(default=60.0, gt=0)


class Step(_Strict):
    name: str = Field(min_length=1)
    description: str = ""
    request: Request
    status: int | list[int] = 200
    json_checks: JsonAssertion | list[JsonAssertion] = Field(default=[], alias="json")
    contains: str | list[str] = []
    capture: dict[str, str] = {}
    poll: Poll | None = None

    @field_validator("capture")
    @classmethod
    def _capture_paths(cls, value: dict[str, str]) -> dict[str, str]:
        for name, path in value.items():
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise ValueError(f"capture name {name!r} is not an identifier")
            if name in BUILTIN_VARIABLES:
                raise ValueError(f"capture name {name!r} shadows a built-in variable")
            try:
                jsonpath.parse(path)
            except jsonpath.JsonPathError as exc:
                raise ValueError(str(exc)) from None
        return value

    @property
    def statuses(self) -> list[int]:
        return self.status if isinstance(self.status, list) else [self.status]

    @property
    def checks(self) -> list[JsonAssertion]:
        return self.json_checks if isinstance(self.json_checks, list) else [self.json_checks]

    @property
    def substrings(self) -> list[str]:
        return self.contains if isinstance(self.contains, list) else [self.contains]


class Suite(_Strict):
    name: str = "smoke"
    description: str = ""
    timeout: float = Field(default=10.0, gt=0, description="per-request timeout in seconds")
    # extra variables, rendered once per run with the built-ins (e.g. a different email domain)
    variables: dict[str, str] = {}
    # names of variables whose values are masked in every output, on top of the automatic rules
    secrets: list[str] = []
    steps: list[Step] = Field(min_length=1)
    cleanup: list[Step] = []
    # fixture paths are relative to the suite file's directory; set by parse_suite
    _base_dir: Path = PrivateAttr(default=Path("."))

    @property
    def base_dir(self) -> Path:
        return self._base_dir

    @model_validator(mode="after")
    def _unique_names(self) -> Suite:
        seen: set[str] = set()
        for step in [*self.steps, *self.cleanup]:
            if step.name in seen:
                raise ValueError(f"step name {step.name!r} is used twice")
            seen.add(step.name)
        return self


def _check_references(suite: Suite, path: str, lines: dict[yamldoc.Location, int]) -> None:
    """Every ``{{ var }}`` must be a built-in, a suite variable or captured by an earlier step."""

    def fail(loc: tuple[str | int, ...], problem: str) -> None:
        line = next((lines[loc[:end]] for end in range(len(loc), -1, -1) if loc[:end] in lines), None)
        raise PlaybookError(path, line, ".".join(str(part) for part in loc), problem)

    known = set(BUILTIN_VARIABLES)
    for name, value in suite.variables.items():
        unknown = template.names_in(value) - known
        if unknown:
            fail(
                ("variables", name),
                f"unknown variable {sorted(unknown)[0]!r} (only built-ins may be used here)",
            )
    known |= set(suite.variables)
    for secret in suite.secrets:
        if not template.PLACEHOLDER.fullmatch("{{" + secret + "}}"):
            fail(("secrets",), f"{secret!r} is not a variable name")
    captured = set(known)
    for section, steps in (("steps", suite.steps), ("cleanup", suite.cleanup)):
        for index, step in enumerate(steps):
            raw = step.model_dump(by_alias=True, exclude={"capture", "name", "description"})
            for field, value in raw.items():
                unknown = template.names_in(value) - captured
                if unknown:
                    fail(
                        (section, index, field),
                        f"unknown variable {sorted(unknown)[0]!r}: not a built-in "
                        f"({', '.join(BUILTIN_VARIABLES)}), a suite variable or captured by an earlier step",
                    )
            for field_name, fixture in (step.request.multipart or {}).items():
                if not (suite.base_dir / fixture).is_file():
                    fail(
                        (section, index, "request", "multipart", field_name),
                        f"fixture file {fixture!r} not found next to the suite ({suite.base_dir})",
                    )
            captured |= set(step.capture)


def parse_suite(text: str, path: str, base_dir: Path) -> Suite:
    suite = yamldoc.parse(Suite, text, path)
    suite._base_dir = base_dir
    _, lines = yamldoc.load_yaml(text, path)
    _check_references(suite, path, lines)
    return suite


def load_suite(path: str | Path | None = None) -> Suite:
    """Load and validate a suite file (default: ``playbooks/smoke.yaml``)."""
    path = Path(path) if path is not None else DEFAULT_SUITE
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PlaybookError(str(path), None, None, f"cannot read: {exc.strerror}") from None
    return parse_suite(text, str(path), path.resolve().parent)
