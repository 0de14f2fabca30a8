"""Smoke runs on the shared ledger (kind ``smoke``): ``preflight`` asks whether the last one passed.

Only runs against an environment's own service URL are recorded; a run against a given URL or a tag
URL says nothing about what the environment serves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ethixctl.ops.ledger import Ledger, Operation

if TYPE_CHECKING:
    from pathlib import Path

    from ethixctl.smoke.runner import SmokeReport

KIND = "smoke"


def record_run(state_dir: Path, environment: str, service: str, report: SmokeReport) -> Operation:
    counts = {k: v for k, v in report.counts().items() if v}
    summary = ", ".join(f"{k} {v}" for k, v in counts.items())
    with Ledger(state_dir) as ledger:
        op = ledger.create_operation(
            KIND, service, environment, "done",
            details={"run_id": report.run_id, "suite": report.suite, "target": report.base_url,
                     "outcome": report.outcome, "counts": counts, "duration": round(report.duration, 3)},
        )  # fmt: skip
        ledger.finish_if_in_progress(op.id, report.outcome, f"{report.suite}: {summary}")
        return ledger.operation(op.id)


def last_run(ledger: Ledger, environment: str, service: str) -> Operation | None:
    runs = ledger.operations(environment, KIND, service, newest_first=True, limit=1)
    return runs[0] if runs else None
