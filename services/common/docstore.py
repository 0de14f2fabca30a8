"""A small document-store layer: MongoDB (pymongo) in production, SQLite in WAL mode as the embedded default.

Only the operations the services need exist, with MongoDB semantics, so the same code runs on both:
``insert_one``, ``find_one``, ``find(filter, sort, limit)``, ``update_one`` with ``$set``/``$inc``,
``delete_one``/``delete_many``, ``count`` and ``create_unique_index``. Filters are equality matches on
(dotted) fields, plus ``{"field": {"$in": [...]}}``. Documents are JSON values; ``_id`` is a string.

The SQLite backend is safe for several processes (several revisions) at once: WAL journal, a busy
timeout, and every read-modify-write in a ``BEGIN IMMEDIATE`` transaction, so concurrent ``$inc`` lose
nothing. Unique indexes are real SQLite unique indexes on ``json_extract`` expressions.

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
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
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


class DocStore(ABC):
    db_name: str

    @abstractmethod
    def collection(self, name: str) -> Collection: ...

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
        return _sqlite_unique_fields(self.store._conn(), self.name)


def _sqlite_unique_fields(conn: sqlite3.Connection, name: str) -> list[str]:
    """Fields of collection ``name`` with a unique index, read from ``sqlite_master`` on ``conn``."""
    prefix = f"ux_{name}_"
    rows = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ?", (f"c_{name}",)
    ).fetchall()
    fields = []
    for index_name, sql in rows:
        match = re.search(r"json_extract\(doc, '\$\.(.+?)'\)", sql or "")
        if index_name.startswith(prefix) and match:
            fields.append(match.group(1).replace('"', ""))
    return sorted(fields)


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
        return _mongo_unique_fields(self.raw.index_information())


def _mongo_unique_fields(info: Mapping[str, Any]) -> list[str]:
    """Fields with a single-field unique index, from pymongo's ``index_information()``."""
    return sorted(spec["key"][0][0] for spec in info.values() if spec.get("unique") and len(spec["key"]) == 1)


class MongoStore(DocStore):
    """MongoDB through pymongo. ``client`` may be any pymongo-compatible client (tests pass mongomock's)."""

    def __init__(self, client: MongoClient[Document] | Any, db_name: str = DEFAULT_DB):
        self.client = client
        self.db_name = db_name
        self.db = client[db_name]

    def collection(self, name: str) -> MongoCollection:
        return MongoCollection(self.db[_check_name(name)], name)

    def collection_names(self) -> list[str]:
        return sorted(self.db.list_collection_names())

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
_INSERT_BATCH = 1000


@dataclass
class CollectionView:
    """One collection as a consistent read sees it; ``documents`` stream in ``_id`` order, ``_id`` first."""

    name: str
    unique_fields: list[str]
    documents: Iterator[Document]


@dataclass
class DumpedCollection:
    count: int
    sha256: str  # over the BSON documents in _id order: the uncompressed .bson file
    indexes: list[dict[str, Any]]
    bson_bytes: int


def index_specs(unique_fields: Sequence[str]) -> list[dict[str, Any]]:
    """The ``indexes`` of a ``.metadata.json``, as ``listIndexes`` reports them."""
    specs: list[dict[str, Any]] = [{"v": 2, "key": {"_id": 1}, "name": "_id_"}]
    specs += [{"v": 2, "key": {field: 1}, "name": f"{field}_1", "unique": True} for field in unique_fields]
    return specs


def _id_first(doc: Document) -> Document:
    # MongoDB stores _id first whatever order it was sent in; do the same so hashes agree across backends.
    return {"_id": doc["_id"], **doc}


def _sqlite_rows(conn: sqlite3.Connection, name: str) -> Iterator[Document]:
    for row in conn.execute(f'SELECT doc FROM "c_{name}" ORDER BY id'):
        yield _id_first(json.loads(row[0]))


@contextmanager
def consistent_read(store: DocStore) -> Iterator[list[CollectionView]]:
    """Every collection as of one point in time, streamed while the block runs.

    SQLite: one read transaction on a connection of its own (WAL keeps its snapshot while writers go
    on). MongoDB: a snapshot session (``readConcern: snapshot``; needs a replica set, as Atlas has).
    """
    if isinstance(store, SqliteStore):
        conn = sqlite3.connect(store.path, isolation_level=None, check_same_thread=False, timeout=30)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(store.busy_timeout_ms)}")
            conn.execute("PRAGMA query_only = 1")
            conn.execute("BEGIN")
            # The first read fixes the snapshot; everything below sees the database as it was then.
            names = sorted(row[0][2:] for row in conn.execute(_SQLITE_TABLES))
            yield [CollectionView(n, _sqlite_unique_fields(conn, n), _sqlite_rows(conn, n)) for n in names]
        finally:
            conn.close()
    elif isinstance(store, MongoStore):
        with store.client.start_session(snapshot=True) as session:
            names = sorted(store.db.list_collection_names(session=session))
            views = []
            for name in names:
                raw = store.db[name]
                unique = _mongo_unique_fields(raw.index_information(session=session))
                cursor = raw.find({}, session=session).sort("_id", 1)
                views.append(CollectionView(name, unique, (_id_first(doc) for doc in cursor)))
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
    return DumpedCollection(count, digest.hexdigest(), index_specs(view.unique_fields), size)


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
    ``.metadata.json`` (``.gz`` for both with ``compressed``, like ``mongodump --gzip``).

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


def _counted(docs: Iterator[Document], counter: list[int]) -> Iterator[Document]:
    for doc in docs:
        counter[0] += 1
        yield doc


def bulk_insert(store: DocStore, name: str, docs: Iterator[Document]) -> int:
    """Insert many documents at once: one transaction (SQLite) or batched ``insert_many`` (MongoDB)."""
    counter = [0]
    if isinstance(store, SqliteStore):
        coll = store.collection(name)

        def rows() -> Iterator[tuple[str, str]]:
            for doc in _counted(docs, counter):
                if not isinstance(doc.get("_id"), str):
                    raise DocStoreError(f"{name}: the SQLite store needs string _id values")
                try:
                    yield doc["_id"], json.dumps(doc)
                except TypeError as exc:
                    raise DocStoreError(f"{name}: a document holds a non-JSON value ({exc})") from None

        with store._write() as conn:
            coll._ensure(conn)
            try:
                conn.executemany(f"INSERT INTO {coll.table} (id, doc) VALUES (?, ?)", rows())
            except sqlite3.IntegrityError as exc:
                raise DuplicateKeyError(f"duplicate key in {name}: {exc}") from None
        return counter[0]
    raw = store.collection(name)
    batch: list[Document] = []
    for doc in _counted(docs, counter):
        batch.append(doc)
        if len(batch) == _INSERT_BATCH:
            raw.raw.insert_many(batch)  # type: ignore[attr-defined]
            batch = []
    if batch:
        raw.raw.insert_many(batch)  # type: ignore[attr-defined]
    return counter[0]


def restore(store: DocStore, directory: str | Path, *, drop: bool = True) -> dict[str, int]:
    """Load a mongodump directory (``directory/<db>/``, plain or gzipped) into ``store``; ``drop``
    empties each collection first (``mongorestore --drop``). Returns the documents loaded per collection.
    """
    import bson
    from bson import json_util

    source = Path(directory) / store.db_name
    if not source.is_dir():
        raise DocStoreError(f"no dump of database {store.db_name!r} under {directory}")
    counts: dict[str, int] = {}
    for compressed, (bson_suffix, meta_suffix) in DUMP_SUFFIXES.items():
        for bson_path in sorted(source.glob(f"*{bson_suffix}")):
            name = bson_path.name.removesuffix(bson_suffix)
            if drop:
                store.collection(name).delete_many({})
            with _open(bson_path, "rb", compressed) as handle:
                counts[name] = bulk_insert(store, name, bson.decode_file_iter(handle))
            meta_path = source / f"{name}{meta_suffix}"
            if meta_path.exists():
                with _open(meta_path, "rb", compressed) as handle:
                    metadata = json_util.loads(handle.read())
                for index in metadata.get("indexes", []):
                    keys = list(index.get("key", {}))
                    if index.get("unique") and len(keys) == 1 and keys[0] != "_id":
                        store.collection(name).create_unique_index(keys[0])
    return counts
