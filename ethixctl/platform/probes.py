"""Cloud Run's three container probes, as the local platform enforces them.

The settings come from the revision's ``run_v2.Container`` (``ethixctl up`` fills it from
``services/*/cloudrun.yaml`` through :mod:`ethixctl.platform.manifests`), so the platform and the YAML
cannot disagree:

* **startup**: the revision takes traffic once it passes, and FAILS when it has not passed within
  ``initialDelaySeconds + periodSeconds × failureThreshold``. It is polled every 0.1 s here, so a ready
  revision is noticed at once; the budget is the one Cloud Run allows.
* **readiness**: probed every ``periodSeconds`` once started; after ``failureThreshold`` consecutive
  failures the revision gets no traffic until a probe passes again.
* **liveness**: probed every ``periodSeconds`` once started; after ``failureThreshold`` consecutive
  failures the process is restarted.

A probe fails on any answer but 2xx, on a timeout (``timeoutSeconds``) or when nothing answers. The
reason of a failed answer carries the failing checks of the services' ``{"checks": {...}}`` body, so a
revision's status says why it is not ready (e.g. which secret did not load; names, never values).
``httpGet`` probes request their path on the revision's port; ``tcpSocket`` and ``grpc`` probes check
that the port accepts a connection.
"""

from __future__ import annotations

import socket
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

import httpx

# Cloud Run's defaults for a probe field left unset.
DEFAULT_PERIOD = 10.0
DEFAULT_TIMEOUT = 1.0
DEFAULT_FAILURE_THRESHOLD = 3


class Kind(StrEnum):
    STARTUP = "startup"
    READINESS = "readiness"
    LIVENESS = "liveness"


@dataclass(frozen=True)
class Probe:
    path: str | None  # None: a TCP connection check
    period: float = DEFAULT_PERIOD
    timeout: float = DEFAULT_TIMEOUT
    failure_threshold: int = DEFAULT_FAILURE_THRESHOLD
    initial_delay: float = 0.0

    @property
    def budget(self) -> float:
        """How long a startup probe may keep failing before the revision fails."""
        return self.initial_delay + self.period * self.failure_threshold

    def check(self, client: httpx.Client, host: str, port: int) -> str | None:
        """None when the probe passes, else why it failed."""
        if self.path is None:
            try:
                socket.create_connection((host, port), timeout=self.timeout).close()
            except OSError as exc:
                return f"TCP connect failed: {exc.strerror or type(exc).__name__}"
            return None
        try:
            response = client.get(f"http://{host}:{port}{self.path}", timeout=self.timeout)
        except httpx.TimeoutException:
            return f"no answer within {self.timeout:g}s"
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}"
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code}{_failing(response)}"


def _failing(response: httpx.Response) -> str:
    try:
        checks = response.json().get("checks") or {}
    except (ValueError, AttributeError):
        return ""
    failing = "; ".join(f"{name}: {problem}" for name, problem in checks.items() if problem != "ok")
    return f": {failing}" if failing else ""


def _from_v2(probe: Any) -> Probe:
    """A ``run_v2.Probe``: unset numbers take Cloud Run's defaults."""
    path = (probe.http_get.path or "/") if "http_get" in probe else None
    return Probe(
        path=path,
        period=float(probe.period_seconds or DEFAULT_PERIOD),
        timeout=float(probe.timeout_seconds or DEFAULT_TIMEOUT),
        failure_threshold=int(probe.failure_threshold or DEFAULT_FAILURE_THRESHOLD),
        initial_delay=float(probe.initial_delay_seconds),
    )


@dataclass(frozen=True)
class Probes:
    # Without a startup probe in the template: /health/startup (every service here has it) with a
    # 120 s budget, the control plane's startup timeout.
    startup: Probe = field(default_factory=lambda: Probe("/health/startup", failure_threshold=12))
    readiness: Probe | None = None
    liveness: Probe | None = None

    @classmethod
    def from_container(cls, container: Any) -> Probes:
        """The probes of a ``run_v2.Container``; a probe it does not set keeps the default above."""
        found: dict[str, Probe] = {}
        for kind in Kind:
            name = f"{kind.value}_probe"
            if name in container:
                found[kind.value] = _from_v2(getattr(container, name))
        return cls(**found)

    def to_dict(self) -> dict[str, Any]:
        return {kind.value: asdict(probe) if (probe := self.get(kind)) else None for kind in Kind}

    @classmethod
    def from_dict(cls, saved: dict[str, Any]) -> Probes:
        """The probes as :meth:`to_dict` wrote them (``runtime.json``): an adopted revision keeps its own."""
        found = {kind.value: Probe(**saved[kind.value]) for kind in Kind if saved.get(kind.value)}
        return cls(**found)

    def get(self, kind: Kind) -> Probe | None:
        probe: Probe | None = getattr(self, kind.value)
        return probe


@dataclass
class Tracker:
    """Consecutive failures and the next due time of the readiness and liveness probes of one process."""

    probes: Probes
    failures: dict[Kind, int] = field(default_factory=dict)
    due: dict[Kind, float] = field(default_factory=dict)
    running: set[Kind] = field(default_factory=set)
    last_error: dict[Kind, str] = field(default_factory=dict)

    def started(self, now: float, serving: bool = True) -> None:
        """The startup probe passed: the periodic probes begin after their initial delay. ``serving``
        False (a revision adopted while its readiness failed) keeps it out until a readiness probe passes."""
        for kind in (Kind.READINESS, Kind.LIVENESS):
            probe = self.probes.get(kind)
            if probe is not None:
                self.due[kind] = now + probe.initial_delay
                self.failures[kind] = probe.failure_threshold if kind is Kind.READINESS and not serving else 0

    def take_due(self, now: float) -> list[tuple[Kind, Probe]]:
        """The probes to run now; each is marked running until :meth:`record` gets its result."""
        ready: list[tuple[Kind, Probe]] = []
        for kind, when in self.due.items():
            probe = self.probes.get(kind)
            if probe is not None and kind not in self.running and now >= when:
                self.running.add(kind)
                self.due[kind] = now + probe.period
                ready.append((kind, probe))
        return ready

    def record(self, kind: Kind, error: str | None) -> bool | None:
        """Count one result: True when the failure threshold was just reached, False when it passes
        after having reached it, None when nothing changes."""
        self.running.discard(kind)
        probe = self.probes.get(kind)
        assert probe is not None
        previous = self.failures.get(kind, 0)
        if error is None:
            self.failures[kind] = 0
            return False if previous >= probe.failure_threshold else None
        self.failures[kind] = previous + 1
        self.last_error[kind] = error
        return True if self.failures[kind] == probe.failure_threshold else None
