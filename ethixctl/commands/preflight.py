"""``ethixctl preflight``: the runbook's pre-release and pre-production checklists as data."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from ethixctl import output
from ethixctl.commands._options import ConfirmOption, EnvOption, JsonFlag, PreflightFileOption, StateDirOption

if TYPE_CHECKING:
    from ethixctl.preflight.run import Report


def command(
    service: Annotated[
        list[str] | None,
        typer.Option("--service", "-s", help="Only this service (repeatable; default: all)."),
    ] = None,
    checklist: Annotated[
        list[str] | None,
        typer.Option(
            "--checklist",
            metavar="NAME",
            help="Run this checklist instead of the environment's (repeatable).",
        ),
    ] = None,
    confirm: ConfirmOption = None,
    preflight_file: PreflightFileOption = None,
    json: JsonFlag = False,
    env: EnvOption = None,
    state_dir: StateDirOption = None,
) -> int:
    """Check an environment against the runbook's pre-release and pre-production checklists.

    Automated checks read each service's Cloud Run spec (required variables from the services' settings,
    no inline secrets, secrets by alias, probes, ETHIX_ENV, minimum instances), Prometheus, and the
    ledger (release in progress, last smoke run, secret rotations, last DR drill). Questions only a
    person can answer are asked on a terminal, or taken from --confirm in CI. The run is recorded in
    the ledger. Exit codes: 0 every item passed, 1 an item failed, 2 bad usage or checklist file,
    5 the platform is unreachable.

    \b
    Examples:
      ethixctl preflight --env production
      ethixctl preflight --env production --json --confirm on_call=alice --confirm staging_signoff=bob
      ethixctl preflight --env staging --service backend --checklist pre-release
    """
    from ethixctl.config import resolve_environment
    from ethixctl.ops.ledger import Ledger
    from ethixctl.preflight import model
    from ethixctl.preflight.present import ask_person, show_item
    from ethixctl.preflight.run import execute, parse_confirmations
    from ethixctl.release import playbook

    book = model.load(preflight_file)
    answers = parse_confirmations(confirm or [], book)
    environment = resolve_environment(env, state_dir)
    source = playbook.load().for_environment(environment.name, environment.metric_source).metric_source
    with Ledger(environment.state_dir) as ledger:
        report = execute(
            book, environment, ledger, services=service, metric_source=source, answers=answers,
            ask=ask_person(json), checklists=checklist, on_item=(lambda result: None) if json else show_item,
        )  # fmt: skip
    if json:
        output.emit_json(report.to_dict())
    else:
        summarise(report)
    return int(report.exit_code)


def summarise(report: Report) -> None:
    if not report.checklists:
        output.info(f"no checklist applies to environment {report.environment} (playbooks/preflight.yaml)")
        return
    passed = sum(r.status == "pass" for r in report.items)
    message = (
        f"preflight {report.status}: {passed}/{len(report.items)} items ({', '.join(report.checklists)})"
    )
    if report.status == "passed":
        output.success(message)
    else:
        output.warn(message)
