"""`ethixctl release / rollback / history` end to end on the REAL local platform (`ethixctl up`: the local
control plane, uvicorn revisions of services.backend, Caddy, Prometheus), timings compressed.

The Cloud Run adapter talks to the local control plane; nothing is faked. The tests share one platform
and run in file order (rollback and history look at what the earlier releases recorded).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ethixctl import procs
from ethixctl.cli import main
from ethixctl.exitcodes import ExitCode
from ethixctl.ops.ledger import Ledger
from ethixctl.ops.lock import OperationLock
from ethixctl.release import releases
from tests.conftest import running_platform

pytestmark = pytest.mark.e2e

FAST = ["--hold", "3", "--interval", "1", "--yes", "--json", "--no-smoke"]
LOAD = ["--load", "40"]


@dataclass
class Platform:
    state_dir: Path
    info: dict[str, Any]
    last_err: str = ""

    def args(self) -> list[str]:
        return ["--state-dir", str(self.state_dir)]

    def cloud_run(self) -> Any:
        from ethixctl.adapters.cloudrun import CloudRun

        return CloudRun("local", "local", endpoint=self.info["control_plane_url"])

    def image(self) -> str:
        return str(self.cloud_run().get_service("backend").image)

    def serving(self) -> dict[str, int]:
        return dict(self.cloud_run().serving_split("backend"))

    def ledger(self) -> Ledger:
        return Ledger(self.state_dir)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    state_dir = tmp_path_factory.mktemp("platform")
    with running_platform(state_dir) as info:
        yield Platform(state_dir, info)


def run(
    platform: Platform, capsys: pytest.CaptureFixture[str], *argv: str
) -> tuple[int, list[dict[str, Any]]]:
    capsys.readouterr()
    code = main([*argv, *platform.args()])
    captured = capsys.readouterr()
    platform.last_err = captured.err
    lines = [line for line in captured.out.splitlines() if line.startswith("{")]
    return code, [json.loads(line) for line in lines]


def release(
    platform: Platform, capsys: pytest.CaptureFixture[str], *extra: str
) -> tuple[int, list[dict[str, Any]]]:
    return run(platform, capsys, "release", "backend", "--image", platform.image(), *FAST, *extra)


def gate_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["event"] == "gate"]


def spawn_release(platform: Platform, *extra: str) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "ethixctl", "release", "backend", "--image", platform.image(), *extra]
    return subprocess.Popen(
        [*argv, *platform.args()], cwd=procs.REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        text=True, start_new_session=True,
    )  # fmt: skip


def wait_for_event(process: subprocess.Popen[str], kind: str, timeout: float = 90) -> dict[str, Any]:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            pytest.fail(f"release exited ({process.wait()}) before a {kind!r} event")
        event = json.loads(line)
        if event["event"] == kind:
            return event
    pytest.fail(f"no {kind!r} event within {timeout}s")


def test_dry_run_prints_the_plan_and_changes_nothing(
    platform: Platform, capsys: pytest.CaptureFixture[str]
) -> None:
    before = platform.serving()
    code, events = release(platform, capsys, "--dry-run", *LOAD)
    assert code == ExitCode.OK
    steps = events[0]["plan"]["steps"]
    assert [s["weight"] for s in steps] == [10, 50, 100]
    assert steps[0]["expected_requests"] >= 20 and events[0]["plan"]["rate"] >= 40
    # A fresh platform has served no API request yet (probes are not counted): too little data to judge.
    assert events[0]["gates_now"]["outcome"] == "inconclusive"
    assert platform.serving() == before
    with platform.ledger() as ledger:
        assert ledger.operations("local") == []


def test_healthy_release_promotes_to_100(platform: Platform, capsys: pytest.CaptureFixture[str]) -> None:
    stable = next(iter(platform.serving()))
    code, events = run(platform, capsys, "release", "backend", "--image", "build", *FAST, *LOAD)
    result = events[-1]
    assert code == ExitCode.OK, result
    assert "built local/backend@sha256:" in platform.last_err
    assert result["status"] == "promoted"
    assert platform.serving() == {result["canary"]: 100}
    assert result["stable"] == stable
    weights = [e["weight"] for e in events if e["event"] == "step"]
    assert weights == [10, 50, 100]
    passes = [e for e in gate_events(events) if e["verdict"]["outcome"] == "pass"]
    assert passes and all(e["verdict"]["gates"][0]["value"] is not None for e in passes)


def test_rollback_goes_to_the_previous_good_revision_fast(
    platform: Platform, capsys: pytest.CaptureFixture[str]
) -> None:
    with platform.ledger() as ledger:
        expected = releases.previous_good(ledger, "backend", "local", platform.serving())
    assert expected is not None
    code, events = run(platform, capsys, "rollback", "backend", "--json")
    assert code == ExitCode.OK
    result = events[-1]
    assert result["to_revision"] == expected
    assert platform.serving() == {expected: 100}
    # Clients were seen reaching only the old revision (how fast: bench/bench_release.py, goal ≤ 2 s;
    # it includes the old revision's cold start, which a busy machine stretches past any fixed bound).
    assert result["only_target_seconds"] is not None
    code, _ = run(platform, capsys, "rollback", "backend", "--to", "backend-99999-zzz")
    assert code == ExitCode.USAGE
    assert "unknown revision 'backend-99999-zzz'" in platform.last_err


def test_error_fault_is_rolled_back_at_the_first_step_and_stable_serves_throughout(
    platform: Platform, capsys: pytest.CaptureFixture[str]
) -> None:
    stable = next(iter(platform.serving()))
    code, events = release(platform, capsys, *LOAD, "--set-env", "ETHIX_FAULT_ERROR_RATE=0.3")
    result = events[-1]
    assert code == ExitCode.ROLLED_BACK, result
    assert platform.serving() == {stable: 100}
    with platform.ledger() as ledger:
        splits = [
            t.split for t in ledger.traffic("local", "backend") if t.operation_id == result["release_id"]
        ]
        assert all(t.state == "applied" for t in ledger.traffic("local", "backend"))
    canary = result["canary"]
    assert splits == [{canary: 10, stable: 90}, {stable: 100}]
    failed = [e for e in gate_events(events) if e["verdict"]["outcome"] == "fail"]
    assert failed and failed[0]["verdict"]["gates"][0]["name"] == "error_rate"
    assert failed[0]["verdict"]["gates"][0]["value"] > 0.005
    # The canary stays reachable on its tag for inspection.
    with platform.ledger() as ledger:
        tag = releases.get(ledger, result["release_id"]).tag
    assert tag == f"canary-{result['release_id'][:8].lower()}"
    assert platform.cloud_run().tag_url("backend", tag)


def test_latency_regression_is_rolled_back_by_p95_without_waiting_for_the_baseline(
    platform: Platform, capsys: pytest.CaptureFixture[str]
) -> None:
    """The P95 gate fails on enough requests, and the release rolls back on it without waiting for the
    baseline comparison: that may still be in the canary's warm-up (NoData) or already see the slow
    canary (High), depending on how soon the requests add up. (The comparison catching a slow canary
    on its own: tests/ethixctl/release/test_analysis.py.)"""
    stable = next(iter(platform.serving()))
    code, events = release(platform, capsys, *LOAD, "--set-env", "ETHIX_FAULT_LATENCY_MS=2500")
    assert code == ExitCode.ROLLED_BACK, events[-1]
    assert platform.serving() == {stable: 100}
    deciding = [e["verdict"] for e in gate_events(events)][-1]
    assert deciding["outcome"] == "fail", deciding
    [p95] = [g for g in deciding["gates"] if g["name"] == "p95_latency"]
    assert p95["passed"] is False and 2.0 <= p95["value"] < 5.0, p95
    baseline = [m for m in deciding["baseline"]["metrics"] if m["name"] == "mean_latency"]
    assert [m["classification"] for m in baseline] in (["NoData"], ["High"]), baseline


def test_a_release_that_cannot_be_judged_is_refused_up_front(
    platform: Platform, capsys: pytest.CaptureFixture[str]
) -> None:
    """Regression: with too little traffic a release started, stayed inconclusive and failed safe every
    time; now it does not start, in --dry-run too, and says what rate or hold it needs."""
    time.sleep(16)  # let the previous test's load leave the analysis window: the service is idle
    stable = next(iter(platform.serving()))
    revisions = len(platform.cloud_run().list_revisions("backend"))
    with platform.ledger() as ledger:
        before = len(ledger.operations("local"))
    for extra in ((), ("--dry-run",), ("--load", "2")):
        code, _ = release(platform, capsys, *extra)
        assert code == ExitCode.USAGE, (extra, platform.last_err)
        assert "backend cannot be judged at" in platform.last_err and "--load" in platform.last_err
    assert platform.serving() == {stable: 100}
    assert len(platform.cloud_run().list_revisions("backend")) == revisions
    with platform.ledger() as ledger:
        assert len(ledger.operations("local")) == before


def test_an_image_that_does_not_exist_is_refused_before_anything_is_created(
    platform: Platform, capsys: pytest.CaptureFixture[str]
) -> None:
    """Regression: `--image x` created a failed revision and a failed release before saying so."""
    revisions = len(platform.cloud_run().list_revisions("backend"))
    with platform.ledger() as ledger:
        before = len(ledger.operations("local"))
    missing = "local/backend@sha256:" + "0" * 64
    for image, message in (("x", "is not a local image reference"), (missing, "not found")):
        code, _ = run(platform, capsys, "release", "backend", "--image", image, *FAST, *LOAD)
        assert code == ExitCode.USAGE and message in platform.last_err
    assert len(platform.cloud_run().list_revisions("backend")) == revisions
    with platform.ledger() as ledger:
        assert len(ledger.operations("local")) == before


def test_second_release_refused_then_sigkill_and_resume_is_consistent(
    platform: Platform, capsys: pytest.CaptureFixture[str]
) -> None:
    first = spawn_release(
        platform, "--hold", "60", "--interval", "1", "--load", "20", "--yes", "--json", "--no-smoke"
    )
    try:
        wait_for_event(first, "step")
        code, _ = release(platform, capsys, *LOAD)
        assert code == ExitCode.USAGE
        assert "already running" in platform.last_err
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
    with platform.ledger() as ledger:
        pending = releases.in_progress(ledger, "backend", "local")
        assert pending is not None and pending.canary_revision
    # Earlier rolled-back releases set fault injection; a new release starts from the stable's env.
    canary_env = platform.cloud_run().get_revision("backend", pending.canary_revision).env
    assert not any(name.startswith("ETHIX_FAULT_") for name in canary_env), canary_env
    # The kernel freed the dead owner's lock, but the ledger still records its release: a new one is
    # refused...
    code, _ = release(platform, capsys, *LOAD)
    assert code == ExitCode.USAGE
    assert f"release {pending.short_id} of backend" in platform.last_err and "--resume" in platform.last_err
    assert platform.serving() == {pending.canary_revision: 10, pending.stable_revision: 90}
    # ...and --resume finishes the recorded release.
    code, events = run(platform, capsys, "release", "backend", "--resume", "--hold", "3", "--interval", "1",
                       *LOAD, "--yes", "--json")  # fmt: skip
    result = events[-1]
    assert result["release_id"] == pending.id
    # The canary is healthy (no fault injected) and gets the same load as the healthy release: promoted.
    assert code == ExitCode.OK, result
    expected = {pending.canary_revision: 100}
    assert platform.serving() == expected
    with platform.ledger() as ledger:
        last = ledger.traffic("local", "backend")[-1]
        assert (last.split, last.state) == (expected, "applied")
        assert releases.in_progress(ledger, "backend", "local") is None


def test_prometheus_stopped_mid_analysis_fails_safe(platform: Platform) -> None:
    prometheus_pid = json.loads((platform.state_dir / "platform.json").read_text())["pids"]["prometheus"]
    stable = next(iter(platform.serving()))
    process = spawn_release(
        platform, "--hold", "30", "--interval", "1", "--load", "40", "--yes", "--json", "--no-smoke"
    )
    try:
        wait_for_event(process, "gate")
        os.kill(prometheus_pid, signal.SIGSTOP)  # stopped: connections hang until the client times out
        code = process.wait(timeout=120)
    finally:
        os.kill(prometheus_pid, signal.SIGCONT)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert code == ExitCode.FAILED
    assert platform.serving() == {stable: 100}
    with platform.ledger() as ledger:
        release_row = releases.listed(ledger, "local", "backend")[-1]
        assert release_row.status == "rolled_back"
        assert "consecutive query errors" in release_row.reason


def test_revision_that_never_becomes_ready_fails_the_release_and_cannot_be_rolled_back_to(
    platform: Platform, capsys: pytest.CaptureFixture[str]
) -> None:
    stable = next(iter(platform.serving()))
    # Production settings refuse fault injection: the revision exits at start-up, every time.
    code, events = release(
        platform,
        capsys,
        *LOAD,
        "--set-env",
        "ETHIX_ENV=production",
        "--set-env",
        "ETHIX_FAULT_ERROR_RATE=0.5",
    )
    assert code == ExitCode.FAILED
    assert events[-1]["status"] == "failed" and "not ready" in events[-1]["reason"]
    assert platform.serving() == {stable: 100}
    broken = max(r.name for r in platform.cloud_run().list_revisions("backend"))
    code, _ = run(platform, capsys, "rollback", "backend", "--to", broken)
    assert code == ExitCode.USAGE
    assert f"refusing to roll back to {broken}: it never became ready" in platform.last_err
    assert platform.serving() == {stable: 100}


def test_sigterm_keeps_state_and_a_manual_rollback_ends_a_running_release(
    platform: Platform, capsys: pytest.CaptureFixture[str]
) -> None:
    stable = next(iter(platform.serving()))
    slow = ("--hold", "60", "--interval", "1", "--load", "20", "--yes", "--json", "--no-smoke")
    first = spawn_release(platform, *slow)
    wait_for_event(first, "step")
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=30) == ExitCode.INTERRUPTED
    with platform.ledger() as ledger:
        interrupted = releases.in_progress(ledger, "backend", "local")
        assert interrupted is not None
    with OperationLock(platform.state_dir, "release", "local", "backend"):
        pass  # released on the way out
    # `status` shows the interrupted release, so nobody mistakes its split for a settled one.
    code, shown = run(platform, capsys, "status", "backend", "--json")
    assert code == ExitCode.OK
    assert shown[-1]["services"][0]["release_in_progress"]["id"] == interrupted.id
    # The interrupted release blocks new ones until it is resumed or ended.
    code, _ = release(platform, capsys, *LOAD)
    assert code == ExitCode.USAGE and f"release {interrupted.short_id} of backend" in platform.last_err
    # A rollback can be previewed: it names the release it would end and changes nothing.
    code, shown = run(platform, capsys, "rollback", "backend", "--to", stable, "--dry-run", "--json")
    assert code == ExitCode.OK and shown[-1]["dry_run"] and shown[-1]["ends_release"] == interrupted.id
    with platform.ledger() as ledger:
        assert releases.in_progress(ledger, "backend", "local") is not None
    code, _ = run(platform, capsys, "rollback", "backend", "--to", stable, "--yes")
    assert code == ExitCode.OK

    second = spawn_release(platform, *slow)
    try:
        wait_for_event(second, "gate")
        code, events = run(platform, capsys, "rollback", "backend", "--to", stable, "--json")
        assert code == ExitCode.OK and events[-1]["ended_release"]
        # The running release sees it was ended and stops without touching traffic again.
        assert second.wait(timeout=30) == ExitCode.ROLLED_BACK
    finally:
        if second.poll() is None:
            os.killpg(second.pid, signal.SIGKILL)
    assert platform.serving() == {stable: 100}
    with platform.ledger() as ledger:
        assert releases.get(ledger, events[-1]["ended_release"]).status == "aborted"
        assert releases.in_progress(ledger, "backend", "local") is None


def test_on_failure_freeze_holds_the_split(platform: Platform, capsys: pytest.CaptureFixture[str]) -> None:
    stable = next(iter(platform.serving()))
    code, events = release(
        platform, capsys, *LOAD, "--set-env", "ETHIX_FAULT_ERROR_RATE=0.3", "--on-failure", "freeze"
    )
    result = events[-1]
    assert code == ExitCode.HELD, result
    assert result["status"] == "frozen"
    assert platform.serving() == {result["canary"]: 10, stable: 90}
    code, _ = run(platform, capsys, "rollback", "backend")
    assert code == ExitCode.OK
    assert platform.serving() == {stable: 100}


def test_skip_canary_goes_straight_to_100_loudly_and_is_recorded(
    platform: Platform, capsys: pytest.CaptureFixture[str]
) -> None:
    code, events = release(platform, capsys, "--skip-canary")
    result = events[-1]
    assert code == ExitCode.OK, result
    assert platform.serving() == {result["canary"]: 100}
    assert "--skip-canary" in platform.last_err
    assert not gate_events(events)
    with platform.ledger() as ledger:
        assert releases.get(ledger, result["release_id"]).options["skip_canary"] is True
    assert "canary skipped" in result["reason"]


def test_history_reports_the_ledger(platform: Platform, capsys: pytest.CaptureFixture[str]) -> None:
    code, events = run(platform, capsys, "history", "backend", "--json")
    assert code == ExitCode.OK
    data = events[-1]
    statuses = [r["status"] for r in data["releases"]]
    assert "promoted" in statuses and {"rolled_back", "frozen"} & set(statuses)
    assert data["summary"]["releases"] == len(statuses)
    assert 0 < data["summary"]["rollback_rate"] <= 1
    assert any(not r["automatic"] for r in data["rollbacks"])
    assert data["traffic"] and all(t["state"] == "applied" for t in data["traffic"])
