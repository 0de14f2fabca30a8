"""One contract suite for the document store, run on both backends.

The MongoDB backend runs against mongomock (no real mongod can be installed here): the ``mongomock``
parameter ids say so. The SQLite backend runs on a real SQLite file in WAL mode.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing
import time
from collections.abc import Iterator
from pathlib import Path

import mongomock
import pytest

from ethixctl.procs import free_port
from services.common.docstore import (
    DocStore,
    DocStoreError,
    DuplicateKeyError,
    Index,
    MongoStore,
    SqliteStore,
    dump,
    ensure_indexes,
    open_store,
    restore,
)


class SnapshotSessionMongomock(mongomock.MongoClient):  # type: ignore[misc]
    """mongomock has no sessions (a real replica set has snapshot sessions): ``start_session`` gives
    ``None``, which pymongo's calls take as "no session". mongomock is single-threaded, so the
    point-in-time property is tested on SQLite only."""

    def start_session(self, **kwargs: object) -> contextlib.nullcontext[None]:
        return contextlib.nullcontext()


def _make(kind: str, path: Path) -> DocStore:
    if kind == "sqlite":
        return SqliteStore(path / "store.db")
    return MongoStore(SnapshotSessionMongomock(), "ethix")


@pytest.fixture(params=["sqlite", "mongodb-via-mongomock"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DocStore]:
    made = _make(request.param, tmp_path)
    yield made
    made.close()


def test_insert_and_find_one_round_trips_nested_documents(store: DocStore) -> None:
    coll = store["things"]
    new_id = coll.insert_one(
        {"name": "a", "nested": {"n": 1}, "tags": ["x", "y"], "flag": True, "none": None}
    )
    assert isinstance(new_id, str) and new_id
    found = coll.find_one({"_id": new_id})
    assert found == {
        "_id": new_id,
        "name": "a",
        "nested": {"n": 1},
        "tags": ["x", "y"],
        "flag": True,
        "none": None,
    }
    assert coll.find_one({"nested.n": 1}) == found
    assert coll.find_one({"flag": True}) == found
    assert coll.find_one({"none": None}) == found
    assert coll.find_one({"name": "b"}) is None


def test_insert_keeps_given_id_and_rejects_duplicate_id(store: DocStore) -> None:
    coll = store["things"]
    assert coll.insert_one({"_id": "fixed", "v": 1}) == "fixed"
    with pytest.raises(DuplicateKeyError):
        coll.insert_one({"_id": "fixed", "v": 2})
    assert coll.find_one({"_id": "fixed"}) == {"_id": "fixed", "v": 1}


def test_find_filters_sorts_and_limits(store: DocStore) -> None:
    coll = store["items"]
    for i, owner in enumerate(["a", "b", "a", "a", "b"]):
        coll.insert_one({"_id": f"id{i}", "owner": owner, "rank": (i * 7) % 5})
    owned = coll.find({"owner": "a"}, sort=[("rank", 1)])
    assert [d["rank"] for d in owned] == sorted(d["rank"] for d in owned)
    assert {d["_id"] for d in owned} == {"id0", "id2", "id3"}
    desc = coll.find({}, sort=[("rank", -1)], limit=2)
    assert [d["rank"] for d in desc] == [4, 3]
    assert {d["_id"] for d in coll.find({"owner": {"$in": ["b"]}})} == {"id1", "id4"}
    assert coll.find({"owner": {"$in": []}}) == []
    assert coll.count({"owner": "a"}) == 3
    assert coll.count({}) == 5


def test_update_one_set_and_inc(store: DocStore) -> None:
    coll = store["counters"]
    coll.insert_one({"_id": "c", "n": 1, "status": "queued"})
    assert (
        coll.update_one({"_id": "c"}, {"$set": {"status": "running", "meta.by": "w1"}, "$inc": {"n": 2}}) == 1
    )
    assert coll.find_one({"_id": "c"}) == {"_id": "c", "n": 3, "status": "running", "meta": {"by": "w1"}}
    assert coll.update_one({"_id": "c"}, {"$inc": {"fresh": 5}}) == 1
    assert coll.find_one({"_id": "c"})["fresh"] == 5  # type: ignore[index]
    # A conditional update that does not match changes nothing: the compare-and-set the runner relies on.
    assert coll.update_one({"_id": "c", "status": "queued"}, {"$set": {"status": "x"}}) == 0
    assert coll.find_one({"_id": "c"})["status"] == "running"  # type: ignore[index]


def test_update_rejects_unsupported_operators_and_id_changes(store: DocStore) -> None:
    coll = store["counters"]
    coll.insert_one({"_id": "c", "n": 1})
    with pytest.raises(DocStoreError, match="unsupported update operators"):
        coll.update_one({"_id": "c"}, {"$unset": {"n": ""}})
    with pytest.raises(DocStoreError, match="_id cannot be updated"):
        coll.update_one({"_id": "c"}, {"$set": {"_id": "d"}})
    with pytest.raises(DocStoreError, match="needs a number"):
        coll.update_one({"_id": "c"}, {"$inc": {"n": "1"}})


def test_delete_one_and_many(store: DocStore) -> None:
    coll = store["items"]
    for i in range(4):
        coll.insert_one({"owner": "a" if i < 3 else "b"})
    assert coll.delete_one({"owner": "a"}) == 1
    assert coll.count({"owner": "a"}) == 2
    assert coll.delete_many({"owner": "a"}) == 2
    assert coll.delete_many({"owner": "a"}) == 0
    assert coll.count({}) == 1


def test_unique_index_holds_on_insert_and_update(store: DocStore) -> None:
    users = store["users"]
    users.create_unique_index("email")
    users.create_unique_index("email")  # idempotent, like MongoDB
    users.insert_one({"_id": "u1", "email": "a@example.com"})
    users.insert_one({"_id": "u2", "email": "b@example.com"})
    with pytest.raises(DuplicateKeyError):
        users.insert_one({"email": "a@example.com"})
    with pytest.raises(DuplicateKeyError):
        users.update_one({"_id": "u2"}, {"$set": {"email": "a@example.com"}})
    assert users.count({"email": "a@example.com"}) == 1
    assert users.unique_indexes() == ["email"]


def test_invalid_names_are_rejected(store: DocStore) -> None:
    with pytest.raises(DocStoreError, match="invalid collection name"):
        store["bad name; drop"]
    with pytest.raises(DocStoreError, match="invalid field name"):
        store["ok"].create_unique_index("a'b")


def test_ping_returns_none_when_the_store_answers(store: DocStore) -> None:
    assert store.ping() is None


def test_ping_raises_when_the_sqlite_file_is_not_a_database(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "store.db")
    store["things"].insert_one({"a": 1})
    store.close()
    (tmp_path / "store.db").write_bytes(b"not a database" * 100)
    with pytest.raises(DocStoreError, match=r"store\.db: file is not a database"):
        store.ping()


def test_ping_raises_when_mongodb_does_not_answer() -> None:
    """A real pymongo client with nothing listening on its port (no mongomock involved)."""
    from pymongo import MongoClient

    client: MongoClient[dict[str, object]] = MongoClient(
        f"mongodb://127.0.0.1:{free_port()}/ethix", serverSelectionTimeoutMS=200
    )
    store = MongoStore(client, "ethix")
    try:
        with pytest.raises(DocStoreError, match=r"^mongodb: ServerSelectionTimeoutError$"):
            store.ping()
    finally:
        store.close()


@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gzip"])
def test_dump_restore_round_trip_in_mongodump_format(
    store: DocStore, tmp_path: Path, compressed: bool
) -> None:
    """Dump → restore into an empty store of the same backend gives back documents and unique indexes."""
    import gzip

    import bson
    from bson import json_util

    store["users"].create_unique_index("email")
    store["users"].insert_one({"email": "a@example.com", "n": 1, "_id": "u1"})
    store["datasets"].insert_one({"_id": "d1", "owner_id": "u1", "columns": ["x", "y"], "nested": {"k": 1.5}})
    dumped = dump(store, tmp_path / "dump", compressed=compressed)
    assert {name: d.count for name, d in dumped.items()} == {"datasets": 1, "users": 1}
    suffix = ".gz" if compressed else ""
    raw = (tmp_path / "dump" / "ethix" / f"users.bson{suffix}").read_bytes()
    raw = gzip.decompress(raw) if compressed else raw
    # _id first, as MongoDB stores it, whatever order the document was written in.
    assert raw == bson.encode({"_id": "u1", "email": "a@example.com", "n": 1})
    assert dumped["users"].sha256 == hashlib.sha256(raw).hexdigest()
    assert dumped["users"].bson_bytes == len(raw)
    meta_raw = (tmp_path / "dump" / "ethix" / f"users.metadata.json{suffix}").read_bytes()
    meta = json_util.loads(gzip.decompress(meta_raw) if compressed else meta_raw)
    assert meta["collectionName"] == "users"
    assert {"v": 2, "key": {"email": 1}, "name": "email_1", "unique": True} in meta["indexes"]
    assert b'{"$numberInt": "2"}' in (gzip.decompress(meta_raw) if compressed else meta_raw)

    store["users"].delete_many({})
    store["datasets"].insert_one({"_id": "extra"})
    assert restore(store, tmp_path / "dump") == {"datasets": 1, "users": 1}
    assert store["users"].find({}) == [{"_id": "u1", "email": "a@example.com", "n": 1}]
    assert store["datasets"].find({}) == [
        {"_id": "d1", "owner_id": "u1", "columns": ["x", "y"], "nested": {"k": 1.5}}
    ]
    with pytest.raises(DuplicateKeyError):
        store["users"].insert_one({"email": "a@example.com"})
    # A second dump of the restored data hashes the same: the round trip is byte-equal.
    assert dump(store, tmp_path / "again", compressed=compressed)["users"].sha256 == dumped["users"].sha256


def test_dump_from_sqlite_restores_into_mongodb_via_mongomock(tmp_path: Path) -> None:
    source = SqliteStore(tmp_path / "src.db")
    source["users"].create_unique_index("email")
    source["users"].insert_one({"_id": "u1", "email": "a@example.com"})
    dump(source, tmp_path / "dump", compressed=True)
    source.close()
    target = MongoStore(SnapshotSessionMongomock(), "ethix")
    restore(target, tmp_path / "dump")
    assert target["users"].find({}) == [{"_id": "u1", "email": "a@example.com"}]
    assert target["users"].unique_indexes() == ["email"]


def test_restore_into_sqlite_refuses_documents_it_cannot_hold(tmp_path: Path) -> None:
    import bson

    (tmp_path / "dump" / "ethix").mkdir(parents=True)
    (tmp_path / "dump" / "ethix" / "things.bson").write_bytes(bson.encode({"_id": 7}))
    store = SqliteStore(tmp_path / "s.db")
    with pytest.raises(DocStoreError, match="things: the SQLite store needs string _id values"):
        restore(store, tmp_path / "dump")
    assert store["things"].count({}) == 0
    store.close()


def _writer(path: str, rounds: int) -> None:
    """Insert seq 0..rounds-1 into `a`, then the same seq into `b`: two commits per round, in that order."""
    store = SqliteStore(path)
    for seq in range(rounds):
        store["a"].insert_one({"_id": f"{seq:08d}", "seq": seq})
        store["b"].insert_one({"_id": f"{seq:08d}", "seq": seq})
    store.close()


def test_sqlite_dump_is_one_point_in_time_while_another_process_writes(tmp_path: Path) -> None:
    """`a` is written before `b` in every round, so any real point in time has b ⊆ a and gap-free
    prefixes. A dump reading `a` and then `b` without one transaction sees b run ahead of a."""
    import bson

    path = str(tmp_path / "live.db")
    store = SqliteStore(path)
    # Bulk in `a` makes dumping it take a while, so the writer commits many rounds meanwhile.
    store["a"].insert_one({"_id": "~pad-0", "pad": "x" * 10})
    store["b"].insert_one({"_id": "~pad-0", "pad": "x" * 10})
    store["a"].insert_many({"_id": f"~pad-{i}", "pad": "x" * 200} for i in range(1, 40_000))
    writer = multiprocessing.get_context("spawn").Process(target=_writer, args=(path, 100_000))
    writer.start()
    try:
        while store["b"].count({}) < 1 + 200:  # the pad, then 200 rounds: the writer is under way
            time.sleep(0.01)
        dumped = dump(store, tmp_path / "dump")
    finally:
        writer.kill()
        writer.join()
    store.close()
    seqs = {}
    for name in ("a", "b"):
        docs = bson.decode_all((tmp_path / "dump" / "ethix" / f"{name}.bson").read_bytes())
        assert len(docs) == dumped[name].count
        seqs[name] = sorted(d["seq"] for d in docs if "seq" in d)
        assert seqs[name] == list(range(len(seqs[name]))), f"{name} has gaps"
    assert len(seqs["b"]) >= 200
    assert len(seqs["b"]) <= len(seqs["a"]) <= len(seqs["b"]) + 1


def test_restore_without_dump_fails_clearly(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    with pytest.raises(DocStoreError, match="no dump of database 'ethix'"):
        restore(store, tmp_path / "missing")
    store.close()


def test_open_store_picks_backend_from_url(tmp_path: Path) -> None:
    store = open_store(f"sqlite://{tmp_path}/x.db")
    assert isinstance(store, SqliteStore) and store.path == tmp_path / "x.db"
    store.close()
    mongo = open_store("mongodb://127.0.0.1:1/appdb")  # pymongo connects lazily
    assert isinstance(mongo, MongoStore) and mongo.db_name == "appdb"
    mongo.close()
    with pytest.raises(DocStoreError, match="unsupported database URL scheme 'postgres'") as info:
        open_store("postgres://user:hunter2@host/db")
    assert "hunter2" not in str(info.value)


def _increment(path: str, count: int) -> None:
    store = SqliteStore(path)
    coll = store["counters"]
    for _ in range(count):
        coll.update_one({"_id": "shared"}, {"$inc": {"n": 1}})
    store.close()


def _register(path: str, emails: list[str], results: multiprocessing.Queue) -> None:
    store = SqliteStore(path)
    created = 0
    for email in emails:
        try:
            store["users"].insert_one({"email": email})
            created += 1
        except DuplicateKeyError:
            pass
    store.close()
    results.put(created)


def test_sqlite_two_processes_concurrent_inc_lose_no_update_and_unique_email_holds(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    store = SqliteStore(path)
    store["counters"].insert_one({"_id": "shared", "n": 0})
    store["users"].create_unique_index("email")
    ctx = multiprocessing.get_context("spawn")
    per_process = 200
    workers = [ctx.Process(target=_increment, args=(path, per_process)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    assert store["counters"].find_one({"_id": "shared"}) == {"_id": "shared", "n": 2 * per_process}

    emails = [f"user{i}@example.com" for i in range(50)]
    results: multiprocessing.Queue = ctx.Queue()
    racers = [ctx.Process(target=_register, args=(path, emails, results)) for _ in range(2)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(timeout=60)
        assert racer.exitcode == 0
    assert results.get(timeout=5) + results.get(timeout=5) == len(emails)
    assert store["users"].count({}) == len(emails)
    store.close()


def test_counters_count_expire_extend_and_clear(store: DocStore) -> None:
    counters = store.counters("hits")
    first = counters.incr("a", 1, ttl_seconds=0.5)
    assert first.value == 1 and 0.3 < first.expires_at - time.time() <= 0.5
    assert counters.incr("a", 2, ttl_seconds=0.5).value == 3
    fixed = counters.incr("a", 1, ttl_seconds=60)
    assert fixed.value == 4 and fixed.expires_at == pytest.approx(first.expires_at, abs=0.01)
    assert counters.get("b") is None and counters.incr("b", 1, ttl_seconds=60).value == 1
    time.sleep(0.6)
    assert counters.get("a") is None  # expired, whether or not anything deleted it yet
    restarted = counters.incr("a", 1, ttl_seconds=0.5)
    assert restarted.value == 1 and restarted.expires_at > first.expires_at
    extended = counters.incr("a", 1, ttl_seconds=60, extend=True)
    assert extended.value == 2 and extended.expires_at - time.time() > 59
    assert counters.get("a") == extended
    counters.clear("a")
    assert counters.get("a") is None and counters.get("b") is not None
    assert counters.clear_all() == 1 and counters.get("b") is None


def test_counters_are_left_out_of_collections_and_snapshots(store: DocStore, tmp_path: Path) -> None:
    store.counters("login_failures").incr("k", 1, ttl_seconds=60)
    store["users"].insert_one({"_id": "u1"})
    assert store.collection_names() == ["users"]
    assert {name: dumped.count for name, dumped in dump(store, tmp_path / "dump").items()} == {"users": 1}
    assert sorted(path.name for path in (tmp_path / "dump" / "ethix").iterdir()) == [
        "users.bson",
        "users.metadata.json",
    ]
    with pytest.raises(DocStoreError, match="invalid collection name"):
        store.counters("bad name")
    with pytest.raises(DocStoreError, match="ttl must be positive"):
        store.counters("x").incr("k", 1, ttl_seconds=0)


def test_mongodb_counters_have_a_ttl_index_mongomock() -> None:
    store = MongoStore(mongomock.MongoClient(), "ethix")
    store.counters("login_failures").incr("k", 1, ttl_seconds=60)
    indexes = store.db["counters_login_failures"].index_information()
    assert indexes["expire_at_ttl"]["expireAfterSeconds"] == 0
    assert indexes["expire_at_ttl"]["key"] == [("expire_at", 1)]


def _count_up(path: str, count: int) -> None:
    store = SqliteStore(path)
    for _ in range(count):
        store.counters("hits").incr("shared", 1, ttl_seconds=600)
    store.close()


def test_sqlite_counters_lose_no_increment_between_two_processes(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_count_up, args=(path, 150)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    store = SqliteStore(path)
    counter = store.counters("hits").get("shared")
    assert counter is not None and counter.value == 300


def test_declared_indexes_are_created_once_and_listed(store: DocStore) -> None:
    declared = {
        "datasets": [Index.on("owner_id", "created_at", "_id")],
        "analyses": [Index.on("status"), Index((("owner_id", 1), ("created_at", -1)))],
        "users": [Index.on("email", unique=True)],
    }
    ensure_indexes(store, declared)
    ensure_indexes(store, declared)  # every startup runs it again: nothing doubles
    for collection, indexes in declared.items():
        assert store[collection].indexes() == sorted(indexes, key=lambda index: index.name)
    assert store["users"].unique_indexes() == ["email"]
    assert [index.name for index in store["datasets"].indexes()] == ["owner_id_1_created_at_1__id_1"]


def test_index_keys_are_checked() -> None:
    with pytest.raises(DocStoreError, match="direction for 'a' must be 1 or -1"):
        Index((("a", 2),))
    with pytest.raises(DocStoreError, match="invalid field name"):
        Index.on("a b")


def test_find_after_pages_by_keyset_in_either_direction(store: DocStore) -> None:
    coll = store["items"]
    coll.insert_many([{"_id": f"i{n}", "owner": "o", "at": n // 2} for n in range(7)])
    coll.insert_one({"_id": "x", "owner": "other", "at": 0})
    order = [("at", 1), ("_id", 1)]
    first = coll.find({"owner": "o"}, order, limit=3)
    assert [d["_id"] for d in first] == ["i0", "i1", "i2"]
    rest = coll.find({"owner": "o"}, order, after=[first[-1]["at"], first[-1]["_id"]])
    assert [d["_id"] for d in rest] == ["i3", "i4", "i5", "i6"]
    backwards = [("at", -1), ("_id", -1)]
    assert [d["_id"] for d in coll.find({"owner": "o"}, backwards, after=[2, "i4"])] == [
        "i3",
        "i2",
        "i1",
        "i0",
    ]
    with pytest.raises(DocStoreError, match="one value per sort key"):
        coll.find({}, order, after=["only one"])
    with pytest.raises(DocStoreError, match="one direction"):
        coll.find({}, [("at", 1), ("_id", -1)], after=[1, "i1"])


def test_sqlite_query_plan_uses_the_declared_indexes(tmp_path: Path) -> None:
    """EXPLAIN QUERY PLAN of the backend's own queries: an index search, no scan, no sort step."""
    from services.backend.app import INDEXES
    from services.backend.routers.datasets import LIST_ORDER

    store = SqliteStore(tmp_path / "store.db")
    ensure_indexes(store, INDEXES)
    datasets, analyses = store["datasets"], store["analyses"]
    datasets.insert_many(
        {"owner_id": f"u{n % 10}", "created_at": f"2026-01-01T00:00:{n:02d}"} for n in range(50)
    )
    store._conn().execute("ANALYZE")  # statistics as a grown database has them
    plans = {
        "first page": datasets.explain({"owner_id": "u1"}, LIST_ORDER, limit=51),
        "next page": datasets.explain({"owner_id": "u1"}, LIST_ORDER, limit=51, after=["2026", "x"]),
        "account deletion": datasets.explain({"owner_id": "u1"}),
        "runner recovery": analyses.explain({"status": {"$in": ["queued", "running"]}}),
        "analyses of an owner": analyses.explain({"owner_id": "u1"}),
        "login": store["users"].explain({"email": "a@example.com"}, limit=1),
        "sessions of a user": store["sessions"].explain({"user_id": "u1", "revoked_at": None}),
    }
    for query, plan in plans.items():
        text = " | ".join(plan)
        assert "USING INDEX" in text or "USING COVERING INDEX" in text, (query, plan)
        assert "SCAN" not in text and "TEMP B-TREE" not in text, (query, plan)
    # The next page seeks to the cursor (a range on created_at) rather than scanning the pages before it.
    assert plans["next page"] == [
        "SEARCH c_datasets USING INDEX ix_datasets_owner_id_1_created_at_1__id_1 (<expr>=? AND <expr>>?)"
    ]
    store.close()


def test_mongodb_indexes_are_created_via_create_index_mongomock() -> None:
    """mongomock has no explain(), so the query plan cannot be checked here: the index list can."""
    from services.backend.app import INDEXES, prepare_store

    client = mongomock.MongoClient()
    store = MongoStore(client, "ethix")
    prepare_store(store)
    info = client["ethix"]["datasets"].index_information()
    assert info["owner_id_1_created_at_1__id_1"]["key"] == [("owner_id", 1), ("created_at", 1), ("_id", 1)]
    assert client["ethix"]["users"].index_information()["email_1"]["unique"] is True
    for collection, indexes in INDEXES.items():
        assert store[collection].indexes() == sorted(indexes, key=lambda index: index.name)


def test_snapshots_carry_every_index_across_backends(tmp_path: Path) -> None:
    from bson import json_util

    from services.backend.app import INDEXES, prepare_store

    source = SqliteStore(tmp_path / "src.db")
    prepare_store(source)
    for collection in INDEXES:
        source[collection].insert_one(
            {"_id": "one", "email": "a@example.com", "owner_id": "u", "status": "queued"}
        )
    dump(source, tmp_path / "dump")
    meta = json_util.loads((tmp_path / "dump" / "ethix" / "datasets.metadata.json").read_text())
    assert {
        "v": 2,
        "key": {"owner_id": 1, "created_at": 1, "_id": 1},
        "name": "owner_id_1_created_at_1__id_1",
    } in meta["indexes"]
    source.close()
    for target in (SqliteStore(tmp_path / "dst.db"), MongoStore(mongomock.MongoClient(), "ethix")):
        restore(target, tmp_path / "dump")
        for collection, indexes in INDEXES.items():
            assert target[collection].indexes() == sorted(indexes, key=lambda index: index.name)
        target.close()


def test_restore_refuses_an_index_kind_it_cannot_create(tmp_path: Path) -> None:
    (tmp_path / "dump" / "ethix").mkdir(parents=True)
    (tmp_path / "dump" / "ethix" / "docs.bson").write_bytes(b"")
    meta = {"indexes": [{"v": 2, "key": {"body": "text"}, "name": "body_text"}]}
    (tmp_path / "dump" / "ethix" / "docs.metadata.json").write_text(json.dumps(meta))
    store = SqliteStore(tmp_path / "s.db")
    with pytest.raises(DocStoreError, match="index 'body_text': only ascending"):
        restore(store, tmp_path / "dump")
    assert store.collection_names() == []  # refused before anything was loaded
    store.close()


def test_restore_leaves_out_the_counters_a_mongodump_holds(store: DocStore, tmp_path: Path) -> None:
    """A real ``mongodump`` of the production database also writes the ``counters_*`` collections;
    they are short-lived state, so a restore loads the documents and not them."""
    import bson

    (tmp_path / "dump" / "ethix").mkdir(parents=True)
    (tmp_path / "dump" / "ethix" / "users.bson").write_bytes(bson.encode({"_id": "u1"}))
    (tmp_path / "dump" / "ethix" / "counters_login_failures.bson").write_bytes(
        bson.encode({"_id": "k", "value": 3, "updated_at": 0.0})
    )
    assert restore(store, tmp_path / "dump") == {"users": 1}
    assert store.collection_names() == ["users"]
    if isinstance(store, MongoStore):  # its collection_names() hides counters_* whether loaded or not
        assert store.db.list_collection_names() == ["users"]
