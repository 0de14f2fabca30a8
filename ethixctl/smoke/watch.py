"""Synthetic monitoring: run the suite every ``interval`` seconds, alert after N consecutive failures.

The alert goes to the console (through the caller's ``on_alert``) and, when configured, to a Slack
incoming webhook; a recovery message follows the first passing run after an alert. Results are
exposed for Prometheus as a textfile and/or a ``/metrics`` endpoint (ethixctl.smoke.metrics).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ethixctl.smoke.metrics import WatchMetrics, write_textfile
from ethixctl.smoke.model import Suite
from ethixctl.smoke.runner import SmokeReport, StepStatus, run_suite


class SlackNotifier:
    """Posts to a Slack incoming webhook. The URL is a credential: it never appears in repr or errors."""

    def __init__(self, webhook_url: str, timeout: float = 5.0):
        self._webhook_url = webhook_url
        self._timeout = timeout

    def __repr__(self) -> str:
        return "SlackNotifier(webhook_url=***)"

    def send(self, text: str) -> str | None:
        """Deliver ``text``; returns None on success, otherwise what went wrong (for a warning)."""
        import httpx

        try:
            response = httpx.post(self._webhook_url, json={"text": text}, timeout=self._timeout)
        except httpx.HTTPError as exc:
            return f"Slack webhook unreachable ({type(exc).__name__})"
        if response.status_code >= 300:
            return f"Slack webhook answered HTTP {response.status_code}"
        return None


@dataclass
class Alert:
    kind: str  # "failing" or "recovered"
    text: str
    delivery_problem: str | None = None


@dataclass
class WatchResult:
    runs: int = 0
    last: SmokeReport | None = None
    alerts: list[Alert] = field(default_factory=list)


def failure_summary(report: SmokeReport) -> str:
    culprit = next(
        (s for s in [*report.steps, *report.cleanup] if s.status in (StepStatus.FAILED, StepStatus.ERROR)),
        None,
    )
    if culprit is None:
        return report.outcome
    return f"step {culprit.name!r}: {culprit.reason}"


def watch(
    base_url: str,
    suite: Suite,
    *,
    interval: float,
    failures: int = 3,
    max_runs: int | None = None,
    timeout: float | None = None,
    retries: int = 3,
    metrics_file: Path | None = None,
    metrics: WatchMetrics | None = None,
    notifier: SlackNotifier | None = None,
    on_report: Callable[[int, SmokeReport], None] | None = None,
    on_alert: Callable[[Alert], None] | None = None,
    stop: threading.Event | None = None,
) -> WatchResult:
    """Loop until ``max_runs`` runs are done or ``stop`` is set. Run starts are ``interval`` apart."""
    metrics = metrics or WatchMetrics(suite.name, base_url)
    stop = stop or threading.Event()
    result = WatchResult()
    alerting = False
    while not stop.is_set() and (max_runs is None or result.runs < max_runs):
        started = time.monotonic()
        report = run_suite(base_url, suite, timeout=timeout, retries=retries)
        result.runs += 1
        result.last = report
        metrics.record(report.outcome, report.duration, time.time())
        if on_report:
            on_report(result.runs, report)
        alert: Alert | None = None
        if not report.passed and metrics.consecutive_failures == failures:
            alerting = True
            alert = Alert(
                "failing",
                f":rotating_light: ethixctl smoke: suite {suite.name!r} against {base_url} failed "
                f"{failures} times in a row (outcome: {report.outcome}); last: {failure_summary(report)}",
            )
        elif report.passed and alerting:
            alerting = False
            alert = Alert(
                "recovered",
                f":white_check_mark: ethixctl smoke: {suite.name!r} against {base_url} passes again",
            )
        if alert is not None:
            if notifier is not None:
                alert.delivery_problem = notifier.send(alert.text)
            metrics.alerted()
            result.alerts.append(alert)
            if on_alert:
                on_alert(alert)
        if metrics_file is not None:
            write_textfile(metrics, metrics_file)
        if max_runs is not None and result.runs >= max_runs:
            break
        stop.wait(max(0.0, interval - (time.monotonic() - started)))
    return result
