"""``ethixctl secrets list|status|rotate``: the secrets catalog (playbooks/secrets.yaml) executed."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ethixctl import output
from ethixctl.commands._options import DryRunFlag, EnvOption, JsonFlag, StateDirOption, YesFlag
from ethixctl.errors import UsageError
from ethixctl.exitcodes import ExitCode

if TYPE_CHECKING:
    from ethixctl.ops.ledger import Operation
    from ethixctl.release.notify import Event
    from ethixctl.release.session import Session
    from ethixctl.secrets.catalog import Catalog, Secret
    from ethixctl.secrets.rotation import Platform
    from ethixctl.secrets.status import SecretStatus

app = typer.Typer(
    name="secrets",
    help=(
        "Secrets: list, status (overdue → exit 4), zero-downtime and emergency rotation.\n\n"
        "The catalog (playbooks/secrets.yaml) says what is rotated, how often, how new values are made\n"
        "and how long old versions stay enabled; playbooks/secrets.md is the runbook.\n\n"
        "\b\nExamples:\n"
        "  ethixctl secrets list\n"
        "  ethixctl secrets status --json            # the daily CI job: exit 4 when overdue\n"
        "  ethixctl secrets rotate jwt-signing-key   # scheduled: next → every revision → current\n"
        "  ethixctl secrets rotate jwt-signing-key --emergency --yes\n"
        "  ethixctl secrets rotate jwt-signing-key --resume"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

CatalogOption = Annotated[
    Path | None,
    typer.Option(
        "--catalog",
        envvar="ETHIXCTL_SECRETS_CATALOG",
        help="Secrets catalog (default: playbooks/secrets.yaml).",
    ),
]


def _session(env: str | None, state_dir: Path | None) -> Session:
    from ethixctl.release.session import open_session

    return open_session(env, state_dir)


def _secret_manager(session: Session) -> Any:
    from ethixctl.adapters.secrets import SecretManager

    environment = session.environment
    return SecretManager(environment.project, environment.secrets_endpoint)


def _statuses(env: str | None, state_dir: Path | None, catalog_path: Path | None) -> list[SecretStatus]:
    from ethixctl.secrets import catalog
    from ethixctl.secrets.status import all_statuses

    book = catalog.load(catalog_path)
    session = _session(env, state_dir)
    try:
        return all_statuses(_secret_manager(session), session.ledger, session.environment.name, book)
    finally:
        session.close()


def _day(at: float | None) -> str:
    return time.strftime("%Y-%m-%d", time.localtime(at)) if at else "—"


@app.command("list")
def list_secrets(
    json: JsonFlag = False,
    env: EnvOption = None,
    state_dir: StateDirOption = None,
    catalog_path: CatalogOption = None,
) -> None:
    """Every secret: current version, age, next due date, versions and aliases.

    \b
    Examples:
      ethixctl secrets list
      ethixctl secrets list --env production --json
    """
    statuses = _statuses(env, state_dir, catalog_path)
    if json:
        output.emit_json({"secrets": [s.to_dict() for s in statuses]})
        return
    table = output.table(title="secrets", show_header=True, header_style="bold")
    for column in ("secret", "kind / consumers", "current", "age", "next due", "versions (aliases)", "state"):
        table.add_column(column)
    for item in statuses:
        versions = "\n".join(
            f"{v['version']} {v['state'].lower()}" + (f" ({', '.join(v['aliases'])})" if v["aliases"] else "")
            for v in item.versions[:5]
        )
        table.add_row(
            item.id,
            f"{item.kind}\n{', '.join(item.consumers) or '—'}",
            item.current_version or "—",
            "—" if item.age_days is None else f"{item.age_days:.1f} d",
            "manual" if item.rotation_period_days is None else _day(item.next_due_at),
            versions or "—",
            item.state + (f"\n{item.problem}" if item.problem else ""),
        )
    output.show(table)


@app.command("status")
def status(
    json: JsonFlag = False,
    env: EnvOption = None,
    state_dir: StateDirOption = None,
    catalog_path: CatalogOption = None,
) -> int:
    """Exit 4 when any secret is overdue (or an old version is due to be disabled), else 0.

    The daily CI job runs this. Missing secrets (no current version) count as overdue.

    \b
    Examples:
      ethixctl secrets status
      ethixctl secrets status --env production --json
    """
    statuses = _statuses(env, state_dir, catalog_path)
    attention = [s for s in statuses if s.needs_action]
    if json:
        output.emit_json(
            {
                "ok": not attention,
                "secrets": [{k: v for k, v in s.to_dict().items() if k != "versions"} for s in statuses],
            }
        )
    else:
        for item in statuses:
            if item.needs_action:
                output.failure(f"{item.id}: {item.state}: {item.problem}")
            else:
                due = (
                    "manual rotation"
                    if item.rotation_period_days is None
                    else f"next due {_day(item.next_due_at)}"
                )
                output.success(f"{item.id}: version {item.current_version or '—'}, {due}")
    return int(ExitCode.OVERDUE) if attention else 0


@app.command("rotate")
def rotate(
    name: Annotated[str, typer.Argument(help="Secret id from the catalog, e.g. jwt-signing-key.")],
    emergency: Annotated[
        bool,
        typer.Option("--emergency", help="Leaked: new current now, old versions disabled, sessions revoked."),
    ] = False,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the rotation of NAME in progress.")
    ] = False,
    value_file: Annotated[
        Path | None,
        typer.Option("--value-file", metavar="PATH", help="New value of a manual secret (never on argv)."),
    ] = None,
    max_wait: Annotated[
        float,
        typer.Option(
            "--max-wait", min=0, metavar="SECONDS", help="Wait out a grace up to this long, else stop."
        ),
    ] = 300.0,
    wait_timeout: Annotated[
        float | None,
        typer.Option(
            "--wait-timeout", min=1, metavar="SECONDS", help="Give revisions this long to load a version."
        ),
    ] = None,
    dry_run: DryRunFlag = False,
    yes: YesFlag = False,
    json: JsonFlag = False,
    env: EnvOption = None,
    state_dir: StateDirOption = None,
    catalog_path: CatalogOption = None,
) -> int:
    """Rotate a secret with zero downtime (or --emergency), stage by stage in the ledger.

    Scheduled: add a version → alias next → wait until every serving revision reports it loaded →
    current/previous → wait until every revision uses it → grace → disable the old version (a long
    grace ends the run with exit 0; `--resume` after it disables the old version). A database URL gets
    a new Atlas database user first; the old one is deleted after the grace.

    Emergency: new current at once, every other version disabled, every session revoked, then waits
    until the last revision refuses the old key and says when; Slack when a webhook is configured.

    Exit codes: 0 done (or waiting out a grace), 1 failed (state recorded: --resume), 2 bad usage or
    not possible here, 5 platform unreachable (--resume later), 130 interrupted (--resume).

    \b
    Examples:
      ethixctl secrets rotate jwt-signing-key --dry-run
      ethixctl secrets rotate session-key --yes
      ethixctl secrets rotate jwt-signing-key --emergency --yes --json
      ethixctl secrets rotate slack-webhook --value-file new-webhook.txt
      ethixctl secrets rotate jwt-signing-key --resume
    """
    from ethixctl.ops.lock import OperationLock
    from ethixctl.secrets import catalog, rotation

    if resume and (emergency or dry_run or value_file):
        raise UsageError(
            "--resume continues the recorded rotation; --emergency, --dry-run and --value-file do not apply"
        )
    book = catalog.load(catalog_path)
    secret = book.secret(name)
    session = _session(env, state_dir)
    prometheus = session.prometheus()
    try:
        environment = session.environment
        platform = rotation.Platform(_secret_manager(session), session.cloud_run(), prometheus, environment)
        rotation.check_possible(book, secret, environment)
        options = rotation.Options(
            emergency=emergency, value_file=value_file, max_wait=max_wait, wait_timeout=wait_timeout
        )
        if dry_run:
            return _dry_run(book, secret, platform, session, options, json=json)
        ledger = session.ledger
        recorded = ledger.in_progress(rotation.KIND, name, environment.name)
        if resume:
            if recorded is None:
                raise UsageError(
                    f"no rotation of {name} is in progress in {environment.name}",
                    hint="see `ethixctl history`",
                )
        else:
            kind = "EMERGENCY rotation" if emergency else "rotation"
            if not output.confirm(f"Start a {kind} of {name} in {environment.name}?", assume_yes=yes):
                output.info("nothing changed")
                return int(ExitCode.FAILED)
        lock = OperationLock(environment.state_dir, rotation.KIND, environment.name, name)
        lock.acquire()
        previous = signal.signal(signal.SIGTERM, _interrupt)
        try:
            op = recorded if resume and recorded else rotation.start(ledger, book, secret, platform, options)
            lock.set_operation(op.id)
            return _run(book, platform, session, op, json=json)
        finally:
            signal.signal(signal.SIGTERM, previous)
            lock.release()
    finally:
        prometheus.close()
        session.close()


def _interrupt(signum: int, frame: Any) -> None:
    # SIGTERM ends the run like Ctrl-C: every stage is already in the ledger, exit 130, --resume.
    raise KeyboardInterrupt


def _run(book: Catalog, platform: Platform, session: Session, op: Operation, *, json: bool) -> int:
    from ethixctl.errors import EthixError
    from ethixctl.release.notify import Notifier
    from ethixctl.release.playbook import Notification
    from ethixctl.secrets.rotation import GraceRemaining, Rotation

    def sink(event: Event) -> None:
        if json:
            output.emit_json(event.to_dict())
        else:
            output.info(event.message)

    environment = session.environment
    notify = Notifier(
        session.ledger,
        op.subject,
        environment.name,
        sink,
        [Notification(kind="slack", events=["page", "failed"])],
        environment.slack_webhook,
    )
    notify.operation = op
    notify("started", f"rotation {op.short_id} of {op.subject} in {environment.name}: phase {op.phase}")
    try:
        final = Rotation(session.ledger, book, platform, notify).run(op)
    except GraceRemaining as waiting:
        if json:
            output.emit_json(
                {"event": "result", **_result(session.ledger.operation(op.id)), "grace_until": waiting.until}
            )
        else:
            output.success(waiting.message)
            output.info(waiting.hint or "")
        return 0
    except EthixError as exc:
        notify("failed", f"rotation {op.short_id} of {op.subject} stopped: {exc.message}")
        raise
    result = _result(final)
    if json:
        output.emit_json({"event": "result", **result})
    else:
        output.success(f"{final.subject}: version {final.details.get('new_version')} current; {final.status}")
    return 0


def _result(op: Operation) -> dict[str, Any]:
    keep = (
        "old_version", "new_version", "await_next_seconds", "await_current_seconds", "grace_until",
        "disabled_versions", "old_refused_after_seconds", "new_username", "old_username",
    )  # fmt: skip
    return {
        "operation": op.id,
        "secret": op.subject,
        "status": op.status,
        "phase": op.phase,
        **{key: op.details[key] for key in keep if key in op.details},
        **op.counters,
    }


def _dry_run(
    book: Catalog, secret: Secret, platform: Platform, session: Session, options: Any, *, json: bool
) -> int:
    from ethixctl.durations import format_duration
    from ethixctl.secrets import observe, rotation

    aliases = platform.secrets.aliases(secret.id)
    revisions = observe.serving_revisions(platform.cloud_run, platform.prometheus, secret.consumers)
    metric = observe.IN_USE if secret.kind.value == "database-url" else observe.LOADED
    loaded = observe.report(
        platform.prometheus, metric, secret.id, "current", revisions, aliases.get("current")
    )
    phases = (
        ["add_version", "switch", "disable_others", "revoke_sessions", "await_switch"]
        if options.emergency
        else ["add_version", "alias_next", "await_next", "promote", "await_current", "grace", "disable_old"]
    )
    if secret.kind.value == "database-url":
        phases.insert(
            phases.index("disable_old") if "disable_old" in phases else len(phases), "delete_old_user"
        )
    running = session.ledger.in_progress(rotation.KIND, secret.id, session.environment.name)
    plan = {
        "dry_run": True,
        "secret": secret.id,
        "kind": secret.kind.value,
        "emergency": options.emergency,
        "aliases": aliases,
        "phases": phases,
        "grace_seconds": book.grace_seconds(secret),
        "serving_revisions": revisions,
        "current_loaded": loaded.versions,
        "in_progress": running.id if running else None,
    }
    if json:
        output.emit_json(plan)
        return 0
    output.show(
        output.markup(
            "[bold]plan[/bold] {} rotation of {} ({}), current version {}",
            "EMERGENCY" if options.emergency else "scheduled",
            secret.id,
            secret.kind.value,
            aliases.get("current", "none"),
        )
    )
    output.show(f"  stages: {' → '.join(phases)}")
    output.show(f"  grace before the old version is disabled: {format_duration(book.grace_seconds(secret))}")
    output.show(f"  serving revisions: {loaded.describe() or 'none'} (version loaded as current)")
    if running is not None:
        output.warn(
            f"rotation {running.short_id} is in progress (phase {running.phase}): `--resume` continues it"
        )
    output.show("  nothing was changed (--dry-run)")
    return 0
