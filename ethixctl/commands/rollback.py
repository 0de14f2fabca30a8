"""``ethixctl rollback SERVICE [--to REVISION]``: the on-call command. Fast, clear, no questions."""

from __future__ import annotations

from typing import Annotated

import typer

from ethixctl import output
from ethixctl.commands._options import DryRunFlag, EnvOption, JsonFlag, StateDirOption, YesFlag
from ethixctl.exitcodes import ExitCode


def command(
    service: Annotated[str, typer.Argument(help="Service to roll back, e.g. backend.")],
    to: Annotated[
        str | None,
        typer.Option("--to", metavar="REVISION", help="Revision to send 100% to (default: from ledger)."),
    ] = None,
    measure: Annotated[
        bool, typer.Option("--measure/--no-measure", help="Time until clients see only that revision.")
    ] = True,
    dry_run: DryRunFlag = False,
    yes: YesFlag = False,
    json: JsonFlag = False,
    env: EnvOption = None,
    state_dir: StateDirOption = None,
) -> int:
    """Move 100% of traffic back to the last good revision (or --to).

    Move 100% of SERVICE's traffic to the previous good revision (from the ledger) or to --to.

    Refuses a revision that does not exist or never became ready. A release in progress is ended
    first. Prints how long until the router served only that revision. Asks once on a terminal
    (not with --yes, in CI or without a TTY); --dry-run shows the target and changes nothing.

    \b
    Examples:
      ethixctl rollback backend
      ethixctl rollback backend --dry-run
      ethixctl rollback backend --to backend-00003-x7k --yes --json
    """

    from ethixctl.release.notify import Event, Notifier
    from ethixctl.release.rollback import plan_rollback, rollback
    from ethixctl.release.session import open_session

    session = open_session(env, state_dir)
    try:
        environment = session.environment
        platform = session.cloud_run()
        planned = plan_rollback(platform, session.ledger, service, environment.name, to)
        if dry_run:
            if json:
                output.emit_json({"dry_run": True, **planned.to_dict()})
            else:
                output.show(planned.describe() + "; nothing was changed (--dry-run)")
            return 0
        if not output.confirm(planned.describe() + "?", assume_yes=yes):
            output.info("nothing changed")
            return int(ExitCode.FAILED)

        def sink(event: Event) -> None:
            if not json:
                output.info(event.message)

        from ethixctl.release.playbook import load

        notify = Notifier(
            session.ledger, service, environment.name, sink, load().notifications, environment.slack_webhook
        )
        result = rollback(platform, session.ledger, notify, planned, measure=measure)
    finally:
        session.close()
    if json:
        output.emit_json(result.to_dict())
    elif not result.changed:
        output.success(f"{service} already serves 100% from {result.to_revision}")
    else:
        seen = (
            f"clients see only it after {result.only_target_seconds:.2f}s"
            if result.only_target_seconds is not None
            else "not confirmed by probes within the timeout"
            if measure
            else "not measured"
        )
        output.success(
            f"{service}: 100% on {result.to_revision} (applied in {result.apply_seconds:.2f}s; {seen})"
        )
    return 0
