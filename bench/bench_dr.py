"""DR: snapshot and restore of 100,000 documents, and a full local drill.

1. Snapshot (consistent read → mongodump --gzip files + manifest, written to a local versioned bucket),
   restore (checked download → bulk load into an empty SQLite store) and verification (counts, hashes,
   indexes) of 100,000 documents, against SQLite's online backup API (``sqlite3.Connection.backup``)
   copying the same database in the same run: documents/s and MB/s (BSON bytes; the backup's MB are
   database pages). Runs are interleaved, medians reported.
2. A full local drill on the real platform (``ethixctl up``): incident → smoke green (RTO), with each
   step's time. Baseline: the smoke suite alone against the live backend in the same run, the part of
   the drill no restore can speed up. Goal: RTO ≤ 60 s.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

DOCUMENTS = 100_000
RUNS = 3
DRILL_GOAL_SECONDS = 60.0


def _fill(path: Path) -> None:
    """100k documents shaped like the backend's (users, datasets, analyses with small reports)."""
    from services.backend.app import prepare_store
    from services.common.docstore import SqliteStore

    store = SqliteStore(path)
    prepare_store(store)  # the backend's indexes: snapshots carry them, restores rebuild them
    third = DOCUMENTS // 3
    users = (
        {"_id": f"u{i:07d}", "email": f"user{i}@example.com", "created_at": "2026-12-01T10:00:00+00:00"}
        for i in range(third)
    )
    datasets = (
        {
            "_id": f"d{i:07d}",
            "owner_id": f"u{i:07d}",
            "object_key": f"datasets/u{i:07d}/d.csv",
            "rows": 100,
            "columns": ["age", "income", "gender", "approved"],
            "created_at": "2026-12-01T10:00:01+00:00",
        }
        for i in range(third)
    )
    analyses = (
        {
            "_id": f"a{i:07d}",
            "owner_id": f"u{i:07d}",
            "dataset_id": f"d{i:07d}",
            "status": "succeeded",
            "report": {
                "fairness": {"demographic_parity_difference": 0.1},
                "feature_importance": {"age": 0.2},
            },
            "created_at": "2026-12-01T10:00:02+00:00",
        }
        for i in range(DOCUMENTS - 2 * third)
    )
    for name, docs in (("users", users), ("datasets", datasets), ("analyses", analyses)):
        store[name].insert_many(docs)
    store.close()


def _workload(base: str) -> None:
    """Data worth restoring: a user with datasets (files in the bucket) and an analysis with a report."""
    import secrets

    import httpx

    from ethixctl import procs

    csv = (procs.REPO_ROOT / "playbooks" / "fixtures" / "smoke_loans.csv").read_bytes()
    credentials = {"email": f"bench-{secrets.token_hex(4)}@example.com", "password": secrets.token_hex(8)}
    with httpx.Client(base_url=base, timeout=60) as http:
        http.post("/api/v1/auth/register", json=credentials).raise_for_status()
        token = http.post("/api/v1/auth/login", json=credentials).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        for _ in range(3):
            dataset = http.post(
                "/api/v1/datasets", files={"file": ("l.csv", csv, "text/csv")}, headers=headers
            )
            dataset.raise_for_status()
        body = {"dataset_id": dataset.json()["id"], "target": "approved", "protected_attribute": "gender",
                "positive_label": "yes"}  # fmt: skip
        analysis = http.post("/api/v1/analyses", json=body, headers=headers).json()
        while http.get(f"/api/v1/analyses/{analysis['id']}", headers=headers).json()["status"] in (
            "queued",
            "running",
        ):
            time.sleep(0.2)


def _sqlite_backup(source: Path, target: Path) -> float:
    target.unlink(missing_ok=True)
    started = time.perf_counter()
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    return time.perf_counter() - started


def _documents(work: Path) -> dict[str, Any]:
    from ethixctl.dr import snapshot, verify
    from services.common.docstore import SqliteStore
    from services.common.storage import LocalObjectStore

    live_path = work / "live.db"
    _fill(live_path)
    live = SqliteStore(live_path)
    empty_bucket = LocalObjectStore(work / "bucket")
    times: dict[str, list[float]] = {"snapshot": [], "restore": [], "verify": [], "sqlite_backup": []}
    manifest: dict[str, Any] = {}
    for run in range(RUNS):
        times["sqlite_backup"].append(_sqlite_backup(live_path, work / f"backup-{run}.db"))
        backups = LocalObjectStore(work / f"backups-{run}")
        started = time.perf_counter()
        manifest = snapshot.create(live, empty_bucket, backups, cluster="bench")
        times["snapshot"].append(time.perf_counter() - started)
        target = SqliteStore(work / f"restored-{run}.db")
        started = time.perf_counter()
        snapshot.restore(backups, manifest, target)
        times["restore"].append(time.perf_counter() - started)
        started = time.perf_counter()
        failed = verify.failures(verify.database(target, manifest))
        times["verify"].append(time.perf_counter() - started)
        assert not failed, failed
        target.close()
    live.close()
    bson_mb = sum(c["bson_bytes"] for c in manifest["collections"].values()) / 1e6
    db_mb = live_path.stat().st_size / 1e6
    median = {name: statistics.median(values) for name, values in times.items()}
    return {
        "documents": manifest["documents"],
        "bson_mb": round(bson_mb, 1),
        "snapshot_stored_mb": round(manifest["size_bytes"] / 1e6, 1),
        "database_mb": round(db_mb, 1),
        "seconds": {name: round(value, 3) for name, value in median.items()},
        "documents_per_second": {
            name: round(DOCUMENTS / median[name])
            for name in ("snapshot", "restore", "verify", "sqlite_backup")
        },
        "mb_per_second": {
            "snapshot": round(bson_mb / median["snapshot"], 1),
            "restore": round(bson_mb / median["restore"], 1),
            "sqlite_backup": round(db_mb / median["sqlite_backup"], 1),
        },
        "ratio_to_sqlite_backup": {
            name: round(median[name] / median["sqlite_backup"], 1)
            for name in ("snapshot", "restore", "verify")
        },
    }


def _drill(work: Path) -> dict[str, Any]:
    from ethixctl.cli import main
    from ethixctl.platform import lifecycle
    from ethixctl.smoke import run_suite

    os.environ.update({"ETHIX_HEARTBEAT_SECONDS": "1", "ETHIXCTL_SNAPSHOT_INTERVAL": "3600"})
    state_dir = work / "platform"
    info = lifecycle.up(state_dir, free_ports=True, timeout=240).info
    try:
        args = ["--state-dir", str(state_dir)]
        _workload(info["services"]["backend"])
        smoke = run_suite(info["services"]["backend"])
        assert smoke.passed, smoke.outcome
        # Its summary would land in the middle of the benchmark's JSON on stdout.
        with contextlib.redirect_stdout(io.StringIO()):
            assert main(["backup", "create", *args]) == 0
        report_path = work / "drill.json"
        saved = sys.stdout
        with open(report_path, "w") as out:
            sys.stdout = out
            try:
                code = main(["dr-drill", "--scenario", "full", "--json", *args])
            finally:
                sys.stdout = saved
        report = json.loads(report_path.read_text())
    finally:
        lifecycle.down(state_dir)
    rto = report["measured"]["rto_seconds"]
    return {
        "exit_code": code,
        "outcome": report["outcome"],
        "rto_seconds": rto,
        "rpo_seconds": report["measured"]["rpo_seconds"],
        "steps": {s["step"]: s["seconds"] for s in report["steps"]},
        "drill_total_seconds": round(sum(s["seconds"] for s in report["steps"]), 3),
        "smoke_alone_seconds": round(smoke.duration, 3),
        "ratio_to_smoke_alone": round(rto / smoke.duration, 1) if rto else None,
        "goal_seconds": DRILL_GOAL_SECONDS,
        "met": bool(rto is not None and rto <= DRILL_GOAL_SECONDS and code == 0),
    }


def run() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-dr-") as tmp:
        work = Path(tmp)
        (work / "docs").mkdir()
        (work / "drill").mkdir()
        return {"documents_100k": _documents(work / "docs"), "full_local_drill": _drill(work / "drill")}
