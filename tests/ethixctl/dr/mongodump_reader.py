"""A reader of mongodump directories written from the published formats, independent of pymongo's bson.

Sources: the BSON specification (bsonspec.org, version 1.1) for ``.bson`` files — documents back to
back, each ``int32 total length, e_list, 0x00``, little-endian; and mongo-tools' ``mongorestore``
(``filepath.go``: with ``--gzip`` a dump directory holds ``<coll>.bson.gz`` and
``<coll>.metadata.json.gz``; ``metadata.go``: the metadata is Extended JSON with ``options``,
``indexes``, ``uuid``, ``collectionName``). Only the element types our documents use are decoded; any
other type is an error, so a writer emitting something unexpected fails the test.
"""

from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path
from typing import Any


class FormatError(Exception):
    pass


def _cstring(data: bytes, at: int) -> tuple[str, int]:
    end = data.index(b"\x00", at)
    return data[at:end].decode("utf-8"), end + 1


def _document(data: bytes, at: int) -> tuple[dict[str, Any], int]:
    (length,) = struct.unpack_from("<i", data, at)
    end = at + length
    if length < 5 or end > len(data) or data[end - 1] != 0:
        raise FormatError(f"bad document length {length} at offset {at}")
    pos = at + 4
    out: dict[str, Any] = {}
    while pos < end - 1:
        kind = data[pos]
        name, pos = _cstring(data, pos + 1)
        if kind == 0x01:  # double
            (out[name],) = struct.unpack_from("<d", data, pos)
            pos += 8
        elif kind == 0x02:  # string: int32 length (with the NUL), bytes, 0x00
            (size,) = struct.unpack_from("<i", data, pos)
            raw = data[pos + 4 : pos + 4 + size]
            if raw[-1:] != b"\x00":
                raise FormatError(f"unterminated string {name!r}")
            out[name] = raw[:-1].decode("utf-8")
            pos += 4 + size
        elif kind in (0x03, 0x04):  # embedded document, array (a document with keys "0", "1", ...)
            value, pos = _document(data, pos)
            if kind == 0x04:
                if list(value) != [str(i) for i in range(len(value))]:
                    raise FormatError(f"array {name!r} has keys {list(value)}")
                value = list(value.values())  # type: ignore[assignment]
            out[name] = value
        elif kind == 0x08:  # boolean
            out[name] = data[pos] == 1
            pos += 1
        elif kind == 0x0A:  # null
            out[name] = None
        elif kind == 0x10:  # int32
            (out[name],) = struct.unpack_from("<i", data, pos)
            pos += 4
        elif kind == 0x12:  # int64
            (out[name],) = struct.unpack_from("<q", data, pos)
            pos += 8
        else:
            raise FormatError(f"element type 0x{kind:02x} of {name!r} is not expected in our documents")
    if pos != end - 1:
        raise FormatError(f"document at offset {at} overruns its length")
    return out, end


def read_bson(data: bytes) -> list[dict[str, Any]]:
    """Every document of a ``.bson`` file, in file order."""
    docs, at = [], 0
    while at < len(data):
        doc, at = _document(data, at)
        docs.append(doc)
    return docs


def _relaxed(value: Any) -> Any:
    """Canonical Extended JSON numbers ({"$numberInt": "2"}) as plain values."""
    if isinstance(value, dict):
        if set(value) == {"$numberInt"} or set(value) == {"$numberLong"}:
            return int(next(iter(value.values())))
        if set(value) == {"$numberDouble"}:
            return float(value["$numberDouble"])
        return {k: _relaxed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_relaxed(v) for v in value]
    return value


def read_dump(directory: Path, database: str) -> dict[str, dict[str, Any]]:
    """``{collection: {"raw": bytes, "documents": [...], "metadata": {...}}}`` of a ``--gzip`` dump."""
    collections: dict[str, dict[str, Any]] = {}
    for path in sorted((directory / database).iterdir()):
        if not path.name.endswith(".bson.gz"):
            if not path.name.endswith(".metadata.json.gz"):
                raise FormatError(f"mongorestore --gzip would skip {path.name}")
            continue
        name = path.name[: -len(".bson.gz")]
        raw = gzip.decompress(path.read_bytes())
        meta_path = directory / database / f"{name}.metadata.json.gz"
        metadata = _relaxed(json.loads(gzip.decompress(meta_path.read_bytes())))
        collections[name] = {"raw": raw, "documents": read_bson(raw), "metadata": metadata}
    return collections
