"""Prometheus for the local platform: scrapes every READY revision, found through a file_sd JSON file.

The config is written as JSON (valid YAML); the targets file is rewritten atomically whenever
revisions come and go, and Prometheus picks it up without a restart. The TSDB lives in the state dir,
so restarting Prometheus keeps its data. It evaluates the alerting rules of ``playbooks/alerts.yaml``
(a copy in the state dir; ``ETHIXCTL_ALERT_FOR`` shortens every ``for:`` for tests and drills).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
from pathlib import Path

import yaml

from ethixctl import procs
from ethixctl.errors import PlatformUnavailable, UsageError
from ethixctl.files import write_atomic

INSTALL_HINT = "install it: apt-get install -y --no-install-recommends prometheus"
SCRAPE_INTERVAL = "1s"
ALERT_RULES = procs.REPO_ROOT / "playbooks" / "alerts.yaml"
ALERT_FOR_ENV = "ETHIXCTL_ALERT_FOR"


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
    def __init__(self, state_dir: Path, port: int):
        self.home = state_dir / "prometheus"
        self.log_path = state_dir / "logs" / "prometheus.log"
        self.port = port
        self.targets_path = self.home / "targets.json"
        self.process: procs.Process | None = None
        self._lock = threading.Lock()
        # revision -> (service, "127.0.0.1:PORT")
        self._targets: dict[str, tuple[str, str]] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        binary = find_prometheus()
        self.home.mkdir(parents=True, exist_ok=True)
        config = {
            "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
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
        config["rule_files"] = [str(self._write_rules())]
        write_atomic(self.home / "prometheus.yml", json.dumps(config, indent=2))
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

    def _write_rules(self) -> Path:
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
