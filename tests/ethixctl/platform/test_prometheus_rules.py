"""The local Prometheus's recording rules that publish the app's metrics under Cloud Run's built-in
names, checked with the real promtool (Debian's prometheus package) on synthetic series, and the release
playbook's cloudrun CPU gate on them. The same rules are exercised end to end by
tests/ethixctl/release/test_analysis.py (gates under the cloudrun source)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from ethixctl.platform.prometheus import cloud_run_rules
from ethixctl.release import playbook
from ethixctl.release.playbook import render
from tests.promtool import promtool

LABELS = 'service_name="backend",revision_name="backend-1"'
APP = 'service="backend",revision="backend-1",status="200"'
TARGET = 'service="backend",revision="backend-1",instance="127.0.0.1:8001",job="revisions"'
SERIES = {
    'http_requests_total{service="backend",revision="backend-1",status="503",route="/x"}': "0+10x5",
    'http_requests_total{service="backend",revision="backend-1",status="200",route="/x"}': "0+30x5",
    # Probes and scrapes are not requests Cloud Run would count.
    f'http_requests_total{{{APP},route="/health/liveness"}}': "0+99x5",
    f'http_requests_total{{{APP},route="/metrics"}}': "0+99x5",
    **{
        f'http_request_duration_seconds_bucket{{{APP},route="/x",le="{le}"}}': f"0+{n}x5"
        for le, n in (("0.005", 1), ("0.25", 2), ("2.0", 3), ("10.0", 3), ("+Inf", 3))
    },
    f'http_request_duration_seconds_sum{{{APP},route="/x"}}': "0+0.5x5",
    f'http_request_duration_seconds_count{{{APP},route="/x"}}': "0+3x5",
    # Half a core per minute of a 2-vCPU instance started at time 0: 25 % utilization.
    f"process_cpu_seconds_total{{{TARGET}}}": "0+30x5",
    f"ethix_cpu_limit_cores{{{TARGET}}}": "2x5",
    f"process_start_time_seconds{{{TARGET}}}": "0x5",
}


def _sample(name: str, value: float, **labels: str) -> dict[str, object]:
    extra = "".join(f',{k}="{v}"' for k, v in labels.items())
    return {"labels": f"run_googleapis_com:{name}{{{LABELS}{extra}}}", "value": value}


def test_cloud_run_names_from_app_metrics_promtool(tmp_path: Path) -> None:
    ok = {"response_code": "200", "response_code_class": "2xx"}
    [gate] = [gate for gate in playbook.load().gates if gate.name == "cpu"]
    cpu_gate = render(gate.query["cloudrun"], service="backend", revision="backend-1", window="5m")
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps(cloud_run_rules()))
    spec = {
        "rule_files": [str(rules)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in SERIES.items()],
                "promql_expr_test": [
                    {
                        "expr": "run_googleapis_com:request_count",
                        "eval_time": "5m",
                        "exp_samples": [
                            _sample("request_count", 50, response_code="503", response_code_class="5xx"),
                            _sample("request_count", 150, **ok),
                        ],
                    },
                    {
                        "expr": "run_googleapis_com:request_latencies_bucket",
                        "eval_time": "5m",
                        # Bucket bounds in milliseconds, as Cloud Run reports them.
                        "exp_samples": [
                            _sample("request_latencies_bucket", v, **ok, le=le)
                            for le, v in (("5", 5), ("250", 10), ("2000", 15), ("10000", 15), ("+Inf", 15))
                        ],
                    },
                    {
                        "expr": "run_googleapis_com:request_latencies_sum",
                        "eval_time": "5m",
                        "exp_samples": [_sample("request_latencies_sum", 2500, **ok)],
                    },
                    {
                        "expr": "run_googleapis_com:request_latencies_count",
                        "eval_time": "5m",
                        "exp_samples": [_sample("request_latencies_count", 15, **ok)],
                    },
                    {
                        "expr": "run_googleapis_com:container_cpu_utilizations_sum",
                        "eval_time": "5m",
                        "exp_samples": [_sample("container_cpu_utilizations_sum", 75)],
                    },
                    {
                        "expr": "run_googleapis_com:container_cpu_utilizations_count",
                        "eval_time": "5m",
                        "exp_samples": [_sample("container_cpu_utilizations_count", 300)],
                    },
                    {
                        "expr": cpu_gate,
                        "eval_time": "5m",
                        "exp_samples": [{"labels": "{}", "value": 0.25}],
                    },
                ],
            }
        ],
    }
    test_file = tmp_path / "test.json"
    test_file.write_text(json.dumps(spec))
    result = subprocess.run(
        [promtool(), "test", "rules", str(test_file)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
