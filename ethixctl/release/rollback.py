"""``ethixctl rollback``: 100% to the previous good revision (from the ledger) or a named one, then
measure how long until clients going through the router see only that revision.

Rollback must work while a release is running: it ends that release in the ledger first (the running
orchestrator checks before every traffic change and stops), then moves the traffic.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from ethixctl.errors import UsageError
from ethixctl.ops.ledger import Ledger
from ethixctl.release import releases
from ethixctl.release.notify import Notifier
from ethixctl.release.orchestrator import Platform

REVISION_HEADER = "X-Ethix-Revision"
PROBE_PATH = "/health/liveness"  # cheap and exempt from fault injection


@dataclass
class RollbackResult:
    service: str
    to_revision: str
    from_split: dict[str, int]
    changed: bool
    apply_seconds: float  # the control plane accepted and applied the split
    only_target_seconds: float | None  # until every probe through the router came from the target
    ended_release: str | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class RollbackPlan:
    service: str
    environment: str
    to_revision: str
    from_split: dict[str, int]
    ends_release: str | None  # the release in progress that the rollback will end

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def describe(self) -> str:
        shown = ", ".join(f"{r} {p}%" for r, p in self.from_split.items()) or "nothing"
        ending = f"; ends release {self.ends_release[:8]}" if self.ends_release else ""
        return f"Roll {self.service} back: 100% to {self.to_revision} (now {shown}){ending}"


def plan_rollback(
    platform: Platform, ledger: Ledger, service: str, environment: str, to: str | None
) -> RollbackPlan:
    """Where a rollback would go, checked: an unknown or never-ready revision is refused here."""
    split = platform.serving_split(service)
    serving = {revision for revision, percent in split.items() if percent > 0}
    target = to or releases.previous_good(ledger, service, environment, split)
    if target is None:
        raise UsageError(
            f"the ledger has no earlier good revision of {service}"
            f" (serving now: {', '.join(sorted(serving))})",
            hint="name one: `ethixctl rollback SERVICE --to REVISION` (`ethixctl status` lists revisions)",
        )
    revision = platform.get_revision(service, target)  # UsageError for an unknown revision
    if not revision.ready:
        raise UsageError(
            f"refusing to roll back to {target}: it never became ready ({revision.message or 'not ready'})",
            hint="pick a revision that served before: `ethixctl history " + service + "`",
        )
    running = releases.in_progress(ledger, service, environment)
    return RollbackPlan(service, environment, target, split, running.id if running else None)


def rollback(
    platform: Platform,
    ledger: Ledger,
    notify: Notifier,
    plan: RollbackPlan,
    *,
    measure: bool = True,
    settle_timeout: float = 30.0,
) -> RollbackResult:
    service, environment, target = plan.service, plan.environment, plan.to_revision
    running = releases.in_progress(ledger, service, environment)
    ended = None
    if running is not None and ledger.finish_if_in_progress(
        running.id, "aborted", f"ended by a manual rollback to {target}"
    ):
        ended = running.id
        notify.operation = running
        notify("aborted", f"release {running.short_id} ended by a manual rollback to {target}")
    before = platform.serving_split(service)
    if before == {target: 100}:
        return RollbackResult(service, target, before, False, 0.0, 0.0 if measure else None, ended)
    started = time.monotonic()
    change = ledger.intend_traffic(service, environment, {target: 100}, f"manual rollback to {target}", ended)
    info = platform.set_traffic(service, {target: 100})
    ledger.confirm_traffic(change)
    applied = time.monotonic() - started
    only = _until_only(info.uri, target, started, settle_timeout) if measure else None
    ledger.record_rollback(
        service,
        environment,
        before,
        target,
        "manual rollback",
        automatic=False,
        seconds=only,
        operation_id=ended,
    )
    timing = f"clients see only it after {only:.2f}s" if only is not None else "not measured"
    notify("rolled_back", f"rolled back to {target} ({timing})", revision=target, seconds=only)
    return RollbackResult(service, target, before, True, applied, only, ended)


def _until_only(url: str, target: str, started: float, timeout: float, streak: int = 20) -> float | None:
    """Seconds from ``started`` until ``streak`` consecutive answers came from ``target``.

    Every answer carries the serving revision in X-Ethix-Revision (services/common/observability.py).
    """
    import httpx

    first_good: float | None = None
    good = 0
    deadline = started + timeout
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            try:
                seen = client.get(url.rstrip("/") + PROBE_PATH).headers.get(REVISION_HEADER)
            except httpx.HTTPError:
                seen = None
            if seen == target:
                if good == 0:
                    first_good = time.monotonic()
                good += 1
                if good >= streak and first_good is not None:
                    return first_good - started
            else:
                good = 0
    return None
