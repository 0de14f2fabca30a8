"""Cursor pagination for list endpoints: ``limit`` (default 50, at most 200) and an opaque ``cursor``.

A page is one keyset query (``Collection.find(..., after=...)``) on an index whose keys are the sort
order, ending in ``_id`` so no two documents tie: the cost of a page does not grow with the pages
before it, and documents inserted meanwhile neither repeat nor shift the pages. The cursor is the last
document's sort key, base64url-encoded JSON: opaque to clients, which pass back ``next_cursor``
unchanged (``null`` on the last page).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import HTTPException, Query, status

from services.common.docstore import Collection, Document, Filter, Sort

DEFAULT_LIMIT = 50
MAX_LIMIT = 200

Limit = Annotated[
    int,
    Query(ge=1, le=MAX_LIMIT, description=f"Items per page (default {DEFAULT_LIMIT}, at most {MAX_LIMIT})."),
]
Cursor = Annotated[
    str | None,
    Query(
        max_length=1024,
        description="Where the page starts: the `next_cursor` of the previous page, passed back unchanged. "
        "Leave it out for the first page.",
    ),
]


def encode_cursor(values: Sequence[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(values)).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, keys: int) -> list[Any]:
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError):
        values = None
    if not isinstance(values, list) or len(values) != keys:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            "invalid cursor: pass the next_cursor of the previous page unchanged",
        )
    return values


def page(
    collection: Collection, filter: Filter, sort: Sort, limit: int, cursor: str | None
) -> tuple[list[Document], str | None]:
    """One page of ``collection.find(filter)`` in ``sort`` order, and the cursor of the next (or None)."""
    after = None if cursor is None else decode_cursor(cursor, len(sort))
    docs = collection.find(filter, sort, limit=limit + 1, after=after)
    if len(docs) <= limit:
        return docs, None
    docs = docs[:limit]
    last = docs[-1]
    return docs, encode_cursor([last[field] for field, _ in sort])
