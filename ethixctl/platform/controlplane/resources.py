"""Cloud Run resource helpers the control plane's API, validation and reconciler share."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from google.cloud import run_v2

LATEST = run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST
REVISION = run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION
Cond = run_v2.Condition.State


def now() -> datetime:
    return datetime.now(UTC)


def new_etag() -> str:
    return f'"{uuid.uuid4().hex[:16]}"'


def clone(message: Any) -> Any:
    return type(message).deserialize(type(message).serialize(message))


def ready(message: str = "") -> run_v2.Condition:
    return run_v2.Condition(
        type_="Ready", state=Cond.CONDITION_SUCCEEDED, message=message, last_transition_time=now()
    )


def reconciling(message: str) -> run_v2.Condition:
    return run_v2.Condition(
        type_="Ready", state=Cond.CONDITION_RECONCILING, message=message, last_transition_time=now()
    )


def failed(message: str) -> run_v2.Condition:
    return run_v2.Condition(
        type_="Ready", state=Cond.CONDITION_FAILED, message=message, last_transition_time=now()
    )


def revision_ready(revision: run_v2.Revision) -> bool:
    return any(c.type_ == "Ready" and c.state == Cond.CONDITION_SUCCEEDED for c in revision.conditions)


def template_key(template: run_v2.RevisionTemplate) -> str:
    """The template without its revision name: two templates with equal keys run the same revision."""
    copy = clone(template)
    copy.revision = ""
    return str(run_v2.RevisionTemplate.to_json(copy, sort_keys=True))


@dataclass
class Effective:
    """What a service's `traffic` means once LATEST is resolved: revision -> percent, tag -> revision."""

    split: dict[str, int]
    tags: dict[str, str]


def effective(service: run_v2.Service) -> Effective:
    split: dict[str, int] = {}
    tags: dict[str, str] = {}
    for target in service.traffic:
        revision = target.revision if target.type_ == REVISION else service.latest_ready_revision
        if target.percent:
            split[revision] = split.get(revision, 0) + target.percent
        if target.tag:
            tags[target.tag] = revision
    return Effective(split, tags)


def settle(service: run_v2.Service, condition: run_v2.Condition) -> None:
    """The service's change is over (whichever way `condition` says)."""
    service.terminal_condition = condition
    service.reconciling = False
    service.observed_generation = service.generation
    service.update_time = now()
