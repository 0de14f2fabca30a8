"""The synthetic-monitoring loop: alerts to a Slack webhook (a wire-level fake: a real local HTTP
receiver), the Prometheus textfile (its format checked with promtool in a test of its own, so a missing
promtool never hides the other checks) and the /metrics endpoint."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
import pytest

from ethixctl import procs
from ethixctl.cli import main
from ethixctl.procs import Service
from ethixctl.smoke import load_suite
from ethixctl.smoke.metrics import MetricsServer, WatchMetrics, write_textfile
from ethixctl.smoke.watch import SlackNotifier, watch
from tests.ethixctl.smoke.conftest import Target, write_suite
from tests.httpserver import serve
from tests.promtool import promtool


@dataclass
class SlackReceiver:
    """Wire-level fake of a Slack incoming webhook: records each JSON POST, answers ``status``."""

    url: str
    status: int = 200
    messages: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def slack() -> Iterator[SlackReceiver]:
    receiver = SlackReceiver("")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            receiver.messages.append(json.loads(body))
            self.send_response(receiver.status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: object) -> None:
            pass

    with serve(Handler) as url:
        receiver.url = f"{url}/services/T000/B000/secret-hook-path"
        yield receiver


def _series(text: str) -> dict[str, float]:
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


def test_unreachable_target_alerts_once_after_n_failures_to_slack_wire_level_fake(
    tmp_path: Path, slack: SlackReceiver, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ETHIXCTL_SLACK_WEBHOOK", slack.url)
    url = f"http://127.0.0.1:{procs.free_port()}"
    metrics = tmp_path / "textfile" / "smoke.prom"
    code = main(
        [
            "smoke",
            url,
            "--watch",
            "0.1",
            "--max-runs",
            "4",
            "--failures",
            "3",
            "--retries",
            "0",
            "--metrics-file",
            str(metrics),
        ]
    )
    assert code == 3
    assert len(slack.messages) == 1
    text = slack.messages[0]["text"]
    assert f"against {url} failed 3 times in a row (outcome: unreachable)" in text
    assert "step 'liveness': network error: ConnectError" in text

    series = _series(metrics.read_text())
    labels = f'suite="ethix-smoke",target="{url}"'
    assert series[f'ethixctl_smoke_runs_total{{{labels},result="unreachable"}}'] == 4
    assert series[f'ethixctl_smoke_runs_total{{{labels},result="passed"}}'] == 0
    assert series[f"ethixctl_smoke_consecutive_failures{{{labels}}}"] == 4
    assert series[f"ethixctl_smoke_alerts_total{{{labels}}}"] == 1
    assert series[f"ethixctl_smoke_last_duration_seconds{{{labels}}}"] > 0
    assert not any("last_success" in name for name in series)
    assert not list(metrics.parent.glob(".*.tmp")), "the atomic write left its temp file"

    captured = capsys.readouterr()
    assert "ALERT (failing)" in captured.err
    assert "secret-hook-path" not in captured.err + captured.out


FLAKY_SUITE = "name: flaky\nsteps:\n  - name: probe\n    request: {path: /probe}\n"


def test_alert_then_recovery_through_the_library_to_slack_wire_level_fake(
    tmp_path: Path, target: Target, slack: SlackReceiver
) -> None:
    answers = iter([500, 500, 500, 200, 500])
    target.routes[("GET", "/probe")] = lambda _r: (next(answers), {"ok": True})
    metrics = WatchMetrics("flaky", target.url)
    result = watch(
        target.url,
        load_suite(write_suite(tmp_path, FLAKY_SUITE)),
        interval=0.01,
        failures=2,
        max_runs=5,
        metrics=metrics,
        notifier=SlackNotifier(slack.url),
    )
    assert result.runs == 5
    assert [alert.kind for alert in result.alerts] == ["failing", "recovered"]
    assert [m["text"] for m in slack.messages] == [alert.text for alert in result.alerts]
    assert "failed 2 times in a row (outcome: failed); last: step 'probe': expected HTTP 200, got 500" in (
        result.alerts[0].text
    )
    assert metrics.runs == {"passed": 1, "failed": 4, "unreachable": 0}
    assert metrics.consecutive_failures == 1
    assert metrics.last_success is not None


def test_an_undeliverable_alert_is_reported_without_the_webhook_url_slack_wire_level_fake(
    tmp_path: Path, target: Target, slack: SlackReceiver
) -> None:
    slack.status = 500
    target.answer("GET", "/probe", 503, {"detail": "down"})
    result = watch(
        target.url,
        load_suite(write_suite(tmp_path, FLAKY_SUITE)),
        interval=0.01,
        failures=1,
        max_runs=2,
        notifier=SlackNotifier(slack.url),
    )
    assert len(result.alerts) == 1
    assert result.alerts[0].delivery_problem == "Slack webhook answered HTTP 500"
    assert "secret-hook-path" not in repr(SlackNotifier(slack.url))


def _states() -> list[WatchMetrics]:
    fresh = WatchMetrics("ethix-smoke", "http://127.0.0.1:8080")
    failing = WatchMetrics("ethix-smoke", 'http://host/"quoted"\\path')
    for _ in range(3):
        failing.record("unreachable", 0.5, 1_700_000_000.0)
    failing.alerted()
    recovered = WatchMetrics("ethix-smoke", "http://127.0.0.1:8080")
    recovered.record("failed", 0.25, 1_700_000_000.0)
    recovered.record("passed", 1.25, 1_700_000_010.0)
    return [fresh, failing, recovered]


@pytest.mark.parametrize("metrics", _states(), ids=["fresh", "failing_with_quotes", "recovered"])
def test_textfile_passes_promtool_check_metrics(metrics: WatchMetrics, tmp_path: Path) -> None:
    """The exposition format as Prometheus' own checker reads it. promtool comes with the Debian package
    prometheus; CI installs it, so there (CI set) its absence fails instead of skipping."""
    path = tmp_path / "smoke.prom"
    write_textfile(metrics, path)
    result = subprocess.run(
        [promtool(), "check", "metrics"], stdin=path.open("rb"), capture_output=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_metrics_endpoint_serves_the_current_values() -> None:
    metrics = WatchMetrics("s", "http://t")
    server = MetricsServer(metrics, port=0)
    try:
        metrics.record("passed", 1.25, 1_700_000_000.0)
        body = httpx.get(server.url, timeout=5)
        assert body.status_code == 200
        assert body.headers["content-type"].startswith("text/plain; version=0.0.4")
        series = _series(body.text)
        assert series['ethixctl_smoke_runs_total{suite="s",target="http://t",result="passed"}'] == 1
        assert series['ethixctl_smoke_last_success_timestamp_seconds{suite="s",target="http://t"}'] == 1.7e9
        assert httpx.get(server.url.replace("/metrics", "/other"), timeout=5).status_code == 404
    finally:
        server.shutdown()


@pytest.mark.e2e
def test_watch_against_the_real_services_counts_passing_runs(
    backend_service: Service, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    metrics = tmp_path / "smoke.prom"
    code = main(
        [
            "smoke",
            backend_service.url,
            "--watch",
            "0.1",
            "--max-runs",
            "2",
            "--metrics-file",
            str(metrics),
            "--json",
        ]
    )
    assert code == 0
    runs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(run["run"], run["outcome"]) for run in runs] == [(1, "passed"), (2, "passed")]
    assert runs[0]["run_id"] != runs[1]["run_id"]
    series = _series(metrics.read_text())
    labels = f'suite="ethix-smoke",target="{backend_service.url}"'
    assert series[f'ethixctl_smoke_runs_total{{{labels},result="passed"}}'] == 2
    assert series[f"ethixctl_smoke_consecutive_failures{{{labels}}}"] == 0
    assert series[f"ethixctl_smoke_last_success_timestamp_seconds{{{labels}}}"] > 1.7e9
