"""`page_size` / `page_token` paging of list calls, as Google's list methods do it (AIP-158).

The token is opaque to clients: the sort key of the last item returned. A page continues after that
key, so items created or deleted between two calls never make a page repeat or skip the others.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from ethixctl.platform.controlplane import apierror

T = TypeVar("T")
Key = tuple[float | str, ...]
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


@dataclass
class Page(Generic[T]):
    items: list[T]
    next_token: str


def paginate(
    items: Sequence[T], key: Callable[[T], Key], size: int, token: str, *, newest_first: bool = False
) -> Page[T]:
    """One page of `items` ordered by `key` (descending with `newest_first`); `size` 0 means the default."""
    if size < 0:
        raise apierror.invalid_argument(f"page_size must not be negative, got {size}")
    size = min(size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    ordered = sorted(items, key=key, reverse=newest_first)
    if token:
        after = _decode(token)
        if ordered and [type(v) for v in after] != [type(v) for v in key(ordered[0])]:
            raise _bad_token(token)
        ordered = [item for item in ordered if (key(item) < after if newest_first else key(item) > after)]
    page = ordered[:size]
    more = len(ordered) > size
    return Page(page, _encode(key(page[-1])) if more else "")


def _encode(key: Key) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode()


def _decode(token: str) -> Key:
    try:
        values = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (binascii.Error, ValueError):
        values = None
    if not isinstance(values, list) or not all(isinstance(v, (str, float)) for v in values):
        raise _bad_token(token)
    return tuple(values)


def _bad_token(token: str) -> apierror.ApiError:
    return apierror.invalid_argument(
        f"invalid page_token {token!r}: pass the next_page_token of the same list call"
    )
