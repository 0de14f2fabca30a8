"""The ledger: SQLite in the environment's state dir, one record per long operation.

Everything a release, a rotation, a drill or a restore does is written here first: the operation
itself (who, when, what), every phase it enters and leaves, every traffic change (``intended`` before
it is applied, ``applied`` after), every gate verdict, rollback and notification. An interrupted
operation is resumed from here, ``rollback`` finds the previous good revision here, and ``history``
and the auditors read from here. Values that may be secrets (``--set-env`` values, secret payloads)
are never stored; only their names are.

Several ethixctl processes may share the file: WAL journal, one short ``BEGIN IMMEDIATE`` transaction
per write, ``synchronous=FULL`` so a confirmed write survives a power cut.
"""

from __future__ import annotations

import getpass
import json
import socket
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ethixctl.errors import UsageError
from ethixctl.ops import ids

IN_PROGRESS = "in_progress"

# Version 1 had one ``releases`` table keyed by 6-hex-character ids; version 2 generalises it.
SCHEMA_VERSION = 2
SCHEMA = """
CREATE TABLE IF NOT EXISTS operations (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, subject TEXT NOT NULL, environment TEXT NOT NULL,
    user TEXT NOT NULL, host TEXT NOT NULL, started_at REAL NOT NULL, finished_at REAL,
    status TEXT NOT NULL, phase TEXT NOT NULL, step INTEGER NOT NULL DEFAULT 0,
    reason TEXT NOT NULL DEFAULT '', details TEXT NOT NULL DEFAULT '{}',
    counters TEXT NOT NULL DEFAULT '{}', options TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS operations_by_subject ON operations (environment, kind, subject, started_at);
CREATE INDEX IF NOT EXISTS operations_by_time ON operations (environment, started_at);
CREATE INDEX IF NOT EXISTS operations_in_progress ON operations (kind, subject, environment)
    WHERE status = 'in_progress';
CREATE TABLE IF NOT EXISTS traffic (
    id INTEGER PRIMARY KEY AUTOINCREMENT, operation_id TEXT, service TEXT NOT NULL,
    environment TEXT NOT NULL, at REAL NOT NULL, split TEXT NOT NULL, state TEXT NOT NULL,
    reason TEXT NOT NULL, confirmed_at REAL
);
CREATE INDEX IF NOT EXISTS traffic_by_service ON traffic (environment, service, at);
CREATE INDEX IF NOT EXISTS traffic_by_operation ON traffic (operation_id, id);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, operation_id TEXT, subject TEXT NOT NULL,
    environment TEXT NOT NULL, at REAL NOT NULL, kind TEXT NOT NULL, message TEXT NOT NULL,
    data TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS events_by_operation ON events (operation_id, kind);
CREATE TABLE IF NOT EXISTS rollbacks (
    id INTEGER PRIMARY KEY AUTOINCREMENT, operation_id TEXT, service TEXT NOT NULL,
    environment TEXT NOT NULL, at REAL NOT NULL, user TEXT NOT NULL, from_split TEXT NOT NULL,
    to_revision TEXT NOT NULL, reason TEXT NOT NULL, automatic INTEGER NOT NULL, seconds REAL
);
CREATE INDEX IF NOT EXISTS rollbacks_by_service ON rollbacks (environment, service, at);
"""

# A version-1 ledger (releases table, release_id columns) becomes version 2 in one transaction.
MIGRATE_FROM_1 = """
INSERT INTO operations (id, kind, subject, environment, user, host, started_at, finished_at, status,
                        phase, step, reason, details, counters, options)
    SELECT id, 'release', service, environment, user, host, started_at, finished_at, status, phase,
           step, reason,
           json_object('image', image, 'stable_revision', stable_revision,
                       'canary_revision', canary_revision, 'tag', tag),
           '{}', options
    FROM releases;
DROP TABLE releases;
ALTER TABLE traffic RENAME COLUMN release_id TO operation_id;
ALTER TABLE events RENAME COLUMN release_id TO operation_id;
ALTER TABLE events RENAME COLUMN service TO subject;
ALTER TABLE rollbacks RENAME COLUMN release_id TO operation_id;
"""


@dataclass
class Operation:
    id: str
    kind: str
    subject: str
    environment: str
    user: str
    host: str
    started_at: float
    finished_at: float | None
    status: str
    phase: str
    step: int
    reason: str
    details: dict[str, Any] = field(default_factory=dict)
    counters: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def short_id(self) -> str:
        return self.id[: ids.SHORT]

    @property
    def in_progress(self) -> bool:
        return self.status == IN_PROGRESS

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class TrafficChange:
    id: int
    operation_id: str | None
    service: str
    at: float
    split: dict[str, int]
    state: str
    reason: str
    confirmed_at: float | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


class Ledger:
    def __init__(self, state_dir: Path):
        state_dir.mkdir(parents=True, exist_ok=True)
        self.path = state_dir / "ledger.db"
        self._db = sqlite3.connect(self.path, timeout=10, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._migrate()

    def _migrate(self) -> None:
        with self._tx() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version >= SCHEMA_VERSION:
                return
            legacy = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'releases'").fetchone()
            if legacy:
                # Create only what version 1 lacked, move the rows, then add the new indexes.
                db.execute(SCHEMA.split(";")[0])
                for statement in MIGRATE_FROM_1.split(";"):
                    if statement.strip():
                        db.execute(statement)
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

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

    # operations -------------------------------------------------------------------------------------

    def create_operation(
        self,
        kind: str,
        subject: str,
        environment: str,
        phase: str,
        *,
        details: dict[str, Any] | None = None,
        options: dict[str, Any] | None = None,
    ) -> Operation:
        operation_id = ids.new_id()
        with self._tx() as db:
            db.execute(
                "INSERT INTO operations (id, kind, subject, environment, user, host, started_at, status,"
                " phase, details, options) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (operation_id, kind, subject, environment, user(), socket.gethostname(), time.time(),
                 IN_PROGRESS, phase, json.dumps(details or {}), json.dumps(options or {})),
            )  # fmt: skip
        return self.operation(operation_id)

    def operation(self, operation_id: str) -> Operation:
        """By full id or any unambiguous prefix (case-insensitive); UsageError otherwise."""
        row = self._db.execute("SELECT * FROM operations WHERE id = ?", (operation_id,)).fetchone()
        if row is not None:
            return _operation(row)
        prefix = ids.normalise(operation_id)
        if not prefix:
            raise UsageError("an operation id cannot be empty")
        rows = self._db.execute(
            "SELECT * FROM operations WHERE id LIKE ? ESCAPE '\\' LIMIT 2",
            (prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%",),
        ).fetchall()
        if not rows:
            raise UsageError(f"no operation {operation_id!r} in the ledger", hint="see `ethixctl history`")
        if len(rows) > 1:
            raise UsageError(f"{operation_id!r} matches several operations: give more characters")
        return _operation(rows[0])

    def in_progress(self, kind: str, subject: str, environment: str) -> Operation | None:
        row = self._db.execute(
            "SELECT * FROM operations WHERE kind = ? AND subject = ? AND environment = ? AND status = ?"
            " ORDER BY started_at DESC LIMIT 1",
            (kind, subject, environment, IN_PROGRESS),
        ).fetchone()
        return _operation(row) if row else None

    def all_in_progress(self, environment: str) -> list[Operation]:
        rows = self._db.execute(
            "SELECT * FROM operations WHERE status = ? AND environment = ? ORDER BY started_at",
            (IN_PROGRESS, environment),
        )
        return [_operation(r) for r in rows]

    def operations(
        self, environment: str, kind: str | None = None, subject: str | None = None, since: float = 0.0,
        **order: Any,
    ) -> list[Operation]:  # fmt: skip
        """``iter_operations`` as a list (``newest_first``, ``limit`` as there)."""
        return list(self.iter_operations(environment, kind, subject, since, **order))

    def iter_operations(
        self,
        environment: str,
        kind: str | None = None,
        subject: str | None = None,
        since: float = 0.0,
        *,
        newest_first: bool = False,
        limit: int | None = None,
    ) -> Iterator[Operation]:
        """Streamed from the indexes: a caller that stops early (the newest good revision) reads little."""
        query = "SELECT * FROM operations WHERE environment = ? AND started_at >= ?"
        args: list[Any] = [environment, since]
        if kind:
            query += " AND kind = ?"
            args.append(kind)
        if subject:
            query += " AND subject = ?"
            args.append(subject)
        query += " ORDER BY started_at DESC, id DESC" if newest_first else " ORDER BY started_at, id"
        if limit is not None:
            query += " LIMIT ?"
            args.append(limit)
        for row in self._db.execute(query, args):
            yield _operation(row)

    def update(
        self,
        operation_id: str,
        *,
        phase: str | None = None,
        step: int | None = None,
        details: dict[str, Any] | None = None,
        counters: dict[str, Any] | None = None,
        reason: str | None = None,
    ) -> Operation:
        """Change an in-progress operation; ``details`` are merged into the stored ones."""
        with self._tx() as db:
            row = db.execute("SELECT * FROM operations WHERE id = ?", (operation_id,)).fetchone()
            if row is None:
                raise KeyError(operation_id)
            current = _operation(row)
            merged = {**current.details, **(details or {})}
            db.execute(
                "UPDATE operations SET phase = ?, step = ?, details = ?, counters = ?, reason = ?"
                " WHERE id = ?",
                (
                    current.phase if phase is None else phase,
                    current.step if step is None else step,
                    json.dumps(merged, default=str),
                    json.dumps(current.counters if counters is None else counters),
                    current.reason if reason is None else reason,
                    operation_id,
                ),
            )
        return self.operation(operation_id)

    def move(self, operation_id: str, source: str, target: str, status: str | None) -> bool:
        """Atomically move an in-progress operation from phase ``source`` to ``target`` (and end it
        with ``status`` when given); False when something else ended or moved it first."""
        with self._tx() as db:
            cursor = db.execute(
                "UPDATE operations SET phase = ?, status = coalesce(?, status),"
                " finished_at = CASE WHEN ? IS NULL THEN finished_at ELSE ? END"
                " WHERE id = ? AND status = ? AND phase = ?",
                (target, status, status, time.time(), operation_id, IN_PROGRESS, source),
            )
        return cursor.rowcount == 1

    def finish_if_in_progress(self, operation_id: str, status: str, reason: str) -> bool:
        """Atomically end an operation unless something else ended it first (e.g. a manual rollback)."""
        with self._tx() as db:
            cursor = db.execute(
                "UPDATE operations SET status = ?, reason = ?, finished_at = ? WHERE id = ? AND status = ?",
                (status, reason, time.time(), operation_id, IN_PROGRESS),
            )
        return cursor.rowcount == 1

    # events -----------------------------------------------------------------------------------------

    def event(self, op: Operation, kind: str, message: str, data: dict[str, Any] | None = None) -> None:
        self.record_event(op.subject, op.environment, kind, message, data, op.id)

    def record_event(
        self,
        subject: str,
        environment: str,
        kind: str,
        message: str,
        data: dict[str, Any] | None = None,
        operation_id: str | None = None,
    ) -> None:
        """An event, tied to an operation when there is one (a notification failure may not be)."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO events (operation_id, subject, environment, at, kind, message, data)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (operation_id, subject, environment, time.time(), kind, message,
                 json.dumps(data or {}, default=str)),
            )  # fmt: skip

    def events(self, operation_id: str, kind: str | None = None) -> list[dict[str, Any]]:
        query, args = "SELECT * FROM events WHERE operation_id = ?", [operation_id]
        if kind:
            query += " AND kind = ?"
            args.append(kind)
        return [
            {"at": r["at"], "kind": r["kind"], "message": r["message"], "data": json.loads(r["data"])}
            for r in self._db.execute(query + " ORDER BY id", args)
        ]

    # traffic ----------------------------------------------------------------------------------------

    def intend_traffic(
        self,
        service: str,
        environment: str,
        split: dict[str, int],
        reason: str,
        operation_id: str | None = None,
    ) -> int:
        """Record a split BEFORE applying it: an interrupted run never leaves a split nobody recorded."""
        with self._tx() as db:
            cursor = db.execute(
                "INSERT INTO traffic (operation_id, service, environment, at, split, state, reason)"
                " VALUES (?, ?, ?, ?, ?, 'intended', ?)",
                (operation_id, service, environment, time.time(), json.dumps(split), reason),
            )
        return int(cursor.lastrowid or 0)

    def confirm_traffic(self, change_id: int, state: str = "applied") -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE traffic SET state = ?, confirmed_at = ? WHERE id = ?", (state, time.time(), change_id)
            )

    def last_traffic(self, operation_id: str) -> TrafficChange | None:
        row = self._db.execute(
            "SELECT * FROM traffic WHERE operation_id = ? ORDER BY id DESC LIMIT 1", (operation_id,)
        ).fetchone()
        return _traffic(row) if row else None

    def traffic(
        self, environment: str, service: str | None = None, since: float = 0.0
    ) -> list[TrafficChange]:
        query = "SELECT * FROM traffic WHERE environment = ? AND at >= ?"
        args: list[Any] = [environment, since]
        if service:
            query += " AND service = ?"
            args.append(service)
        return [_traffic(r) for r in self._db.execute(query + " ORDER BY id", args)]

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
        operation_id: str | None = None,
    ) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO rollbacks (operation_id, service, environment, at, user, from_split,"
                " to_revision, reason, automatic, seconds) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (operation_id, service, environment, time.time(), user(), json.dumps(from_split),
                 to_revision, reason, int(automatic), seconds),
            )  # fmt: skip

    def rollbacks(
        self, environment: str, service: str | None = None, since: float = 0.0
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


def _traffic(row: sqlite3.Row) -> TrafficChange:
    return TrafficChange(
        row["id"], row["operation_id"], row["service"], row["at"], json.loads(row["split"]), row["state"],
        row["reason"], row["confirmed_at"],
    )  # fmt: skip


def _operation(row: sqlite3.Row) -> Operation:
    data = dict(row)
    for column in ("details", "counters", "options"):
        data[column] = json.loads(data[column])
    return Operation(**data)
