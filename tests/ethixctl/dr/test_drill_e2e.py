"""`ethixctl backup` and `ethixctl dr-drill` end to end on the REAL local platform (`ethixctl up`: the
local control plane with its Atlas subset, uvicorn revisions of the backend and ai_core, Caddy,
Prometheus), after a real workload through the backend's API. Nothing is faked.

The tests share one platform and run in file order; each drill leaves the platform as it found it.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from ethixctl import procs
from ethixctl.adapters.secrets import SecretManager
from ethixctl.cli import main
from ethixctl.dr import local, snapshot
from ethixctl.exitcodes import ExitCode
from ethixctl.ops.ledger import Ledger
from services.common.storage import LocalObjectStore
from tests.conftest import running_platform

pytestmark = pytest.mark.e2e

CSV = (procs.REPO_ROOT / "playbooks" / "fixtures" / "smoke_loans.csv").read_bytes()
FAST_ENV = {"ETHIX_HEARTBEAT_SECONDS": "1", "ETHIXCTL_SNAPSHOT_INTERVAL": "3600"}


@dataclass
class Platform:
    state_dir: Path
    info: dict[str, Any]

    def args(self) -> list[str]:
        return ["--state-dir", str(self.state_dir)]

    @property
    def backend(self) -> str:
        return str(self.info["services"]["backend"])

    def cloud_run(self) -> Any:
        from ethixctl.adapters.cloudrun import CloudRun

        return CloudRun("local", "local", endpoint=self.info["control_plane_url"])

    def backups(self) -> LocalObjectStore:
        return LocalObjectStore(self.state_dir / "backups")

    def live_bucket(self) -> LocalObjectStore:
        return LocalObjectStore(self.state_dir / "data" / "backend" / "bucket")


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    saved = {name: os.environ.get(name) for name in FAST_ENV}
    os.environ.update(FAST_ENV)  # inherited by the daemon and its revisions
    state_dir = tmp_path_factory.mktemp("platform")
    try:
        with running_platform(state_dir) as info:
            yield Platform(state_dir, info)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run(capsys: pytest.CaptureFixture[str], platform: Platform, *argv: str) -> tuple[int, Any, str]:
    capsys.readouterr()
    code = main([*argv, *platform.args()])
    captured = capsys.readouterr()
    data = json.loads(captured.out) if captured.out.strip().startswith(("{", "[")) else None
    return code, data, captured.err


def workload(base: str, users: int = 2) -> None:
    """Users, datasets, analyses with their reports: what the backend stores, through its API."""
    with httpx.Client(base_url=base, timeout=60) as http:
        for _ in range(users):
            credentials = {
                "email": f"dr-{secrets.token_hex(4)}@example.com",
                "password": secrets.token_hex(8),
            }
            assert http.post("/api/v1/auth/register", json=credentials).status_code == 201
            token = http.post("/api/v1/auth/login", json=credentials).json()["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            for _ in range(2):
                dataset = http.post(
                    "/api/v1/datasets", files={"file": ("loans.csv", CSV, "text/csv")}, headers=headers
                ).json()
                body = {"dataset_id": dataset["id"], "target": "approved", "protected_attribute": "gender",
                        "positive_label": "yes"}  # fmt: skip
                analysis = http.post("/api/v1/analyses", json=body, headers=headers).json()
                deadline = time.monotonic() + 120
                while http.get(f"/api/v1/analyses/{analysis['id']}", headers=headers).json()[
                    "status"
                ] not in (
                    "succeeded",
                    "failed",
                ):
                    assert time.monotonic() < deadline, "analysis did not finish"
                    time.sleep(0.3)
                status = http.get(f"/api/v1/analyses/{analysis['id']}/report", headers=headers).status_code
                assert status == 200


def drill_ops(platform: Platform) -> list[Any]:
    with Ledger(platform.state_dir) as ledger:
        return ledger.operations("local", "drill")


@pytest.fixture(scope="module")
def snapshot_id(platform: Platform) -> str:
    workload(platform.backend)
    time.sleep(1.5)  # at least one heartbeat after the workload
    assert main(["backup", "create", "--description", "e2e", "--json", *platform.args()]) == 0
    newest = snapshot.list_manifests(platform.backups())[0]
    return str(newest["id"])


def test_backup_create_list_show_local_control_plane(
    platform: Platform, snapshot_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, listed, _ = run(capsys, platform, "backup", "list", "--json")
    assert code == 0 and listed[0]["id"] == snapshot_id and listed[0]["status"] == "completed"
    assert listed[0]["manifest"] is True and listed[0]["documents"] >= 2 + 4 + 4
    code, manifest, _ = run(capsys, platform, "backup", "show", snapshot_id[:10], "--json")
    assert code == 0 and manifest["id"] == snapshot_id
    assert {"users", "datasets", "analyses", "heartbeats"} <= set(manifest["collections"])
    assert len(manifest["objects"]) == 4 and manifest["problems"] == []
    assert manifest["newest_heartbeat"] is not None


def test_drill_after_a_real_workload_is_byte_equal_and_meets_objectives(
    platform: Platform, snapshot_id: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    revisions_before = {r.name for r in platform.cloud_run().list_revisions("backend")}
    code, report, err = run(
        capsys, platform, "dr-drill", "--json", "--report", str(tmp_path / "drill.md"),
        "--junit", str(tmp_path / "drill.xml"),
    )  # fmt: skip
    assert code == ExitCode.OK, (report or {}).get("reason", err)
    assert report["outcome"] == "passed" and report["snapshot"]["id"] == snapshot_id
    kinds = {(c["kind"], c["subject"]) for c in report["checks"]}
    assert {
        ("sha256", "users"),
        ("sha256", "datasets"),
        ("sha256", "analyses"),
        ("reference", "analyses"),
    } <= kinds
    assert all(c["passed"] for c in report["checks"])
    assert len([c for c in report["checks"] if c["kind"] == "object"]) == 4
    assert [s["step"] for s in report["steps"]] == [
        "declared", "picking", "restoring", "verifying", "deploying", "smoking", "cleaning_up",
    ]  # fmt: skip
    assert report["smoke"]["outcome"] == "passed"
    measured = report["measured"]
    assert 0 < measured["rto_seconds"] <= report["targets"]["rto_seconds"]
    assert 0 <= measured["rpo_seconds"] <= report["targets"]["rpo_seconds"]
    assert "planned drill only" in report["planned_only"][0]["note"]
    # Cleaned up: no tag, no extra revision, no scratch data.
    assert {r.name for r in platform.cloud_run().list_revisions("backend")} == revisions_before
    assert not any(t.tag for t in platform.cloud_run().get_service("backend").traffic)
    assert not local.cluster_path(platform.state_dir, "ethix-dr-scratch").exists()
    assert LocalObjectStore(platform.state_dir / "dr" / "scratch-bucket").list() == []
    markdown = (tmp_path / "drill.md").read_text()
    assert f"snapshot {snapshot_id}" in markdown and "| RTO |" in markdown and "PASSED" in markdown
    junit = (tmp_path / "drill.xml").read_text()
    assert 'failures="0"' in junit and 'name="sha256"' not in junit and 'name="users"' in junit
    assert drill_ops(platform)[-1].status == "passed"


def test_the_drills_revision_serves_the_restored_data_not_the_live_database(
    platform: Platform, snapshot_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The backend loads database-url at runtime: the drill's revision must not follow it to live data."""
    from ethixctl.config import resolve_environment
    from ethixctl.dr import drill, playbook
    from ethixctl.dr.context import connect

    late = {"email": f"late-{secrets.token_hex(4)}@example.com", "password": secrets.token_hex(8)}
    assert httpx.post(f"{platform.backend}/api/v1/auth/register", json=late, timeout=30).status_code == 201
    code, report, err = run(capsys, platform, "dr-drill", "--snapshot", snapshot_id, "--keep", "--json")
    assert code == ExitCode.OK, (report or {}).get("reason", err)
    op = drill_ops(platform)[-1]
    url = platform.cloud_run().tag_url("backend", op.details["tag"])
    try:
        # Registered after the snapshot: live data has the user, the restored data does not.
        assert httpx.post(f"{url}/api/v1/auth/login", json=late, timeout=30).status_code == 401
        assert httpx.post(f"{platform.backend}/api/v1/auth/login", json=late, timeout=30).status_code == 200
    finally:
        ctx = connect(resolve_environment(None, platform.state_dir), playbook.load())
        try:
            drill.clean_up(ctx, op)
        finally:
            ctx.close()


def test_missed_rpo_target_exits_4(
    platform: Platform, snapshot_id: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    strict = (
        (procs.REPO_ROOT / "playbooks" / "dr.yaml")
        .read_text()
        .replace("    rpo: 15m\n    drill: database", "    rpo: 0\n    drill: database")
    )
    (tmp_path / "dr.yaml").write_text(strict)
    code, report, _ = run(capsys, platform, "dr-drill", "--json", "--playbook", str(tmp_path / "dr.yaml"))
    assert code == ExitCode.OBJECTIVES_MISSED
    assert report["outcome"] == "missed" and report["reason"].startswith("RPO ")
    assert all(c["passed"] for c in report["checks"])


def test_objects_scenario_restores_a_lost_object_from_the_backup_and_overwrites_from_history(
    platform: Platform, snapshot_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = snapshot.read_manifest(platform.backups(), snapshot_id)
    lost = manifest["objects"][0]["name"]
    live_before = platform.live_bucket().list()
    platform.live_bucket().delete(lost)  # lost from the live bucket with every version
    code, report, err = run(
        capsys, platform, "dr-drill", "--scenario", "objects", "--snapshot", snapshot_id, "--json"
    )
    assert code == ExitCode.OK, (report or {}).get("reason", err)
    copied = {c["name"]: c["source"] for c in report["objects"]["copied"]}
    assert copied[lost] == "backup_bucket"
    damage = {d["name"]: d["damage"] for d in report["objects"]["damage"]}
    sources = {r["name"]: r["source"] for r in report["objects"]["recovered"]}
    assert sorted(damage.values()) == ["deleted with every version", "overwritten"]
    for name, what in damage.items():
        assert sources[name] == ("backup_bucket" if what.startswith("deleted") else "version_history")
    assert all(c["passed"] for c in report["checks"]) and len(report["checks"]) == 4
    assert report["measured"]["rpo_seconds"] == 0
    # The live bucket was only read: the lost object is still lost there, nothing else changed.
    assert platform.live_bucket().list() == sorted(set(live_before) - {lost})
    platform.live_bucket().put(lost, platform.backups().get(manifest["objects"][0]["backup"]))


def test_a_corrupt_snapshot_file_fails_the_drill_naming_the_collection(
    platform: Platform, snapshot_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    backups = platform.backups()
    key = f"snapshots/{snapshot_id}/ethix/datasets.bson.gz"
    generation = backups.generations(key)[-1]
    stored = backups.root / key.replace("/", "%2F") / str(generation)
    original = stored.read_bytes()
    stored.write_bytes(original[:20] + bytes(b ^ 0xFF for b in original[20:40]) + original[40:])
    try:
        code, report, _ = run(capsys, platform, "dr-drill", "--snapshot", snapshot_id, "--json")
    finally:
        stored.write_bytes(original)
    assert code == ExitCode.FAILED
    assert report["outcome"] == "failed"
    assert "collection datasets" in report["failure"], report["failure"]
    assert [s["step"] for s in report["steps"]][-1] == "cleaning_up"
    assert not local.cluster_path(platform.state_dir, "ethix-dr-scratch").exists()


def test_sigkill_mid_drill_is_cleaned_up_by_the_next_run(
    platform: Platform, snapshot_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [sys.executable, "-m", "ethixctl", "dr-drill", "--json", *platform.args()]
    process = subprocess.Popen(
        argv,
        cwd=procs.REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    victim = None
    while time.monotonic() < deadline and process.poll() is None:
        running = [op for op in drill_ops(platform) if op.in_progress]
        if running and running[-1].details.get("revision"):
            victim = running[-1]
            break
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert victim is not None, "the drill never reached its revision"
    left = victim.details["revision"]
    assert left in {r.name for r in platform.cloud_run().list_revisions("backend")}

    code, report, err = run(capsys, platform, "dr-drill", "--scenario", "full", "--json")
    assert code == ExitCode.OK, (report or {}).get("reason", err)
    assert report["targets"]["against"] == "objectives" and len(report["objects"]["damage"]) == 2
    assert all(c["passed"] for c in report["checks"]) and report["smoke"]["outcome"] == "passed"
    assert [a["id"] for a in report["abandoned_cleaned"]] == [victim.id]
    assert report["abandoned_cleaned"][0]["cleaned"]["revision"] == left
    assert left not in {r.name for r in platform.cloud_run().list_revisions("backend")}
    ended = next(op for op in drill_ops(platform) if op.id == victim.id)
    assert ended.status == "aborted" and "cleaned up" in ended.reason


@pytest.mark.parametrize(
    ("target", "problem"),
    [("ethix", "is the live cluster"), ("ethix-dr-scratch", "scratch cluster the drills wipe")],
)
def test_restore_refuses_the_live_and_the_scratch_cluster(
    platform: Platform, snapshot_id: str, capsys: pytest.CaptureFixture[str], target: str, problem: str
) -> None:
    code, _, err = run(capsys, platform, "restore", "--snapshot", snapshot_id, "--to", target, "--yes")
    assert code == ExitCode.USAGE and problem in err


def test_restore_dry_run_changes_nothing(
    platform: Platform, snapshot_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before = len(drill_ops(platform))
    code, plan, _ = run(
        capsys, platform, "restore", "--snapshot", snapshot_id, "--to", "ethix-restored-1", "--switch",
        "--dry-run", "--json",
    )  # fmt: skip
    assert code == 0 and plan["dry_run"] and plan["steps"] == ["restoring", "verifying", "switching"]
    assert not local.cluster_path(platform.state_dir, "ethix-restored-1").exists()
    with Ledger(platform.state_dir) as ledger:
        assert ledger.operations("local", "restore") == []
    assert len(drill_ops(platform)) == before


def test_restore_and_switch_serves_the_restored_data(
    platform: Platform, snapshot_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A user registered after the snapshot is gone once the backend is switched to the restored data:
    database-url's `current` moves to the restored cluster and the serving revisions reconnect at runtime
    (no new revision, no value in any env)."""
    late = {"email": f"late-{secrets.token_hex(4)}@example.com", "password": secrets.token_hex(8)}
    assert httpx.post(f"{platform.backend}/api/v1/auth/register", json=late, timeout=30).status_code == 201
    split = platform.cloud_run().serving_split("backend")
    code, result, err = run(
        capsys, platform, "restore", "--snapshot", snapshot_id, "--to", "ethix-restored-1", "--switch",
        "--yes", "--json",
    )  # fmt: skip
    assert code == 0, result
    assert result["status"] == "switched" and all(c["passed"] for c in result["checks"])
    assert platform.cloud_run().serving_split("backend") == split and result["revisions"] == sorted(split)
    aliases = SecretManager("local", endpoint=platform.info["control_plane_url"]).aliases("database-url")
    assert aliases == {"current": result["secret_version"], "previous": result["previous_version"]}
    # The command returned once every serving revision reported the new connection: no wait needed.
    assert httpx.post(f"{platform.backend}/api/v1/auth/login", json=late, timeout=30).status_code == 401
    with Ledger(platform.state_dir) as ledger:
        (op,) = ledger.operations("local", "restore")
    assert op.status == "switched" and op.details["secret_version"] == result["secret_version"]
    # The restored cluster is live now: it can no longer be a restore target.
    code, _, err = run(
        capsys, platform, "restore", "--snapshot", snapshot_id, "--to", "ethix-restored-1", "--yes"
    )
    assert code == ExitCode.USAGE and "serves the platform now" in err
