"""Production snapshots taken by Atlas itself have no manifest: a drill or restore cannot verify them.

Atlas is the wire-level fake of the adapter tests (real HTTP, Digest auth, the published fields); the
gs:// buckets are stood in for by local versioned buckets (they only need to hold no manifest). A drill
must end with its own outcome, ``unverifiable`` (exit 3), naming the snapshot, restoring nothing.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ethixctl.adapters import atlas
from ethixctl.config import Environment
from ethixctl.dr import drill, playbook, recovery, report, snapshot
from ethixctl.dr.context import DrContext
from ethixctl.errors import UsageError
from ethixctl.exitcodes import ExitCode
from services.common.storage import LocalObjectStore
from tests.ethixctl.adapters.test_atlas_wire_level_fake import (
    CLUSTER,
    GROUP,
    PRIVATE,
    PUBLIC,
    FakeAtlas,
    _handler,
)
from tests.httpserver import serve

ATLAS_SNAPSHOT = "6751c0de0123456789abcdef"
PRODUCTION = f"""
  production:
    cluster: {CLUSTER}
    scratch_cluster: ethix-dr-scratch
    atlas_group_id: {GROUP}
    live_bucket: gs://ethix-uploads
    backup_bucket: gs://ethix-backups
    scratch_bucket: gs://ethix-dr-scratch
    scratch_database_url_secret: database-url-dr-scratch
"""


@dataclass
class Production:
    fake: FakeAtlas
    ctx: DrContext


@pytest.fixture
def production(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Production]:
    monkeypatch.setenv(atlas.PUBLIC_KEY_VAR, PUBLIC)
    monkeypatch.setenv(atlas.PRIVATE_KEY_VAR, PRIVATE)
    book_path = tmp_path / "dr.yaml"
    book_path.write_text(playbook.DEFAULT_PATH.read_text() + PRODUCTION)
    book = playbook.load(book_path)
    fake = FakeAtlas()
    fake.snapshots[ATLAS_SNAPSHOT] = {
        "id": ATLAS_SNAPSHOT, "createdAt": "2026-12-02T07:00:00Z", "description": "scheduled",
        "snapshotType": "scheduled", "status": "completed", "storageSizeBytes": 123_456,
    }  # fmt: skip
    environment = Environment(
        name="production", kind="cloudrun", project="ethix-prod", region="europe-west1",
        run_endpoint=None, secrets_endpoint=None, prometheus_url="managed", state_dir=tmp_path / "state",
    )  # fmt: skip
    with serve(_handler(fake)) as url:
        ctx = DrContext(
            environment=environment,
            book=book,
            target=book.target("production"),
            atlas=atlas.Atlas.from_environment(url, GROUP, CLUSTER, poll_interval=0.01),
            backups=LocalObjectStore(tmp_path / "backups"),
            live_bucket=LocalObjectStore(tmp_path / "live"),
            scratch_bucket=LocalObjectStore(tmp_path / "scratch"),
        )
        try:
            yield Production(fake, ctx)
        finally:
            ctx.close()


def _restore_jobs(fake: FakeAtlas) -> list[dict[str, object]]:
    return [r for r in fake.requests if r["method"] == "POST" and "restoreJobs" in str(r["path"])]


def test_drill_on_an_atlas_snapshot_without_manifest_is_unverifiable_wire_level_fake(
    production: Production,
) -> None:
    op, _ = drill.execute(production.ctx, drill.DrillOptions("database"))
    result = report.build(op, production.ctx.book)

    assert (op.status, op.phase) == ("unverifiable", "unverifiable")
    assert result["exit_code"] == ExitCode.UNVERIFIABLE == 3
    assert result["reason"].startswith(f"verification not possible: snapshot {ATLAS_SNAPSHOT}")
    assert "has no manifest in" in result["reason"]
    assert result["checks"] == [
        {
            "kind": "manifest",
            "subject": ATLAS_SNAPSHOT,
            "passed": False,
            "detail": "not possible: no manifest",
        }
    ]
    assert result["snapshot"]["id"] == ATLAS_SNAPSHOT
    assert [s["step"] for s in result["steps"]] == ["declared", "picking", "cleaning_up"]
    assert result["measured"]["rto_seconds"] is None  # nothing restored, nothing measured as good
    assert _restore_jobs(production.fake) == [] and production.fake.jobs == {}
    assert result["cleaned"] == {}

    markdown = report.markdown(result)
    assert "— UNVERIFIABLE" in markdown
    assert f"| manifest | `{ATLAS_SNAPSHOT}` | FAIL | not possible: no manifest |" in markdown
    suite = ET.fromstring(report.junit(result))[0]
    failed = [c for c in suite.iter("testcase") if c.find("failure") is not None]
    assert [(c.get("classname"), c.get("name")) for c in failed] == [
        ("dr-drill.verify.manifest", ATLAS_SNAPSHOT)
    ]


def test_a_named_snapshot_without_manifest_is_unverifiable_and_a_restore_is_refused_wire_level_fake(
    production: Production,
) -> None:
    op, _ = drill.execute(production.ctx, drill.DrillOptions("database", snapshot_id=ATLAS_SNAPSHOT[:8]))
    assert op.status == "unverifiable" and op.details["snapshot_id"] == ATLAS_SNAPSHOT

    options = recovery.RestoreOptions(ATLAS_SNAPSHOT, "ethix-restored-1")
    with pytest.raises(snapshot.NoManifest, match="verification not possible") as refused:
        recovery.plan(production.ctx, options)
    assert refused.value.exit_code == ExitCode.UNVERIFIABLE
    # An id Atlas does not know is still bad usage, not "unverifiable".
    with pytest.raises(UsageError, match="no snapshot with id 'ffff'"):
        recovery.plan(production.ctx, recovery.RestoreOptions("ffff", "ethix-restored-1"))
    assert _restore_jobs(production.fake) == []


def test_no_completed_snapshot_at_all_is_still_no_snapshot_wire_level_fake(production: Production) -> None:
    production.fake.snapshots[ATLAS_SNAPSHOT]["status"] = "inProgress"
    with pytest.raises(UsageError, match="no snapshot"):  # NoManifest is not a UsageError
        production.ctx.newest_manifest()
    # A point in time before the only snapshot: nothing to restore, not "unverifiable".
    production.fake.snapshots[ATLAS_SNAPSHOT]["status"] = "completed"
    with pytest.raises(UsageError, match="no snapshot at or before"):
        production.ctx.newest_manifest(point_in_time=1_700_000_000)
