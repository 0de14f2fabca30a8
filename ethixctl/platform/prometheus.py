"""Prometheus for the local platform: scrapes every READY revision, found through a file_sd JSON file.

The config is written as JSON (valid YAML); the targets file is rewritten atomically whenever
revisions come and go, and Prometheus picks it up without a restart. The daemon starts (and restarts)
the process, the control plane writes the targets: the file is what they share, so a restarted
Prometheus comes back with its targets. The TSDB lives in the state dir, so a restart keeps its data.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path

from ethixctl import procs
from ethixctl.errors import PlatformUnavailable
from ethixctl.files import write_atomic

INSTALL_HINT = "install it: apt-get install -y --no-install-recommends prometheus"
SCRAPE_INTERVAL = "1s"


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
