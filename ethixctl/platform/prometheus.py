"""Prometheus for the local platform: scrapes every READY revision, found through a file_sd JSON file.

The config is written as JSON (valid YAML); the targets file is rewritten atomically whenever
revisions come and go, and Prometheus picks it up without a restart. The daemon starts (and restarts)
the process, the control plane writes the targets: the file is what they share, so a restarted
Prometheus comes back with its targets. The TSDB lives in the state dir, so a restart keeps its data.
It evaluates the alerting rules of ``playbooks/alerts.yaml`` (a copy in the state dir;
``ETHIXCTL_ALERT_FOR`` shortens every ``for:`` for tests and drills).

Recording rules also publish the services' metrics under Cloud Run's built-in names
(``run_googleapis_com:request_count``, ``run_googleapis_com:request_latencies_*`` in milliseconds,
labelled ``service_name``, ``revision_name``, ``response_code``, ``response_code_class``;
``run_googleapis_com:container_cpu_utilizations_sum``/``_count``), so the release gates' ``cloudrun``
metric source runs here against real traffic too. Like Cloud Run's, they leave out health probes and
scrapes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
from pathlib import Path

import yaml

from ethixctl import PLAYBOOKS, procs
from ethixctl.errors import PlatformUnavailable, UsageError
from ethixctl.files import write_atomic

INSTALL_HINT = "install it: apt-get install -y --no-install-recommends prometheus"
SCRAPE_INTERVAL = "1s"
ALERT_RULES = PLAYBOOKS / "alerts.yaml"
ALERT_FOR_ENV = "ETHIXCTL_ALERT_FOR"
RULES_FILE = "cloudrun_rules.json"
_SERVED = 'route!~"/health/.*|/metrics"'
_CLOUD_RUN_LABELS = "service_name, revision_name, response_code, response_code_class"
_CPU_LABELS = "service_name, revision_name"


def _as_cloud_run(selector: str) -> str:
    """``selector`` with the app's labels copied to Cloud Run's names (status 503 → class 5xx)."""
    expr = selector
    for target, replacement, source, regex in (
        ("service_name", "$1", "service", "(.*)"),
        ("revision_name", "$1", "revision", "(.*)"),
        ("response_code", "$1", "status", "(.*)"),
        ("response_code_class", "${1}xx", "status", "([0-9]).*"),
    ):
        expr = f'label_replace({expr}, "{target}", "{replacement}", "{source}", "{regex}")'
    return expr


def _le_in_milliseconds(expr: str) -> str:
    """Bucket bounds ×1000 by moving the decimal point (bounds with up to 3 decimals, as ours are)."""
    for replacement, regex in (
        ("${1}000", "([0-9]+)"),
        ("${1}${2}00", "([0-9]+)[.]([0-9])"),
        ("${1}${2}0", "([0-9]+)[.]([0-9]{2})"),
        ("${1}${2}", "([0-9]+)[.]([0-9]{3})"),
        ("$1", "0+([0-9]+)"),  # 0.005 → 0005 → 5
    ):
        expr = f'label_replace({expr}, "le", "{replacement}", "le", "{regex}")'
    return expr


def cloud_run_rules() -> dict[str, object]:
    def served(name: str) -> str:
        return _as_cloud_run(f"{name}{{{_SERVED}}}")

    rules = [
        ("request_count", f"sum by ({_CLOUD_RUN_LABELS}) ({served('http_requests_total')})"),
        (
            "request_latencies_bucket",
            f"sum by ({_CLOUD_RUN_LABELS}, le)"
            f" ({_le_in_milliseconds(served('http_request_duration_seconds_bucket'))})",
        ),
        (
            "request_latencies_sum",
            f"1000 * sum by ({_CLOUD_RUN_LABELS}) ({served('http_request_duration_seconds_sum')})",
        ),
        (
            "request_latencies_count",
            f"sum by ({_CLOUD_RUN_LABELS}) ({served('http_request_duration_seconds_count')})",
        ),
        # Cloud Run's CPU utilization is a distribution of per-instance samples (1.0 = every vCPU of the
        # instance busy). As counters: the sum grows by each instance's utilization and the count by one
        # sample per instance per second, so rate(sum) / rate(count) is the mean utilization over a window.
        (
            "container_cpu_utilizations_sum",
            f"sum by ({_CPU_LABELS}) ({_as_cloud_run('process_cpu_seconds_total / ethix_cpu_limit_cores')})",
        ),
        (
            "container_cpu_utilizations_count",
            f"sum by ({_CPU_LABELS})"
            f" ({_as_cloud_run('(time() - process_start_time_seconds) and ethix_cpu_limit_cores')})",
        ),
    ]
    return {
        "groups": [
            {
                "name": "cloud-run-builtin-metrics",
                "rules": [{"record": f"run_googleapis_com:{name}", "expr": expr} for name, expr in rules],
            }
        ]
    }


def find_prometheus() -> Path:
    """``ETHIXCTL_PROMETHEUS_BIN`` if set, else ``/usr/bin/prometheus``, else PATH."""
    override = os.environ.get("ETHIXCTL_PROMETHEUS_BIN")
    candidates = [Path(override)] if override else [Path("/usr/bin/prometheus")]
    if not override:
        found = shutil.which("prometheus")
        if found:
            candidates.append(Path(found))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    where = f"ETHIXCTL_PROMETHEUS_BIN={override}" if override else "/usr/bin/prometheus or PATH"
    raise PlatformUnavailable(f"prometheus binary not found ({where})", hint=INSTALL_HINT)


class PrometheusServer:
    name = "prometheus"

    def __init__(self, state_dir: Path, port: int):
        self.home = state_dir / "prometheus"
        self.log_path = state_dir / "logs" / "prometheus.log"
        self.port = port
        self.targets_path = self.home / "targets.json"
        self.process: procs.Process | None = None
        self._lock = threading.Lock()
        # revision -> (service, "127.0.0.1:PORT"), as last written
        self._targets: dict[str, tuple[str, str]] = {}
        try:
            for group in json.loads(self.targets_path.read_text()):
                labels = group["labels"]
                self._targets[labels["revision"]] = (labels["service"], group["targets"][0])
        except (OSError, ValueError, KeyError, IndexError, TypeError):
            pass  # none yet: the first start writes an empty list

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        binary = find_prometheus()
        self.home.mkdir(parents=True, exist_ok=True)
        write_atomic(self.home / RULES_FILE, json.dumps(cloud_run_rules(), indent=2))
        config = {
            "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
            "rule_files": [str(self.home / RULES_FILE), str(self._write_alert_rules())],
            "scrape_configs": [
                {
                    "job_name": "revisions",
                    "scrape_timeout": SCRAPE_INTERVAL,
                    # The services label their own samples with service/revision (the release gates query
                    # those); without honor_labels Prometheus would rename them to exported_service/...
                    "honor_labels": True,
                    "file_sd_configs": [{"files": [str(self.targets_path)], "refresh_interval": "1s"}],
                }
            ],
        }
        write_atomic(self.home / "prometheus.yml", json.dumps(config, indent=2))
        if not self.targets_path.exists():
            with self._lock:
                self._write_targets()
        self.process = procs.start(
            "prometheus",
            [
                str(binary),
                f"--config.file={self.home / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.home / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=7d",
            ],
            log_path=self.log_path,
            cwd=self.home,
        )
        procs.wait_http(self.url + "/-/ready", timeout=timeout, process=self.process)

    def _write_alert_rules(self) -> Path:
        rules = yaml.safe_load(ALERT_RULES.read_text(encoding="utf-8"))
        shorter = os.environ.get(ALERT_FOR_ENV)
        if shorter and not re.fullmatch(r"[0-9]+(ms|s|m|h)", shorter):
            raise UsageError(f"{ALERT_FOR_ENV}={shorter!r} is not a Prometheus duration (e.g. 2s)")
        if shorter:
            for group in rules["groups"]:
                for rule in group["rules"]:
                    if "for" in rule:
                        rule["for"] = shorter
        path = self.home / "alerts.yml"
        write_atomic(path, json.dumps(rules, indent=2))
        return path

    def alive(self) -> bool:
        return self.process is not None and self.process.alive()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def set_target(self, service: str, revision: str, address: str) -> None:
        with self._lock:
            self._targets[revision] = (service, address)
            self._write_targets()

    def remove_target(self, revision: str) -> None:
        with self._lock:
            if self._targets.pop(revision, None) is not None:
                self._write_targets()

    def _write_targets(self) -> None:
        groups = [
            {"targets": [address], "labels": {"service": service, "revision": revision}}
            for revision, (service, address) in sorted(self._targets.items())
        ]
        write_atomic(self.targets_path, json.dumps(groups, indent=2))
