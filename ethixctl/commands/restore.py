"""``ethixctl restore --snapshot ID --to TARGET [--switch]``: the real recovery, not a drill."""

from __future__ import annotations

from typing import Annotated

import typer

from ethixctl import output
from ethixctl.commands._options import DryRunFlag, EnvOption, JsonFlag, StateDirOption, YesFlag
from ethixctl.exitcodes import ExitCode


def command(
    snapshot_id: Annotated[str, typer.Option("--snapshot", metavar="ID", help="The snapshot to restore.")],
    to: Annotated[
        str, typer.Option("--to", metavar="TARGET", help="A new cluster: never the live or the scratch one.")
    ],
    switch: Annotated[
        bool, typer.Option("--switch", help="After verification, point the backend at TARGET.")
    ] = False,
    dry_run: DryRunFlag = False,
    yes: YesFlag = False,
    json: JsonFlag = False,
    env: EnvOption = None,
    state_dir: StateDirOption = None,
) -> int:
    """The real recovery: restore a snapshot into a new target, optionally switch to it.

    Restores snapshot ID into cluster TARGET (a restore wipes its target, so the live cluster and the
    drills' scratch cluster are refused), verifies it against the snapshot's manifest (counts, hashes,
    indexes, references), and with --switch adds a version to the database-url secret and deploys a
    backend revision that reads it, with all the traffic. Nothing is switched unless verification
    passes. Asks first on a terminal (not with --yes, in CI or without a TTY); recorded in the ledger.

    \b
    Examples:
      ethixctl restore --snapshot 6751c0de --to ethix-restored-1 --dry-run
      ethixctl restore --snapshot 6751c0de --to ethix-restored-1 --switch --yes --json
    """
    from ethixctl.config import resolve_environment
    from ethixctl.dr import playbook, recovery
    from ethixctl.dr.context import connect

    ctx = connect(resolve_environment(env, state_dir), playbook.load())
    try:
        options = recovery.RestoreOptions(snapshot_id, to, switch)
        planned = recovery.plan(ctx, options)
        if dry_run:
            if json:
                output.emit_json({"dry_run": True, **planned})
            else:
                output.show(
                    output.markup(
                        "would restore snapshot [bold]{}[/bold] ({} documents, point in time {}) into {}{}",
                        planned["snapshot"],
                        planned["documents"],
                        planned["point_in_time"],
                        to,
                        " and switch the backend to it" if switch else "",
                    )
                )
            return int(ExitCode.OK)
        question = f"Restore snapshot {planned['snapshot']} into {to} (this wipes {to})"
        if not output.confirm(
            question + (" and switch the backend to it?" if switch else "?"), assume_yes=yes
        ):
            output.info("nothing done")
            return int(ExitCode.FAILED)
        op = recovery.execute(ctx, options, on_step=output.info)
    finally:
        ctx.close()
    details = op.details
    result = {
        "restore": op.id,
        "status": op.status,
        "reason": op.reason,
        "snapshot": details.get("snapshot_id"),
        "target": to,
        "checks": details.get("checks", []),
        "secret_version": details.get("secret_version"),
        "revision": details.get("revision"),
    }
    if json:
        output.emit_json(result)
    elif op.status == "failed":
        output.failure(f"restore {op.short_id} failed: {op.reason}")
    else:
        passed = sum(1 for c in result["checks"] if c["passed"])
        output.success(f"restore {op.short_id} {op.status}: {passed}/{len(result['checks'])} checks passed")
        if op.status == "switched":
            output.info(
                f"database-url version {result['secret_version']}; {ctx.service} now serves from "
                f"{to} through revision {result['revision']}"
            )
    return int(ExitCode.FAILED if op.status == "failed" else ExitCode.OK)
