"""Object storage in a drill: a scratch copy of the bucket, damage done to it, and the recovery.

The live bucket is only ever read. The scratch copy holds every referenced object with its version
history (oldest first, so the newest generation is the live one), as GCS object versioning would keep
it. Recovery of one object prefers its version history (a generation whose checksum matches the
manifest) and falls back to the snapshot's copy in the backup bucket.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Any

from ethixctl.dr.snapshot import sha256
from services.common.storage import ObjectNotFound, ObjectStore


@dataclass
class Recovery:
    name: str
    action: str  # intact | restored | lost
    source: str  # live | version_history | backup_bucket | none
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _expected(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    return [o for o in manifest["objects"] if not o.get("missing")]


def copy_to_scratch(
    live: ObjectStore, backups: ObjectStore, scratch: ObjectStore, manifest: dict[str, Any], *, history: bool
) -> list[Recovery]:
    """Put each object of the manifest into ``scratch`` (with its older generations when ``history``).

    The snapshot's generation is read from the live bucket; when it is gone, from the backup copy.
    Keys already holding the right content in ``scratch`` are left alone, so a resumed copy is cheap.
    """
    copied: list[Recovery] = []
    for entry in _expected(manifest):
        key = entry["name"]
        try:
            if sha256(scratch.get(key)) == entry["sha256"]:
                copied.append(Recovery(key, "intact", "scratch", "already copied"))
                continue
        except ObjectNotFound:
            pass
        if history:
            for generation in live.generations(key):
                if generation != entry["generation"]:
                    scratch.put(key, live.get(key, generation=generation))
        data, source = _good_copy(live, backups, entry)
        if data is None:
            copied.append(Recovery(key, "lost", "none", source))
            continue
        scratch.put(key, data)
        copied.append(Recovery(key, "intact" if source == "live" else "restored", source, "copied"))
    return copied


def _good_copy(live: ObjectStore, backups: ObjectStore, entry: dict[str, Any]) -> tuple[bytes | None, str]:
    try:
        data = live.get(entry["name"], generation=entry["generation"])
        if sha256(data) == entry["sha256"]:
            return data, "live"
    except ObjectNotFound:
        pass
    try:
        data = backups.get(entry["backup"])
    except ObjectNotFound:
        return None, f"generation {entry['generation']} and the backup copy {entry['backup']} are both gone"
    if sha256(data) != entry["sha256"]:
        return None, f"the backup copy {entry['backup']} does not match its checksum"
    return data, "backup_bucket"


def damage(
    scratch: ObjectStore, manifest: dict[str, Any], *, deleted: int, overwritten: int, seed: int
) -> list[dict[str, str]]:
    """Delete (every version) and overwrite (a new bad generation) objects of the scratch copy."""
    names = sorted(o["name"] for o in _expected(manifest))
    chosen = random.Random(seed).sample(names, min(len(names), deleted + overwritten))
    done = []
    for index, key in enumerate(chosen):
        if index < deleted:
            scratch.delete(key)
            done.append({"name": key, "damage": "deleted with every version"})
        else:
            scratch.put(key, b"overwritten by the DR drill\n")
            done.append({"name": key, "damage": "overwritten"})
    return done


def recover(scratch: ObjectStore, backups: ObjectStore, manifest: dict[str, Any]) -> list[Recovery]:
    """Bring every object of the manifest back to its checksum in ``scratch``."""
    results: list[Recovery] = []
    for entry in _expected(manifest):
        key, want = entry["name"], entry["sha256"]
        try:
            if sha256(scratch.get(key)) == want:
                results.append(Recovery(key, "intact", "live", "matches the manifest"))
                continue
        except ObjectNotFound:
            pass
        restored = None
        for generation in reversed(scratch.generations(key)):
            data = scratch.get(key, generation=generation)
            if sha256(data) == want:
                scratch.put(key, data)
                restored = Recovery(key, "restored", "version_history", f"from generation {generation}")
                break
        if restored is None:
            try:
                data = backups.get(entry["backup"])
            except ObjectNotFound:
                data = b""
            if data and sha256(data) == want:
                scratch.put(key, data)
                restored = Recovery(key, "restored", "backup_bucket", f"from {entry['backup']}")
            else:
                restored = Recovery(key, "lost", "none", "no generation and no backup copy match")
        results.append(restored)
    return results


def clear(scratch: ObjectStore) -> int:
    """Delete everything in the scratch bucket; returns how many objects."""
    keys = scratch.list()
    for key in keys:
        scratch.delete(key)
    return len(keys)
