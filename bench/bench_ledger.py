"""The ledger at scale: 100,000 releases (ten a day for 27 years) against an empty ledger, same run.

Measured: rollback's lookup of the previous good revision, what ``ethixctl history`` reads, and the
ledger's share of starting a release (in-progress check, create, recording the plan). Goals (issue
#14): previous_good ≤ 10 ms, history ≤ 0.5 s, release start ≤ 50 ms at 100,000 releases.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RELEASES = 100_000
PER_DAY = 10


def _fill(state_dir: Path, count: int) -> None:
    """``count`` finished releases of backend, ten a day up to now, each with a gate event and a
    confirmed traffic change (bulk-inserted: the per-write fsync of the real path would take hours)."""
    from ethixctl.ops import ids
    from ethixctl.ops.ledger import Ledger

    now = time.time()
    with Ledger(state_dir) as ledger, ledger._tx() as db:
        for index in range(count):
            at = now - (count - index) * 86_400 / PER_DAY
            op_id = ids.new_id(at)
            status = "rolled_back" if index % 7 == 0 else "promoted"
            details = {
                "image": f"img:{index}",
                "stable_revision": f"backend-{index:05d}-bbb",
                "canary_revision": f"backend-{index + 1:05d}-bbb",
                "tag": f"canary-{op_id[:8].lower()}",
            }
            db.execute(
                "INSERT INTO operations (id, kind, subject, environment, user, host, started_at,"
                " finished_at, status, phase, details)"
                " VALUES (?, 'release', 'backend', 'local', 'bench', 'h', ?, ?, ?, ?, ?)",
                (op_id, at, at + 60, status, status, json.dumps(details)),
            )
            db.execute(
                "INSERT INTO events (operation_id, subject, environment, at, kind, message, data)"
                " VALUES (?, 'backend', 'local', ?, 'gate', 'pass', ?)",
                (op_id, at + 10, json.dumps({"verdict": {"outcome": "pass"}})),
            )
            db.execute(
                "INSERT INTO traffic (operation_id, service, environment, at, split, state, reason,"
                " confirmed_at) VALUES (?, 'backend', 'local', ?, '{}', 'applied', 'step', ?)",
                (op_id, at + 5, at + 5),
            )


def _median_ms(fn: Callable[[], object], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def _measure(state_dir: Path, serving: str) -> dict[str, float]:
    from ethixctl.commands.history import _row
    from ethixctl.ops.ledger import Ledger
    from ethixctl.release import releases

    with Ledger(state_dir) as ledger:

        def history() -> None:
            since = time.time() - 90 * 86_400
            operations = ledger.operations("local", None, "backend", since, newest_first=True, limit=20)
            [_row(ledger, op) for op in operations]
            ledger.traffic("local", "backend", since)
            ledger.rollbacks("local", "backend", since)
            releases.summary(ledger, "local", "backend", since, time.time())

        def start() -> None:
            releases.in_progress(ledger, "backend", "staging")
            release = releases.create(ledger, "backend", "staging", "img", "backend-00001-aaa", {})
            ledger.update(release.id, details={"plan": {"steps": []}})
            ledger.finish_if_in_progress(release.id, "promoted", "bench")

        # The newest promoted canary serves: rollback looks past it to the one before.
        split = {serving: 100}
        return {
            "previous_good_ms": _median_ms(
                lambda: releases.previous_good(ledger, "backend", "local", split), 50
            ),
            "history_ms": _median_ms(history, 5),
            "release_start_ms": _median_ms(start, 20),
        }


def run() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-ledger-") as tmp:
        empty, full = Path(tmp) / "empty", Path(tmp) / "full"
        _fill(empty, 1)
        _fill(full, RELEASES)
        base = _measure(empty, "backend-00001-bbb")
        scaled = _measure(full, f"backend-{RELEASES:05d}-bbb")
    goals = {"previous_good_ms": 10, "history_ms": 500, "release_start_ms": 50}
    return {
        "releases": RELEASES,
        **{
            name: {
                "at_100k": round(scaled[name], 2),
                "baseline_empty_ledger": round(base[name], 2),
                "ratio": round(scaled[name] / base[name], 2) if base[name] else None,
                "goal": goals[name],
                "met": scaled[name] <= goals[name],
            }
            for name in goals
        },
    }
