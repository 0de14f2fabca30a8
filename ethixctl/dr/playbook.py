"""The DR playbook (``playbooks/dr.yaml``) as validated data.

Objectives, the runbook's scenarios with their own RTO/RPO, the snapshot schedule, retention, and per
environment where the data lives. Mistakes are reported as ``file:line: field: problem`` through
:mod:`ethixctl.yamldoc`, like every playbook.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BeforeValidator,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ethixctl import PLAYBOOKS, yamldoc
from ethixctl.durations import format_duration, parse_duration
from ethixctl.yamldoc import Strict

DEFAULT_PATH = PLAYBOOKS / "dr.yaml"
DRILLS = ("database", "objects", "full")
# Atlas cluster names: letters, digits and hyphens, at most 64 characters.
_CLUSTER = r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$"


Duration = Annotated[float, BeforeValidator(parse_duration), Field(ge=0, le=366 * 86_400)]


class Objectives(Strict):
    rto: Duration = Field(gt=0)
    rpo: Duration


class Scenario(Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    title: str = Field(min_length=1)
    recovery: str = Field(min_length=1)
    rto: Duration = Field(gt=0)
    rpo: Duration
    drill: Literal["database", "objects", "planned"]


class Schedule(Strict):
    snapshot_every: Duration = Field(gt=0)
    snapshot_restore_test: Literal["daily", "weekly", "monthly", "quarterly"] = "weekly"
    object_restore_test: Literal["daily", "weekly", "monthly", "quarterly"] = "monthly"
    full_drill: Literal["monthly", "quarterly", "yearly"] = "quarterly"


class Retention(Strict):
    snapshots: Duration = Field(gt=0)
    object_versions: int = Field(ge=1, le=1000)


class DrillDamage(Strict):
    objects_deleted: int = Field(default=1, ge=0)
    objects_overwritten: int = Field(default=1, ge=0)


class Target(Strict):
    """Where one environment's data lives. Without ``atlas_group_id`` it is the local platform."""

    cluster: str = Field(pattern=_CLUSTER)
    scratch_cluster: str = Field(pattern=_CLUSTER)
    backend_service: str = Field(default="backend", pattern=r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
    snapshot_every: Duration | None = Field(default=None, gt=0)
    atlas_group_id: str | None = Field(default=None, pattern=r"^[0-9a-f]{24}$")
    atlas_url: str = Field(default="https://cloud.mongodb.com", pattern=r"^https?://[^/]+$")
    live_bucket: str | None = Field(default=None, pattern=r"^gs://[a-z0-9][-_.a-z0-9]{1,221}$")
    backup_bucket: str | None = Field(default=None, pattern=r"^gs://[a-z0-9][-_.a-z0-9]{1,221}$")
    scratch_bucket: str | None = Field(default=None, pattern=r"^gs://[a-z0-9][-_.a-z0-9]{1,221}$")
    # The Secret Manager secret holding the scratch cluster's connection string (it carries a password).
    scratch_database_url_secret: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,255}$")

    @model_validator(mode="after")
    def _shape(self) -> Target:
        if self.scratch_cluster == self.cluster:
            raise ValueError("scratch_cluster must differ from cluster: a restore wipes its target")
        production = (
            "atlas_group_id",
            "live_bucket",
            "backup_bucket",
            "scratch_bucket",
            "scratch_database_url_secret",
        )
        given = [name for name in production if getattr(self, name) is not None]
        if given and len(given) != len(production):
            missing = ", ".join(name for name in production if name not in given)
            raise ValueError(f"a production target needs all of {', '.join(production)}; missing {missing}")
        buckets = [b for b in (self.live_bucket, self.backup_bucket, self.scratch_bucket) if b]
        if len(set(buckets)) != len(buckets):
            raise ValueError("live_bucket, backup_bucket and scratch_bucket must be three different buckets")
        return self

    @property
    def is_local(self) -> bool:
        return self.atlas_group_id is None


class Playbook(Strict):
    version: Literal[1]
    objectives: Objectives
    scenarios: list[Scenario] = Field(min_length=1)
    schedule: Schedule
    retention: Retention
    drill: DrillDamage = DrillDamage()
    environments: dict[str, Target] = Field(default_factory=dict)

    @field_validator("scenarios")
    @classmethod
    def _one_per_drill(cls, scenarios: list[Scenario]) -> list[Scenario]:
        names = [s.name for s in scenarios]
        if len(set(names)) != len(names):
            raise ValueError(f"scenario names must be unique, got {', '.join(names)}")
        for drill in ("database", "objects"):
            owners = [s.name for s in scenarios if s.drill == drill]
            if len(owners) != 1:
                raise ValueError(f"exactly one scenario must have drill: {drill}, got {len(owners)}")
        return scenarios

    @field_validator("schedule")
    @classmethod
    def _meets_rpo(cls, schedule: Schedule, info: ValidationInfo) -> Schedule:
        objectives = info.data.get("objectives")
        if objectives is not None and schedule.snapshot_every > objectives.rpo:
            raise ValueError(
                f"snapshot_every ({format_duration(schedule.snapshot_every)}) exceeds objectives.rpo "
                f"({format_duration(objectives.rpo)}): snapshots could not meet the RPO"
            )
        return schedule

    def targets_of(self, drill: str) -> tuple[str, float, float]:
        """(what is measured against, RTO, RPO) for a ``dr-drill --scenario`` value."""
        if drill == "full":
            return "objectives", self.objectives.rto, self.objectives.rpo
        scenario = next(s for s in self.scenarios if s.drill == drill)
        return scenario.name, scenario.rto, scenario.rpo

    def planned(self) -> list[Scenario]:
        """Scenarios drilled by people, not by ``dr-drill`` (reported as such)."""
        return [s for s in self.scenarios if s.drill == "planned"]

    def target(self, environment: str) -> Target:
        from ethixctl.errors import UsageError

        target = self.environments.get(environment)
        if target is None:
            raise UsageError(
                f"the DR playbook has no environment {environment!r}",
                hint=f"add environments.{environment} to {DEFAULT_PATH.name} (see playbooks/dr.md)",
            )
        return target

    def snapshot_every(self, environment: str) -> float:
        override = self.environments.get(environment)
        if override is not None and override.snapshot_every is not None:
            return override.snapshot_every
        return self.schedule.snapshot_every


def load(path: str | Path | None = None) -> Playbook:
    return yamldoc.load(Playbook, path or DEFAULT_PATH)
