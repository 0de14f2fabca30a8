"""The release ledger: SQLite in the environment's state dir.

Everything a release does is written here first: the release itself (who, when, which image), every
traffic change (``intended`` before it is applied, ``applied`` after), every gate verdict and decision,
promotions and rollbacks. An interrupted release is resumed from here, ``rollback`` finds the previous
good revision here, and ``history`` reports from here. Values of ``--set-env`` are never stored (they
may be secrets); only their names are.
"""

from __future__ import annotations

import getpass
import json
import socket
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS releases (
    id TEXT PRIMARY KEY, service TEXT NOT NULL, environment TEXT NOT NULL, image TEXT NOT NULL,
    user TEXT NOT NULL, host TEXT NOT NULL, started_at REAL NOT NULL, finished_at REAL,
    status TEXT NOT NULL, phase TEXT NOT NULL, reason TEXT NOT NULL DEFAULT '',
    stable_revision TEXT, canary_revision TEXT, tag TEXT NOT NULL, step INTEGER NOT NULL DEFAULT 0,
    options TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS releases_by_service ON releases (environment, service, started_at);
CREATE TABLE IF NOT EXISTS traffic (
    id INTEGER PRIMARY KEY AUTOINCREMENT, release_id TEXT, service TEXT NOT NULL, environment TEXT NOT NULL,
    at REAL NOT NULL, split TEXT NOT NULL, state TEXT NOT NULL, reason TEXT NOT NULL, confirmed_at REAL
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, release_id TEXT, service TEXT NOT NULL, environment TEXT NOT NULL,
    at REAL NOT NULL, kind TEXT NOT NULL, message TEXT NOT NULL, data TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS rollbacks (
    id INTEGER PRIMARY KEY AUTOINCREMENT, release_id TEXT, service TEXT NOT NULL, environment TEXT NOT NULL,
    at REAL NOT NULL, user TEXT NOT NULL, from_split TEXT NOT NULL, to_revision TEXT NOT NULL,
    reason TEXT NOT NULL, automatic INTEGER NOT NULL, seconds REAL
);
"""

IN_PROGRESS = "in_progress"
FINAL_STATUSES = ("promoted", "rolled_back", "held", "frozen", "failed", "aborted")


@dataclass
class Release:
    id: str
    service: str
    environment: str
    image: str
    user: str
    host: str
    started_at: float
    finished_at: float | None
    status: str
    phase: str
    reason: str
    stable_revision: str | None
    canary_revision: str | None
    tag: str
    step: int
    options: dict[str, Any]


@dataclass
class TrafficChange:
    id: int
    release_id: str | None
    at: float
    split: dict[str, int]
    state: str
    reason: str


def user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


class Ledger:
    def __init__(self, state_dir: Path):
        state_dir.mkdir(parents=True, exist_ok=True)
        self.path = state_dir / "ledger.db"
        # One short transaction per write; several ethixctl processes may share the file.
        self._db = sqlite3.connect(self.path, timeout=10, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # releases ---------------------------------------------------------------------------------------

    def create_release(
        self, service: str, environment: str, image: str, stable: str | None, options: dict[str, Any]
    ) -> Release:
        release_id = uuid.uuid4().hex[:6]
        with self._tx() as db:
            db.execute(
                "INSERT INTO releases (id, service, environment, image, user, host, started_at, status,"
                " phase, stable_revision, tag, options)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'deploying', ?, ?, ?)",
                (release_id, service, environment, image, user(), socket.gethostname(), time.time(),
                 IN_PROGRESS, stable, f"canary-{release_id}", json.dumps(options)),
            )  # fmt: skip
        return self.release(release_id)

    def release(self, release_id: str) -> Release:
        row = self._db.execute("SELECT * FROM releases WHERE id = ?", (release_id,)).fetchone()
        if row is None:
            raise KeyError(release_id)
        return _release(row)

    def update(self, release_id: str, **fields: Any) -> None:
        allowed = {"status", "phase", "reason", "canary_revision", "step", "finished_at"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"cannot update {sorted(unknown)}")
        if fields.get("status") in FINAL_STATUSES:
            fields.setdefault("finished_at", time.time())
        columns = ", ".join(f"{name} = ?" for name in fields)
        with self._tx() as db:
            db.execute(f"UPDATE releases SET {columns} WHERE id = ?", (*fields.values(), release_id))

    def finish_if_in_progress(self, release_id: str, status: str, reason: str) -> bool:
        """Atomically end a release unless something else ended it first (e.g. a manual rollback)."""
        with self._tx() as db:
            cursor = db.execute(
                "UPDATE releases SET status = ?, reason = ?, finished_at = ? WHERE id = ? AND status = ?",
                (status, reason, time.time(), release_id, IN_PROGRESS),
            )
        return cursor.rowcount == 1

    def in_progress(self, service: str, environment: str) -> Release | None:
        row = self._db.execute(
            "SELECT * FROM releases WHERE service = ? AND environment = ? AND status = ?"
            " ORDER BY started_at DESC LIMIT 1",
            (service, environment, IN_PROGRESS),
        ).fetchone()
        return _release(row) if row else None

    def releases(self, environment: str, service: str | None = None, since: float = 0) -> list[Release]:
        query = "SELECT * FROM releases WHERE environment = ? AND started_at >= ?"
        args: list[Any] = [environment, since]
        if service:
            query += " AND service = ?"
            args.append(service)
        return [_release(r) for r in self._db.execute(query + " ORDER BY started_at", args)]

    # traffic ----------------------------------------------------------------------------------------

    def intend_traffic(
        self,
        service: str,
        environment: str,
        split: dict[str, int],
        reason: str,
        release_id: str | None = None,
    ) -> int:
        """Record a split BEFORE applying it: an interrupted run never leaves a split nobody recorded."""
        with self._tx() as db:
            cursor = db.execute(
                "INSERT INTO traffic (release_id, service, environment, at, split, state, reason)"
                " VALUES (?, ?, ?, ?, ?, 'intended', ?)",
                (release_id, service, environment, time.time(), json.dumps(split), reason),
            )
        return int(cursor.lastrowid or 0)

    def confirm_traffic(self, change_id: int, state: str = "applied") -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE traffic SET state = ?, confirmed_at = ? WHERE id = ?", (state, time.time(), change_id)
            )

    def traffic(self, service: str, environment: str) -> list[TrafficChange]:
        rows = self._db.execute(
            "SELECT * FROM traffic WHERE service = ? AND environment = ? ORDER BY id", (service, environment)
        )
        return [
            TrafficChange(r["id"], r["release_id"], r["at"], json.loads(r["split"]), r["state"], r["reason"])
            for r in rows
        ]

    # events -----------------------------------------------------------------------------------------

    def event(
        self,
        service: str,
        environment: str,
        kind: str,
        message: str,
        data: dict[str, Any] | None = None,
        release_id: str | None = None,
    ) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO events (release_id, service, environment, at, kind, message, data)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    release_id,
                    service,
                    environment,
                    time.time(),
                    kind,
                    message,
                    json.dumps(data or {}, default=str),
                ),
            )

    def events(self, release_id: str, kind: str | None = None) -> list[dict[str, Any]]:
        query, args = "SELECT * FROM events WHERE release_id = ?", [release_id]
        if kind:
            query += " AND kind = ?"
            args.append(kind)
        return [
            {"at": r["at"], "kind": r["kind"], "message": r["message"], "data": json.loads(r["data"])}
            for r in self._db.execute(query + " ORDER BY id", args)
        ]

    # rollbacks --------------------------------------------------------------------------------------

    def record_rollback(
        self,
        service: str,
        environment: str,
        from_split: dict[str, int],
        to_revision: str,
        reason: str,
        *,
        automatic: bool,
        seconds: float | None = None,
        release_id: str | None = None,
    ) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO rollbacks (release_id, service, environment, at, user, from_split, to_revision,"
                " reason, automatic, seconds) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (release_id, service, environment, time.time(), user(), json.dumps(from_split), to_revision,
                 reason, int(automatic), seconds),
            )  # fmt: skip

    def rollbacks(
        self, environment: str, service: str | None = None, since: float = 0
    ) -> list[dict[str, Any]]:
        query = "SELECT * FROM rollbacks WHERE environment = ? AND at >= ?"
        args: list[Any] = [environment, since]
        if service:
            query += " AND service = ?"
            args.append(service)
        return [
            {**dict(r), "from_split": json.loads(r["from_split"]), "automatic": bool(r["automatic"])}
            for r in self._db.execute(query + " ORDER BY at", args)
        ]

    def good_revisions(self, service: str, environment: str) -> list[str]:
        """Revisions known good, oldest first: each release's stable revision (it was serving when the
        release began) and each promoted canary."""
        good: list[str] = []
        for release in self.releases(environment, service):
            if release.stable_revision:
                good.append(release.stable_revision)
            if release.status == "promoted" and release.canary_revision:
                good.append(release.canary_revision)
        return good

    def previous_good(self, service: str, environment: str, split: dict[str, int]) -> str | None:
        """The most recent good revision other than the one serving all traffic. When traffic is split
        (a frozen or interrupted release), that may be a revision still serving part of it."""
        current = next((revision for revision, percent in split.items() if percent == 100), None)
        return next((r for r in reversed(self.good_revisions(service, environment)) if r != current), None)

    def summary(self, environment: str, service: str | None, since: float, until: float) -> dict[str, Any]:
        """The quarterly review's numbers: release frequency and rollback rate over [since, until]."""
        releases = [r for r in self.releases(environment, service, since) if r.started_at <= until]
        finished = [r for r in releases if r.status != IN_PROGRESS]
        manual = [r for r in self.rollbacks(environment, service, since) if not r["automatic"]]
        rolled_back = sum(1 for r in finished if r.status == "rolled_back") + len(manual)
        weeks = max((until - since) / (7 * 86_400), 1 / 7)
        by_status: dict[str, int] = {}
        for release in releases:
            by_status[release.status] = by_status.get(release.status, 0) + 1
        return {
            "since": since,
            "until": until,
            "releases": len(releases),
            "by_status": by_status,
            "manual_rollbacks": len(manual),
            "rollback_rate": min(1.0, rolled_back / len(finished)) if finished else None,
            "releases_per_week": len(releases) / weeks,
        }


def _release(row: sqlite3.Row) -> Release:
    data = dict(row)
    data["options"] = json.loads(data["options"])
    return Release(**data)
