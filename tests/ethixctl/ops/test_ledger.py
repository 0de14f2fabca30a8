"""The SQLite ledger every long operation shares (real files, several connections as several processes)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from ethixctl.errors import UsageError
from ethixctl.ops import ids
from ethixctl.ops.ledger import IN_PROGRESS, SCHEMA_VERSION, Ledger


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with Ledger(tmp_path) as book:
        yield book


def test_operation_lifecycle_is_durable_and_visible_to_other_connections(
    ledger: Ledger, tmp_path: Path
) -> None:
    op = ledger.create_operation(
        "rotation", "jwt-signing-key", "local", "adding", options={"emergency": False}
    )
    assert op.in_progress and len(op.id) == ids.LENGTH and op.short_id == op.id[:8]
    ledger.update(op.id, phase="waiting", step=2, details={"new_version": "7"}, counters={"polls": 3})
    ledger.update(op.id, details={"old_version": "6"})  # details merge, never replace
    with Ledger(tmp_path) as other:
        pending = other.in_progress("rotation", "jwt-signing-key", "local")
        assert pending is not None and pending.id == op.id
        assert (pending.phase, pending.step, pending.counters) == ("waiting", 2, {"polls": 3})
        assert pending.details == {"new_version": "7", "old_version": "6"}
    assert ledger.in_progress("release", "jwt-signing-key", "local") is None  # kinds are separate
    assert ledger.finish_if_in_progress(op.id, "done", "rotated")
    assert not ledger.finish_if_in_progress(op.id, "failed", "too late")
    final = ledger.operation(op.id)
    assert (final.status, final.reason) == ("done", "rotated") and final.finished_at is not None


def test_move_is_refused_once_something_else_ended_or_moved_the_operation(ledger: Ledger) -> None:
    op = ledger.create_operation("release", "backend", "local", "canary")
    assert not ledger.move(op.id, "smoke", "canary", None)  # not in that phase
    assert ledger.move(op.id, "canary", "rolling_back", None)
    ledger.finish_if_in_progress(op.id, "aborted", "manual rollback")
    assert not ledger.move(op.id, "rolling_back", "rolled_back", "rolled_back")
    assert ledger.operation(op.id).status == "aborted"


def test_ids_by_unambiguous_prefix_case_insensitive(ledger: Ledger) -> None:
    first = ledger.create_operation("drill", "database", "local", "declared")
    assert ledger.operation(first.id[:10].lower()).id == first.id
    with pytest.raises(UsageError, match="no operation"):
        ledger.operation("ZZZZZZZZ")
    with pytest.raises(UsageError, match="several operations"):
        ledger.create_operation("drill", "database", "local", "declared")
        ledger.operation(first.id[:1])  # same millisecond prefix: the first character is shared


def test_a_million_ids_and_thousands_of_creations_never_collide(ledger: Ledger) -> None:
    assert len({ids.new_id() for _ in range(1_000_000)}) == 1_000_000
    created = {ledger.create_operation("release", "backend", "local", "deploying").id for _ in range(2000)}
    assert len(created) == 2000
    newest = ledger.operations("local", "release", newest_first=True, limit=1)[0]
    assert newest.id == max(created)  # ULIDs sort by creation time


def test_traffic_intents_are_recorded_before_they_are_confirmed(ledger: Ledger) -> None:
    op = ledger.create_operation("release", "backend", "local", "canary")
    change = ledger.intend_traffic("backend", "local", {"b-2": 10, "b-1": 90}, "step 1", op.id)
    last = ledger.last_traffic(op.id)
    assert last is not None and (last.state, last.split) == ("intended", {"b-2": 10, "b-1": 90})
    ledger.confirm_traffic(change)
    assert [c.state for c in ledger.traffic("local", "backend")] == ["applied"]
    assert ledger.traffic("local", "ai-core") == []


# The version-1 schema, as ethixctl 0.1 wrote it (6-hex-character release ids).
V1_SCHEMA = """
CREATE TABLE releases (
    id TEXT PRIMARY KEY, service TEXT NOT NULL, environment TEXT NOT NULL, image TEXT NOT NULL,
    user TEXT NOT NULL, host TEXT NOT NULL, started_at REAL NOT NULL, finished_at REAL,
    status TEXT NOT NULL, phase TEXT NOT NULL, reason TEXT NOT NULL DEFAULT '',
    stable_revision TEXT, canary_revision TEXT, tag TEXT NOT NULL, step INTEGER NOT NULL DEFAULT 0,
    options TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX releases_by_service ON releases (environment, service, started_at);
CREATE TABLE traffic (
    id INTEGER PRIMARY KEY AUTOINCREMENT, release_id TEXT, service TEXT NOT NULL, environment TEXT NOT NULL,
    at REAL NOT NULL, split TEXT NOT NULL, state TEXT NOT NULL, reason TEXT NOT NULL, confirmed_at REAL
);
CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, release_id TEXT, service TEXT NOT NULL, environment TEXT NOT NULL,
    at REAL NOT NULL, kind TEXT NOT NULL, message TEXT NOT NULL, data TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE rollbacks (
    id INTEGER PRIMARY KEY AUTOINCREMENT, release_id TEXT, service TEXT NOT NULL, environment TEXT NOT NULL,
    at REAL NOT NULL, user TEXT NOT NULL, from_split TEXT NOT NULL, to_revision TEXT NOT NULL,
    reason TEXT NOT NULL, automatic INTEGER NOT NULL, seconds REAL
);
"""


def test_a_version_1_ledger_is_migrated_in_place_and_resumable(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        db.executescript(V1_SCHEMA)
        db.execute(
            "INSERT INTO releases VALUES ('a1b2c3', 'backend', 'local', 'img:2', 'ana', 'h', 1.0, NULL,"
            " 'in_progress', 'canary', '', 'backend-00001-aaa', 'backend-00002-bbb', 'canary-a1b2c3', 1,"
            " '{\"hold\": 10}')"
        )
        db.execute(
            "INSERT INTO traffic (release_id, service, environment, at, split, state, reason)"
            " VALUES ('a1b2c3', 'backend', 'local', 2.0, '{\"backend-00002-bbb\": 50}', 'applied', 'step 2')"
        )
        db.execute(
            "INSERT INTO events (release_id, service, environment, at, kind, message)"
            " VALUES ('a1b2c3', 'backend', 'local', 2.0, 'gate', 'pass')"
        )
    with Ledger(tmp_path) as ledger:
        op = ledger.in_progress("release", "backend", "local")
        assert op is not None and op.id == "a1b2c3" and op.status == IN_PROGRESS
        assert (op.phase, op.step, op.options, op.user) == ("canary", 1, {"hold": 10}, "ana")
        assert op.details == {
            "image": "img:2",
            "stable_revision": "backend-00001-aaa",
            "canary_revision": "backend-00002-bbb",
            "tag": "canary-a1b2c3",
        }
        assert [e["kind"] for e in ledger.events("a1b2c3")] == ["gate"]
        assert ledger.last_traffic("a1b2c3") is not None
        assert ledger.operation("A1B2").id == "a1b2c3"  # old ids keep working, any case
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert "releases" not in tables and "operations" in tables
    with Ledger(tmp_path) as again:  # opening a migrated ledger changes nothing
        assert json.dumps(again.operation("a1b2c3").to_dict(), default=str)


def test_lookups_use_indexes(ledger: Ledger) -> None:
    plans = {
        "in_progress": "SELECT * FROM operations WHERE kind = 'release' AND subject = 'b'"
        " AND environment = 'l' AND status = 'in_progress' ORDER BY started_at DESC LIMIT 1",
        "newest": "SELECT * FROM operations WHERE environment = 'l' AND started_at >= 0 AND kind = 'release'"
        " AND subject = 'b' ORDER BY started_at DESC, id DESC",
        "last_traffic": "SELECT * FROM traffic WHERE operation_id = 'x' ORDER BY id DESC LIMIT 1",
        "events": "SELECT * FROM events WHERE operation_id = 'x' AND kind = 'gate' ORDER BY id",
    }
    for name, query in plans.items():
        detail = " ".join(row[3] for row in ledger._db.execute("EXPLAIN QUERY PLAN " + query))
        assert "USING INDEX" in detail or "USING COVERING INDEX" in detail, (name, detail)
        assert "SCAN operations" not in detail and "SCAN traffic" not in detail, (name, detail)
