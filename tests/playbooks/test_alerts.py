"""playbooks/alerts.yaml: promtool validates it and unit-tests its expressions on synthetic series.

promtool comes with the Debian package `prometheus` that CI installs: without it these tests fail under
CI and skip elsewhere (tests/promtool.py).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from ethixctl.platform.prometheus import ALERT_FOR_ENV, ALERT_RULES
from tests.promtool import promtool

LABELS = 'service="backend",revision="backend-1"'
EXPECTED_LABELS = {"severity": "page", "service": "backend", "revision": "backend-1"}


def _annotations(alert: str, summary: str) -> dict[str, str]:
    rules = yaml.safe_load(ALERT_RULES.read_text())
    [rule] = [rule for group in rules["groups"] for rule in group["rules"] if rule.get("alert") == alert]
    return {**rule["annotations"], "summary": summary}


def test_promtool_check_rules_passes() -> None:
    result = subprocess.run(
        [promtool(), "check", "rules", str(ALERT_RULES)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 2 rules found" in result.stdout


def _run_promtool_tests(tmp_path: Path, tests: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
    document = {"rule_files": [str(ALERT_RULES)], "evaluation_interval": "15s", "tests": tests}
    path = tmp_path / "alerts_test.yml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return subprocess.run(
        [promtool(), "test", "rules", str(path)], capture_output=True, text=True, timeout=60
    )


def test_service_not_ready_fires_after_two_minutes_above_ten_percent(tmp_path: Path) -> None:
    not_ready = [
        {
            "exp_labels": EXPECTED_LABELS,
            "exp_annotations": _annotations(
                "ServiceNotReady", "backend-1 (backend) fails 50% of its readiness probes"
            ),
        }
    ]
    tests = [
        {
            # One readiness probe answered per 15 s; from 2m15s on, every other one fails (50 %).
            "interval": "15s",
            "input_series": [
                {
                    "series": f'health_check_total{{{LABELS},endpoint="readiness",status="200"}}',
                    "values": "0+1x40",
                },
                {
                    "series": f'health_check_total{{{LABELS},endpoint="readiness",status="503"}}',
                    "values": "0x8 1+1x32",
                },
            ],
            "alert_rule_test": [
                {"eval_time": "2m", "alertname": "ServiceNotReady", "exp_alerts": []},
                {"eval_time": "4m", "alertname": "ServiceNotReady", "exp_alerts": []},  # pending 1m45s
                {"eval_time": "4m15s", "alertname": "ServiceNotReady", "exp_alerts": not_ready},
            ],
        },
        {
            # 1 failure in 20 (5 %) never pages.
            "interval": "15s",
            "input_series": [
                {
                    "series": f'health_check_total{{{LABELS},endpoint="readiness",status="200"}}',
                    "values": "0+19x40",
                },
                {
                    "series": f'health_check_total{{{LABELS},endpoint="readiness",status="503"}}',
                    "values": "0+1x40",
                },
            ],
            "alert_rule_test": [{"eval_time": "10m", "alertname": "ServiceNotReady", "exp_alerts": []}],
        },
    ]
    result = _run_promtool_tests(tmp_path, tests)
    assert result.returncode == 0, result.stdout + result.stderr


def test_service_not_alive_fires_on_liveness_failures_or_a_dead_target(tmp_path: Path) -> None:
    not_alive = [
        {
            "exp_labels": EXPECTED_LABELS,
            "exp_annotations": _annotations("ServiceNotAlive", "backend-1 (backend) is not alive"),
        }
    ]
    tests = [
        {
            # Liveness answers 503 every 15 s from 1m15s on.
            "interval": "15s",
            "input_series": [
                {
                    "series": f'health_check_total{{{LABELS},endpoint="liveness",status="200"}}',
                    "values": "0+1x4 5x20",
                },
                {
                    "series": f'health_check_total{{{LABELS},endpoint="liveness",status="503"}}',
                    "values": "0x4 1+1x20",
                },
                {"series": f'up{{job="revisions",instance="127.0.0.1:1",{LABELS}}}', "values": "1x24"},
            ],
            "alert_rule_test": [
                {"eval_time": "2m", "alertname": "ServiceNotAlive", "exp_alerts": []},
                {"eval_time": "2m15s", "alertname": "ServiceNotAlive", "exp_alerts": not_alive},
            ],
        },
        {
            # The process stops answering at all at 1m15s: no probe answers, the scrape fails.
            "interval": "15s",
            "input_series": [
                {"series": f'up{{job="revisions",instance="127.0.0.1:1",{LABELS}}}', "values": "1x4 0x20"},
            ],
            "alert_rule_test": [
                {"eval_time": "2m", "alertname": "ServiceNotAlive", "exp_alerts": []},
                {"eval_time": "2m15s", "alertname": "ServiceNotAlive", "exp_alerts": not_alive},
            ],
        },
        {
            # Healthy: nothing fires.
            "interval": "15s",
            "input_series": [
                {
                    "series": f'health_check_total{{{LABELS},endpoint="liveness",status="200"}}',
                    "values": "0+1x40",
                },
                {"series": f'up{{job="revisions",instance="127.0.0.1:1",{LABELS}}}', "values": "1x40"},
            ],
            "alert_rule_test": [{"eval_time": "10m", "alertname": "ServiceNotAlive", "exp_alerts": []}],
        },
    ]
    result = _run_promtool_tests(tmp_path, tests)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.e2e
def test_broken_storage_fires_service_not_ready_on_the_local_platform_and_status_shows_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The real platform (`ethixctl up`): its Prometheus loads the rules, the runtime probes readiness
    as the backend's YAML says (every 5 s, 2 failures), every `for:` shortened to 2 s."""
    from ethixctl.cli import main
    from ethixctl.platform import lifecycle

    monkeypatch.setenv(ALERT_FOR_ENV, "2s")
    state_dir = tmp_path / "state"
    lifecycle.up(state_dir, free_ports=True, timeout=240)
    bucket = state_dir / "data" / "backend" / "bucket"
    try:
        assert bucket.is_dir()
        bucket.rename(bucket.with_name("bucket.moved"))
        bucket.write_text("not a directory: the backend's storage check fails")

        def status() -> dict[str, Any]:
            assert main(["status", "--state-dir", str(state_dir), "--json"]) == 0
            return dict(json.loads(capsys.readouterr().out))

        def backend_revision(data: dict[str, Any]) -> dict[str, Any]:
            [revision] = next(svc for svc in data["services"] if svc["name"] == "backend")["revisions"]
            return dict(revision)

        deadline = time.monotonic() + 120
        while True:
            data = status()
            firing = [alert for alert in data["alerts"] if alert["name"] == "ServiceNotReady"]
            # Two failed probes in a row (5 s apart) and the runtime stops routing to it, too.
            if firing and backend_revision(data)["serving"] is False:
                break
            assert time.monotonic() < deadline, (firing, backend_revision(data))
            time.sleep(1)
        [alert] = firing
        revision = backend_revision(data)
        assert (alert["service"], alert["revision"], alert["severity"]) == (
            "backend",
            revision["name"],
            "page",
        )
        assert alert["runbook"] == "playbooks/alerts.md#servicenotready"
        assert main(["status", "--state-dir", str(state_dir)]) == 0
        [row] = [line for line in capsys.readouterr().out.splitlines() if "ServiceNotReady" in line]
        assert alert["since"] in row and alert["runbook"] in row
        assert f"{revision['name']} (backend) fails" in row
    finally:
        if bucket.is_file():
            bucket.unlink()
            bucket.with_name("bucket.moved").rename(bucket)
        lifecycle.down(state_dir)


def test_a_bad_alert_for_override_is_refused_before_prometheus_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ethixctl.errors import UsageError
    from ethixctl.platform.prometheus import PrometheusServer
    from ethixctl.procs import free_port

    monkeypatch.setenv(ALERT_FOR_ENV, "2 minutes")
    server = PrometheusServer(tmp_path, free_port())
    with pytest.raises(UsageError, match="ETHIXCTL_ALERT_FOR='2 minutes' is not a Prometheus duration"):
        server.start()
    assert server.process is None
