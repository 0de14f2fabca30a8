"""``ethixctl dr-drill``: restore a snapshot into scratch, verify it, smoke-test it, measure RTO/RPO."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ethixctl import output
from ethixctl.commands._options import DryRunFlag, EnvOption, JsonFlag, StateDirOption
from ethixctl.errors import UsageError

if TYPE_CHECKING:
    from ethixctl.dr.context import DrContext


class Scenario(StrEnum):
    database = "database"
    objects = "objects"
    full = "full"


def command(
    scenario: Annotated[
        Scenario, typer.Option("--scenario", help="database (weekly), objects (monthly) or full (quarterly).")
    ] = Scenario.database,
    snapshot: Annotated[
        str | None, typer.Option("--snapshot", metavar="ID", help="Restore this snapshot (default: newest).")
    ] = None,
    point_in_time: Annotated[
        str | None,
        typer.Option(
            "--point-in-time",
            metavar="WHEN",
            help="Restore as of WHEN (ISO 8601 or epoch seconds): the incident.",
        ),
    ] = None,
    keep: Annotated[
        bool, typer.Option("--keep", help="Leave the scratch data and revision for inspection.")
    ] = False,
    report_file: Annotated[
        Path | None,
        typer.Option("--report", metavar="FILE", help="Write a Markdown report (the audit trail)."),
    ] = None,
    junit: Annotated[
        Path | None, typer.Option("--junit", metavar="FILE", help="Write a JUnit XML report.")
    ] = None,
    playbook_file: Annotated[
        Path | None,
        typer.Option("--playbook", metavar="FILE", help="DR playbook (default: playbooks/dr.yaml)."),
    ] = None,
    dry_run: DryRunFlag = False,
    json: JsonFlag = False,
    env: EnvOption = None,
    state_dir: StateDirOption = None,
) -> int:
    """Restore a snapshot into scratch, verify, smoke-test, measure RTO/RPO.

    The runbook's restore test, end to end, each step timed and recorded in the ledger: declare the
    incident, pick the snapshot, restore it into the scratch target (never anything else), verify
    counts, hashes, indexes and references against the manifest, start a backend revision on the
    restored data with no traffic and a dr-<id> tag, run the smoke suite against it, compare RTO and
    the measured RPO (heartbeat) with the scenario's targets, clean up (unless --keep). A drill killed
    midway is cleaned up by the next one. The objects scenario damages and restores a scratch copy
    of the bucket, never the live one. Exit codes: 0 objectives met, 1 verification (or smoke)
    failed, 3 verification not possible (the snapshot has no manifest: Atlas's own snapshots), 4
    restored but RTO or RPO missed, 5 platform unreachable.

    \b
    Examples:
      ethixctl dr-drill
      ethixctl dr-drill --scenario full --report drill.md --junit drill.xml
      ethixctl dr-drill --snapshot 6751c0de --keep --json
      ethixctl dr-drill --point-in-time 2026-12-01T09:30:00Z
    """
    from ethixctl.config import resolve_environment
    from ethixctl.dr import drill, playbook, report
    from ethixctl.dr.context import connect
    from ethixctl.files import write_atomic

    if snapshot and point_in_time:
        raise UsageError("give --snapshot or --point-in-time, not both")
    pit = parse_when(point_in_time) if point_in_time else None
    book = playbook.load(playbook_file)
    ctx = connect(resolve_environment(env, state_dir), book)
    try:
        options = drill.DrillOptions(scenario.value, snapshot, pit, keep)
        if dry_run:
            return _plan(ctx, options, json)
        for planned in book.planned():
            output.info(f"{planned.title}: {report.PLANNED_NOTE}")
        op, abandoned = drill.execute(ctx, options, on_step=None if json else _progress)
    finally:
        ctx.close()
    for item in abandoned:
        output.warn(f"cleaned up interrupted drill {item['id'][:8]} (was {item['phase']}): {item['cleaned']}")
    result = report.build(op, book)
    if report_file is not None:
        write_atomic(report_file, report.markdown(result))
    if junit is not None:
        write_atomic(junit, report.junit(result))
    if json:
        output.emit_json(result)
    else:
        _render(result)
    return int(result["exit_code"])


def parse_when(text: str) -> float:
    """Epoch seconds from ``1796000000`` or an ISO 8601 time (UTC unless it says otherwise)."""
    from datetime import UTC, datetime

    try:
        return float(text)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--point-in-time: not a time: {text!r}", hint="e.g. 2026-12-01T09:30:00Z") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def _progress(step: str, timing: dict[str, Any]) -> None:
    if timing:
        output.success(output.markup("{} [dim]{:.2f} s[/dim]", step, timing["seconds"]))
    else:
        output.info(output.markup("[dim]{}[/dim]", step))


def _plan(ctx: DrContext, options: Any, json: bool) -> int:
    """What a drill would do, from the current data; nothing is created."""
    chosen = (
        ctx.manifest(options.snapshot_id)
        if options.snapshot_id
        else ctx.newest_manifest(options.point_in_time)
    )
    against, rto, rpo = ctx.book.targets_of(options.scenario)
    plan = {
        "dry_run": True,
        "scenario": options.scenario,
        "snapshot": chosen["id"],
        "snapshot_point_in_time": chosen["point_in_time"],
        "scratch_cluster": ctx.target.scratch_cluster if options.scenario != "objects" else None,
        "scratch_bucket": ctx.scratch_bucket.url,
        "targets": {"against": against, "rto_seconds": rto, "rpo_seconds": rpo},
        "steps": ["declared", "picking", "restoring", "verifying"]
        + ([] if options.scenario == "objects" else ["deploying", "smoking"])
        + ["cleaning_up"],
    }
    if json:
        output.emit_json(plan)
    else:
        output.show(
            output.markup(
                "would restore snapshot [bold]{}[/bold] ({}) into {} and run: {}",
                plan["snapshot"],
                plan["snapshot_point_in_time"],
                plan["scratch_cluster"] or plan["scratch_bucket"],
                " → ".join(plan["steps"]),
            )
        )
    return 0


def _render(result: dict[str, Any]) -> None:
    from ethixctl.durations import format_duration

    steps = output.table(title=f"dr-drill {result['short_id']} ({result['scenario']})", header_style="bold")
    steps.add_column("step")
    steps.add_column("seconds", justify="right")
    for step in result["steps"]:
        steps.add_row(step["step"], f"{step['seconds']:.2f}")
    output.show(steps)
    failed = [c for c in result["checks"] if not c["passed"]]
    checks = len(result["checks"])
    output.show(f"verification: {checks - len(failed)}/{checks} checks passed")
    for check in failed:
        output.show(f"  FAIL {check['kind']} {check['subject']}: {check['detail']}")
    objectives = output.table(title="objectives", header_style="bold")
    for column in ("", "target", "measured"):
        objectives.add_column(column)
    for name in ("rto", "rpo"):
        value = result["measured"][f"{name}_seconds"]
        objectives.add_row(
            name.upper(),
            format_duration(result["targets"].get(f"{name}_seconds") or 0),
            "not measured" if value is None else f"{value:.1f} s",
        )
    output.show(objectives)
    line = f"{result['outcome']}: {result['reason']}"
    if result["outcome"] == "passed":
        output.success(line)
    else:
        output.failure(line)
