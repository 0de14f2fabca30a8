"""The platform heals itself and scales to zero (issue #14 §1–3), on a real running platform.

One platform for the module (real daemon, both Caddy processes, Prometheus, the control plane,
uvicorn revisions of backend and ai_core), started with a 3 s idle timeout.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ethixctl.adapters.cloudrun import CloudRun
from ethixctl.cli import main
from ethixctl.platform import state
from tests.ethixctl.platform.chaos import PARTS, Prober, kill_and_recover

pytestmark = pytest.mark.e2e
UP_ARGS = ("--idle-timeout", "3")


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    state_dir = tmp_path_factory.mktemp("resilience") / "state"
    try:
        assert main(["up", "--state-dir", str(state_dir), "--free-ports", *UP_ARGS, "--json"]) == 0
        yield state_dir
    finally:
        main(["down", "--state-dir", str(state_dir), "--json"])


def cloud_run(state_dir: Path) -> CloudRun:
    info = state.read_json(state_dir / state.PLATFORM_FILE) or {}
    return CloudRun("local", "local", info["control_plane_url"])


def revisions(state_dir: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, dict[str, object]]:
    assert main(["status", "backend", "--state-dir", str(state_dir), "--json"]) == 0
    (service,) = json.loads(capsys.readouterr().out)["services"]
    return {rev["name"]: rev for rev in service["revisions"]}


def wait_for(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"not {what} within {timeout:.0f}s"
        time.sleep(0.2)


def test_scale_to_zero_cold_starts_on_request_and_a_rollback_starts_its_target(
    platform: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = cloud_run(platform)
    backend = run.get_service("backend")
    stable = backend.latest_ready_revision
    assert stable is not None
    canary = run.deploy_revision("backend", backend.image, {"ETHIX_CANARY": "1"}, tag="canary", timeout=150)
    tag_url = run.tag_url("backend", "canary")
    assert revisions(platform, capsys)[canary.name]["state"] == "READY"

    # Tagged, at 0%, no request for the idle timeout: scaled to zero (the stable one is not).
    wait_for(
        lambda: revisions(platform, capsys)[canary.name]["state"] == "SCALED_TO_ZERO", 30, "scaled to zero"
    )
    assert revisions(platform, capsys)[stable]["state"] == "READY"
    # The first request to its tag URL is held while it starts, and answered by it.
    answer = httpx.get(tag_url + "/health/liveness", timeout=150)
    assert answer.status_code == 200 and answer.headers["X-Ethix-Revision"] == canary.name
    wait_for(lambda: revisions(platform, capsys)[canary.name]["cold_starts"] == 1, 10, "cold start recorded")
    cold_start = revisions(platform, capsys)[canary.name]["last_cold_start_seconds"]
    assert isinstance(cold_start, float) and 0 < cold_start < 150

    # Promoted: the old stable has 0% and no tag, so it is stopped at once.
    run.set_traffic("backend", {canary.name: 100})
    wait_for(
        lambda: revisions(platform, capsys)[stable]["state"] == "SCALED_TO_ZERO", 15, "stable scaled down"
    )
    assert revisions(platform, capsys)[stable]["ready"]  # still a valid rollback target
    # Rolling back to it starts it and waits for its startup probe before traffic moves: clients
    # see no failure.
    url = (state.read_json(platform / state.PLATFORM_FILE) or {})["services"]["backend"]
    with Prober(url) as prober:
        time.sleep(0.5)
        started = time.monotonic()
        assert main(["rollback", "backend", "--to", stable, "--state-dir", str(platform), "--json"]) == 0
        rolled_back = json.loads(capsys.readouterr().out)
        time.sleep(0.5)
    assert prober.failed_since(0) == 0, prober.results
    assert rolled_back["to_revision"] == stable and rolled_back["apply_seconds"] > 0
    assert time.monotonic() - started >= rolled_back["apply_seconds"]
    after = revisions(platform, capsys)
    assert after[stable]["percent"] == 100 and after[stable]["state"] == "READY"
    assert after[stable]["cold_starts"] == 1


def test_each_part_killed_under_load_comes_back_with_its_configuration(platform: Path) -> None:
    """kill -9 each part in turn while a client probes the backend every 50 ms: each is restarted
    (the daemon by `ethixctl up`, which adopts the data plane), comes back with the configuration it
    had, and traffic resumes by itself. Killing the daemon costs no request at all."""
    url = (state.read_json(platform / state.PLATFORM_FILE) or {})["services"]["backend"]
    # No tagged revision at 0%: one could scale to zero in the middle and change the configuration.
    run = cloud_run(platform)
    run.set_traffic("backend", run.serving_split("backend"), tags={})
    recoveries = {}
    with Prober(url) as prober:
        time.sleep(1.0)
        for part in PARTS:
            recoveries[part] = kill_and_recover(platform, part, prober, up_args=UP_ARGS)
            time.sleep(1.0)
    for part, recovery in recoveries.items():
        assert all(recovery.checks.values()), (part, recovery)
        assert recovery.seconds < 30, recovery  # the benchmark measures it; the goal is ≤ 5 s
    assert recoveries["daemon"].failed_requests == 0, recoveries["daemon"]
    parts = (state.read_json(platform / state.PLATFORM_FILE) or {})["parts"]
    assert set(parts) == {"router-edge", "router-split", "prometheus", "control-plane"}
    assert all(part["state"] == "up" for part in parts.values()), parts
