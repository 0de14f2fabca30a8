"""A small workload written straight into a store and a bucket, shaped like the backend's own data."""

from __future__ import annotations

from services.backend.app import prepare_store
from services.common.docstore import DocStore
from services.common.storage import ObjectStore


def seed(store: DocStore, live: ObjectStore, users: int = 3) -> None:
    """What the backend writes: users, datasets (file in the bucket), analyses with reports, a heartbeat,
    under the backend's indexes, and a login-failure counter (short-lived state no snapshot holds)."""
    prepare_store(store)
    store.counters("login_failures").incr("account:user0@example.com", 1, ttl_seconds=600)
    for u in range(users):
        user_id = store["users"].insert_one(
            {"email": f"user{u}@example.com", "created_at": "2026-12-01T10:00:00+00:00"}
        )
        for d in range(2):
            key = f"datasets/{user_id}/d{d}.csv"
            generation = live.put(key, f"a,b\n{u},{d}\n".encode(), if_generation_match=0)
            dataset_id = store["datasets"].insert_one(
                {"owner_id": user_id, "object_key": key, "generation": generation, "rows": 1,
                 "created_at": "2026-12-01T10:00:01+00:00"}
            )  # fmt: skip
            store["analyses"].insert_one(
                {"owner_id": user_id, "dataset_id": dataset_id, "status": "succeeded",
                 "report": {"fairness": {"dp": 0.1 * d}, "n": [1, 2.5, None, True]},
                 "created_at": "2026-12-01T10:00:02+00:00", "finished_at": "2026-12-01T10:00:03+00:00"}
            )  # fmt: skip
    store["heartbeats"].insert_one({"_id": "backend", "at": 1_796_172_800.5, "revision": "backend-00001-abc"})
