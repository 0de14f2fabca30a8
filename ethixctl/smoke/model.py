"""The smoke suite as data: ``playbooks/smoke.yaml`` loaded into pydantic models.

Validation happens at load time, so a typo in a field, an unknown variable or a missing fixture
is reported as ``file:line: field: problem`` (exit code 2) before any request is sent.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal, NoReturn

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from ethixctl import PLAYBOOKS, yamldoc
from ethixctl.errors import PlaybookError, UsageError
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
    # one of the suite's categories; required when the suite declares categories
    category: str | None = None
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


class Category(_Strict):
    """A group of steps that ``--category`` selects; ``needs`` names earlier categories whose steps
    create what this one uses (the synthetic user, its dataset), so they run first."""

    description: str = ""
    needs: list[str] = []


class Suite(_Strict):
    name: str = "smoke"
    description: str = ""
    timeout: float = Field(default=10.0, gt=0, description="per-request timeout in seconds")
    # extra variables, rendered once per run with the built-ins (e.g. a different email domain)
    variables: dict[str, str] = {}
    # names of variables whose values are masked in every output, on top of the automatic rules
    secrets: list[str] = []
    # category name -> Category; empty: the steps form one uncategorised group
    categories: dict[str, Category] = {}
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

    def closure(self, names: Iterable[str]) -> list[str]:
        """``names`` with every category they need, transitively, in declaration order."""
        wanted: set[str] = set()
        pending = list(names)
        while pending:
            name = pending.pop()
            if name not in wanted:
                wanted.add(name)
                pending.extend(self.categories[name].needs)
        return [name for name in self.categories if name in wanted]

    def dependants(self, name: str) -> set[str]:
        """The categories that cannot run once ``name`` has failed: itself and all that need it."""
        return {other for other in self.categories if name in self.closure([other])}

    def select(self, names: Sequence[str]) -> Suite:
        """The suite limited to the steps of ``names`` and of the categories they need."""
        if not self.categories:
            raise UsageError(f"suite {self.name!r} declares no categories; run it without --category")
        unknown = [name for name in names if name not in self.categories]
        if unknown:
            raise UsageError(
                f"unknown smoke category {unknown[0]!r}", hint=f"categories: {', '.join(self.categories)}"
            )
        kept = set(self.closure(names))
        subset = self.model_copy(update={"steps": [step for step in self.steps if step.category in kept]})
        subset._base_dir = self._base_dir
        return subset


def _check_references(suite: Suite, path: str, lines: dict[yamldoc.Location, int]) -> None:
    """Every ``{{ var }}`` must be a built-in, a suite variable or captured by an earlier step."""

    def fail(loc: tuple[str | int, ...], problem: str) -> NoReturn:
        line = next((lines[loc[:end]] for end in range(len(loc), -1, -1) if loc[:end] in lines), None)
        raise PlaybookError(path, line, ".".join(str(part) for part in loc), problem)

    _check_categories(suite, fail)
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
    # A category runs with only the categories it needs: its steps may use only what those capture.
    groups: list[tuple[str | None, set[str] | None]] = [
        (name, set(suite.closure([name]))) for name in suite.categories
    ] or [(None, None)]
    for category, kept in groups:
        captured = set(known)
        for index, step in enumerate(suite.steps):
            if kept is None or step.category in kept:
                _check_step(suite, step, ("steps", index), captured, category, fail)
                captured |= set(step.capture)
    captured = known | {name for step in suite.steps for name in step.capture}
    for index, step in enumerate(suite.cleanup):
        _check_step(suite, step, ("cleanup", index), captured, None, fail)
        captured |= set(step.capture)


def _check_categories(suite: Suite, fail: Callable[[tuple[str | int, ...], str], NoReturn]) -> None:
    declared = list(suite.categories)
    for position, (name, category) in enumerate(suite.categories.items()):
        if not re.fullmatch(r"[a-z][a-z0-9-]*", name):
            fail(("categories", name), "a category name has lower case letters, digits and '-' only")
        for needed in category.needs:
            if needed not in declared[:position]:
                fail(
                    ("categories", name, "needs"),
                    f"{needed!r} is not a category declared before {name!r}",
                )
    for section, steps in (("steps", suite.steps), ("cleanup", suite.cleanup)):
        for index, step in enumerate(steps):
            if step.category is None:
                if declared and section == "steps":
                    fail(
                        (section, index), f"the suite declares categories: give one of {', '.join(declared)}"
                    )
            elif section == "cleanup":
                fail((section, index, "category"), "cleanup steps have no category: they always run")
            elif step.category not in suite.categories:
                problem = f"one of {', '.join(declared)}" if declared else "the suite declares no categories"
                fail((section, index, "category"), f"unknown category {step.category!r} ({problem})")
    used = {step.category for step in suite.steps}
    for name in declared:
        if name not in used:
            fail(("categories", name), "no step has this category")


def _check_step(
    suite: Suite,
    step: Step,
    loc: tuple[str, int],
    captured: set[str],
    category: str | None,
    fail: Callable[[tuple[str | int, ...], str], NoReturn],
) -> None:
    raw = step.model_dump(by_alias=True, exclude={"capture", "name", "description", "category"})
    for field, value in raw.items():
        unknown = template.names_in(value) - captured
        if unknown:
            scope = f" of category {category!r} or a category it needs" if category else ""
            fail(
                (*loc, field),
                f"unknown variable {sorted(unknown)[0]!r}: not a built-in "
                f"({', '.join(BUILTIN_VARIABLES)}), a suite variable or captured by an earlier step{scope}",
            )
    for field_name, fixture in (step.request.multipart or {}).items():
        if not (suite.base_dir / fixture).is_file():
            fail(
                (*loc, "request", "multipart", field_name),
                f"fixture file {fixture!r} not found next to the suite ({suite.base_dir})",
            )


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
