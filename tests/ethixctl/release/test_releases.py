"""Release records on the shared ledger (previous good revision, the review's summary) and release
notifications (console, ledger, Slack through a wire-level fake)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import ClassVar

import pytest

from ethixctl.ops.ledger import Ledger
from ethixctl.release import playbook, releases
from ethixctl.release.notify import Event, Notifier
from tests.httpserver import serve


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with Ledger(tmp_path) as book:
        yield book


def _release(ledger: Ledger, stable: str, canary: str | None, status: str | None) -> None:
    release = releases.create(ledger, "backend", "local", "img", stable, {})
    if canary:
        ledger.update(release.id, details={"canary_revision": canary})
    if status:
        ledger.finish_if_in_progress(release.id, status, "")


def test_release_view_names_its_details(ledger: Ledger) -> None:
    release = releases.create(
        ledger, "backend", "local", "local/backend:2", "backend-00001-aaa", {"hold": 10}
    )
    assert release.tag == f"canary-{release.short_id.lower()}"
    assert (release.service, release.image, release.stable_revision) == (
        "backend",
        "local/backend:2",
        "backend-00001-aaa",
    )
    found = releases.in_progress(ledger, "backend", "local")
    assert found is not None and found.id == release.id and found.options == {"hold": 10}


def test_previous_good_revision_comes_from_the_ledger(ledger: Ledger) -> None:
    _release(ledger, "rev-1", "rev-2", "promoted")
    _release(ledger, "rev-2", "rev-3", "rolled_back")
    _release(ledger, "rev-2", "rev-4", "promoted")
    assert releases.good_revisions(ledger, "backend", "local") == [
        "rev-1",
        "rev-2",
        "rev-2",
        "rev-2",
        "rev-4",
    ]
    assert releases.previous_good(ledger, "backend", "local", {"rev-4": 100}) == "rev-2"
    assert releases.previous_good(ledger, "backend", "local", {"rev-2": 100}) == "rev-4"
    # A frozen split: back to the last good revision even though it still serves part of the traffic.
    assert releases.previous_good(ledger, "backend", "local", {"rev-5": 10, "rev-4": 90}) == "rev-4"
    # A canary that was rolled back is never "good".
    assert "rev-3" not in releases.good_revisions(ledger, "backend", "local")
    assert releases.previous_good(ledger, "ai-core", "local", {}) is None


def test_summary_rollback_rate_and_frequency(ledger: Ledger) -> None:
    now = time.time()
    for status in ("promoted", "rolled_back", "promoted", "promoted"):
        _release(ledger, "rev-1", None, status)
    ledger.record_rollback(
        "backend", "local", {"rev-5": 100}, "rev-4", "manual", automatic=False, seconds=0.4
    )
    _release(ledger, "rev-1", None, None)  # still running: not in the rate
    summary = releases.summary(ledger, "local", "backend", now - 14 * 86_400, now + 1)
    assert summary["releases"] == 5
    assert summary["by_status"] == {"promoted": 3, "rolled_back": 1, "in_progress": 1}
    assert summary["rollback_rate"] == pytest.approx(2 / 4)
    assert summary["releases_per_week"] == pytest.approx(2.5, rel=0.01)
    assert releases.summary(ledger, "staging", None, now - 86_400, now)["rollback_rate"] is None


class _SlackReceiver(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, str]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


def test_notifications_reach_console_ledger_and_slack_wire_level_fake(ledger: Ledger) -> None:
    """Slack's incoming webhook is replaced by a wire-level fake: a real HTTP server receiving the POSTs."""
    seen: list[Event] = []
    with serve(_SlackReceiver) as url:
        webhook = f"{url}/services/T000/B000/secret-token"
        notify = Notifier(ledger, "backend", "local", seen.append, playbook.load().notifications, webhook)
        release = releases.create(ledger, "backend", "local", "img", "rev-1", {})
        notify.operation = release
        notify("step", "step 1/3: 10% to the canary")
        notify("rolled_back", "rolled back to rev-1")
    assert [e.kind for e in seen] == ["step", "rolled_back"]
    assert [e["kind"] for e in ledger.events(release.id)] == ["step", "rolled_back"]
    # Only the playbook's Slack events are sent.
    assert len(_SlackReceiver.received) == 1
    assert "*backend* (local): rolled back to rev-1" in _SlackReceiver.received[0]["text"]


def test_slack_failure_is_a_warning_without_the_secret_url(ledger: Ledger) -> None:
    seen: list[Event] = []
    webhook = "http://127.0.0.1:9/services/T000/B000/secret-token"
    notify = Notifier(ledger, "backend", "local", seen.append, playbook.load().notifications, webhook)
    notify("promoted", "promoted")
    assert seen[-1].kind == "warning"
    assert "Slack notification failed" in seen[-1].message
    assert "secret-token" not in json.dumps([e.to_dict() for e in seen])
