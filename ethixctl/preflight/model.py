"""``playbooks/preflight.yaml`` as validated data: checklists of items, each an automated ``check`` (with
its parameters) or a ``confirm`` question only a person can answer."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ethixctl import PLAYBOOKS, yamldoc
from ethixctl.preflight.checks import REGISTRY

DEFAULT_PATH = PLAYBOOKS / "preflight.yaml"


class Item(BaseModel):
    # Extra keys are the check's parameters, validated against its own model below.
    model_config = ConfigDict(extra="allow", frozen=True)

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    title: str = Field(min_length=1)
    check: str | None = None
    confirm: str | None = None

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    @model_validator(mode="after")
    def _one_kind(self) -> Item:
        if (self.check is None) == (self.confirm is None):
            raise ValueError("give either check (automated) or confirm (a question for a person)")
        if self.confirm is not None:
            if self.params:
                raise ValueError(f"a confirm item takes no parameters, got {', '.join(self.params)}")
            return self
        if self.check not in REGISTRY:
            raise ValueError(f"unknown check {self.check!r}; known: {', '.join(sorted(REGISTRY))}")
        try:
            REGISTRY[self.check].params.model_validate(self.params)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or self.check
            raise ValueError(f"{where}: {first['msg']}") from None
        return self


class Preflight(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1]
    checklists: dict[str, list[Item]] = Field(min_length=1)
    # Environment name -> the checklists it runs; any other environment runs `default`.
    environments: dict[str, list[str]] = Field(default_factory=dict)
    default: list[str] = Field(default_factory=list)

    @field_validator("checklists")
    @classmethod
    def _unique_ids(cls, checklists: dict[str, list[Item]]) -> dict[str, list[Item]]:
        seen: set[str] = set()
        for items in checklists.values():
            for item in items:
                if item.id in seen:
                    raise ValueError(f"item id {item.id!r} is used twice (ids name items in --confirm)")
                seen.add(item.id)
        return checklists

    @model_validator(mode="after")
    def _known_checklists(self) -> Preflight:
        for where, names in [("default", self.default), *self.environments.items()]:
            unknown = [n for n in names if n not in self.checklists]
            if unknown:
                raise ValueError(
                    f"{where}: unknown checklist {', '.join(unknown)}; known: {', '.join(self.checklists)}"
                )
        return self

    def for_environment(self, environment: str) -> list[str]:
        return self.environments.get(environment, self.default)

    def items(self, checklists: list[str]) -> list[tuple[str, Item]]:
        return [(name, item) for name in checklists for item in self.checklists[name]]


def load(path: str | Path | None = None) -> Preflight:
    return yamldoc.load(Preflight, path or DEFAULT_PATH)
