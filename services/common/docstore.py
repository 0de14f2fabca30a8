"""A small document-store layer: MongoDB (pymongo) in production, SQLite in WAL mode as the embedded default.

Only the operations the services need exist, with MongoDB semantics, so the same code runs on both:
``insert_one``, ``find_one``, ``find(filter, sort, limit)``, ``update_one`` with ``$set``/``$inc``,
``delete_one``/``delete_many``, ``count`` and ``create_unique_index``. Filters are equality matches on
(dotted) fields, plus ``{"field": {"$in": [...]}}``. Documents are JSON values; ``_id`` is a string.

The SQLite backend is safe for several processes (several revisions) at once: WAL journal, a busy
timeout, and every read-modify-write in a ``BEGIN IMMEDIATE`` transaction, so concurrent ``$inc`` lose
nothing. Unique indexes are real SQLite unique indexes on ``json_extract`` expressions.

Besides collections, a store holds **expiring counters** (:meth:`DocStore.counters`): rate limits and
failed-login throttling keep them there, so every process and revision sees the same counts. On MongoDB a
counter is a document with an ``expire_at`` date under a TTL index; on SQLite a row whose expired values
read as absent and are purged by later writes. Counters are short-lived state: snapshots leave them out.

Snapshots (:func:`dump` / :func:`restore`) use the mongodump directory format, so they interoperate with
``mongodump``/``mongorestore``.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from pymongo import MongoClient

Document = dict[str, Any]
Filter = Mapping[str, Any]
Sort = Sequence[tuple[str, int]]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
DEFAULT_DB = "ethix"


class DocStoreError(Exception):
    """The store could not do what was asked (bad filter, unreachable database, ...)."""


class DuplicateKeyError(DocStoreError):
    """An insert or update would break a unique index."""


def new_id() -> str:
    return uuid.uuid4().hex


class Collection(ABC):
    name: str

    @abstractmethod
    def insert_one(self, doc: Document) -> str:
        """Insert a copy of ``doc`` (an ``_id`` is generated when missing); returns the ``_id``."""

    @abstractmethod
    def find_one(self, filter: Filter) -> Document | None: ...

    @abstractmethod
    def find(self, filter: Filter, sort: Sort = (), limit: int = 0) -> list[Document]:
        """Matching documents; ``sort`` is ``[(field, 1 | -1), ...]``; ``limit`` 0 means all."""

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
    def create_unique_index(self, field: str) -> None: ...

    @abstractmethod
    def unique_indexes(self) -> list[str]:
        """Fields with a unique index (besides ``_id``)."""


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
    # True when a read of a known collection is local and never waits on another process (SQLite in WAL
    # mode: readers do not wait for writers). Such a point read costs less on the event loop than a
    # round trip through a worker thread, whose GIL handoffs wait up to the interpreter's switch
    # interval (5 ms) each while the event loop is busy: under a login flood that was 8-40 ms per read.
    local_reads: bool = False

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


def _json_path(field: str) -> str:
    return "$." + ".".join(f'"{part}"' for part in _check_field(field).split("."))


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
        expr = "id" if field == "_id" else f"json_extract(doc, '{_json_path(field)}')"
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

    def find(self, filter: Filter, sort: Sort = (), limit: int = 0) -> list[Document]:
        where, params = _where(filter)
        order = ", ".join(
            f"{'id' if f == '_id' else f'json_extract(doc, {_json_path(f)!r})'} {'DESC' if d < 0 else 'ASC'}"
            for f, d in sort
        )
        sql = f"SELECT doc FROM {self.table} WHERE {where}"
        if order:
            sql += f" ORDER BY {order}"
        if limit:
            sql += f" LIMIT {int(limit)}"
        conn = self.store._conn()
        self._ensure(conn)
        return [json.loads(row[0]) for row in conn.execute(sql, params)]

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

    def create_unique_index(self, field: str) -> None:
        index = f'"ux_{self.name}_{_check_field(field).replace(".", "_")}"'
        with self.store._write() as conn:
            self._ensure(conn)
            try:
                conn.execute(
                    f"CREATE UNIQUE INDEX IF NOT EXISTS {index} ON {self.table} "
                    f"(json_extract(doc, '{_json_path(field)}'))"
                )
            except sqlite3.IntegrityError as exc:
                raise DuplicateKeyError(
                    f"existing documents in {self.name} break unique {field}: {exc}"
                ) from None

    def unique_indexes(self) -> list[str]:
        conn = self.store._conn()
        prefix = f"ux_{self.name}_"
        rows = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ?", (f"c_{self.name}",)
        ).fetchall()
        fields = []
        for name, sql in rows:
            match = re.search(r"json_extract\(doc, '\$\.(.+?)'\)", sql or "")
            if name.startswith(prefix) and match:
                fields.append(match.group(1).replace('"', ""))
        return sorted(fields)


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
    local_reads = True

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
        rows = self._conn().execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'c\\_%' ESCAPE '\\'"
        )
        return sorted(row[0][2:] for row in rows)

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

    def find(self, filter: Filter, sort: Sort = (), limit: int = 0) -> list[Document]:
        cursor = self.raw.find(dict(filter))
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

    def create_unique_index(self, field: str) -> None:
        from pymongo.errors import DuplicateKeyError as MongoDuplicate

        try:
            self.raw.create_index([(_check_field(field), 1)], unique=True, name=f"{field}_1")
        except MongoDuplicate as exc:
            raise self._dup(exc) from None

    def unique_indexes(self) -> list[str]:
        info = self.raw.index_information()
        return sorted(
            spec["key"][0][0] for spec in info.values() if spec.get("unique") and len(spec["key"]) == 1
        )


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
                self._counters[name] = MongoCounters(self.db[f"counters_{_check_name(name)}"], name)
            return self._counters[name]

    def collection_names(self) -> list[str]:
        return sorted(n for n in self.db.list_collection_names() if not n.startswith("counters_"))

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


def dump(store: DocStore, directory: str | Path) -> dict[str, int]:
    """Write every collection to ``directory/<db>/<collection>.bson`` + ``.metadata.json``; returns counts."""
    import bson

    target = Path(directory) / store.db_name
    target.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    for name in store.collection_names():
        coll = store.collection(name)
        docs = coll.find({}, sort=[("_id", 1)])
        with open(target / f"{name}.bson", "wb") as out:
            for doc in docs:
                out.write(bson.encode(doc))
        indexes: list[dict[str, Any]] = [{"v": 2, "key": {"_id": 1}, "name": "_id_"}]
        indexes += [
            {"v": 2, "key": {field: 1}, "name": f"{field}_1", "unique": True}
            for field in coll.unique_indexes()
        ]
        metadata = {"indexes": indexes, "uuid": "", "collectionName": name, "type": "collection"}
        (target / f"{name}.metadata.json").write_text(json.dumps(metadata))
        counts[name] = len(docs)
    return counts


def restore(store: DocStore, directory: str | Path, *, drop: bool = True) -> dict[str, int]:
    """Load a mongodump directory (``directory/<db>/``) into ``store``; ``drop`` empties collections first."""
    import bson

    source = Path(directory) / store.db_name
    if not source.is_dir():
        raise DocStoreError(f"no dump of database {store.db_name!r} under {directory}")
    counts: dict[str, int] = {}
    for bson_path in sorted(source.glob("*.bson")):
        name = bson_path.stem
        coll = store.collection(name)
        if drop:
            coll.delete_many({})
        docs = bson.decode_all(bson_path.read_bytes())
        for doc in docs:
            coll.insert_one(doc)
        meta_path = source / f"{name}.metadata.json"
        if meta_path.exists():
            for index in json.loads(meta_path.read_text()).get("indexes", []):
                keys = list(index.get("key", {}))
                if index.get("unique") and len(keys) == 1 and keys[0] != "_id":
                    coll.create_unique_index(keys[0])
        counts[name] = len(docs)
    return counts
