"""The control plane's long-running operations (google.longrunning): get, list, wait and delete.

Operations live in memory only. A finished operation is kept for `keep_done` seconds (clients poll
it, and list it to see what happened), and at most `max_done` of them, oldest evicted first, so a
platform that runs for weeks holds a bounded number. A running operation is never evicted. A deleted
operation that is still running disappears from the API at once, like Google's (the client is "no
longer interested"); its change still completes.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.longrunning import operations_pb2
from google.protobuf import any_pb2

from ethixctl.platform.controlplane import apierror
from ethixctl.platform.controlplane.paging import Page, paginate

# `:wait` never holds a request longer than this, whatever timeout the client asks for (Google caps it
# at its RPC deadline the same way); the client sees the operation still running and polls again.
MAX_WAIT = 60.0
KEEP_DONE = 3600.0
MAX_DONE = 500
_FILTERS = {"": None, "done=true": True, "done=false": False}


@dataclass
class _Entry:
    operation: operations_pb2.Operation
    created: float
    ended: float | None = None
    deleted: bool = False


def pack(message: Any) -> any_pb2.Any:
    """A proto-plus message in an `Any`, as an operation's metadata or response."""
    packed = any_pb2.Any()
    packed.Pack(type(message).pb(message))
    return packed


def preview(location: str, result: Any) -> operations_pb2.Operation:
    """The answer to a `validate_only` request: done at once, with what the change would make; not kept."""
    operation = operations_pb2.Operation(name=f"{location}/operations/{uuid.uuid4()}", done=True)
    operation.metadata.CopyFrom(pack(result))
    operation.response.CopyFrom(pack(result))
    return operation


def _copy(operation: operations_pb2.Operation) -> operations_pb2.Operation:
    copy = operations_pb2.Operation()
    copy.CopyFrom(operation)
    return copy


class Operations:
    def __init__(
        self,
        *,
        keep_done: float = KEEP_DONE,
        max_done: int = MAX_DONE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._keep_done = keep_done
        self._max_done = max_done
        self._clock = clock
        self._changed = threading.Condition()
        # Insertion order is start order: the oldest operations come first.
        self._entries: dict[str, _Entry] = {}

    def __len__(self) -> int:
        with self._changed:
            return len(self._entries)

    def start(self, location: str, metadata: Any) -> operations_pb2.Operation:
        operation = operations_pb2.Operation(name=f"{location}/operations/{uuid.uuid4()}", done=False)
        operation.metadata.CopyFrom(pack(metadata))
        with self._changed:
            self._evict()
            self._entries[operation.name] = _Entry(operation, self._clock())
            return _copy(operation)

    def _evict(self) -> None:
        """Forget operations that ended more than `keep_done` ago, then the oldest beyond `max_done`."""
        cutoff = self._clock() - self._keep_done
        ended = [name for name, e in self._entries.items() if e.ended is not None]
        expired = {name for name in ended if (self._entries[name].ended or 0.0) <= cutoff}
        kept = [name for name in ended if name not in expired]
        for name in [*expired, *kept[: max(0, len(kept) - self._max_done)]]:
            del self._entries[name]

    def finish(self, name: str, result: Any) -> None:
        with self._changed:
            entry = self._entries.get(name)
            if entry is not None:
                entry.operation.metadata.CopyFrom(pack(result))
                entry.operation.response.CopyFrom(pack(result))
                self._end(name, entry)

    def fail(self, name: str, status: str, message: str) -> None:
        with self._changed:
            entry = self._entries.get(name)
            if entry is not None:
                entry.operation.error.code = apierror.GRPC_CODES[status]
                entry.operation.error.message = message
                self._end(name, entry)

    def _end(self, name: str, entry: _Entry) -> None:
        entry.operation.done = True
        entry.ended = self._clock()
        if entry.deleted:
            del self._entries[name]
        self._evict()
        self._changed.notify_all()

    def done(self, name: str) -> bool:
        """Ended, or no longer held (deleted by a client once it ended)."""
        with self._changed:
            entry = self._entries.get(name)
            return entry is None or entry.operation.done

    def get(self, name: str) -> operations_pb2.Operation:
        with self._changed:
            return _copy(self._visible(name).operation)

    def wait(self, name: str, timeout: float | None) -> operations_pb2.Operation:
        """The operation once done, or as it is after `timeout` (at most MAX_WAIT) seconds."""
        if timeout is not None and timeout < 0:
            raise apierror.invalid_argument(f"timeout must not be negative, got {timeout}s")
        limit = MAX_WAIT if timeout is None else min(timeout, MAX_WAIT)
        with self._changed:
            self._changed.wait_for(
                lambda: (
                    name not in self._entries
                    or self._entries[name].operation.done
                    or self._entries[name].deleted
                ),
                timeout=limit,
            )
            return _copy(self._visible(name).operation)

    def list(self, location: str, filter_text: str, page_size: int, page_token: str) -> Page[Any]:
        """The location's operations, oldest first; `filter` supports `done=true` and `done=false`."""
        normalized = filter_text.replace(" ", "").lower()
        if normalized not in _FILTERS:
            raise apierror.invalid_argument(
                f"unsupported filter {filter_text!r}: the local control plane supports done=true|false"
            )
        wanted = _FILTERS[normalized]
        prefix = location + "/operations/"
        with self._changed:
            found = [
                entry
                for name, entry in self._entries.items()
                if name.startswith(prefix)
                and not entry.deleted
                and (wanted is None or entry.operation.done == wanted)
            ]
            page = paginate(
                found, key=lambda e: (e.created, e.operation.name), size=page_size, token=page_token
            )
            return Page([_copy(entry.operation) for entry in page.items], page.next_token)

    def delete(self, name: str) -> None:
        with self._changed:
            entry = self._visible(name)
            if entry.operation.done:
                del self._entries[name]
            else:
                entry.deleted = True
            self._changed.notify_all()

    def _visible(self, name: str) -> _Entry:
        entry = self._entries.get(name)
        if entry is None or entry.deleted:
            raise apierror.not_found(f"operation {name} not found")
        return entry
