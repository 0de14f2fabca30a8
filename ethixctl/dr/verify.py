"""Is restored data what the snapshot's manifest says it holds? Every check names what it looked at.

Database: per collection the document count, the SHA-256 over the BSON documents in ``_id`` order and
every index (keys, directions, uniqueness), against the manifest (MongoDB's own check is ``dbHash``;
this one also works on the SQLite store and is computed the same way on both sides). References: every
analysis's dataset exists; every dataset's object exists in the bucket with the manifest's checksum.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ethixctl.dr.snapshot import describe_indexes, indexes_of, sha256
from services.common import docstore
from services.common.storage import ObjectNotFound, ObjectStore


@dataclass
class Check:
    kind: str  # count | sha256 | indexes | reference | object
    subject: str  # the collection or the object key
    passed: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def database(target: docstore.DocStore, manifest: dict[str, Any]) -> list[Check]:
    """Counts, hashes and indexes of every collection in the manifest against ``target``."""
    actual = docstore.digest(target)
    checks: list[Check] = []
    for name, expected in sorted(manifest["collections"].items()):
        found = actual.get(name)
        if found is None:
            checks.append(Check("count", name, False, f"collection {name} is missing from the restored data"))
            continue
        checks.append(
            Check(
                "count",
                name,
                found.count == expected["count"],
                f"{found.count} documents (manifest: {expected['count']})",
            )
        )
        checks.append(
            Check(
                "sha256",
                name,
                found.sha256 == expected["sha256"],
                f"sha256 {found.sha256[:12]}… (manifest: {expected['sha256'][:12]}…)",
            )
        )
        want, have = indexes_of(expected["indexes"]), indexes_of(found.indexes)
        checks.append(
            Check(
                "indexes",
                name,
                want == have,
                f"{describe_indexes(have)} (manifest: {describe_indexes(want)})",
            )
        )
    for name in sorted(set(actual) - set(manifest["collections"])):
        checks.append(Check("count", name, False, f"collection {name} is not in the snapshot"))
    return checks


def references(target: docstore.DocStore, bucket: ObjectStore, manifest: dict[str, Any]) -> list[Check]:
    """Every analysis's dataset exists; every dataset's object is in ``bucket`` with its checksum."""
    checks: list[Check] = []
    datasets = target["datasets"].find({})
    dataset_ids = {doc["_id"] for doc in datasets}
    dangling = [a for a in target["analyses"].find({}) if a.get("dataset_id") not in dataset_ids]
    checks.append(
        Check(
            "reference",
            "analyses",
            not dangling,
            "every analysis's dataset exists"
            if not dangling
            else f"analysis {dangling[0]['_id']} refers to dataset {dangling[0].get('dataset_id')}, which "
            f"is missing ({len(dangling)} such analyses)",
        )
    )
    expected = {o["name"]: o for o in manifest["objects"]}
    for dataset in sorted(datasets, key=lambda d: str(d.get("object_key"))):
        key = dataset.get("object_key")
        if not isinstance(key, str):
            checks.append(Check("object", f"datasets/{dataset['_id']}", False, "the dataset names no object"))
            continue
        want = expected.get(key)
        try:
            data = bucket.get(key)
        except ObjectNotFound:
            checks.append(Check("object", key, False, f"missing from {bucket.url}"))
            continue
        if want is None or want.get("missing"):
            checks.append(Check("object", key, False, "the snapshot has no checksum for it"))
            continue
        digest = sha256(data)
        checks.append(
            Check(
                "object",
                key,
                digest == want["sha256"] and len(data) == want["size"],
                f"{len(data)} bytes, sha256 {digest[:12]}… (manifest: {want['size']} bytes, "
                f"{want['sha256'][:12]}…)",
            )
        )
    return checks


def failures(checks: list[Check]) -> list[Check]:
    return [check for check in checks if not check.passed]
