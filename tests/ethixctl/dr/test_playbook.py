"""The DR playbook: the shipped file states the runbook's targets; mistakes are reported as file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from ethixctl.dr import playbook
from ethixctl.errors import PlaybookError, UsageError
from ethixctl.exitcodes import ExitCode

SHIPPED = playbook.DEFAULT_PATH.read_text()


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "dr.yaml"
    path.write_text(text)
    return path


def test_shipped_playbook_states_the_runbook_targets() -> None:
    book = playbook.load()
    assert (book.objectives.rto, book.objectives.rpo) == (3600, 900)
    targets = {s.name: (s.rto, s.rpo, s.drill) for s in book.scenarios}
    assert targets == {
        "database_corruption": (2700, 900, "database"),
        "object_storage_loss": (1200, 0, "objects"),
        "region_failure": (1800, 0, "planned"),
        "account_compromise": (14_400, 900, "planned"),
    }
    assert book.schedule.snapshot_every == 900
    assert (book.schedule.snapshot_restore_test, book.schedule.object_restore_test) == ("weekly", "monthly")
    assert book.schedule.full_drill == "quarterly"
    assert (book.retention.snapshots, book.retention.object_versions) == (30 * 86_400, 10)
    assert book.targets_of("database") == ("database_corruption", 2700, 900)
    assert book.targets_of("objects") == ("object_storage_loss", 1200, 0)
    assert book.targets_of("full") == ("objectives", 3600, 900)
    assert [s.name for s in book.planned()] == ["region_failure", "account_compromise"]
    local = book.target("local")
    assert local.is_local and local.scratch_cluster != local.cluster


@pytest.mark.parametrize(
    ("old", "new", "line", "field", "problem"),
    [
        ("  rto: 1h\n", "  rto: 1 hour\n", 8, "objectives.rto", "not a duration: '1 hour'"),
        (
            "    rpo: 0\n    drill: objects",
            "    rpo: -5\n    drill: objects",
            25,
            "scenarios.1.rpo",
            "greater than or equal to 0",
        ),
        (
            "    drill: planned\n  - name: account",
            "    drill: manual\n  - name: account",
            32,
            "scenarios.2.drill",
            "'database', 'objects' or 'planned'",
        ),
        (
            "    drill: objects",
            "    drill: database",
            14,
            "scenarios",
            "exactly one scenario must have drill: database, got 2",
        ),
        (
            "  snapshot_every: 15m",
            "  snapshot_every: 1h",
            41,
            "schedule",
            "snapshot_every (1h) exceeds objectives.rpo (15m)",
        ),
        (
            "  object_versions: 10",
            "  object_versions: 0",
            49,
            "retention.object_versions",
            "greater than or equal to 1",
        ),
        (
            "    scratch_cluster: ethix-dr-scratch",
            "    scratch_cluster: ethix",
            60,
            "environments.local",
            "scratch_cluster must differ from cluster",
        ),
        (
            "    cluster: ethix\n",
            "    cluster: ethix\n    live_bucket: gs://ethix-uploads\n",
            60,
            "environments.local",
            "missing atlas_group_id",
        ),
        (
            "  objects_deleted: 1",
            "  objects_removed: 1",
            53,
            "drill.objects_removed",
            "Extra inputs are not permitted",
        ),
    ],
)
def test_mistakes_report_file_line_and_field(
    tmp_path: Path, old: str, new: str, line: int, field: str, problem: str
) -> None:
    assert old in SHIPPED
    path = _write(tmp_path, SHIPPED.replace(old, new, 1))
    with pytest.raises(PlaybookError) as caught:
        playbook.load(path)
    error = caught.value
    assert (error.path, error.line, error.field) == (str(path), line, field)
    assert problem in error.problem
    assert str(error).startswith(f"{path}:{line}: {field}: ")
    assert error.exit_code is ExitCode.USAGE


def test_a_production_target_needs_every_location(tmp_path: Path) -> None:
    production = (
        "  production:\n    cluster: ethix-prod\n    scratch_cluster: ethix-dr-scratch\n"
        "    atlas_group_id: 5e2211c17a3e5a48f5497de3\n    live_bucket: gs://ethix-uploads\n"
        "    backup_bucket: gs://ethix-backups\n    scratch_bucket: gs://ethix-dr-scratch\n"
        "    scratch_database_url_secret: database-url-dr-scratch\n"
    )
    book = playbook.load(_write(tmp_path, SHIPPED + production))
    target = book.target("production")
    assert not target.is_local and target.backup_bucket == "gs://ethix-backups"
    same = production.replace("gs://ethix-dr-scratch", "gs://ethix-backups")
    with pytest.raises(PlaybookError, match="three different buckets"):
        playbook.load(_write(tmp_path, SHIPPED + same))
    with pytest.raises(UsageError, match="no environment 'staging'"):
        book.target("staging")


def test_snapshot_interval_per_environment(tmp_path: Path) -> None:
    text = SHIPPED.replace("    cluster: ethix\n", "    cluster: ethix\n    snapshot_every: 5s\n")
    book = playbook.load(_write(tmp_path, text))
    assert book.snapshot_every("local") == 5
    assert book.snapshot_every("staging") == 900
