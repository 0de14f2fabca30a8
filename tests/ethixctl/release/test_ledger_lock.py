"""The SQLite ledger and the cross-process release lock (real processes, real files)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import ClassVar

import pytest

from ethixctl.release import playbook
from ethixctl.release.ledger import Ledger
from ethixctl.release.lock import LockHeld, ReleaseLock, StaleLock
from ethixctl.release.notify import Event, Notifier
from tests.httpserver import serve


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with Ledger(tmp_path) as book:
        yield book


def test_release_lifecycle_and_durable_in_progress_state(ledger: Ledger, tmp_path: Path) -> None:
    release = ledger.create_release("backend", "local", "local/backend:2", "backend-00001-aaa", {"hold": 10})
    assert release.status == "in_progress" and release.tag == f"canary-{release.id}"
    ledger.update(release.id, canary_revision="backend-00002-bbb", phase="canary", step=1)
    change = ledger.intend_traffic(
        "backend", "local", {"backend-00002-bbb": 50, "backend-00001-aaa": 50}, "step 2", release.id
    )
    # A second connection (another ethixctl process) sees the intent before it is confirmed.
    with Ledger(tmp_path) as other:
        pending = other.in_progress("backend", "local")
        assert pending is not None and pending.step == 1 and pending.options == {"hold": 10}
        assert other.traffic("backend", "local")[-1].state == "intended"
    ledger.confirm_traffic(change)
    assert ledger.traffic("backend", "local")[-1].state == "applied"
    assert ledger.finish_if_in_progress(release.id, "promoted", "ok")
    assert not ledger.finish_if_in_progress(release.id, "rolled_back", "too late")
    final = ledger.release(release.id)
    assert final.status == "promoted" and final.finished_at is not None
    assert ledger.in_progress("backend", "local") is None


def test_previous_good_revision_comes_from_the_ledger(ledger: Ledger) -> None:
    first = ledger.create_release("backend", "local", "img:2", "rev-1", {})
    ledger.update(first.id, canary_revision="rev-2")
    ledger.finish_if_in_progress(first.id, "promoted", "ok")
    second = ledger.create_release("backend", "local", "img:3", "rev-2", {})
    ledger.update(second.id, canary_revision="rev-3")
    ledger.finish_if_in_progress(second.id, "rolled_back", "errors")
    third = ledger.create_release("backend", "local", "img:4", "rev-2", {})
    ledger.update(third.id, canary_revision="rev-4")
    ledger.finish_if_in_progress(third.id, "promoted", "ok")
    assert ledger.good_revisions("backend", "local") == ["rev-1", "rev-2", "rev-2", "rev-2", "rev-4"]
    assert ledger.previous_good("backend", "local", {"rev-4": 100}) == "rev-2"
    assert ledger.previous_good("backend", "local", {"rev-2": 100}) == "rev-4"
    # A frozen split: back to the last good revision even though it still serves part of the traffic.
    assert ledger.previous_good("backend", "local", {"rev-5": 10, "rev-4": 90}) == "rev-4"
    # A canary that was rolled back is never "good".
    assert "rev-3" not in ledger.good_revisions("backend", "local")
    assert ledger.previous_good("ai-core", "local", {}) is None


def test_summary_rollback_rate_and_frequency(ledger: Ledger) -> None:
    now = time.time()
    for status in ("promoted", "rolled_back", "promoted", "promoted"):
        release = ledger.create_release("backend", "local", "img", "rev-1", {})
        ledger.finish_if_in_progress(release.id, status, "")
    ledger.record_rollback(
        "backend", "local", {"rev-5": 100}, "rev-4", "manual", automatic=False, seconds=0.4
    )
    ledger.create_release("backend", "local", "img", "rev-1", {})  # still running: not in the rate
    summary = ledger.summary("local", "backend", now - 14 * 86_400, now + 1)
    assert summary["releases"] == 5
    assert summary["by_status"] == {"promoted": 3, "rolled_back": 1, "in_progress": 1}
    assert summary["rollback_rate"] == pytest.approx(2 / 4)
    assert summary["releases_per_week"] == pytest.approx(2.5, rel=0.01)
    assert ledger.summary("staging", None, now - 86_400, now)["rollback_rate"] is None


LOCK_HOLDER = """
import sys, time
from pathlib import Path
from typing import ClassVar
from ethixctl.release.lock import ReleaseLock
lock = ReleaseLock(Path(sys.argv[1]), "local", "backend")
lock.acquire("abc123")
print("locked", flush=True)
time.sleep(60)
"""


def _holder(state_dir: Path) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, str(state_dir)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None and process.stdout.readline().strip() == "locked"
    return process


def test_second_release_is_refused_while_the_first_runs(tmp_path: Path) -> None:
    holder = _holder(tmp_path)
    try:
        with pytest.raises(
            LockHeld, match=r"release of backend in local is already running \(pid \d+"
        ) as caught:
            ReleaseLock(tmp_path, "local", "backend").acquire()
        assert "release abc123" in caught.value.message
        # Taking over is only for dead owners, never for a live one.
        with pytest.raises(LockHeld):
            ReleaseLock(tmp_path, "local", "backend").acquire(take_over_stale=True)
        ReleaseLock(tmp_path, "local", "ai-core").acquire()  # other services are independent
    finally:
        holder.kill()
        holder.wait()


def test_lock_of_a_killed_process_is_reported_stale_and_taken_over_only_on_request(tmp_path: Path) -> None:
    holder = _holder(tmp_path)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    lock = ReleaseLock(tmp_path, "local", "backend")
    with pytest.raises(StaleLock, match=f"pid {holder.pid}.*no longer running") as caught:
        lock.acquire()
    assert "--resume" in (caught.value.hint or "")
    assert lock.path.exists()  # never silently broken
    lock.acquire(take_over_stale=True)
    owner = lock.owner()
    assert owner is not None and owner.pid == os.getpid()
    lock.release()
    assert not lock.path.exists()


def test_recycled_pid_is_not_mistaken_for_the_owner(tmp_path: Path) -> None:
    lock = ReleaseLock(tmp_path, "local", "backend")
    lock.path.parent.mkdir(parents=True)
    # Our own pid, but a different process start time: the owner died and the pid was reused.
    stale = {"pid": os.getpid(), "host": os.uname().nodename, "started": "1", "acquired_at": time.time()}
    lock.path.write_text(json.dumps(stale))
    with pytest.raises(StaleLock):
        lock.acquire()


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
        release = ledger.create_release("backend", "local", "img", "rev-1", {})
        notify.release_id = release.id
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
