"""Releases as the ledger records them: operations of kind ``release`` and the queries made on them.

A release's own facts (image, stable and canary revisions, tag, the exit code it ended with) live in
the operation's ``details``; :class:`Release` gives them names. Rollback's lookup of the previous good
revision reads the newest releases first and stops at the first answer, so it stays fast on a ledger
of 100,000 releases.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ethixctl.ops.ledger import IN_PROGRESS, Ledger, Operation

KIND = "release"
FINAL_STATUSES = ("promoted", "rolled_back", "held", "frozen", "failed", "aborted")


@dataclass
class Release(Operation):
    @classmethod
    def of(cls, op: Operation) -> Release:
        if op.kind != KIND:
            raise ValueError(f"operation {op.short_id} is a {op.kind}, not a release")
        return cls(**op.__dict__)

    @property
    def service(self) -> str:
        return self.subject

    @property
    def image(self) -> str:
        return str(self.details.get("image", ""))

    @property
    def stable_revision(self) -> str | None:
        return self.details.get("stable_revision")

    @property
    def canary_revision(self) -> str | None:
        return self.details.get("canary_revision")

    @property
    def tag(self) -> str:
        return str(self.details.get("tag", ""))

    def to_dict(self) -> dict[str, Any]:
        return {
            **super().to_dict(),
            "service": self.service,
            "image": self.image,
            "stable_revision": self.stable_revision,
            "canary_revision": self.canary_revision,
            "tag": self.tag,
        }


def create(
    ledger: Ledger, service: str, environment: str, image: str, stable: str | None, options: dict[str, Any]
) -> Release:
    op = ledger.create_operation(
        KIND, service, environment, "deploying", details={"image": image, "stable_revision": stable},
        options=options,
    )  # fmt: skip
    # The tag names the canary's own URL; derived from the id so a resumed run finds the same one.
    return Release.of(ledger.update(op.id, details={"tag": f"canary-{op.short_id.lower()}"}))


def get(ledger: Ledger, release_id: str) -> Release:
    return Release.of(ledger.operation(release_id))


def in_progress(ledger: Ledger, service: str, environment: str) -> Release | None:
    op = ledger.in_progress(KIND, service, environment)
    return Release.of(op) if op else None


def listed(ledger: Ledger, environment: str, service: str | None = None, since: float = 0.0) -> list[Release]:
    return [Release.of(op) for op in ledger.iter_operations(environment, KIND, service, since)]


def _good_newest_first(ledger: Ledger, service: str, environment: str) -> Iterator[str]:
    """Known-good revisions, newest first: a promoted canary, and each release's stable revision (it
    was serving when the release began)."""
    for op in ledger.iter_operations(environment, KIND, service, newest_first=True):
        release = Release.of(op)
        if release.status == "promoted" and release.canary_revision:
            yield release.canary_revision
        if release.stable_revision:
            yield release.stable_revision


def good_revisions(ledger: Ledger, service: str, environment: str) -> list[str]:
    """Known-good revisions, oldest first."""
    return list(reversed(list(_good_newest_first(ledger, service, environment))))


def previous_good(ledger: Ledger, service: str, environment: str, split: dict[str, int]) -> str | None:
    """The most recent good revision other than the one serving all traffic. When traffic is split
    (a frozen or interrupted release), that may be a revision still serving part of it."""
    current = next((revision for revision, percent in split.items() if percent == 100), None)
    return next((r for r in _good_newest_first(ledger, service, environment) if r != current), None)


def summary(
    ledger: Ledger, environment: str, service: str | None, since: float, until: float
) -> dict[str, Any]:
    """The quarterly review's numbers: release frequency and rollback rate over [since, until]."""
    releases = [r for r in listed(ledger, environment, service, since) if r.started_at <= until]
    finished = [r for r in releases if r.status != IN_PROGRESS]
    manual = [r for r in ledger.rollbacks(environment, service, since) if not r["automatic"]]
    rolled_back = sum(1 for r in finished if r.status == "rolled_back") + len(manual)
    weeks = max((until - since) / (7 * 86_400), 1 / 7)
    by_status: dict[str, int] = {}
    for release in releases:
        by_status[release.status] = by_status.get(release.status, 0) + 1
    return {
        "since": since,
        "until": until,
        "releases": len(releases),
        "by_status": by_status,
        "manual_rollbacks": len(manual),
        "rollback_rate": min(1.0, rolled_back / len(finished)) if finished else None,
        "releases_per_week": len(releases) / weeks,
    }
