"""Document store at 1,000,000 documents (SQLite, the embedded default): one user's first page of datasets.

1,000,000 dataset documents of 10,000 users (100 each) in a real SQLite file with the backend's declared
indexes. Measured through the code the route runs (``services.backend.pagination.page``): a user's first
page (50 items) and the page after it. Baseline, interleaved in the same run: a lookup by ``_id`` (the
primary key), the cheapest query the store has. Goal: first page ≤ 5 ms (median).
The load itself is reported as an absolute figure for this machine.
"""

from __future__ import annotations

import json
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

DOCUMENTS = 1_000_000
USERS = 10_000
BATCH = 20_000
SAMPLES = 300
PAGE = 50
GOAL_FIRST_PAGE_MS = 5.0


def _dataset(n: int) -> dict[str, Any]:
    return {
        "_id": f"{n:032x}",
        "owner_id": f"user-{n % USERS:05d}",
        "filename": f"loans-{n}.csv",
        "rows": 1000 + n % 7,
        "columns": ["age", "income", "postcode", "gender", "approved"],
        "size_bytes": 40_000 + n % 1000,
        "created_at": f"2026-{1 + n % 12:02d}-01T00:00:00.{n:06d}+00:00",
        "object_key": f"datasets/user-{n % USERS:05d}/{n:032x}.csv",
        "generation": 1,
    }


def _ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 3)


def run() -> dict[str, object]:
    from services.backend.app import INDEXES, prepare_store
    from services.backend.pagination import page
    from services.backend.routers.datasets import LIST_ORDER
    from services.common.docstore import SqliteStore

    rng = random.Random(7)
    with tempfile.TemporaryDirectory(prefix="bench-docstore-") as tmp:
        store = SqliteStore(Path(tmp) / "store.db")
        try:
            prepare_store(store)
            datasets = store["datasets"]
            started = time.perf_counter()
            for first in range(0, DOCUMENTS, BATCH):
                datasets.insert_many(_dataset(n) for n in range(first, min(first + BATCH, DOCUMENTS)))
            load_s = time.perf_counter() - started
            size_mb = (Path(tmp) / "store.db").stat().st_size / 1e6
            first_page: list[float] = []
            next_page: list[float] = []
            by_id: list[float] = []
            for _ in range(SAMPLES):
                user = f"user-{rng.randrange(USERS):05d}"
                doc_id = f"{rng.randrange(DOCUMENTS):032x}"
                t0 = time.perf_counter()
                docs, cursor = page(datasets, {"owner_id": user}, LIST_ORDER, PAGE, None)
                t1 = time.perf_counter()
                found = datasets.find_one({"_id": doc_id})
                t2 = time.perf_counter()
                more, _ = page(datasets, {"owner_id": user}, LIST_ORDER, PAGE, cursor)
                t3 = time.perf_counter()
                if len(docs) != PAGE or cursor is None or len(more) != PAGE or found is None:
                    raise RuntimeError(f"unexpected answer for {user} / {doc_id}")
                first_page.append(t1 - t0)
                by_id.append(t2 - t1)
                next_page.append(t3 - t2)
            plan = datasets.explain({"owner_id": "user-00001"}, LIST_ORDER, limit=PAGE + 1)
        finally:
            store.close()
    first_ms, baseline_ms = _ms(first_page), _ms(by_id)
    return {
        "documents": DOCUMENTS,
        "users": USERS,
        "page_size": PAGE,
        "indexes": {name: [index.name for index in indexes] for name, indexes in INDEXES.items()},
        "load_absolute_s": round(load_s, 1),
        "database_mb": round(size_mb, 1),
        "first_page_median_ms": first_ms,
        "first_page_p95_ms": round(sorted(first_page)[int(0.95 * SAMPLES)] * 1000, 3),
        "next_page_median_ms": _ms(next_page),
        "baseline_lookup_by_id_median_ms": baseline_ms,
        "ratio_first_page_to_lookup_by_id": round(first_ms / baseline_ms, 1),
        "query_plan": plan,
        "goal_first_page_ms": GOAL_FIRST_PAGE_MS,
        "meets_goal": first_ms <= GOAL_FIRST_PAGE_MS,
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
