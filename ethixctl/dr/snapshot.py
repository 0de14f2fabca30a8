"""Snapshots in a backup bucket: the mongodump directory layout plus ``manifest.json``.

Layout under ``snapshots/<id>/`` in the backup bucket (any :class:`ObjectStore`: the local versioned
bucket, or ``gs://``): ``<db>/<collection>.bson.gz`` and ``<db>/<collection>.metadata.json.gz`` (what
``mongodump --gzip`` writes), then ``manifest.json`` last, so a snapshot without a manifest is an
unfinished one and is never listed. Objects the documents refer to (dataset files) are copied by content
to ``objects/sha256/<hex>`` once, whatever the number of snapshots referring to them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ethixctl.errors import EthixError, UsageError
from ethixctl.exitcodes import ExitCode
from services.common import docstore
from services.common.storage import ObjectNotFound, ObjectStore, PreconditionFailed

FORMAT = "ethixctl-snapshot/1"
SNAPSHOTS = "snapshots/"
OBJECT_COPIES = "objects/sha256/"
MANIFEST = "manifest.json"
HEARTBEATS = "heartbeats"
UNFINISHED_GRACE = 3600.0
# Fields whose values say when a document was last written (ISO 8601 strings or epoch seconds).
WRITE_TIME_FIELDS = ("created_at", "finished_at", "heartbeat_at", "at")


class SnapshotCorrupt(EthixError):
    """A stored snapshot file does not match its manifest; names the collection."""

    def __init__(self, message: str, collection: str):
        super().__init__(message)
        self.collection = collection


class NoManifest(EthixError):
    """The snapshot exists (Atlas lists it completed) but has no manifest: nothing to verify it against.

    Atlas's own snapshots (scheduled, or taken through its API or console) are like this; only the
    snapshots ethixctl writes carry one. Verification is then not possible, which is its own outcome.
    """

    exit_code = ExitCode.UNVERIFIABLE

    def __init__(self, snapshot_id: str, taken_at: str | None, backups_url: str):
        super().__init__(
            f"verification not possible: snapshot {snapshot_id} (taken {taken_at or 'at an unknown time'}) "
            f"has no manifest in {backups_url}, so its counts, hashes and indexes cannot be checked",
            hint="Atlas's own snapshots carry no manifest (playbooks/dr.md, Production)",
        )
        self.snapshot_id = snapshot_id
        self.taken_at = taken_at


def new_id(now: float | None = None) -> str:
    """24 hex digits like an Atlas snapshot id: seconds since the epoch first, so ids sort by time."""
    return f"{int(now if now is not None else time.time()):08x}{secrets.token_hex(8)}"


def iso(epoch: float | None) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")


def epoch_of(value: Any) -> float | None:
    """Epoch seconds from a number or an ISO 8601 string; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
    return None


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def indexes_of(specs: list[dict[str, Any]]) -> list[docstore.Index]:
    """The indexes a manifest or metadata file lists (``listIndexes`` specs; ``_id`` left out), by name."""
    found = (docstore.index_from_spec(spec) for spec in specs)
    return sorted((index for index in found if index is not None), key=lambda index: index.name)


def describe_indexes(indexes: list[docstore.Index]) -> str:
    return ", ".join(f"{index.name} (unique)" if index.unique else index.name for index in indexes) or "none"


@dataclass
class _Seen:
    """What the documents of a snapshot reveal while they stream past."""

    newest_write: float | None = None
    newest_heartbeat: float | None = None
    objects: dict[str, int | None] = field(default_factory=dict)

    def visit(self, collection: str, doc: dict[str, Any]) -> None:
        for name in WRITE_TIME_FIELDS:
            when = epoch_of(doc.get(name))
            if when is not None and (self.newest_write is None or when > self.newest_write):
                self.newest_write = when
        if collection == HEARTBEATS:
            beat = epoch_of(doc.get("at"))
            if beat is not None and (self.newest_heartbeat is None or beat > self.newest_heartbeat):
                self.newest_heartbeat = beat
        if collection == "datasets" and isinstance(doc.get("object_key"), str):
            generation = doc.get("generation")
            self.objects[doc["object_key"]] = generation if isinstance(generation, int) else None


def create(
    store: docstore.DocStore,
    live: ObjectStore,
    backups: ObjectStore,
    *,
    cluster: str,
    snapshot_id: str | None = None,
    trigger: str = "on_demand",
    description: str = "",
) -> dict[str, Any]:
    """Snapshot ``store`` (one point in time) and the objects its documents refer to into ``backups``."""
    snapshot_id = snapshot_id or new_id()
    prefix = f"{SNAPSHOTS}{snapshot_id}/"
    started = time.time()
    seen = _Seen()
    files: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="ethixctl-snapshot-") as tmp:
        point_in_time = time.time()
        dumped = docstore.dump(store, tmp, compressed=True, visit=seen.visit)
        for path in sorted(Path(tmp).rglob("*")):
            if path.is_file():
                name = path.relative_to(tmp).as_posix()
                data = path.read_bytes()
                generation = backups.put(prefix + name, data)
                files.append(
                    {"name": name, "generation": generation, "size": len(data), "sha256": sha256(data)}
                )
    objects, problems = _copy_objects(live, backups, seen.objects)
    collections = {
        name: {
            "count": d.count,
            "sha256": d.sha256,
            "bson_bytes": d.bson_bytes,
            "indexes": d.indexes,
            "file": f"{store.db_name}/{name}{docstore.DUMP_SUFFIXES[True][0]}",
        }
        for name, d in sorted(dumped.items())
    }
    finished = time.time()
    manifest = {
        "format": FORMAT,
        "id": snapshot_id,
        "cluster": cluster,
        "database": store.db_name,
        "trigger": trigger,
        "description": description,
        "started_at": iso(started),
        "finished_at": iso(finished),
        "duration_seconds": round(finished - started, 3),
        "point_in_time": iso(point_in_time),
        "newest_write": iso(seen.newest_write),
        "newest_heartbeat": iso(seen.newest_heartbeat),
        "documents": sum(d.count for d in dumped.values()),
        "size_bytes": sum(f["size"] for f in files) + sum(o.get("size", 0) for o in objects),
        "collections": collections,
        "files": files,
        "objects": objects,
        "problems": problems,
    }
    backups.put(prefix + MANIFEST, json.dumps(manifest, indent=1).encode(), if_generation_match=0)
    return manifest


def _copy_objects(
    live: ObjectStore, backups: ObjectStore, wanted: dict[str, int | None]
) -> tuple[list[dict[str, Any]], list[str]]:
    """Record each referenced object (generation, size, SHA-256) and keep a copy of it by content."""
    objects: list[dict[str, Any]] = []
    problems: list[str] = []
    for key, generation in sorted(wanted.items()):
        try:
            data = live.get(key, generation=generation)
        except ObjectNotFound:
            problems.append(f"object {key} generation {generation} is missing from {live.url}")
            objects.append({"name": key, "generation": generation, "missing": True})
            continue
        digest = sha256(data)
        copy = OBJECT_COPIES + digest
        if not backups.generations(copy):
            # Another snapshot may store the same content meanwhile: then the copy is there already.
            with contextlib.suppress(PreconditionFailed):
                backups.put(copy, data, if_generation_match=0)
        objects.append(
            {"name": key, "generation": generation, "size": len(data), "sha256": digest, "backup": copy}
        )
    return objects, problems


# reading ------------------------------------------------------------------------------------------


def list_manifests(backups: ObjectStore) -> list[dict[str, Any]]:
    """Every finished snapshot's manifest, newest first."""
    manifests = []
    for key in backups.list(SNAPSHOTS):
        if key.endswith("/" + MANIFEST):
            manifests.append(json.loads(backups.get(key)))
    return sorted(manifests, key=lambda m: (m["point_in_time"], m["id"]), reverse=True)


def read_manifest(backups: ObjectStore, snapshot_id: str) -> dict[str, Any]:
    """The manifest of ``snapshot_id`` (or of the one snapshot whose id starts with it)."""
    ids = sorted(
        {key[len(SNAPSHOTS) :].split("/", 1)[0] for key in backups.list(SNAPSHOTS) if key.endswith(MANIFEST)}
    )
    matches = [i for i in ids if i == snapshot_id] or [i for i in ids if i.startswith(snapshot_id)]
    if len(matches) != 1 or not snapshot_id:
        what = "no snapshot" if not matches else f"{len(matches)} snapshots"
        raise UsageError(f"{what} with id {snapshot_id!r}", hint="`ethixctl backup list` shows the snapshots")
    return dict(json.loads(backups.get(f"{SNAPSHOTS}{matches[0]}/{MANIFEST}")))


def pick(manifests: list[dict[str, Any]], point_in_time: float | None = None) -> dict[str, Any]:
    """The newest snapshot, or the newest one taken at or before ``point_in_time``."""
    for manifest in manifests:
        taken = epoch_of(manifest["point_in_time"])
        if point_in_time is None or (taken is not None and taken <= point_in_time):
            return manifest
    when = f" at or before {iso(point_in_time)}" if point_in_time is not None else ""
    raise UsageError(f"no snapshot{when}", hint="`ethixctl backup create` takes one")


def check_files(backups: ObjectStore, manifest: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Download each file of the snapshot and check it against the manifest; yields (file, bytes)."""
    prefix = f"{SNAPSHOTS}{manifest['id']}/"
    for entry in manifest["files"]:
        collection = entry["name"].split("/")[-1].split(".")[0]
        try:
            data = backups.get(prefix + entry["name"], generation=entry["generation"])
        except ObjectNotFound:
            raise SnapshotCorrupt(
                f"collection {collection}: snapshot file {entry['name']} generation {entry['generation']} "
                "is missing",
                collection,
            ) from None
        if len(data) != entry["size"] or sha256(data) != entry["sha256"]:
            raise SnapshotCorrupt(
                f"collection {collection}: snapshot file {entry['name']} does not match its checksum "
                f"(manifest: {entry['size']} bytes, sha256 {entry['sha256'][:12]}…; "
                f"stored: {len(data)} bytes, sha256 {sha256(data)[:12]}…)",
                collection,
            )
        yield {**entry, "data": data}


def restore(backups: ObjectStore, manifest: dict[str, Any], target: docstore.DocStore) -> dict[str, int]:
    """Load the snapshot into ``target`` (its collections are emptied first); every file is checked
    against the manifest before anything is loaded."""
    with tempfile.TemporaryDirectory(prefix="ethixctl-restore-") as tmp:
        for entry in check_files(backups, manifest):
            path = Path(tmp) / entry["name"]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(entry["data"])
        if manifest["database"] != target.db_name:
            raise UsageError(
                f"snapshot {manifest['id']} holds database {manifest['database']!r}, "
                f"the target is {target.db_name!r}"
            )
        return docstore.restore(target, tmp)


def prune(backups: ObjectStore, keep_seconds: float, now: float | None = None) -> list[str]:
    """Delete snapshots older than ``keep_seconds`` (never the newest), then object copies no remaining
    snapshot refers to. Returns the ids deleted."""
    now = time.time() if now is None else now
    manifests = list_manifests(backups)
    doomed = [m["id"] for m in manifests[1:] if (epoch_of(m["point_in_time"]) or now) < now - keep_seconds]
    for snapshot_id in doomed:
        # The manifest first: a half-deleted snapshot is then an unfinished one, never listed.
        backups.delete(f"{SNAPSHOTS}{snapshot_id}/{MANIFEST}")
        for key in backups.list(f"{SNAPSHOTS}{snapshot_id}/"):
            backups.delete(key)
    if doomed:
        kept = {o.get("backup") for m in list_manifests(backups) for o in m["objects"]}
        for key in backups.list(OBJECT_COPIES):
            # Generations are microsecond timestamps (GCS and the local bucket): a copy stored in the
            # last hour may belong to a snapshot still being written, whose manifest is not there yet.
            recent = max(backups.generations(key), default=0) / 1e6 > now - UNFINISHED_GRACE
            if key not in kept and not recent:
                backups.delete(key)
    return doomed
