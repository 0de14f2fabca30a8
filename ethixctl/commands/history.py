"""``ethixctl history [SERVICE]``: the release ledger, plus rollback rate and release frequency."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from ethixctl import output
from ethixctl.commands._options import EnvOption, JsonFlag, StateDirOption


def command(
    service: Annotated[str | None, typer.Argument(help="Only this service.")] = None,
    days: Annotated[int, typer.Option("--days", min=1, help="Period to report (runbook review: 90).")] = 90,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Most recent releases to list.")] = 20,
    json: JsonFlag = False,
    env: EnvOption = None,
    state_dir: StateDirOption = None,
) -> None:
    """The ledger: releases, gate outcomes, rollbacks, rollback rate.

    Releases, promotions and rollbacks: who, when, which image, gate outcomes; rollback rate and
    release frequency over the period (the runbook's quarterly review).

    \b
    Examples:
      ethixctl history
      ethixctl history backend --days 7 --json
    """
    output.configure(json_mode=json)
    from ethixctl.release.ledger import Ledger

    # The ledger is local state: history works even when the platform is down.
    environment = _environment_name(env)
    until = time.time()
    since = until - days * 86_400
    with Ledger(_state_dir(env, state_dir)) as ledger:
        releases = ledger.releases(environment, service, since)[-limit:]
        rows = [{**r.__dict__, "gates": _gate_counts(ledger, r.id)} for r in releases]
        rollbacks = ledger.rollbacks(environment, service, since)
        summary = ledger.summary(environment, service, since, until)
    if json:
        output.emit_json(
            {"environment": environment, "releases": rows, "rollbacks": rollbacks, "summary": summary}
        )
        return
    _render(rows, rollbacks, summary, days)


def _environment_name(env: str | None) -> str:
    import os

    return env or os.environ.get("ETHIXCTL_ENV") or "local"


def _state_dir(env: str | None, state_dir: Path | None) -> Path:
    from ethixctl.config import load_environment, local_state_dir
    from ethixctl.errors import PlatformUnavailable

    try:
        return load_environment(env, state_dir).state_dir
    except PlatformUnavailable:
        return local_state_dir(state_dir)


def _gate_counts(ledger: Any, release_id: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for event in ledger.events(release_id, "gate"):
        outcome = event["data"].get("verdict", {}).get("outcome", "unknown")
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts


def _short_image(image: str) -> str:
    name, sep, digest = image.partition("@sha256:")
    return f"{name}@{digest[:12]}" if sep else image


def _when(at: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(at)) if at else "—"


def _render(
    rows: list[dict[str, Any]], rollbacks: list[dict[str, Any]], summary: dict[str, Any], days: int
) -> None:
    from rich.table import Table

    table = Table(title="releases", show_header=True, header_style="bold")
    table.add_column("id", no_wrap=True, min_width=6)
    table.add_column("started / who", min_width=10)
    table.add_column("image / revisions", ratio=2)
    table.add_column("status / gates", min_width=11)
    table.add_column("reason", ratio=2)
    for row in rows:
        gates = " ".join(f"{k} {v}" for k, v in sorted(row["gates"].items())) or "—"
        revisions = f"{row['stable_revision'] or '—'} → {row['canary_revision'] or '—'}"
        table.add_row(
            row["id"],
            f"{_when(row['started_at'])}\n{row['user']}",
            f"{output.escape(_short_image(row['image']))}\n{revisions}",
            f"{row['status']}\n{gates}",
            output.escape(row["reason"]),
        )
    output.show(table)
    if rollbacks:
        manual = Table(title="rollbacks", show_header=True, header_style="bold")
        for column in ("when", "who", "service", "to", "kind", "seconds", "reason"):
            manual.add_column(column)
        for item in rollbacks:
            seconds = "—" if item["seconds"] is None else f"{item['seconds']:.2f}"
            kind = "automatic" if item["automatic"] else "manual"
            manual.add_row(
                _when(item["at"]), item["user"], item["service"], item["to_revision"], kind, seconds,
                output.escape(item["reason"]),
            )  # fmt: skip
        output.show(manual)
    rate = "—" if summary["rollback_rate"] is None else f"{summary['rollback_rate'] * 100:.0f}%"
    output.show(
        f"last {days} days: {summary['releases']} releases ({summary['releases_per_week']:.1f}/week), "
        f"rollback rate {rate}, manual rollbacks {summary['manual_rollbacks']}"
    )
