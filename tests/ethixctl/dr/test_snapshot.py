"""Snapshots on a real SQLite store and real local versioned buckets: layout, manifest, restore,
verification, pruning and object recovery."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ethixctl.dr import objects, snapshot, verify
from services.backend.app import INDEXES
from services.common.docstore import SqliteStore
from services.common.storage import LocalObjectStore
from tests.ethixctl.dr import mongodump_reader
from tests.ethixctl.dr.workload import seed


@dataclass
class World:
    store: SqliteStore
    live: LocalObjectStore
    backups: LocalObjectStore
    root: Path


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    store = SqliteStore(tmp_path / "live" / "ethix.db")
    live = LocalObjectStore(tmp_path / "live" / "bucket")
    seed(store, live)
    yield World(store, live, LocalObjectStore(tmp_path / "backups"), tmp_path)
    store.close()


def materialise(backups: LocalObjectStore, manifest: dict, directory: Path) -> Path:
    """Download a snapshot's files as a plain directory, as `gsutil cp -r` would."""
    for entry in manifest["files"]:
        path = directory / entry["name"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(backups.get(f"snapshots/{manifest['id']}/{entry['name']}"))
    return directory


def test_snapshot_is_a_mongodump_gzip_directory_read_back_by_an_independent_reader(world: World) -> None:
    manifest = snapshot.create(world.store, world.live, world.backups, cluster="ethix")
    dump = mongodump_reader.read_dump(materialise(world.backups, manifest, world.root / "dl"), "ethix")
    assert set(dump) == {"users", "datasets", "analyses", "heartbeats"}
    for name, coll in dump.items():
        live_docs = world.store[name].find({}, sort=[("_id", 1)])
        assert coll["documents"] == [{"_id": d["_id"], **d} for d in live_docs]
        assert next(iter(coll["documents"][0])) == "_id"
        assert coll["metadata"]["collectionName"] == name
        entry = manifest["collections"][name]
        assert entry["count"] == len(live_docs)
        assert entry["sha256"] == hashlib.sha256(coll["raw"]).hexdigest()
    unique = [i for i in dump["users"]["metadata"]["indexes"] if i.get("unique")]
    assert unique == [{"v": 2, "key": {"email": 1}, "name": "email_1", "unique": True}]
    assert manifest["collections"]["users"]["indexes"][1]["key"] == {"email": 1}
    # Secondary indexes too, in the metadata files and the manifest alike.
    paged = {
        "v": 2,
        "key": {"owner_id": 1, "created_at": 1, "_id": 1},
        "name": "owner_id_1_created_at_1__id_1",
    }
    assert paged in dump["datasets"]["metadata"]["indexes"]
    assert paged in manifest["collections"]["datasets"]["indexes"]
    assert [i["name"] for i in manifest["collections"]["analyses"]["indexes"]] == [
        "_id_",
        "owner_id_1",
        "status_1",
    ]


def test_snapshots_leave_the_expiring_counters_out(world: World) -> None:
    assert world.store.counters("login_failures").get("account:user0@example.com") is not None
    manifest = snapshot.create(world.store, world.live, world.backups, cluster="ethix")
    assert set(manifest["collections"]) == {"users", "datasets", "analyses", "heartbeats"}
    assert not [f["name"] for f in manifest["files"] if "counter" in f["name"] or "/k_" in f["name"]]
    target = SqliteStore(world.root / "scratch" / "ethix.db")
    snapshot.restore(world.backups, manifest, target)
    assert target.counters("login_failures").get("account:user0@example.com") is None
    target.close()


def test_manifest_records_time_objects_files_and_the_newest_heartbeat(world: World) -> None:
    before = time.time()
    manifest = snapshot.create(world.store, world.live, world.backups, cluster="ethix", description="t")
    assert manifest["format"] == "ethixctl-snapshot/1" and len(manifest["id"]) == 24
    taken = snapshot.epoch_of(manifest["point_in_time"])
    assert taken is not None and before - 1 <= taken <= time.time()
    assert manifest["newest_heartbeat"] == snapshot.iso(1_796_172_800.5)
    assert manifest["newest_write"] == manifest["newest_heartbeat"]  # the newest write of all
    assert manifest["documents"] == 3 + 6 + 6 + 1
    assert len(manifest["objects"]) == 6
    for entry in manifest["objects"]:
        data = world.live.get(entry["name"], generation=entry["generation"])
        assert (entry["size"], entry["sha256"]) == (len(data), hashlib.sha256(data).hexdigest())
        assert world.backups.get(entry["backup"]) == data
    for entry in manifest["files"]:
        stored = world.backups.get(
            f"snapshots/{manifest['id']}/{entry['name']}", generation=entry["generation"]
        )
        assert hashlib.sha256(stored).hexdigest() == entry["sha256"]
    assert snapshot.read_manifest(world.backups, manifest["id"][:10]) == manifest
    assert [m["id"] for m in snapshot.list_manifests(world.backups)] == [manifest["id"]]


def test_restore_into_an_empty_store_is_byte_equal_and_verifies(world: World) -> None:
    manifest = snapshot.create(world.store, world.live, world.backups, cluster="ethix")
    target = SqliteStore(world.root / "scratch" / "ethix.db")
    counts = snapshot.restore(world.backups, manifest, target)
    assert counts == {"analyses": 6, "datasets": 6, "heartbeats": 1, "users": 3}
    checks = verify.database(target, manifest)
    assert checks and verify.failures(checks) == []
    assert {c.kind for c in checks} == {"count", "sha256", "indexes"}
    for collection, indexes in INDEXES.items():  # recreated by the restore, not by a backend start
        assert target[collection].indexes() == sorted(indexes, key=lambda index: index.name)
    assert verify.failures(verify.references(target, world.live, manifest)) == []
    target.close()


def test_a_corrupt_snapshot_file_is_refused_naming_its_collection(world: World) -> None:
    manifest = snapshot.create(world.store, world.live, world.backups, cluster="ethix")
    entry = next(f for f in manifest["files"] if f["name"] == "ethix/datasets.bson.gz")
    key = f"snapshots/{manifest['id']}/{entry['name']}"
    world.backups.put(key, world.backups.get(key)[:-7] + b"garbage")
    # The manifest names the generation it wrote: point it at the corrupt one, as a bit flip would.
    manifest["files"] = [
        {**f, "generation": world.backups.generations(key)[-1]} if f is entry else f
        for f in manifest["files"]
    ]
    target = SqliteStore(world.root / "scratch" / "ethix.db")
    with pytest.raises(snapshot.SnapshotCorrupt, match="collection datasets: snapshot file") as caught:
        snapshot.restore(world.backups, manifest, target)
    assert caught.value.collection == "datasets"
    assert target.collection_names() == []  # nothing loaded from a snapshot that fails its checks
    target.close()


def test_verification_names_the_collection_and_object_that_differ(world: World) -> None:
    manifest = snapshot.create(world.store, world.live, world.backups, cluster="ethix")
    target = SqliteStore(world.root / "scratch" / "ethix.db")
    snapshot.restore(world.backups, manifest, target)
    victim = target["analyses"].find({}, limit=1)[0]
    target["analyses"].update_one({"_id": victim["_id"]}, {"$set": {"status": "tampered"}})
    failed = verify.failures(verify.database(target, manifest))
    assert [(c.kind, c.subject) for c in failed] == [("sha256", "analyses")]
    dataset = target["datasets"].find_one({"_id": victim["dataset_id"]})
    assert dataset is not None
    target["datasets"].delete_one({"_id": dataset["_id"]})
    changed = target["datasets"].find({}, limit=1)[0]["object_key"]
    world.live.put(changed, b"changed")
    failed = verify.failures(verify.references(target, world.live, manifest))
    assert [(c.kind, c.subject) for c in failed] == [("reference", "analyses"), ("object", changed)]
    assert f"refers to dataset {dataset['_id']}, which is missing" in failed[0].detail
    target.close()


def test_verification_fails_when_a_secondary_index_is_missing(world: World) -> None:
    """Not only unique indexes count: a restore without the paging index would scan on every page."""
    manifest = snapshot.create(world.store, world.live, world.backups, cluster="ethix")
    target = SqliteStore(world.root / "scratch" / "ethix.db")
    snapshot.restore(world.backups, manifest, target)
    target._conn().execute('DROP INDEX "ix_datasets_owner_id_1_created_at_1__id_1"')
    failed = verify.failures(verify.database(target, manifest))
    assert [(c.kind, c.subject) for c in failed] == [("indexes", "datasets")]
    assert failed[0].detail == "none (manifest: owner_id_1_created_at_1__id_1)"
    target.close()


def test_pick_by_point_in_time_and_prune_by_retention(world: World) -> None:
    old = snapshot.create(world.store, world.live, world.backups, cluster="ethix")
    # Make it 40 days old in its manifest, as if taken then.
    key = f"snapshots/{old['id']}/manifest.json"
    old["point_in_time"] = snapshot.iso(time.time() - 40 * 86_400)
    world.backups.delete(key)
    world.backups.put(key, json.dumps(old).encode())
    world.store["users"].insert_one({"email": "late@example.com"})
    new = snapshot.create(world.store, world.live, world.backups, cluster="ethix")
    manifests = snapshot.list_manifests(world.backups)
    assert [m["id"] for m in manifests] == [new["id"], old["id"]]
    assert snapshot.pick(manifests)["id"] == new["id"]
    assert snapshot.pick(manifests, time.time() - 30 * 86_400)["id"] == old["id"]
    with pytest.raises(Exception, match="no snapshot at or before"):
        snapshot.pick(manifests, time.time() - 50 * 86_400)
    assert snapshot.prune(world.backups, keep_seconds=30 * 86_400) == [old["id"]]
    assert [m["id"] for m in snapshot.list_manifests(world.backups)] == [new["id"]]
    assert not world.backups.list(f"snapshots/{old['id']}/")
    # The newest is never pruned, however old.
    assert snapshot.prune(world.backups, keep_seconds=1, now=time.time() + 10**6) == []


def test_objects_recover_from_version_history_or_the_backup_copy(world: World) -> None:
    manifest = snapshot.create(world.store, world.live, world.backups, cluster="ethix")
    lost = manifest["objects"][0]["name"]
    world.live.delete(lost)  # gone from the live bucket with every version: only the backup copy has it
    scratch = LocalObjectStore(world.root / "scratch-bucket")
    copied = objects.copy_to_scratch(world.live, world.backups, scratch, manifest, history=True)
    assert {c.name: c.source for c in copied}[lost] == "backup_bucket"
    assert all(c.action != "lost" for c in copied)
    damage = objects.damage(scratch, manifest, deleted=1, overwritten=2, seed=7)
    assert [d["damage"] for d in damage] == ["deleted with every version", "overwritten", "overwritten"]
    overwritten = {d["name"] for d in damage if d["damage"] == "overwritten"}
    recovered = {r.name: r for r in objects.recover(scratch, world.backups, manifest)}
    assert {recovered[name].source for name in overwritten} == {"version_history"}
    assert recovered[damage[0]["name"]].source == "backup_bucket"
    for entry in manifest["objects"]:
        assert hashlib.sha256(scratch.get(entry["name"])).hexdigest() == entry["sha256"]
    assert world.live.list() == sorted(o["name"] for o in manifest["objects"] if o["name"] != lost)
    assert objects.clear(scratch) == 6 and scratch.list() == []
