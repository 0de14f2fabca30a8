"""The contract between the control plane and whatever runs revisions (local processes + router)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from ethixctl.platform.probes import Probes


class RevisionState(StrEnum):
    STARTING = "STARTING"
    READY = "READY"
    FAILED = "FAILED"
    STOPPED = "STOPPED"
    # No process, as Cloud Run scales an idle revision to zero instances; `start_revision` (or a
    # request to its tag URL) starts it again.
    SCALED_TO_ZERO = "SCALED_TO_ZERO"


@dataclass
class RevisionSpec:
    service: str
    revision: str
    configuration: str
    image: str
    env: dict[str, str]
    probes: Probes = field(default_factory=Probes)


@dataclass
class RevisionStatus:
    state: RevisionState
    url: str | None
    message: str
    restarts: int


class Runtime(Protocol):
    def start_revision(self, spec: RevisionSpec) -> None:
        """Non-blocking: starts the process (also of a revision scaled to zero); READY after its startup
        probe passes."""

    def revision_status(self, revision: str) -> RevisionStatus: ...

    def apply_traffic(self, service: str, split: dict[str, int], tags: dict[str, str]) -> dict[str, str]:
        """split: revision -> percent (sums to 100, only READY revisions); tags: tag -> revision.

        Programs the router atomically without dropping in-flight requests; returns tag -> tag URL.
        Revisions of the service left with 0% and no tag are scaled to zero.
        """

    def service_url(self, service: str) -> str: ...

    def stop_revision(self, revision: str) -> None: ...
