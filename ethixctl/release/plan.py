"""What a release will do, decided before anything changes: the steps, their holds and analysis
windows, and whether the canary can possibly get enough requests to be judged.

A gate needs ``min_requests`` canary requests per analysis window. At a low request rate the 10% step
may never get them, and the release would retry until its inconclusive limit and fail safe every
time. So each step's window grows, up to the step's hold, until it is expected to hold 1.5 times the
minimum; when even that is too short, the release is refused up front with the rate or hold it
needs — also in ``--dry-run``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from ethixctl.errors import UsageError
from ethixctl.release.playbook import Playbook, Timing

# Expected requests per window must reach this multiple of min_requests: arrivals are bursty
# (at 30 expected, a Poisson count falls below 20 about 3% of the time, which a retry absorbs).
HEADROOM = 1.5


@dataclass
class StepPlan:
    weight: int
    hold: float
    interval: float
    window: float
    expected_requests: float | None  # canary requests expected per window; None: rate unknown

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Plan:
    steps: list[StepPlan]
    rate: float | None  # the service's request rate (req/s) before the release, plus --load
    warnings: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"steps": [s.to_dict() for s in self.steps], "rate": self.rate, "warnings": self.warnings}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        return cls([StepPlan(**s) for s in data["steps"]], data.get("rate"), data.get("warnings", []))


def make_plan(book: Playbook, timing: Timing, rate: float | None, *, service: str) -> Plan:
    """Steps with their windows for a service receiving ``rate`` requests/s (None when unknown)."""
    hold = timing.hold or book.hold
    interval = timing.interval or book.interval
    base_window = timing.window or book.analysis.window
    minimum = book.analysis.min_requests
    steps: list[StepPlan] = []
    warnings: list[str] = []
    if rate is None:
        warnings.append(
            f"the request rate of {service} is unknown: cannot tell whether each step gets"
            f" {minimum} canary requests per window"
        )
    for step in book.steps:
        window = base_window
        expected = None
        if rate is not None:
            per_second = rate * step.weight / 100
            wanted = HEADROOM * minimum / per_second if per_second > 0 else float("inf")
            if wanted > window:
                window = wanted
            if window > max(hold, base_window):
                needed_rate = HEADROOM * minimum * 100 / (step.weight * max(hold, base_window))
                longer_hold = f" or hold each step at least {wanted:.0f}s (--hold {wanted:.0f})"
                raise UsageError(
                    f"{service} cannot be judged at {rate:.2f} requests/s: the {step.weight}% step would"
                    f" send {per_second:.2f}/s to the canary, {per_second * hold:.0f} requests in its"
                    f" {hold:g}s hold, and the gates need {minimum} per analysis window"
                    f" ({HEADROOM:g}x that expected, for headroom)",
                    hint=f"send at least {needed_rate:.1f} requests/s"
                    f" (locally: --load {math.ceil(needed_rate)})" + (longer_hold if per_second > 0 else ""),
                )
            expected = per_second * window
        steps.append(StepPlan(step.weight, hold, min(interval, hold), round(window, 1), expected))
    return Plan(steps, rate, warnings)
