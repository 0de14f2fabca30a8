"""The Atlas adapter against the local control plane's Atlas subset, over real local snapshots."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ethixctl.adapters.atlas import ACCEPT, Atlas
from ethixctl.dr import local, snapshot, verify
from ethixctl.errors import UsageError
from ethixctl.platform.controlplane import ControlPlaneServer
from services.common.docstore import SqliteStore, open_store
from services.common.storage import LocalObjectStore, open_storage
from tests.ethixctl.dr.workload import seed
from tests.ethixctl.platform.controlplane.testruntime import local_control_plane

SCRATCH = "ethix-dr-scratch"


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[tuple[ControlPlaneServer, Path]]:
    store = open_store(local.live_database_url(tmp_path))
    seed(store, open_storage(local.live_bucket_url(tmp_path)))
    store.close()
    with local_control_plane(tmp_path) as (server, _runtime):
        yield server, tmp_path


def test_snapshot_then_restore_into_scratch_local_control_plane(
    plane: tuple[ControlPlaneServer, Path],
) -> None:
    server, state_dir = plane
    with Atlas(server.url, local.GROUP, "ethix", poll_interval=0.05) as api:
        taken = api.take_snapshot("drill", retention_days=30)
        assert taken.status == "queued"
        done = api.wait_snapshot(taken.id, timeout=30)
        assert done.status == "completed" and done.storage_size_bytes
        assert [s.id for s in api.list_snapshots()] == [taken.id]
        job = api.create_restore_job(SCRATCH, allowed_targets={SCRATCH}, snapshot_id=taken.id)
        ended = api.wait_restore_job(job.id, timeout=30)
        assert ended.state == "finished" and ended.snapshot_id == taken.id
        url = api.connection_string(SCRATCH)
    assert url == f"sqlite://{local.cluster_path(state_dir, SCRATCH)}"
    manifest = snapshot.read_manifest(LocalObjectStore(state_dir / "backups"), taken.id)
    restored = open_store(url)
    assert verify.failures(verify.database(restored, manifest)) == []
    restored.close()


def test_point_in_time_picks_the_newest_snapshot_before_it_local_control_plane(
    plane: tuple[ControlPlaneServer, Path],
) -> None:
    server, _ = plane
    with Atlas(server.url, local.GROUP, "ethix", poll_interval=0.05) as api:
        first = api.wait_snapshot(api.take_snapshot("one", 30).id, timeout=30)
        between = int(time.time()) + 1
        time.sleep(1.2)
        api.wait_snapshot(api.take_snapshot("two", 30).id, timeout=30)
        job = api.create_restore_job(SCRATCH, allowed_targets={SCRATCH}, point_in_time=between)
        ended = api.wait_restore_job(job.id, timeout=30)
    assert (ended.state, ended.snapshot_id, ended.point_in_time) == ("finished", first.id, between)


def test_the_live_cluster_is_never_a_restore_target_local_control_plane(
    plane: tuple[ControlPlaneServer, Path],
) -> None:
    server, state_dir = plane
    with Atlas(server.url, local.GROUP, "ethix", poll_interval=0.05) as api:
        taken = api.wait_snapshot(api.take_snapshot("x", 30).id, timeout=30)
        with pytest.raises(UsageError, match="refusing to restore into cluster 'ethix'"):
            api.create_restore_job("ethix", allowed_targets={"ethix"}, snapshot_id=taken.id)
    # Even a client without that guard is refused by the control plane.
    body = {
        "deliveryType": "automated",
        "snapshotId": taken.id,
        "targetClusterName": "ethix",
        "targetGroupId": "local",
    }
    answer = httpx.post(
        f"{server.url}/api/atlas/v2/groups/local/clusters/ethix/backup/restoreJobs",
        json=body,
        headers={"Accept": ACCEPT},
    )
    assert answer.status_code == 400 and answer.json()["errorCode"] == "CANNOT_RESTORE_TO_LIVE_CLUSTER"
    live = SqliteStore(Path(local.live_database_url(state_dir).removeprefix("sqlite://")))
    assert live["users"].count({}) == 3
    live.close()


def test_a_corrupt_snapshot_fails_its_restore_job_local_control_plane(
    plane: tuple[ControlPlaneServer, Path],
) -> None:
    server, state_dir = plane
    backups = LocalObjectStore(state_dir / "backups")
    with Atlas(server.url, local.GROUP, "ethix", poll_interval=0.05) as api:
        taken = api.wait_snapshot(api.take_snapshot("x", 30).id, timeout=30)
        key = f"snapshots/{taken.id}/ethix/users.bson.gz"
        path = backups.root / key.replace("/", "%2F")
        generation = backups.generations(key)[-1]
        (path / str(generation)).write_bytes(b"not gzip at all")
        job = api.create_restore_job(SCRATCH, allowed_targets={SCRATCH}, snapshot_id=taken.id)
        assert api.wait_restore_job(job.id, timeout=30).state == "failed"


def test_scheduled_snapshots_are_taken_and_pruned_local_control_plane(
    plane: tuple[ControlPlaneServer, Path],
) -> None:
    server, _ = plane
    server.plane.atlas.start_schedule(0.2)
    deadline = time.monotonic() + 30
    with Atlas(server.url, local.GROUP, "ethix") as api:
        while time.monotonic() < deadline:
            done = [s for s in api.list_snapshots() if s.status == "completed"]
            if len(done) >= 2:
                break
            time.sleep(0.1)
    assert len(done) >= 2 and {s.snapshot_type for s in done} == {"scheduled"}
