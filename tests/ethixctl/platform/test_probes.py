"""The probes the local platform enforces: read from the Cloud Run YAML through the v2 types, then
applied by the real runtime (uvicorn revisions behind Caddy)."""

from __future__ import annotations

import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.cloud import run_v2

from ethixctl.platform import images, manifests, state
from ethixctl.platform.probes import Kind, Probe, Probes, Tracker
from ethixctl.platform.runtime import RevisionSpec, RevisionState
from ethixctl.platform.supervisor import LocalRuntime
from tests.ethixctl.platform.conftest import Parts, make_source
from tests.ethixctl.platform.test_runtime import wait_ready


def test_the_yaml_holds_the_runbook_thresholds() -> None:
    for service in ("backend", "ai-core"):
        probes = Probes.from_container(manifests.container(service))
        assert probes.readiness is not None and probes.readiness.path == "/health/readiness"
        assert probes.readiness.failure_threshold == 2, service
        assert probes.liveness is not None and probes.liveness.path == "/health/liveness"
        assert probes.liveness.failure_threshold == 3, service
        assert probes.startup.path == "/health/startup"
    ai_core = Probes.from_container(manifests.container("ai-core")).startup
    assert 60 <= ai_core.budget <= 120  # model loading


def test_unset_fields_take_cloud_run_defaults_and_tcp_probes_check_the_port() -> None:
    container = run_v2.Container(
        liveness_probe=run_v2.Probe(tcp_socket=run_v2.TCPSocketAction(port=8080)),
        readiness_probe=run_v2.Probe(http_get=run_v2.HTTPGetAction(path="/ready"), failure_threshold=2),
    )
    probes = Probes.from_container(container)
    assert probes.liveness == Probe(path=None, period=10.0, timeout=1.0, failure_threshold=3)
    assert probes.readiness == Probe(path="/ready", period=10.0, timeout=1.0, failure_threshold=2)
    # No startup probe in the template: /health/startup with the control plane's 120 s.
    assert probes.startup.path == "/health/startup" and probes.startup.budget == 120
    assert Probes.from_container(run_v2.Container()).readiness is None


def test_tracker_reports_crossing_the_threshold_once_and_recovering() -> None:
    tracker = Tracker(Probes(readiness=Probe("/r", period=1, failure_threshold=2)))
    tracker.started(now=0.0)
    assert tracker.take_due(0.0) == [(Kind.READINESS, tracker.probes.readiness)]
    assert tracker.take_due(5.0) == []  # still running: never two probes of a kind at once
    assert tracker.record(Kind.READINESS, "HTTP 503") is None
    assert [kind for kind, _ in tracker.take_due(5.0)] == [Kind.READINESS]
    assert tracker.record(Kind.READINESS, "HTTP 503") is True
    tracker.take_due(10.0)
    assert tracker.record(Kind.READINESS, "HTTP 503") is None  # already over: no second transition
    tracker.take_due(20.0)
    assert tracker.record(Kind.READINESS, None) is False
    tracker.take_due(30.0)
    assert tracker.record(Kind.READINESS, None) is None


FLAGGED_APP = """
from pathlib import Path

from fastapi import FastAPI, Response

from services.common import observability
from services.common.settings import ServiceSettings

FLAGS = Path(__file__).resolve().parents[2] / "flags"


def create_app() -> FastAPI:
    settings = ServiceSettings()
    app = FastAPI()
    observability.install(app, settings)

    def flagged(name: str, ok: str) -> Response:
        failing = (FLAGS / name).exists()
        return Response(status_code=503 if failing else 200, content=ok)

    @app.get("/health/startup")
    def startup() -> Response:
        return flagged("never-started", "started")

    @app.get("/health/readiness")
    def readiness() -> Response:
        return flagged("unready", "ready")

    @app.get("/health/liveness")
    def liveness() -> Response:
        return flagged("dead", "alive")

    @app.get("/")
    def who() -> dict[str, str]:
        return {"revision": settings.revision}

    return app
"""

FAST = Probes(
    startup=Probe("/health/startup", period=0.5, failure_threshold=60),
    readiness=Probe("/health/readiness", period=0.2, failure_threshold=2),
    liveness=Probe("/health/liveness", period=0.2, failure_threshold=3),
)


def _flagged_image(parts: Parts) -> tuple[str, Path]:
    source = make_source(parts.state_dir.parent / "src-flagged", "flagged")
    (source / "services" / "echo" / "app.py").write_text(textwrap.dedent(FLAGGED_APP))
    image = images.build("echo", parts.state_dir / "images", source)
    flags = image.path / "flags"  # the app's FLAGS: services/echo/app.py -> parents[2]
    flags.mkdir(exist_ok=True)
    return image.ref, flags


def _eventually(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.1)


def _start_flagged(parts: Parts) -> tuple[Path, Callable[[], dict[str, Any]]]:
    """A ready revision echo-1 with the FAST probes: its flag directory, and its runtime snapshot."""
    ref, flags = _flagged_image(parts)
    parts.runtime.start_revision(RevisionSpec("echo", "echo-1", "echo", ref, {}, FAST))
    wait_ready(parts, "echo-1")
    return flags, lambda: dict(parts.runtime.snapshot()["revisions"]["echo-1"])


@pytest.mark.e2e
def test_failing_readiness_takes_the_revision_out_of_the_router_until_it_passes(parts: Parts) -> None:
    flags, revision = _start_flagged(parts)
    url = parts.runtime.service_url("echo")
    parts.runtime.apply_traffic("echo", {"echo-1": 100}, {})
    assert httpx.get(url, timeout=5).json() == {"revision": "echo-1"}

    (flags / "unready").touch()
    _eventually(lambda: revision()["serving"] is False)
    assert revision()["message"] == "not serving: readiness probe failed 2 times in a row (HTTP 503)"
    assert httpx.get(url, timeout=5).status_code == 503  # the router has nobody to send it to
    assert revision()["restarts"] == 0  # readiness never restarts anything

    (flags / "unready").unlink()
    _eventually(lambda: revision()["serving"] is True)
    assert httpx.get(url, timeout=5).json() == {"revision": "echo-1"}


@pytest.mark.e2e
def test_failing_liveness_restarts_the_process(parts: Parts) -> None:
    flags, revision = _start_flagged(parts)
    first_pid = parts.runtime.pid_of("echo-1")

    (flags / "dead").touch()
    # Shown while it waits for its restart (backoff 1 s).
    expected = "restarted: liveness probe failed 3 times in a row (HTTP 503); restarting in 1s"
    _eventually(lambda: revision()["message"] == expected)
    (flags / "dead").unlink()
    _eventually(lambda: revision()["restarts"] == 1)
    wait_ready(parts, "echo-1")
    assert parts.runtime.pid_of("echo-1") not in (None, first_pid)


@pytest.mark.e2e
def test_a_startup_probe_over_its_budget_fails_the_revision(parts: Parts) -> None:
    ref, flags = _flagged_image(parts)
    (flags / "never-started").touch()
    budget = Probes(startup=Probe("/health/startup", period=0.5, failure_threshold=4))
    parts.runtime.start_revision(RevisionSpec("echo", "echo-1", "echo", ref, {}, budget))
    status = parts.runtime.revision_status
    _eventually(lambda: status("echo-1").state.value == "FAILED", timeout=60)
    # With the probe's last answer, which names the failing checks when the body has any.
    assert status("echo-1").message == "startup probe did not pass within 2s (last answer: HTTP 503)"


@pytest.mark.e2e
def test_an_adopted_revision_keeps_its_probes_and_stays_out_while_its_readiness_fails(parts: Parts) -> None:
    """The control plane restarted (a new runtime on the same state dir) while echo-1's readiness failed:
    the adopted process is probed with its template's probes and gets no traffic until one passes."""
    flags, _ = _start_flagged(parts)
    url = parts.runtime.service_url("echo")
    parts.runtime.apply_traffic("echo", {"echo-1": 100}, {})
    (flags / "unready").touch()
    _eventually(lambda: parts.runtime.snapshot()["revisions"]["echo-1"]["serving"] is False)
    pid = parts.runtime.pid_of("echo-1")
    state.write_json(parts.state_dir / state.RUNTIME_FILE, parts.runtime.snapshot())
    parts.runtime.shutdown(stop_revisions=False)  # the control plane going away leaves it serving
    adopting = LocalRuntime(parts.state_dir, parts.router, None)

    def revision() -> dict[str, Any]:
        return dict(adopting.snapshot()["revisions"]["echo-1"])

    try:
        assert revision()["probes"] == FAST.to_dict() and revision()["pid"] == pid
        _eventually(lambda: adopting.revision_status("echo-1").state is RevisionState.READY)
        adopting.apply_traffic("echo", {"echo-1": 100}, {})  # what the control plane's restore does
        assert revision()["serving"] is False
        assert httpx.get(url, timeout=5).status_code == 503
        # Only its own readiness probe (FAST: every 0.2 s) can bring it back: the default has none.
        (flags / "unready").unlink()
        _eventually(lambda: revision()["serving"] is True)
        assert httpx.get(url, timeout=5).json() == {"revision": "echo-1"}
        assert adopting.pid_of("echo-1") == pid  # the same process throughout
    finally:
        adopting.shutdown()


@pytest.mark.e2e
def test_a_revision_scaled_to_zero_is_not_probed_and_is_probed_again_after_its_cold_start(
    parts: Parts,
) -> None:
    flags, revision = _start_flagged(parts)
    parts.runtime.start_revision(RevisionSpec("echo", "echo-2", "echo", parts.build_echo("v2"), {}))
    wait_ready(parts, "echo-2")
    parts.runtime.apply_traffic("echo", {"echo-2": 100}, {})
    assert revision()["state"] == "SCALED_TO_ZERO" and revision()["pid"] is None
    (flags / "unready").touch()
    liveness = FAST.liveness
    assert liveness is not None
    # Long enough for the liveness probe to cross its threshold twice, had it kept probing a port with
    # no process behind it.
    time.sleep(2 * liveness.period * liveness.failure_threshold + 0.5)
    assert revision()["message"] == "scaled to zero: no traffic and no tag"
    tag = parts.runtime.apply_traffic("echo", {"echo-2": 100}, {"canary": "echo-1"})["canary"]
    assert httpx.get(tag, timeout=60).json() == {"revision": "echo-1"}  # held until its startup probe passed
    _eventually(lambda: revision()["serving"] is False)  # from then on probed again, with its own probes
    assert revision()["message"] == "not serving: readiness probe failed 2 times in a row (HTTP 503)"
