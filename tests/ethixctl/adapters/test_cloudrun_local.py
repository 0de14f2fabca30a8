"""ethixctl.adapters.cloudrun against the local control plane (real google-cloud-run REST client,
real control plane, test runtime with one real process per revision)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.cloud import run_v2

from ethixctl import procs
from ethixctl.adapters.cloudrun import CloudRun, RevisionInfo, ServiceInfo
from ethixctl.errors import EthixError, PlatformUnavailable, UsageError
from ethixctl.exitcodes import ExitCode
from ethixctl.platform.controlplane import ControlPlaneServer, serve
from tests.ethixctl.platform.controlplane.testruntime import TestRuntime, local_control_plane

REVISION = run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[tuple[CloudRun, TestRuntime, ControlPlaneServer]]:
    with local_control_plane(tmp_path) as (server, runtime):
        run = CloudRun("local", "local", endpoint=server.url)
        run.create_service("backend", "envserver", {"APP_DB": "sqlite:///x.db"}, timeout=30)
        yield run, runtime, server


def test_local_control_plane_deploy_with_pinned_traffic_and_tag_stand_in_runtime(
    platform: tuple[CloudRun, TestRuntime, ControlPlaneServer],
) -> None:
    run, _, _ = platform
    stable = run.get_service("backend").latest_ready_revision
    assert stable is not None
    canary = run.deploy_revision("backend", "envserver", {"APP_FLAG": "on"}, tag="canary-ab12cd", timeout=30)

    assert canary.name.startswith("backend-00002-") and canary.ready
    assert canary.env == {"APP_DB": "sqlite:///x.db", "APP_FLAG": "on"}
    assert run.serving_split("backend") == {stable: 100}
    url = run.tag_url("backend", "canary-ab12cd")
    assert httpx.get(url).json()["K_REVISION"] == canary.name
    info = run.get_service("backend")
    assert info.latest_ready_revision == info.latest_created_revision == canary.name
    assert {(t.revision, t.percent, t.tag) for t in info.traffic} == {
        (stable, 100, None),
        (canary.name, 0, "canary-ab12cd"),
    }
    assert [r.name for r in run.list_revisions("backend")] == [canary.name, stable]


def test_local_control_plane_set_traffic_keeps_or_replaces_tags_stand_in_runtime(
    platform: tuple[CloudRun, TestRuntime, ControlPlaneServer],
) -> None:
    run, runtime, _ = platform
    stable = run.get_service("backend").latest_ready_revision
    assert stable is not None
    canary = run.deploy_revision("backend", "envserver", {}, tag="canary-1", timeout=30).name

    shifted = run.set_traffic("backend", {stable: 90, canary: 10})
    assert run.serving_split("backend") == {stable: 90, canary: 10}
    assert [t.tag for t in shifted.traffic if t.revision == canary] == ["canary-1"]
    assert runtime.traffic["backend"] == ({stable: 90, canary: 10}, {"canary-1": canary})

    # Clearing tags does not change the split.
    run.set_traffic("backend", {stable: 90, canary: 10}, tags={})
    assert run.serving_split("backend") == {stable: 90, canary: 10}
    assert runtime.traffic["backend"] == ({stable: 90, canary: 10}, {})
    with pytest.raises(UsageError, match="no tag 'canary-1'"):
        run.tag_url("backend", "canary-1")


def test_local_control_plane_serving_split_ignores_leading_tag_only_entry_stand_in_runtime(
    platform: tuple[CloudRun, TestRuntime, ControlPlaneServer],
) -> None:
    run, _, server = platform
    stable = run.get_service("backend").latest_ready_revision
    canary = run.deploy_revision("backend", "envserver", {}, tag=None, timeout=30).name
    # Write the pitfall order directly: the 0% tag-only entry first, the serving entry second.
    services = run_v2.ServicesClient(
        transport="rest",
        client_options={"api_endpoint": server.url},
        credentials=run._services._transport._credentials,
    )
    raw = services.get_service(name="projects/local/locations/local/services/backend")
    raw.traffic = [
        run_v2.TrafficTarget(type_=REVISION, revision=canary, percent=0, tag="preview"),
        run_v2.TrafficTarget(type_=REVISION, revision=stable, percent=100),
    ]
    services.update_service(service=raw).result(timeout=30)
    assert run.get_service("backend").traffic[0].revision == canary
    assert run.serving_split("backend") == {stable: 100}


def test_local_control_plane_deploy_without_keep_traffic_takes_all_stand_in_runtime(
    platform: tuple[CloudRun, TestRuntime, ControlPlaneServer],
) -> None:
    run, _, _ = platform
    new = run.deploy_revision("backend", "envserver", {}, tag=None, keep_traffic=False, timeout=30)
    assert run.serving_split("backend") == {new.name: 100}


def test_local_control_plane_failed_deploy_raises_and_keeps_split_stand_in_runtime(
    platform: tuple[CloudRun, TestRuntime, ControlPlaneServer],
) -> None:
    run, _, _ = platform
    stable = run.get_service("backend").latest_ready_revision
    assert stable is not None
    with pytest.raises(EthixError, match="crash image: exiting on purpose") as raised:
        run.deploy_revision("backend", "crash", {}, tag="canary-x", timeout=30)
    assert not isinstance(raised.value, UsageError)
    assert run.serving_split("backend") == {stable: 100}
    broken = run.get_service("backend").latest_created_revision
    assert broken is not None and broken != stable
    assert run.get_revision("backend", broken).ready is False
    # Rolling back right after the failure must not trip over the broken revision's tag.
    rolled = run.set_traffic("backend", {stable: 100})
    assert [(t.revision, t.percent, t.tag) for t in rolled.traffic] == [(stable, 100, None)]


def test_local_control_plane_errors_are_operator_errors_stand_in_runtime(
    platform: tuple[CloudRun, TestRuntime, ControlPlaneServer],
) -> None:
    run, _, _ = platform
    stable = run.get_service("backend").latest_ready_revision
    assert stable is not None
    with pytest.raises(UsageError, match="unknown service 'nope'") as unknown:
        run.get_service("nope")
    assert unknown.value.exit_code == ExitCode.USAGE
    with pytest.raises(UsageError, match="unknown revision 'backend-00099-abc'"):
        run.get_revision("backend", "backend-00099-abc")
    with pytest.raises(UsageError, match="must sum to 100, got 50"):
        run.set_traffic("backend", {stable: 50})
    with pytest.raises(UsageError, match="'backend-00042-zzz' does not exist"):
        run.set_traffic("backend", {"backend-00042-zzz": 100})


def test_local_control_plane_unreachable_is_platform_unavailable_stand_in_runtime() -> None:
    run = CloudRun("local", "local", endpoint=f"http://127.0.0.1:{procs.free_port()}", restart_wait=1.0)
    started = time.monotonic()
    with pytest.raises(PlatformUnavailable) as raised:
        run.list_services()
    assert time.monotonic() - started >= 1.0  # it waited for a restart that did not come
    assert raised.value.hint is not None and "ethixctl up" in raised.value.hint
    assert raised.value.exit_code == ExitCode.PLATFORM_UNAVAILABLE


def test_local_control_plane_restart_does_not_fail_a_deploy_or_a_traffic_change_stand_in_runtime(
    tmp_path: Path,
) -> None:
    """The daemon restarts a control plane that died; a client in the middle of a change waits for it
    (refused connections are tried again) and finds its change finished by the new control plane,
    though the operation it polled died with the old one."""
    port = procs.free_port()
    runtime = TestRuntime(tmp_path / "logs")
    server = serve(tmp_path / "state", runtime, "127.0.0.1", port, startup_timeout=20)
    run = CloudRun("local", "local", endpoint=server.url)
    try:
        stable = run.create_service("backend", "envserver", {}, timeout=30).latest_ready_revision
        assert stable is not None
        deployed: list[RevisionInfo] = []
        deploy = _in_thread(
            lambda: deployed.append(run.deploy_revision("backend", "slow", {}, "canary", timeout=60))
        )
        time.sleep(0.5)  # the revision is still starting (the "slow" image takes 1.5 s)
        server.shutdown()
        time.sleep(1.0)  # down: the client's polls are refused meanwhile
        server = serve(tmp_path / "state", runtime, "127.0.0.1", port, startup_timeout=20)
        deploy.join(60)
        assert deployed and deployed[0].ready and deployed[0].name.startswith("backend-00002-")
        assert run.serving_split("backend") == {stable: 100}
        assert httpx.get(run.tag_url("backend", "canary"), timeout=5).json()["K_REVISION"] == deployed[0].name

        server.shutdown()
        moved: list[ServiceInfo] = []
        change = _in_thread(lambda: moved.append(run.set_traffic("backend", {deployed[0].name: 100})))
        time.sleep(1.0)
        server = serve(tmp_path / "state", runtime, "127.0.0.1", port, startup_timeout=20)
        change.join(30)
        assert moved and run.serving_split("backend") == {deployed[0].name: 100}
    finally:
        server.shutdown()
        runtime.stop_all()


def _in_thread(target: Any) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread
