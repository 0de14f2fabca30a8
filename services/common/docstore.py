"""A small document-store layer: MongoDB (pymongo) in production, SQLite in WAL mode as the embedded default.

Only the operations the services need exist, with MongoDB semantics, so the same code runs on both:
``insert_one``/``insert_many``, ``find_one``, ``find(filter, sort, limit, after)`` (``after``: keyset
pagination), ``update_one`` with ``$set``/``$inc``, ``delete_one``/``delete_many``, ``count``, and
indexes: ``create_index(Index)`` / ``indexes()`` (``ensure_indexes`` creates a declared set at startup).
Filters are equality matches on (dotted) fields, plus ``{"field": {"$in": [...]}}``. Documents are JSON
values; ``_id`` is a string.

The SQLite backend is safe for several processes (several revisions) at once: WAL journal, a busy
timeout, and every read-modify-write in a ``BEGIN IMMEDIATE`` transaction, so concurrent ``$inc`` lose
nothing. Indexes are real SQLite (unique) indexes on the very ``json_extract`` expressions the queries
use, so the planner picks them (``EXPLAIN QUERY PLAN`` shows it); on MongoDB they are ``create_index``.

Besides collections, a store holds **expiring counters** (:meth:`DocStore.counters`): rate limits and
failed-login throttling keep them there, so every process and revision sees the same counts. On MongoDB a
counter is a document with an ``expire_at`` date under a TTL index; on SQLite a row whose expired values
read as absent and are purged by later writes. Counters are short-lived state: snapshots leave them out.

Snapshots (:func:`dump` / :func:`restore`) use the mongodump directory format, so they interoperate with
``mongodump``/``mongorestore``; :func:`consistent_read` gives every collection as of one point in time.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import sqlite3
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from pymongo import MongoClient

Document = dict[str, Any]
Filter = Mapping[str, Any]
Sort = Sequence[tuple[str, int]]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
DEFAULT_DB = "ethix"
# MongoDB collections holding expiring counters (DocStore.counters), never a collection of documents.
COUNTERS_PREFIX = "counters_"
# Documents per insert_many round trip to MongoDB.
_INSERT_BATCH = 1000


class DocStoreError(Exception):
    """The store could not do what was asked (bad filter, unreachable database, ...)."""


class DuplicateKeyError(DocStoreError):
    """An insert or update would break a unique index."""


def new_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class Index:
    """A (compound) index: ``keys`` is ``((field, 1 | -1), ...)``, in MongoDB's order and meaning."""

    keys: tuple[tuple[str, int], ...]
    unique: bool = False

    def __post_init__(self) -> None:
        if not self.keys:
            raise DocStoreError("an index needs at least one key")
        for field, direction in self.keys:
            _check_field(field)
            if direction not in (1, -1):
                raise DocStoreError(f"index direction for {field!r} must be 1 or -1, not {direction!r}")

    @classmethod
    def on(cls, *fields: str, unique: bool = False) -> Index:
        """Ascending on each field: ``Index.on("owner_id", "created_at", "_id")``."""
        return cls(tuple((field, 1) for field in fields), unique)

    @property
    def name(self) -> str:
        """MongoDB's default index name (``owner_id_1_created_at_1``)."""
        return "_".join(f"{field}_{direction}" for field, direction in self.keys)

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(field for field, _ in self.keys)


def ensure_indexes(store: DocStore, declared: Mapping[str, Iterable[Index]]) -> None:
    """Create every declared index that is missing (idempotent; run at each startup)."""
    for collection, indexes in declared.items():
        coll = store.collection(collection)
        for index in indexes:
            coll.create_index(index)


class Collection(ABC):
    name: str

    @abstractmethod
    def insert_one(self, doc: Document) -> str:
        """Insert a copy of ``doc`` (an ``_id`` is generated when missing); returns the ``_id``."""

    def insert_many(self, docs: Iterable[Document]) -> int:
        """Insert copies of ``docs``, streamed (restores pass millions); returns how many. SQLite does it
        in one transaction, MongoDB in batches of ``insert_many``."""
        return sum(1 for doc in docs if self.insert_one(doc))

    @abstractmethod
    def find_one(self, filter: Filter) -> Document | None: ...

    @abstractmethod
    def find(
        self, filter: Filter, sort: Sort = (), limit: int = 0, after: Sequence[Any] | None = None
    ) -> list[Document]:
        """Matching documents; ``sort`` is ``[(field, 1 | -1), ...]``; ``limit`` 0 means all.

        ``after`` (keyset pagination) holds the ``sort`` fields' values of the last document already
        seen: only documents strictly after it in ``sort`` order come back. Every sort key must go the
        same direction, and the last should be unique (``_id``) so no two documents tie.
        """

    @abstractmethod
    def update_one(self, filter: Filter, update: Mapping[str, Mapping[str, Any]]) -> int:
        """Apply ``{"$set": {...}, "$inc": {...}}`` to the first match; returns how many matched (0 or 1)."""

    @abstractmethod
    def delete_one(self, filter: Filter) -> int: ...

    @abstractmethod
    def delete_many(self, filter: Filter) -> int: ...

    @abstractmethod
    def count(self, filter: Filter) -> int: ...

    @abstractmethod
    def create_index(self, index: Index) -> None:
        """Create ``index`` unless it exists; :class:`DuplicateKeyError` when unique and existing documents
        already break it."""

    @abstractmethod
    def indexes(self) -> list[Index]:
        """Every index besides the one on ``_id``, sorted by name."""

    def create_unique_index(self, field: str) -> None:
        self.create_index(Index.on(field, unique=True))

    def unique_indexes(self) -> list[str]:
        """Fields with a single-field unique index (besides ``_id``)."""
        return sorted(index.fields[0] for index in self.indexes() if index.unique and len(index.keys) == 1)


@dataclass(frozen=True)
class Counter:
    value: int
    expires_at: float  # epoch seconds
    updated_at: float  # epoch seconds of the last increment


class Counters(ABC):
    """Integer counters that expire, keyed by string, shared by every process on the same store."""

    @abstractmethod
    def incr(self, key: str, amount: int, ttl_seconds: float, *, extend: bool = False) -> Counter:
        """Add ``amount`` atomically. An absent or expired counter starts at ``amount`` and expires
        ``ttl_seconds`` from now; ``extend`` also pushes a live counter's expiry that far."""

    @abstractmethod
    def get(self, key: str) -> Counter | None:
        """The live counter, or None when absent or expired."""

    @abstractmethod
    def clear(self, key: str) -> None: ...

    @abstractmethod
    def clear_all(self) -> int:
        """Remove every counter; returns how many there were."""


def _check_ttl(amount: int, ttl_seconds: float) -> None:
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise DocStoreError("counter increments must be integers")
    if ttl_seconds <= 0:
        raise DocStoreError("counter ttl must be positive")


class DocStore(ABC):
    db_name: str

    @abstractmethod
    def collection(self, name: str) -> Collection: ...

    @abstractmethod
    def counters(self, name: str) -> Counters: ...

    @abstractmethod
    def collection_names(self) -> list[str]: ...

    @abstractmethod
    def ping(self) -> None:
        """A quick round trip; raises :class:`DocStoreError` when the store does not answer."""

    @abstractmethod
    def close(self) -> None: ...

    def __getitem__(self, name: str) -> Collection:
        return self.collection(name)


def _check_name(name: str) -> str:
    if not _NAME.match(name):
        raise DocStoreError(f"invalid collection name {name!r}")
    return name


def _check_field(field: str) -> str:
    if not _FIELD.match(field):
        raise DocStoreError(f"invalid field name {field!r}")
    return field


def _check_update(update: Mapping[str, Mapping[str, Any]]) -> None:
    unknown = set(update) - {"$set", "$inc"}
    if unknown:
        raise DocStoreError(f"unsupported update operators: {sorted(unknown)}")
    for op, fields in update.items():
        for field, value in fields.items():
            if _check_field(field) == "_id":
                raise DocStoreError("_id cannot be updated")
            if op == "$inc" and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise DocStoreError(f"$inc needs a number for {field!r}")


# --- SQLite ------------------------------------------------------------------------------------------

# Collections are tables named c_<collection>.
_SQLITE_TABLES = "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'c\\_%' ESCAPE '\\'"


def _json_path(field: str) -> str:
    return "$." + ".".join(f'"{part}"' for part in _check_field(field).split("."))


def _expr(field: str) -> str:
    """The SQL for a field; filters, sorts and indexes use this same text, so indexes match queries."""
    return "id" if field == "_id" else f"json_extract(doc, '{_json_path(field)}')"


_INDEX_COLUMN = re.compile(
    r"""(?:json_extract\(doc, '\$\.((?:"[A-Za-z0-9_]+"\.?)+)'\)|\bid\b)( ASC| DESC)?"""
)


def _after(sort: Sort, after: Sequence[Any]) -> tuple[str, list[Any]]:
    """The keyset condition "strictly after ``after`` in ``sort`` order".

    The row-value comparison is exact, but SQLite does not use it to seek an expression index; the
    redundant bound on the first key does, so a page starts at the cursor instead of scanning past
    the pages before it.
    """
    directions = {direction < 0 for _, direction in sort}
    if not sort or len(after) != len(sort) or len(directions) != 1:
        raise DocStoreError("'after' needs one value per sort key, and every sort key in one direction")
    descending = directions.pop()
    columns = ", ".join(_expr(field) for field, _ in sort)
    marks = ", ".join("?" for _ in sort)
    values = [_sql_value(v) for v in after]
    seek = f"{_expr(sort[0][0])} {'<=' if descending else '>='} ?"
    return f"{seek} AND ({columns}) {'<' if descending else '>'} ({marks})", [values[0], *values]


def _sql_value(value: Any) -> Any:
    # json_extract yields 1/0 for JSON booleans and TEXT for strings; bind the same representation.
    if isinstance(value, bool):
        return int(value)
    if value is None or isinstance(value, int | float | str):
        return value
    raise DocStoreError(f"unsupported filter value {value!r}: use strings, numbers, booleans or null")


def _where(filter: Filter) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    for field, cond in filter.items():
        expr = _expr(field)
        if isinstance(cond, Mapping):
            if set(cond) != {"$in"} or not isinstance(cond["$in"], list | tuple):
                raise DocStoreError(f"unsupported condition on {field!r}: only equality and $in")
            values = [_sql_value(v) for v in cond["$in"]]
            if not values:
                clauses.append("0")
                continue
            clauses.append(f"{expr} IN ({', '.join('?' for _ in values)})")
            params.extend(values)
        elif cond is None:
            clauses.append(f"{expr} IS NULL")
        else:
            clauses.append(f"{expr} = ?")
            params.append(_sql_value(cond))
    return (" AND ".join(clauses) or "1"), params


def _set_path(doc: Document, field: str, value: Any) -> None:
    *parents, leaf = field.split(".")
    target = doc
    for part in parents:
        target = target.setdefault(part, {})
    target[leaf] = value


def _get_path(doc: Document, field: str) -> Any:
    value: Any = doc
    for part in field.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


class SqliteCollection(Collection):
    def __init__(self, store: SqliteStore, name: str):
        self.store = store
        self.name = _check_name(name)
        self.table = f'"c_{name}"'

    def _ensure(self, conn: sqlite3.Connection) -> None:
        if self.name not in self.store._known_tables:
            conn.execute(f"CREATE TABLE IF NOT EXISTS {self.table} (id TEXT PRIMARY KEY, doc TEXT NOT NULL)")
            self.store._known_tables.add(self.name)

    def insert_one(self, doc: Document) -> str:
        stored = dict(doc)
        stored.setdefault("_id", new_id())
        if not isinstance(stored["_id"], str):
            raise DocStoreError("_id must be a string")
        with self.store._write() as conn:
            self._ensure(conn)
            try:
                conn.execute(
                    f"INSERT INTO {self.table} (id, doc) VALUES (?, ?)",
                    (stored["_id"], json.dumps(stored)),
                )
            except sqlite3.IntegrityError as exc:
                raise DuplicateKeyError(f"duplicate key in {self.name}: {exc}") from None
        return str(stored["_id"])

    def find_one(self, filter: Filter) -> Document | None:
        found = self.find(filter, limit=1)
        return found[0] if found else None

    def insert_many(self, docs: Iterable[Document]) -> int:
        inserted = 0

        def rows() -> Iterator[tuple[str, str]]:
            nonlocal inserted
            for doc in docs:
                stored = dict(doc)
                stored.setdefault("_id", new_id())
                if not isinstance(stored["_id"], str):
                    raise DocStoreError(f"{self.name}: the SQLite store needs string _id values")
                try:
                    row = stored["_id"], json.dumps(stored)
                except TypeError as exc:
                    raise DocStoreError(f"{self.name}: a document holds a non-JSON value ({exc})") from None
                inserted += 1
                yield row

        with self.store._write() as conn:
            self._ensure(conn)
            try:
                conn.executemany(f"INSERT INTO {self.table} (id, doc) VALUES (?, ?)", rows())
            except sqlite3.IntegrityError as exc:
                raise DuplicateKeyError(f"duplicate key in {self.name}: {exc}") from None
        return inserted

    def find(
        self, filter: Filter, sort: Sort = (), limit: int = 0, after: Sequence[Any] | None = None
    ) -> list[Document]:
        where, params = self.query(filter, sort, after)
        order = ", ".join(f"{_expr(f)} {'DESC' if d < 0 else 'ASC'}" for f, d in sort)
        sql = f"SELECT doc FROM {self.table} WHERE {where}"
        if order:
            sql += f" ORDER BY {order}"
        if limit:
            sql += f" LIMIT {int(limit)}"
        conn = self.store._conn()
        self._ensure(conn)
        return [json.loads(row[0]) for row in conn.execute(sql, params)]

    @staticmethod
    def query(filter: Filter, sort: Sort = (), after: Sequence[Any] | None = None) -> tuple[str, list[Any]]:
        """The WHERE clause and its parameters for ``find``."""
        where, params = _where(filter)
        if after is not None:
            keyset, values = _after(sort, after)
            where, params = f"{where} AND {keyset}", [*params, *values]
        return where, params

    def explain(
        self, filter: Filter, sort: Sort = (), limit: int = 0, after: Sequence[Any] | None = None
    ) -> list[str]:
        """SQLite's ``EXPLAIN QUERY PLAN`` of ``find``: one line per step (shows which index it uses)."""
        where, params = self.query(filter, sort, after)
        order = ", ".join(f"{_expr(f)} {'DESC' if d < 0 else 'ASC'}" for f, d in sort)
        sql = f"SELECT doc FROM {self.table} WHERE {where}" + (f" ORDER BY {order}" if order else "")
        sql += f" LIMIT {int(limit)}" if limit else ""
        conn = self.store._conn()
        self._ensure(conn)
        return [str(row[3]) for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params)]

    def update_one(self, filter: Filter, update: Mapping[str, Mapping[str, Any]]) -> int:
        _check_update(update)
        where, params = _where(filter)
        with self.store._write() as conn:
            self._ensure(conn)
            row = conn.execute(f"SELECT id, doc FROM {self.table} WHERE {where} LIMIT 1", params).fetchone()
            if row is None:
                return 0
            doc = json.loads(row[1])
            for field, value in update.get("$set", {}).items():
                _set_path(doc, field, value)
            for field, value in update.get("$inc", {}).items():
                current = _get_path(doc, field)
                if current is not None and (
                    isinstance(current, bool) or not isinstance(current, int | float)
                ):
                    raise DocStoreError(f"cannot $inc non-numeric field {field!r}")
                _set_path(doc, field, (current or 0) + value)
            try:
                conn.execute(f"UPDATE {self.table} SET doc = ? WHERE id = ?", (json.dumps(doc), row[0]))
            except sqlite3.IntegrityError as exc:
                raise DuplicateKeyError(f"duplicate key in {self.name}: {exc}") from None
            return 1

    def delete_one(self, filter: Filter) -> int:
        where, params = _where(filter)
        with self.store._write() as conn:
            self._ensure(conn)
            cursor = conn.execute(
                f"DELETE FROM {self.table} WHERE id IN (SELECT id FROM {self.table} WHERE {where} LIMIT 1)",
                params,
            )
            return cursor.rowcount

    def delete_many(self, filter: Filter) -> int:
        where, params = _where(filter)
        with self.store._write() as conn:
            self._ensure(conn)
            return conn.execute(f"DELETE FROM {self.table} WHERE {where}", params).rowcount

    def count(self, filter: Filter) -> int:
        where, params = _where(filter)
        conn = self.store._conn()
        self._ensure(conn)
        return int(conn.execute(f"SELECT COUNT(*) FROM {self.table} WHERE {where}", params).fetchone()[0])

    def _index_name(self, index: Index) -> str:
        if index.unique and len(index.keys) == 1:
            # The name unique indexes have always had here, so existing databases keep theirs.
            return f'"ux_{self.name}_{index.fields[0].replace(".", "_")}"'
        return f'"{"ux" if index.unique else "ix"}_{self.name}_{index.name.replace(".", "_")}"'

    def create_index(self, index: Index) -> None:
        columns = ", ".join(f"{_expr(field)} {'DESC' if d < 0 else 'ASC'}" for field, d in index.keys)
        unique = "UNIQUE " if index.unique else ""
        with self.store._write() as conn:
            self._ensure(conn)
            try:
                name = self._index_name(index)
                conn.execute(f"CREATE {unique}INDEX IF NOT EXISTS {name} ON {self.table} ({columns})")
            except sqlite3.IntegrityError as exc:
                raise DuplicateKeyError(
                    f"existing documents in {self.name} break unique {index.name}: {exc}"
                ) from None

    def indexes(self) -> list[Index]:
        return _sqlite_indexes(self.store._conn(), self.name)


def _sqlite_indexes(conn: sqlite3.Connection, name: str) -> list[Index]:
    """The indexes of collection ``name``, read back from ``sqlite_master`` on ``conn``, sorted by name."""
    rows = conn.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL",
        (f"c_{name}",),
    ).fetchall()
    found = []
    for (sql,) in rows:
        columns = sql[sql.index("(", sql.index(" ON ")) + 1 : sql.rindex(")")]
        keys = tuple(
            (
                "_id" if path is None or not path else path.replace('"', ""),
                -1 if direction == " DESC" else 1,
            )
            for path, direction in (
                (match.group(1), match.group(2)) for match in _INDEX_COLUMN.finditer(columns)
            )
        )
        if keys:
            found.append(Index(keys, unique=sql.upper().startswith("CREATE UNIQUE")))
    return sorted(found, key=lambda index: index.name)


class SqliteCounters(Counters):
    # How often one process sweeps expired rows; reads ignore them meanwhile.
    PURGE_INTERVAL_SECONDS = 60.0

    def __init__(self, store: SqliteStore, name: str):
        self.store = store
        self.name = _check_name(name)
        self.table = f'"k_{name}"'
        self._next_purge = 0.0

    def _ensure(self, conn: sqlite3.Connection) -> None:
        if f"counters:{self.name}" not in self.store._known_tables:
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self.table} "
                "(key TEXT PRIMARY KEY, value INTEGER NOT NULL,"
                " expires_at REAL NOT NULL, updated_at REAL NOT NULL)"
            )
            self.store._known_tables.add(f"counters:{self.name}")

    def incr(self, key: str, amount: int, ttl_seconds: float, *, extend: bool = False) -> Counter:
        _check_ttl(amount, ttl_seconds)
        now = time.time()
        with self.store._write() as conn:
            self._ensure(conn)
            if now >= self._next_purge:
                conn.execute(f"DELETE FROM {self.table} WHERE expires_at <= ?", (now,))
                self._next_purge = now + self.PURGE_INTERVAL_SECONDS
            row = conn.execute(
                f"INSERT INTO {self.table} (key, value, expires_at, updated_at) "
                "VALUES (:key, :amount, :expiry, :now) "
                "ON CONFLICT(key) DO UPDATE SET "
                "value = CASE WHEN expires_at <= :now THEN :amount ELSE value + :amount END, "
                "expires_at = CASE WHEN expires_at <= :now THEN :expiry "
                "WHEN :extend THEN max(expires_at, :expiry) ELSE expires_at END, "
                "updated_at = :now "
                "RETURNING value, expires_at, updated_at",
                {
                    "key": key,
                    "amount": amount,
                    "now": now,
                    "expiry": now + ttl_seconds,
                    "extend": int(extend),
                },
            ).fetchone()
        return Counter(int(row[0]), float(row[1]), float(row[2]))

    def get(self, key: str) -> Counter | None:
        conn = self.store._conn()
        self._ensure(conn)
        row = conn.execute(
            f"SELECT value, expires_at, updated_at FROM {self.table} WHERE key = ? AND expires_at > ?",
            (key, time.time()),
        ).fetchone()
        return Counter(int(row[0]), float(row[1]), float(row[2])) if row else None

    def clear(self, key: str) -> None:
        with self.store._write() as conn:
            self._ensure(conn)
            conn.execute(f"DELETE FROM {self.table} WHERE key = ?", (key,))

    def clear_all(self) -> int:
        with self.store._write() as conn:
            self._ensure(conn)
            return conn.execute(f"DELETE FROM {self.table}").rowcount


class _WriteTx:
    """``BEGIN IMMEDIATE`` … ``COMMIT``: takes the write lock up front so read-modify-write is atomic."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")


class SqliteStore(DocStore):
    def __init__(self, path: str | Path, *, db_name: str = DEFAULT_DB, busy_timeout_ms: int = 10_000):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db_name = db_name
        self.busy_timeout_ms = busy_timeout_ms
        self._local = threading.local()
        self._known_tables: set[str] = set()
        self._counters: dict[str, SqliteCounters] = {}
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._conn()

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves, so reads never hold a stale snapshot.
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def _write(self) -> _WriteTx:
        return _WriteTx(self._conn())

    def collection(self, name: str) -> SqliteCollection:
        return SqliteCollection(self, name)

    def counters(self, name: str) -> SqliteCounters:
        with self._lock:
            return self._counters.setdefault(name, SqliteCounters(self, name))

    def collection_names(self) -> list[str]:
        return sorted(row[0][2:] for row in self._conn().execute(_SQLITE_TABLES))

    def ping(self) -> None:
        try:
            self._conn().execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.Error as exc:
            raise DocStoreError(f"sqlite {self.path}: {exc}") from None

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()


# --- MongoDB -----------------------------------------------------------------------------------------


class MongoCollection(Collection):
    def __init__(self, raw: Any, name: str):
        self.raw = raw
        self.name = name

    def _dup(self, exc: Exception) -> DuplicateKeyError:
        return DuplicateKeyError(f"duplicate key in {self.name}: {getattr(exc, 'details', None) or exc}")

    def insert_one(self, doc: Document) -> str:
        from pymongo.errors import DuplicateKeyError as MongoDuplicate

        stored = dict(doc)
        stored.setdefault("_id", new_id())
        try:
            self.raw.insert_one(stored)
        except MongoDuplicate as exc:
            raise self._dup(exc) from None
        return str(stored["_id"])

    def find_one(self, filter: Filter) -> Document | None:
        found: Document | None = self.raw.find_one(dict(filter))
        return found

    def insert_many(self, docs: Iterable[Document]) -> int:
        from pymongo.errors import BulkWriteError

        inserted = 0
        batch: list[Document] = []
        try:
            for doc in docs:
                batch.append({**doc, "_id": doc.get("_id") or new_id()})
                if len(batch) == _INSERT_BATCH:
                    self.raw.insert_many(batch)
                    inserted, batch = inserted + len(batch), []
            if batch:
                self.raw.insert_many(batch)
                inserted += len(batch)
        except BulkWriteError as exc:
            raise self._dup(exc) from None
        return inserted

    def find(
        self, filter: Filter, sort: Sort = (), limit: int = 0, after: Sequence[Any] | None = None
    ) -> list[Document]:
        query = dict(filter)
        if after is not None:
            query = {"$and": [query, _mongo_after(sort, after)]}
        cursor = self.raw.find(query)
        if sort:
            cursor = cursor.sort([(f, 1 if d >= 0 else -1) for f, d in sort])
        if limit:
            cursor = cursor.limit(limit)
        return list(cursor)

    def update_one(self, filter: Filter, update: Mapping[str, Mapping[str, Any]]) -> int:
        from pymongo.errors import DuplicateKeyError as MongoDuplicate

        _check_update(update)
        try:
            return int(
                self.raw.update_one(dict(filter), {k: dict(v) for k, v in update.items()}).matched_count
            )
        except MongoDuplicate as exc:
            raise self._dup(exc) from None

    def delete_one(self, filter: Filter) -> int:
        return int(self.raw.delete_one(dict(filter)).deleted_count)

    def delete_many(self, filter: Filter) -> int:
        return int(self.raw.delete_many(dict(filter)).deleted_count)

    def count(self, filter: Filter) -> int:
        return int(self.raw.count_documents(dict(filter)))

    def create_index(self, index: Index) -> None:
        from pymongo.errors import DuplicateKeyError as MongoDuplicate

        try:
            self.raw.create_index(list(index.keys), unique=index.unique, name=index.name)
        except MongoDuplicate as exc:
            raise self._dup(exc) from None

    def indexes(self) -> list[Index]:
        return _mongo_indexes(self.raw.index_information())


def _mongo_indexes(info: Mapping[str, Any]) -> list[Index]:
    """Every index but ``_id_`` from pymongo's ``index_information()``, sorted by name."""
    found = [
        Index(tuple((field, int(direction)) for field, direction in spec["key"]), bool(spec.get("unique")))
        for name, spec in info.items()
        if name != "_id_"
    ]
    return sorted(found, key=lambda index: index.name)


def _mongo_after(sort: Sort, after: Sequence[Any]) -> dict[str, Any]:
    """``(k1, k2, ...) > (v1, v2, ...)`` spelled out for MongoDB: k1 > v1, or k1 = v1 and k2 > v2, ..."""
    directions = {direction < 0 for _, direction in sort}
    if not sort or len(after) != len(sort) or len(directions) != 1:
        raise DocStoreError("'after' needs one value per sort key, and every sort key in one direction")
    op = "$lt" if directions.pop() else "$gt"
    fields = [field for field, _ in sort]
    return {
        "$or": [
            {**{fields[j]: after[j] for j in range(i)}, fields[i]: {op: after[i]}} for i in range(len(fields))
        ]
    }


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _epoch(value: datetime) -> float:
    # pymongo returns naive datetimes in UTC unless the client is tz_aware.
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


class MongoCounters(Counters):
    """One document per key; a TTL index on ``expire_at`` lets the server delete expired ones."""

    _ATTEMPTS = 5

    def __init__(self, raw: Any, name: str):
        self.raw = raw
        self.name = name
        raw.create_index([("expire_at", 1)], expireAfterSeconds=0, name="expire_at_ttl")

    @staticmethod
    def _counter(doc: Mapping[str, Any]) -> Counter:
        return Counter(int(doc["value"]), _epoch(doc["expire_at"]), float(doc["updated_at"]))

    def incr(self, key: str, amount: int, ttl_seconds: float, *, extend: bool = False) -> Counter:
        from pymongo import ReturnDocument
        from pymongo.errors import DuplicateKeyError as MongoDuplicate

        _check_ttl(amount, ttl_seconds)
        # Each step is one atomic server-side update; a lost race (the counter expired or appeared in
        # between) falls through to the next step, and an insert that loses to another one retries.
        for _ in range(self._ATTEMPTS):
            now = time.time()
            expiry = _utc(now + ttl_seconds)
            update: dict[str, Any] = {"$inc": {"value": amount}, "$set": {"updated_at": now}}
            if extend:
                update["$max"] = {"expire_at": expiry}
            live = self.raw.find_one_and_update(
                {"_id": key, "expire_at": {"$gt": _utc(now)}}, update, return_document=ReturnDocument.AFTER
            )
            if live is not None:
                return self._counter(live)
            fresh = {"value": amount, "expire_at": expiry, "updated_at": now}
            renewed = self.raw.find_one_and_update(
                {"_id": key, "expire_at": {"$lte": _utc(now)}},
                {"$set": fresh},
                return_document=ReturnDocument.AFTER,
            )
            if renewed is not None:
                return self._counter(renewed)
            try:
                self.raw.insert_one({"_id": key, **fresh})
            except MongoDuplicate:
                continue
            return Counter(amount, now + ttl_seconds, now)
        raise DocStoreError(f"counter {self.name}: too much contention on one key")

    def get(self, key: str) -> Counter | None:
        doc = self.raw.find_one({"_id": key, "expire_at": {"$gt": _utc(time.time())}})
        return self._counter(doc) if doc else None

    def clear(self, key: str) -> None:
        self.raw.delete_one({"_id": key})

    def clear_all(self) -> int:
        return int(self.raw.delete_many({}).deleted_count)


def _mongo_collection_names(names: Iterable[str]) -> list[str]:
    """The collections among MongoDB's ``names``: the expiring counters' ``counters_*`` are not."""
    return sorted(name for name in names if not name.startswith(COUNTERS_PREFIX))


class MongoStore(DocStore):
    """MongoDB through pymongo. ``client`` may be any pymongo-compatible client (tests pass mongomock's)."""

    def __init__(self, client: MongoClient[Document] | Any, db_name: str = DEFAULT_DB):
        self.client = client
        self.db_name = db_name
        self.db = client[db_name]
        self._counters: dict[str, MongoCounters] = {}
        self._lock = threading.Lock()

    def collection(self, name: str) -> MongoCollection:
        return MongoCollection(self.db[_check_name(name)], name)

    def counters(self, name: str) -> MongoCounters:
        # Cached: creating one makes sure of its TTL index, a round trip worth doing once per process.
        with self._lock:
            if name not in self._counters:
                self._counters[name] = MongoCounters(self.db[f"{COUNTERS_PREFIX}{_check_name(name)}"], name)
            return self._counters[name]

    def collection_names(self) -> list[str]:
        return _mongo_collection_names(self.db.list_collection_names())

    def ping(self) -> None:
        from pymongo.errors import PyMongoError

        try:
            self.db.command("ping")
        except PyMongoError as exc:
            raise DocStoreError(f"mongodb: {type(exc).__name__}") from None

    def close(self) -> None:
        self.client.close()


def open_store(url: str) -> DocStore:
    """``sqlite:///abs/path.db``, ``mongodb://…`` or ``mongodb+srv://…`` (database from the URL path)."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        if not parts.path or parts.path == "/":
            raise DocStoreError("sqlite URL needs a file path: sqlite:///abs/path.db")
        return SqliteStore(parts.path)
    if parts.scheme in ("mongodb", "mongodb+srv"):
        from pymongo import MongoClient

        db_name = parts.path.lstrip("/") or DEFAULT_DB
        client: MongoClient[Document] = MongoClient(url, serverSelectionTimeoutMS=5000, connectTimeoutMS=5000)
        return MongoStore(client, db_name)
    # Never echo the URL: a mongodb URL may carry a password.
    raise DocStoreError(
        f"unsupported database URL scheme {parts.scheme!r}: use sqlite:// or mongodb(+srv)://"
    )


# --- Snapshots (mongodump directory format) ----------------------------------------------------------

# mongorestore --gzip only reads files with these suffixes; without --gzip, the plain ones.
DUMP_SUFFIXES = {False: (".bson", ".metadata.json"), True: (".bson.gz", ".metadata.json.gz")}


@dataclass
class CollectionView:
    """One collection as a consistent read sees it; ``documents`` stream in ``_id`` order, ``_id`` first."""

    name: str
    indexes: list[Index]
    documents: Iterator[Document]


@dataclass
class DumpedCollection:
    count: int
    sha256: str  # over the BSON documents in _id order: the uncompressed .bson file
    indexes: list[dict[str, Any]]
    bson_bytes: int


def index_specs(indexes: Sequence[Index]) -> list[dict[str, Any]]:
    """The ``indexes`` of a ``.metadata.json``, as ``listIndexes`` reports them (``_id_`` first)."""
    specs: list[dict[str, Any]] = [{"v": 2, "key": {"_id": 1}, "name": "_id_"}]
    specs += [
        {"v": 2, "key": dict(index.keys), "name": index.name, **({"unique": True} if index.unique else {})}
        for index in indexes
    ]
    return specs


def index_from_spec(spec: Mapping[str, Any]) -> Index | None:
    """The :class:`Index` a ``listIndexes`` spec describes; None for the one on ``_id``."""
    keys = tuple((field, _direction(spec, d)) for field, d in spec.get("key", {}).items())
    if not keys or keys == (("_id", 1),):
        return None
    return Index(keys, unique=bool(spec.get("unique")))


def _id_first(doc: Document) -> Document:
    # MongoDB stores _id first whatever order it was sent in; do the same so hashes agree across backends.
    return {"_id": doc["_id"], **doc}


def _sqlite_rows(conn: sqlite3.Connection, name: str) -> Iterator[Document]:
    for row in conn.execute(f'SELECT doc FROM "c_{name}" ORDER BY id'):
        yield _id_first(json.loads(row[0]))


@contextmanager
def consistent_read(store: DocStore) -> Iterator[list[CollectionView]]:
    """Every collection (never the expiring counters) as of one point in time, streamed while the block
    runs, with its indexes.

    SQLite: one read transaction on a connection of its own (WAL keeps its snapshot while writers go
    on); counters live in ``k_*`` tables, which the ``c_*`` listing leaves out. MongoDB: a snapshot
    session (``readConcern: snapshot``; needs a replica set, as Atlas has), ``counters_*`` left out.
    """
    if isinstance(store, SqliteStore):
        conn = sqlite3.connect(store.path, isolation_level=None, check_same_thread=False, timeout=30)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(store.busy_timeout_ms)}")
            conn.execute("PRAGMA query_only = 1")
            conn.execute("BEGIN")
            # The first read fixes the snapshot; everything below sees the database as it was then.
            names = sorted(row[0][2:] for row in conn.execute(_SQLITE_TABLES))
            yield [CollectionView(n, _sqlite_indexes(conn, n), _sqlite_rows(conn, n)) for n in names]
        finally:
            conn.close()
    elif isinstance(store, MongoStore):
        with store.client.start_session(snapshot=True) as session:
            names = _mongo_collection_names(store.db.list_collection_names(session=session))
            views = []
            for name in names:
                raw = store.db[name]
                indexes = _mongo_indexes(raw.index_information(session=session))
                cursor = raw.find({}, session=session).sort("_id", 1)
                views.append(CollectionView(name, indexes, (_id_first(doc) for doc in cursor)))
            yield views
    else:
        raise DocStoreError(f"no consistent read for {type(store).__name__}")


def _open(path: Path, mode: str, compressed: bool) -> IO[bytes]:
    return gzip.open(path, mode) if compressed else open(path, mode)  # type: ignore[return-value]


def _digest_view(
    view: CollectionView,
    write: Callable[[bytes], object] | None = None,
    visit: Callable[[str, Document], None] | None = None,
) -> DumpedCollection:
    import bson

    digest = hashlib.sha256()
    count = size = 0
    for doc in view.documents:
        data = bson.encode(doc)
        digest.update(data)
        count += 1
        size += len(data)
        if write is not None:
            write(data)
        if visit is not None:
            visit(view.name, doc)
    return DumpedCollection(count, digest.hexdigest(), index_specs(view.indexes), size)


def digest(store: DocStore) -> dict[str, DumpedCollection]:
    """What :func:`dump` would report (counts, SHA-256, indexes) as of one point in time, writing nothing."""
    with consistent_read(store) as views:
        return {view.name: _digest_view(view) for view in views}


def dump(
    store: DocStore,
    directory: str | Path,
    *,
    compressed: bool = False,
    visit: Callable[[str, Document], None] | None = None,
) -> dict[str, DumpedCollection]:
    """Write every collection, as of one point in time, to ``directory/<db>/<collection>.bson`` and
    ``.metadata.json`` (``.gz`` for both with ``compressed``, like ``mongodump --gzip``); the metadata
    lists every index, unique or not. Expiring counters are left out.

    ``visit(collection, document)`` sees each document as it is written (the DR manifest collects the
    objects documents refer to this way). Returns per collection its count, SHA-256 and index specs.
    """
    from bson import json_util

    target = Path(directory) / store.db_name
    target.mkdir(parents=True, exist_ok=True)
    bson_suffix, meta_suffix = DUMP_SUFFIXES[compressed]
    dumped: dict[str, DumpedCollection] = {}
    with consistent_read(store) as views:
        for view in views:
            with _open(target / f"{view.name}{bson_suffix}", "wb", compressed) as out:
                dumped[view.name] = _digest_view(view, out.write, visit)
            metadata = {
                "options": {},
                "indexes": dumped[view.name].indexes,
                "uuid": uuid.uuid4().hex,
                "collectionName": view.name,
                "type": "collection",
            }
            # Canonical Extended JSON, as mongodump writes it and mongorestore parses it.
            text = json_util.dumps(metadata, json_options=json_util.CANONICAL_JSON_OPTIONS)
            with _open(target / f"{view.name}{meta_suffix}", "wb", compressed) as out:
                out.write(text.encode())
    return dumped


def restore(store: DocStore, directory: str | Path, *, drop: bool = True) -> dict[str, int]:
    """Load a mongodump directory (``directory/<db>/``, plain or gzipped) into ``store`` and create every
    index its metadata lists; ``drop`` empties each collection first (``mongorestore --drop``). Counter
    collections a real ``mongodump`` may hold (``counters_*``) are short-lived state and not loaded.
    Returns the documents loaded per collection.
    """
    import bson
    from bson import json_util

    source = Path(directory) / store.db_name
    if not source.is_dir():
        raise DocStoreError(f"no dump of database {store.db_name!r} under {directory}")
    # Every metadata file is read first, so an index that cannot be created refuses the restore
    # before anything is loaded.
    plan: list[tuple[str, Path, bool, list[Index]]] = []
    for compressed, (bson_suffix, meta_suffix) in DUMP_SUFFIXES.items():
        for bson_path in sorted(source.glob(f"*{bson_suffix}")):
            name = bson_path.name.removesuffix(bson_suffix)
            if name.startswith(COUNTERS_PREFIX):
                continue
            indexes: list[Index] = []
            meta_path = source / f"{name}{meta_suffix}"
            if meta_path.exists():
                with _open(meta_path, "rb", compressed) as handle:
                    specs = json_util.loads(handle.read()).get("indexes", [])
                indexes = [index for index in map(index_from_spec, specs) if index is not None]
            plan.append((name, bson_path, compressed, indexes))
    counts: dict[str, int] = {}
    for name, bson_path, compressed, indexes in plan:
        coll = store.collection(name)
        if drop:
            coll.delete_many({})
        with _open(bson_path, "rb", compressed) as handle:
            counts[name] = coll.insert_many(bson.decode_file_iter(handle))
        for index in indexes:
            coll.create_index(index)
    return counts


def _direction(spec: Mapping[str, Any], direction: Any) -> int:
    if direction in (1, -1):
        return int(direction)
    raise DocStoreError(
        f"index {spec.get('name')!r}: only ascending (1) and descending (-1) keys can be restored,"
        f" not {direction!r}"
    )
