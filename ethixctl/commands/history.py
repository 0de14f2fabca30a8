"""``ethixctl history [SUBJECT]``: the ledger: releases, rotations, drills, traffic changes, rollbacks."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ethixctl import output
from ethixctl.commands._options import EnvOption, JsonFlag, StateDirOption
from ethixctl.errors import UsageError

if TYPE_CHECKING:
    from ethixctl.ops.ledger import Ledger, Operation


def command(
    subject: Annotated[str | None, typer.Argument(help="Only this service (or secret, scenario).")] = None,
    days: Annotated[int, typer.Option("--days", min=1, help="Period to report (runbook review: 90).")] = 90,
    since: Annotated[
        str | None,
        typer.Option("--since", metavar="WHEN", help="Period start: 2026-11-01[T10:00], or 7d/12h/30m ago."),
    ] = None,
    kind: Annotated[
        str | None, typer.Option("--kind", help="Only operations of this kind (release, rotation, drill, …).")
    ] = None,
    traffic: Annotated[bool, typer.Option("--traffic", help="Also list every traffic change.")] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Most recent operations to list.")] = 20,
    json: JsonFlag = False,
    env: EnvOption = None,
    state_dir: StateDirOption = None,
) -> None:
    """The ledger: every release, rotation and drill; traffic changes; rollback rate.

    Every long operation the ledger records (releases, secret rotations, DR drills, restores), who ran
    it and how it ended; gate outcomes; traffic changes (always in --json, with --traffic in the
    table); rollbacks; rollback rate and release frequency over the period (the quarterly review).
    Works when the platform is down: the ledger is local state.

    \b
    Examples:
      ethixctl history
      ethixctl history backend --since 7d --json
      ethixctl history --kind release --since 2026-10-01 --traffic
    """
    from ethixctl.config import resolve_environment
    from ethixctl.ops.ledger import Ledger
    from ethixctl.release import releases

    environment = resolve_environment(env, state_dir, need_platform=False)
    until = time.time()
    start = parse_since(since, until) if since else until - days * 86_400
    with Ledger(environment.state_dir) as ledger:
        operations = ledger.operations(environment.name, kind, subject, start, newest_first=True, limit=limit)
        rows = [_row(ledger, op) for op in reversed(operations)]
        changes = [c.to_dict() for c in ledger.traffic(environment.name, subject, start)]
        rollbacks = ledger.rollbacks(environment.name, subject, start)
        summary = releases.summary(ledger, environment.name, subject, start, until)
    if json:
        output.emit_json(
            {
                "environment": environment.name,
                "since": start,
                "operations": rows,
                "releases": [r for r in rows if r["kind"] == releases.KIND],
                "traffic": changes,
                "rollbacks": rollbacks,
                "summary": summary,
            }
        )
        return
    _render(rows, changes if traffic else [], rollbacks, summary, start)


def parse_since(text: str, now: float) -> float:
    """``7d``/``12h``/``30m``/``2w`` ago, or an ISO date/time (local time unless it says otherwise)."""
    from datetime import datetime

    from ethixctl.durations import parse_duration

    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        raise UsageError(
            f"--since: cannot read {text!r}", hint="use a date (2026-11-01, 2026-11-01T10:00) or 7d, 12h, 30m"
        ) from None


def _row(ledger: Ledger, op: Operation) -> dict[str, Any]:
    from ethixctl.release.releases import KIND, Release

    if op.kind != KIND:
        return op.to_dict()
    counts: dict[str, int] = {}
    for event in ledger.events(op.id, "gate"):
        outcome = event["data"].get("verdict", {}).get("outcome", "unknown")
        counts[outcome] = counts.get(outcome, 0) + 1
    return {**Release.of(op).to_dict(), "gates": counts}


def _short_image(image: str) -> str:
    name, sep, digest = image.partition("@sha256:")
    return f"{name}@{digest[:12]}" if sep else image


def _when(at: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(at)) if at else "—"


def _what(row: dict[str, Any]) -> str:
    if row["kind"] == "release":
        revisions = f"{row['stable_revision'] or '—'} → {row['canary_revision'] or '—'}"
        return f"{_short_image(row['image'])}\n{revisions}"
    return f"{row['phase']} (step {row['step']})"


def _render(
    rows: list[dict[str, Any]],
    changes: list[dict[str, Any]],
    rollbacks: list[dict[str, Any]],
    summary: dict[str, Any],
    since: float,
) -> None:
    table = output.table(title="operations", show_header=True, header_style="bold")
    table.add_column("id", no_wrap=True, min_width=8)
    table.add_column("kind / subject", min_width=10)
    table.add_column("started / who", min_width=10)
    table.add_column("what", ratio=2)
    table.add_column("status / gates", min_width=11)
    table.add_column("reason", ratio=2)
    for row in rows:
        gates = " ".join(f"{k} {v}" for k, v in sorted(row.get("gates", {}).items())) or "—"
        table.add_row(
            row["id"][:8],
            f"{row['kind']}\n{row['subject']}",
            f"{_when(row['started_at'])}\n{row['user']}",
            _what(row),
            f"{row['status']}\n{gates}",
            row["reason"],
        )
    output.show(table)
    if changes:
        moves = output.table(title="traffic changes", show_header=True, header_style="bold")
        for column in ("when", "service", "split", "state", "operation", "reason"):
            moves.add_column(column)
        for change in changes:
            split = ", ".join(f"{r} {p}%" for r, p in change["split"].items())
            moves.add_row(
                _when(change["at"]), change["service"], split, change["state"],
                (change["operation_id"] or "—")[:8], change["reason"],
            )  # fmt: skip
        output.show(moves)
    if rollbacks:
        manual = output.table(title="rollbacks", show_header=True, header_style="bold")
        for column in ("when", "who", "service", "to", "kind", "seconds", "reason"):
            manual.add_column(column)
        for item in rollbacks:
            seconds = "—" if item["seconds"] is None else f"{item['seconds']:.2f}"
            kind = "automatic" if item["automatic"] else "manual"
            manual.add_row(
                _when(item["at"]), item["user"], item["service"], item["to_revision"], kind, seconds,
                item["reason"],
            )  # fmt: skip
        output.show(manual)
    rate = "—" if summary["rollback_rate"] is None else f"{summary['rollback_rate'] * 100:.0f}%"
    output.show(
        f"since {_when(since)}: {summary['releases']} releases ({summary['releases_per_week']:.1f}/week), "
        f"rollback rate {rate}, manual rollbacks {summary['manual_rollbacks']}"
    )
