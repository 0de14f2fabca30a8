"""The heartbeat that makes RPO measurable: one document, rewritten on a schedule.

``heartbeats/<service>`` holds the time of the newest beat. A restored database's heartbeat is the
newest write it is known to contain, so ``incident - heartbeat`` is the data actually lost (the
verification pattern of Litestream), whatever the snapshot's metadata claims.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime

from starlette.concurrency import run_in_threadpool

from services.backend.settings import BackendSettings
from services.common.docstore import DocStore, DuplicateKeyError

COLLECTION = "heartbeats"


def beat(store: DocStore, settings: BackendSettings) -> float:
    """Write one beat now; returns its time (epoch seconds)."""
    now = time.time()
    fields = {
        "at": now,
        "at_iso": datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds"),
        "revision": settings.revision,
    }
    beats = store[COLLECTION]
    if not beats.update_one({"_id": settings.service_name}, {"$set": fields, "$inc": {"beats": 1}}):
        try:
            beats.insert_one({"_id": settings.service_name, **fields, "beats": 1})
        except DuplicateKeyError:  # another revision wrote the first beat meanwhile
            beats.update_one({"_id": settings.service_name}, {"$set": fields, "$inc": {"beats": 1}})
    return now


async def _beat_once(store: DocStore, settings: BackendSettings) -> None:
    # A beat that fails (database briefly away) is simply missing: RPO then looks worse, never better.
    with contextlib.suppress(Exception):
        await run_in_threadpool(beat, store, settings)


async def beat_forever(store: DocStore, settings: BackendSettings) -> None:
    while True:
        in_flight = asyncio.ensure_future(_beat_once(store, settings))
        try:
            await asyncio.shield(in_flight)
        except asyncio.CancelledError:
            # Cancelling does not stop the worker thread, and the store is closed right after this
            # task ends: let the beat finish with it first.
            await in_flight
            raise
        await asyncio.sleep(settings.heartbeat_seconds)
