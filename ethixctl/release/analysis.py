"""One gate evaluation: every query of one analysis interval, judged against the playbook.

What is compared (documented in playbooks/release.md too):

* threshold gates: each gate's instant query over the last ``window`` seconds for the canary revision;
  a gate passes only while its value is strictly below ``max``;
* baseline comparison: each baseline metric is sampled with ``query_range`` every ``sample_step``
  seconds over the same analysis window (each sample a rate over ``sample_window`` seconds) for the
  canary and for the stable revision; the two series are compared with Mann-Whitney U (stats.py).
  Samples whose rate window reaches into the ``warmup`` seconds after the step's traffic change are
  left out, for both revisions;
* every query exists once per metric source (``app``: the services' own metrics; ``cloudrun``: Cloud
  Run's built-in ones); ``timing.metric_source`` picks the set;
* no data is never a pass: no up scrape target for the canary (scraped sources only: Cloud Run's own
  metrics have no scrape target), fewer than ``min_requests`` canary
  requests in the window, a gate without a value, or a baseline metric without enough samples makes
  the whole evaluation INCONCLUSIVE, except that a threshold gate failed on enough requests is a FAIL
  whatever the comparison lacks;
* a failed query (Prometheus unreachable or rejecting the query) makes it ERROR, which the
  orchestrator counts toward the consecutive-error limit.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any

from ethixctl.adapters.prometheus import NotOffered, Prometheus, PrometheusUnavailable, QueryError
from ethixctl.release.playbook import SCRAPED_SOURCES, MetricSource, Playbook, Timing, render, window_text
from ethixctl.release.stats import Classification, Score, ScoreVerdict, classify, score


class Outcome(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    MARGINAL = "marginal"
    INCONCLUSIVE = "inconclusive"
    ERROR = "error"


@dataclass
class GateResult:
    name: str
    value: float | None
    max: float
    unit: str
    passed: bool | None  # None: no value, so neither passed nor failed
    query: str


@dataclass
class Verdict:
    outcome: Outcome
    service: str
    canary: str
    stable: str | None
    at: float
    window: float
    requests: float | None = None
    min_requests: int = 0
    targets_up: bool | None = None
    gates: list[GateResult] = field(default_factory=list)
    baseline: Score | None = None
    reasons: list[str] = field(default_factory=list)
    duration: float = 0.0
    metric_source: MetricSource = "app"

    def gate(self, name: str) -> GateResult | None:
        return next((g for g in self.gates if g.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["outcome"] = self.outcome.value
        return data

    def summary(self) -> str:
        """One line with every observed value and its threshold, for terminal and ledger."""
        parts = [f"{self.outcome.value.upper()}"]
        if self.requests is not None:
            parts.append(f"requests={self.requests:.0f} (min {self.min_requests})")
        for gate in self.gates:
            value = "no data" if gate.value is None else _fmt(gate.value, gate.unit)
            mark = {True: "ok", False: "FAIL", None: "?"}[gate.passed]
            parts.append(f"{gate.name}={value} (< {_fmt(gate.max, gate.unit)}) {mark}")
        if self.baseline is not None:
            shown = "no data" if self.baseline.value is None else f"{self.baseline.value:.0f}"
            parts.append(f"baseline score={shown} {self.baseline.verdict.value}")
        if self.reasons:
            parts.append("— " + "; ".join(self.reasons))
        return " · ".join(parts)


def _fmt(value: float, unit: str) -> str:
    if unit == "ratio":
        return f"{value * 100:.2f}%"
    if unit == "seconds":
        return f"{value * 1000:.0f}ms" if value < 1 else f"{value:.2f}s"
    return f"{value:g}"


def _scalar(prometheus: Prometheus, query: str, at: float) -> float | None:
    samples = prometheus.query(query, at=at)
    if not samples:
        return None
    value = samples[0].value
    return None if math.isnan(value) or math.isinf(value) else value


def _series(prometheus: Prometheus, query: str, start: float, end: float, step: float) -> list[float]:
    result = prometheus.query_range(query, start, end, step)
    # The queries aggregate to one series; if a playbook query does not, every series is a sample.
    return [value for points in result.values() for _, value in points if not math.isnan(value)]


def _targets_up(prometheus: Prometheus, book: Playbook, service: str, canary: str) -> tuple[bool | None, str]:
    """Whether the canary's scrape target is up; None where Prometheus cannot list targets (Managed
    Prometheus: the collector scrapes, nothing to ask), so only the request count guards the data."""
    wanted = {k: render(v, service=service, revision=canary) for k, v in book.analysis.target_labels.items()}
    try:
        targets = prometheus.targets()
    except NotOffered:
        return None, ""
    matching = [t for t in targets if all(t.labels.get(k) == v for k, v in wanted.items())]
    if not matching:
        selector = ",".join(f"{k}={v!r}" for k, v in wanted.items())
        return False, f"Prometheus has no scrape target for {selector}"
    down = [t for t in matching if t.health != "up"]
    if down:
        target = down[0]
        why = target.last_error or "not scraped yet"
        return False, f"canary target {target.scrape_url} is {target.health}: {why}"
    return True, ""


def service_rate(prometheus: Prometheus, book: Playbook, service: str, window: float) -> float | None:
    """Requests/s the whole service receives; None when Prometheus cannot say. A service with no
    request series at all receives nothing (0.0). Reads ``book.metric_source``: pass the playbook
    through ``Playbook.for_environment``."""
    query = render(book.analysis.rate_query[book.metric_source], service=service, window=window_text(window))
    try:
        return _scalar(prometheus, query, time.time()) or 0.0
    except (PrometheusUnavailable, QueryError):
        return None


def evaluate(
    prometheus: Prometheus,
    book: Playbook,
    *,
    service: str,
    canary: str,
    stable: str | None,
    timing: Timing,
    compare: bool = True,
    at: float | None = None,
    traffic_changed_at: float | None = None,
) -> Verdict:
    """Run all queries of one interval. ``compare=False`` skips the baseline (no stable traffic at 100%).

    ``timing`` is ``Playbook.timing(environment, ...)``: its window, sample_step, sample_window and
    warmup apply; the warm-up runs from ``traffic_changed_at`` (None: no warm-up to leave out).
    """
    started = time.perf_counter()
    now = time.time() if at is None else at
    window = timing.window or book.analysis.window
    verdict = Verdict(
        Outcome.PASS, service, canary, stable, now, window,
        metric_source=timing.metric_source or book.metric_source, min_requests=book.analysis.min_requests,
    )  # fmt: skip
    try:
        _evaluate(prometheus, book, verdict, timing, compare=compare, traffic_changed_at=traffic_changed_at)
    except (PrometheusUnavailable, QueryError) as exc:
        verdict.outcome = Outcome.ERROR
        verdict.reasons.append(exc.message)
    verdict.duration = time.perf_counter() - started
    return verdict


def _evaluate(
    prometheus: Prometheus,
    book: Playbook,
    verdict: Verdict,
    timing: Timing,
    *,
    compare: bool,
    traffic_changed_at: float | None,
) -> None:
    service, canary, now, source = verdict.service, verdict.canary, verdict.at, verdict.metric_source
    values = {"service": service, "revision": canary, "window": window_text(verdict.window)}
    no_data: list[str] = []

    if source in SCRAPED_SOURCES:
        verdict.targets_up, why = _targets_up(prometheus, book, service, canary)
        if verdict.targets_up is False:
            no_data.append(why)

    requests_query = render(book.analysis.requests_query[source], **values)
    verdict.requests = _scalar(prometheus, requests_query, now) or 0.0
    if verdict.requests < book.analysis.min_requests:
        no_data.append(
            f"{verdict.requests:.0f} canary requests in {values['window']}, need {book.analysis.min_requests}"
        )

    for gate in book.gates:
        query = render(gate.query[source], **values)
        value = _scalar(prometheus, query, now)
        passed = None if value is None else value < gate.max
        verdict.gates.append(GateResult(gate.name, value, gate.max, gate.unit, passed, query))
        if value is None:
            no_data.append(f"{gate.name}: no data")

    baseline_no_data: list[str] = []
    if compare and book.baseline.enabled and verdict.stable:
        verdict.baseline = _compare(prometheus, book, verdict, timing, traffic_changed_at)
        if verdict.baseline.verdict is ScoreVerdict.NODATA:
            baseline_no_data = [
                f"{m.name}: {m.reason}"
                for m in verdict.baseline.metrics
                if m.classification is Classification.NODATA
            ]

    failed = [g.name for g in verdict.gates if g.passed is False]
    if no_data or (baseline_no_data and not failed):
        # Judging on too little data is how bad canaries get promoted: say so and decide nothing. A
        # threshold gate failed on enough requests is acted on without waiting for the comparison.
        verdict.outcome = Outcome.INCONCLUSIVE
        verdict.reasons.extend(no_data + baseline_no_data)
    elif failed or (verdict.baseline and verdict.baseline.verdict is ScoreVerdict.FAIL):
        verdict.outcome = Outcome.FAIL
        verdict.reasons.extend(f"{name} at or above its threshold" for name in failed)
        if verdict.baseline and verdict.baseline.verdict is ScoreVerdict.FAIL:
            verdict.reasons.extend(f"{m.name}: {m.reason}" for m in verdict.baseline.metrics if m.failed)
    elif verdict.baseline and verdict.baseline.verdict is ScoreVerdict.MARGINAL:
        verdict.outcome = Outcome.MARGINAL
        verdict.reasons.extend(f"{m.name}: {m.reason}" for m in verdict.baseline.metrics if m.failed)


def _compare(
    prometheus: Prometheus, book: Playbook, verdict: Verdict, timing: Timing, traffic_changed_at: float | None
) -> Score:
    settings = book.baseline
    step = timing.sample_step or settings.sample_step
    sample_seconds = timing.sample_window or settings.sample_window
    start = verdict.at - verdict.window
    trimmed = False  # the warm-up cut the start of the window
    if traffic_changed_at is not None:
        warmup = settings.warmup if timing.warmup is None else timing.warmup
        # A sample is a rate over the sample_window before it: the first one after the warm-up.
        warm_from = traffic_changed_at + warmup + sample_seconds
        trimmed = warm_from > start
        start = max(start, warm_from)
    results = []
    for metric in settings.metrics:
        samples = {
            revision: _series(
                prometheus,
                render(
                    metric.query[verdict.metric_source],
                    service=verdict.service,
                    revision=revision,
                    window=window_text(sample_seconds),
                ),
                start,
                verdict.at,
                step,
            )
            if start <= verdict.at
            else []  # still warming up: no sample yet, which the comparison calls NoData
            for revision in (verdict.canary, verdict.stable or "")
        }
        result = classify(
            metric.name,
            samples[verdict.canary],
            samples[verdict.stable or ""],
            confidence=settings.confidence,
            min_samples=settings.min_samples,
            effect_size_low=metric.effect_size_low,
            effect_size_high=metric.effect_size_high,
            tolerance=metric.tolerance,
            direction=metric.direction,
            weight=metric.weight,
        )
        if result.classification is Classification.NODATA and trimmed:
            result = replace(result, reason=f"{result.reason} since the canary's warm-up ended")
        results.append(result)
    return score(results, pass_score=settings.pass_score, marginal_score=settings.marginal_score)
