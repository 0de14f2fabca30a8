"""Waiting on what revisions report: every instance of every serving revision, never a sleep-and-hope."""

from __future__ import annotations

import json
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import ClassVar
from urllib.parse import unquote_plus

import pytest

from ethixctl.adapters.cloudrun import CloudRun
from ethixctl.adapters.prometheus import Prometheus
from ethixctl.errors import EthixError
from ethixctl.secrets.observe import Report, serving_revisions, wait_until_reported
from tests.ethixctl.platform.controlplane.testruntime import local_control_plane
from tests.httpserver import serve


def test_lagging_needs_every_instance_and_absent_means_no_series() -> None:
    assert Report("5", {"a": ["5"], "b": ["5", "5"]}).lagging() == []
    assert Report("5", {"a": ["5"], "b": ["4", "5"], "c": []}).lagging() == ["b", "c"]
    assert Report(None, {"a": [], "b": ["4"]}).lagging() == ["b"]
    assert Report("5", {"a": ["4"], "b": []}).describe() == "a: 4, b: none"


def test_wait_follows_the_serving_set_and_times_out_naming_the_laggards() -> None:
    reports = iter(
        [
            Report("2", {"r1": ["1"]}),
            Report("2", {"r1": ["2"], "r2": ["1"]}),
            Report("2", {"r1": ["2"], "r2": ["2"]}),
        ]
    )
    slept: list[float] = []
    waited = wait_until_reported(
        lambda: ["r1"], lambda revs: next(reports), timeout=60, what="x", sleep=slept.append
    )
    assert waited.report.lagging() == [] and len(slept) == 2

    with pytest.raises(EthixError, match=r"within 0s \(r1: 1\)") as raised:
        wait_until_reported(
            lambda: ["r1"],
            lambda revs: Report("2", {"r1": ["1"]}),
            timeout=0,
            what="alias next",
            sleep=slept.append,
        )
    assert raised.value.hint is not None and "--resume" in raised.value.hint


class _ManagedPrometheus(BaseHTTPRequestHandler):
    """Like Managed Service for Prometheus: no targets API; ``reporting`` revisions refresh secrets."""

    reporting: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        if self.path.startswith("/api/v1/targets"):
            self.send_response(404)
            self.end_headers()
            return
        assert "ethix_secret_last_refresh_timestamp_seconds" in unquote_plus(self.path)
        result = [{"metric": {"revision": r}, "value": [time.time(), "1"]} for r in self.reporting]
        data = json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


def test_without_a_targets_api_a_tagged_revision_serves_when_it_reports_wire_level_fake_local_control_plane(
    tmp_path: Path,
) -> None:
    """Managed Prometheus has no targets API: a 0 % tagged revision counts as serving while its instances
    report refreshing their secrets, and not once they stop."""
    with local_control_plane(tmp_path / "cp") as (server, _):
        cloud_run = CloudRun("local", "local", endpoint=server.url)
        stable = cloud_run.create_service("backend", "envserver", {}).latest_ready_revision
        tagged = cloud_run.deploy_revision("backend", "envserver", {"N": "2"}, tag="canary-a").name
        gone = cloud_run.deploy_revision("backend", "envserver", {"N": "3"}, tag="canary-b").name
        handler = type("Managed", (_ManagedPrometheus,), {"reporting": [stable, tagged]})
        with serve(handler) as url, Prometheus(url) as prometheus:
            assert serving_revisions(cloud_run, prometheus, ["backend"]) == sorted([stable, tagged])
            assert gone not in serving_revisions(cloud_run, prometheus, ["backend"])
