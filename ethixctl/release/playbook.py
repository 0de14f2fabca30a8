"""The release playbook (``playbooks/release.yaml``) as validated data.

The runbook's decision matrix lives in the file, not in code: the orchestrator looks up what to do for
each situation (a failed gate, a gate far beyond its threshold, inconclusive data, query errors) in
``decisions``. Mistakes are reported as ``file:line: field: problem`` through :mod:`ethixctl.yamldoc`.
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal, get_args

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ethixctl import PLAYBOOKS, yamldoc
from ethixctl.adapters.prometheus import MetricSource
from ethixctl.yamldoc import Strict

DEFAULT_PATH = PLAYBOOKS / "release.yaml"

PLACEHOLDERS = ("service", "revision", "window")
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")

Seconds = Annotated[float, Field(gt=0, le=86_400)]


def render(template: str, **values: str) -> str:
    """Fill ``{service}``/``{revision}``/``{window}``; PromQL's own braces are left alone."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def _check_placeholders(query: str) -> str:
    unknown = sorted({name for name in _PLACEHOLDER.findall(query) if name not in PLACEHOLDERS})
    if unknown:
        raise ValueError(
            f"unknown placeholder(s) {', '.join('{' + u + '}' for u in unknown)}; "
            f"allowed: {', '.join('{' + p + '}' for p in PLACEHOLDERS)}"
        )
    return query


def _check_template(query: str) -> str:
    if "{revision}" not in _check_placeholders(query):
        raise ValueError("the query must select the revision with {revision}")
    return query


PromQL = Annotated[str, AfterValidator(_check_template)]
# A query over the whole service (every revision), e.g. its request rate.
ServicePromQL = Annotated[str, AfterValidator(_check_placeholders)]

METRIC_SOURCES: tuple[MetricSource, ...] = get_args(MetricSource)
# Sources whose series come from scraping the revisions, so a canary without an up target has no data.
SCRAPED_SOURCES: frozenset[MetricSource] = frozenset({"app"})


def _per_source(value: object) -> object:
    # A plain string is one query for every source (for metrics every source has).
    return dict.fromkeys(METRIC_SOURCES, value) if isinstance(value, str) else value


def _every_source(queries: dict[MetricSource, str]) -> dict[MetricSource, str]:
    missing = [source for source in METRIC_SOURCES if source not in queries]
    if missing:
        raise ValueError(
            f"no query for metric source {', '.join(missing)}: give one per source"
            f" ({', '.join(METRIC_SOURCES)}) or one string for all"
        )
    return queries


# One query per metric source, e.g. ``query: {app: "...", cloudrun: "..."}``; a plain string serves all.
SourceQueries = Annotated[
    dict[MetricSource, PromQL], BeforeValidator(_per_source), AfterValidator(_every_source)
]
ServiceSourceQueries = Annotated[
    dict[MetricSource, ServicePromQL], BeforeValidator(_per_source), AfterValidator(_every_source)
]


def window_text(seconds: float) -> str:
    """A PromQL range duration for ``seconds`` (whole seconds, at least 1s)."""
    return f"{max(1, round(seconds))}s"


class Step(Strict):
    weight: int = Field(gt=0, le=100, description="percent of traffic sent to the canary")


class Timing(Strict):
    hold: Seconds | None = None
    interval: Seconds | None = None
    window: Seconds | None = None
    # Baseline sampling depends on the scrape interval: each sample is a rate over sample_window,
    # which needs at least two scrapes (1 s locally, typically 15–30 s in production).
    sample_step: Seconds | None = None
    sample_window: Seconds | None = None
    # Seconds after each traffic change left out of the baseline comparison (Kayenta's warm-up).
    warmup: float | None = Field(default=None, ge=0, le=86_400)
    metric_source: MetricSource | None = None


class Gate(Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str = ""
    query: SourceQueries
    max: float = Field(ge=0, description="the gate passes while the observed value stays strictly below max")
    unit: Literal["ratio", "seconds", "count"] = "ratio"


class Comparison(Strict):
    """One metric of the baseline comparison: a per-sample series for canary and stable."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    query: SourceQueries
    # Kayenta's direction: "increase" means only a higher canary is a failure.
    direction: Literal["increase", "decrease", "either"] = "increase"
    weight: float = Field(default=1.0, gt=0)
    # A canary/stable ratio of means inside these bounds is a Pass even when the test is significant:
    # tiny but statistically certain differences must not fail a release.
    effect_size_low: float = Field(default=0.8, gt=0, le=1)
    effect_size_high: float = Field(default=1.2, ge=1)
    # Absolute differences below this are ignored (two error ratios of 0.000 and 0.001 are the same).
    tolerance: float = Field(default=0.0, ge=0)


class Baseline(Strict):
    enabled: bool = True
    test: Literal["mann-whitney"] = "mann-whitney"
    confidence: float = Field(default=0.98, gt=0.5, lt=1)
    sample_step: Seconds = 30
    sample_window: Seconds = 60
    # A revision that just took traffic is slower for a while (cold caches, lazy imports, new
    # connections): comparing those samples with a warm stable rolls back good canaries.
    warmup: float = Field(default=60, ge=0, le=86_400)
    min_samples: int = Field(default=5, ge=3)
    pass_score: float = Field(default=95, ge=0, le=100)
    marginal_score: float = Field(default=75, ge=0, le=100)
    metrics: list[Comparison] = Field(min_length=1)

    @model_validator(mode="after")
    def _scores(self) -> Baseline:
        if self.marginal_score > self.pass_score:
            raise ValueError("marginal_score must not exceed pass_score")
        if len({m.name for m in self.metrics}) != len(self.metrics):
            raise ValueError("metric names must be unique")
        return self


class Situation(StrEnum):
    GATE_FAILED = "gate_failed"  # a threshold gate at or above its max
    GATE_ABOVE = "gate_above"  # a gate at or above an extra bound (value), e.g. P95 > 5 s
    BASELINE_FAILED = "baseline_failed"  # score below marginal
    BASELINE_MARGINAL = "baseline_marginal"  # marginal <= score < pass
    INCONCLUSIVE = "inconclusive"  # too few requests, targets down, no samples
    INCONCLUSIVE_LIMIT = "inconclusive_limit"  # inconclusive_limit reached
    ERROR = "error"  # a query failed (Prometheus unreachable, rejected query)
    ERROR_LIMIT = "error_limit"  # consecutive_error_limit reached


class Action(StrEnum):
    ROLLBACK = "rollback"  # 100% to stable (or freeze with --on-failure freeze)
    HOLD = "hold"  # keep the split, stop the release, page a person (exit 4)
    RETRY = "retry"  # keep the step and analyse again at the next interval


class Rule(Strict):
    when: Situation
    gate: str | None = None
    value: float | None = Field(default=None, ge=0)
    action: Action
    page: bool = False
    reason: str = ""

    @model_validator(mode="after")
    def _shape(self) -> Rule:
        needs_gate = self.when in (Situation.GATE_FAILED, Situation.GATE_ABOVE)
        if self.when is Situation.GATE_ABOVE and self.value is None:
            raise ValueError("gate_above needs a value")
        if self.gate is not None and not needs_gate:
            raise ValueError(f"gate is only allowed for gate_failed and gate_above, not {self.when.value}")
        limit = self.when in (Situation.INCONCLUSIVE_LIMIT, Situation.ERROR_LIMIT)
        if limit and self.action is Action.RETRY:
            raise ValueError(f"{self.when.value} cannot retry: the limit is reached")
        return self


Event = Literal["started", "promoted", "rolled_back", "held", "failed", "page"]


class Notification(Strict):
    kind: Literal["console", "slack"]
    # Only where a message goes is named here; the Slack webhook URL is a secret and comes from the
    # environment (ETHIXCTL_SLACK_WEBHOOK or the environment's config), never from the playbook.
    events: list[Event] = Field(default_factory=lambda: list(get_args(Event)))


class Analysis(Strict):
    window: Seconds = 60
    min_requests: int = Field(default=20, ge=1)
    requests_query: SourceQueries
    # The whole service's request rate (requests/s) before a release: can the canary get enough data?
    rate_query: ServiceSourceQueries
    # Target labels that identify the canary's scrape target (scraped sources only); values are templates.
    target_labels: dict[str, str] = Field(default_factory=lambda: {"revision": "{revision}"})
    inconclusive_limit: int = Field(default=3, ge=1)
    consecutive_error_limit: int = Field(default=4, ge=1)


class Playbook(Strict):
    version: Literal[1]
    steps: list[Step] = Field(min_length=1)
    hold: Seconds = 900
    interval: Seconds = 60
    metric_source: MetricSource = "app"
    environments: dict[str, Timing] = Field(default_factory=dict)
    analysis: Analysis
    gates: list[Gate] = Field(min_length=1)
    baseline: Baseline
    decisions: list[Rule] = Field(min_length=1)
    notifications: list[Notification] = Field(default_factory=lambda: [Notification(kind="console")])

    @field_validator("steps")
    @classmethod
    def _increasing(cls, steps: list[Step]) -> list[Step]:
        weights = [s.weight for s in steps]
        if weights != sorted(set(weights)):
            raise ValueError(f"weights must strictly increase, got {weights}")
        if weights[-1] != 100:
            raise ValueError(f"the last step must send 100% to the canary, got {weights[-1]}")
        return steps

    @field_validator("gates")
    @classmethod
    def _unique_gates(cls, gates: list[Gate]) -> list[Gate]:
        names = [g.name for g in gates]
        if len(set(names)) != len(names):
            raise ValueError(f"gate names must be unique, got {', '.join(names)}")
        return gates

    @field_validator("decisions")
    @classmethod
    def _complete(cls, decisions: list[Rule], info: ValidationInfo) -> list[Rule]:
        names = [g.name for g in info.data.get("gates", [])]
        for index, rule in enumerate(decisions):
            if rule.gate is not None and names and rule.gate not in names:
                raise ValueError(f"rule {index}: unknown gate {rule.gate!r}; gates are {', '.join(names)}")
        covered = {r.when for r in decisions}
        required = {Situation.GATE_FAILED, Situation.INCONCLUSIVE_LIMIT, Situation.ERROR_LIMIT}
        missing = sorted(s.value for s in required - covered)
        if missing:
            raise ValueError(f"must say what to do for: {', '.join(missing)}")
        return decisions

    def timing(self, environment: str, hold: float | None = None, interval: float | None = None) -> Timing:
        """Hold, interval and window for one run: flags > environment override > playbook default."""
        override = self.environments.get(environment, Timing())
        final_hold = hold or override.hold or self.hold
        final_interval = interval or override.interval or self.interval
        return Timing(
            hold=final_hold,
            interval=min(final_interval, final_hold),
            window=override.window or self.analysis.window,
            sample_step=override.sample_step or self.baseline.sample_step,
            sample_window=override.sample_window or self.baseline.sample_window,
            warmup=self.baseline.warmup if override.warmup is None else override.warmup,
            metric_source=override.metric_source or self.metric_source,
        )

    def for_environment(self, environment: str, metric_source: MetricSource | None) -> Playbook:
        """This playbook as ``environment`` runs it: its metric source (the environment's
        ``metric_source`` in ethixctl.toml > the playbook's per-environment value > its default)
        becomes the playbook's own, so every query of the run reads the same source."""
        override = self.environments.get(environment, Timing())
        source = metric_source or override.metric_source or self.metric_source
        pinned = override.model_copy(update={"metric_source": source})
        environments = {**self.environments, environment: pinned}
        return self.model_copy(update={"metric_source": source, "environments": environments})

    def rule_for(self, situation: Situation, gate: str | None = None) -> Rule | None:
        for rule in self.decisions:
            if rule.when is situation and (rule.gate is None or rule.gate == gate):
                return rule
        return None


def load(path: str | Path | None = None) -> Playbook:
    return yamldoc.load(Playbook, path or DEFAULT_PATH)
