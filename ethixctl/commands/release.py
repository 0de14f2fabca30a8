"""``ethixctl release SERVICE --image REF``: a canary release driven by playbooks/release.yaml."""

from __future__ import annotations

import re
import signal
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ethixctl import output
from ethixctl.commands._options import (
    ConfirmOption,
    DryRunFlag,
    EnvOption,
    JsonFlag,
    PreflightFileOption,
    StateDirOption,
    YesFlag,
)
from ethixctl.errors import EthixError, UsageError
from ethixctl.exitcodes import ExitCode

if TYPE_CHECKING:
    from ethixctl.preflight.run import Report
    from ethixctl.release.notify import Event
    from ethixctl.release.orchestrator import Options, Orchestrator, Result

# registry/path[:tag][@sha256:digest], as Cloud Run accepts it.
_IMAGE_REFERENCE = re.compile(
    r"[a-z0-9]+(?:[._-][a-z0-9]+)*(?::\d+)?(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)+"
    r"(?::[\w][\w.-]{0,127})?(?:@sha256:[a-f0-9]{64})?"
)


class OnFailure(StrEnum):
    rollback = "rollback"
    freeze = "freeze"


def command(
    service: Annotated[str, typer.Argument(help="Cloud Run service to release, e.g. backend.")],
    image: Annotated[
        str | None,
        typer.Option(
            "--image", help="Image of the new revision; `build` builds SERVICE from this checkout (local)."
        ),
    ] = None,
    set_env: Annotated[
        list[str] | None,
        typer.Option("--set-env", metavar="KEY=VALUE", help="Env var of the new revision (repeatable)."),
    ] = None,
    hold: Annotated[float | None, typer.Option("--hold", min=1, help="Seconds each step is held.")] = None,
    interval: Annotated[
        float | None, typer.Option("--interval", min=1, help="Seconds between analyses.")
    ] = None,
    load: Annotated[
        float | None, typer.Option("--load", min=0.1, metavar="RPS", help="Send steady load during analysis.")
    ] = None,
    dry_run: DryRunFlag = False,
    skip_canary: Annotated[
        bool, typer.Option("--skip-canary", help="Hotfix: straight to 100% once ready. Recorded, loudly.")
    ] = False,
    on_failure: Annotated[
        OnFailure, typer.Option("--on-failure", help="On a failed gate: roll back, or freeze the split.")
    ] = OnFailure.rollback,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue (or roll back) the interrupted release of SERVICE.")
    ] = False,
    smoke: Annotated[
        bool | None,
        typer.Option(
            "--smoke/--no-smoke", help="Run the smoke suite on the canary's tag URL (default: backend)."
        ),
    ] = None,
    playbook_path: Annotated[
        Path | None, typer.Option("--playbook", help="Release playbook (default: playbooks/release.yaml).")
    ] = None,
    skip_preflight: Annotated[
        str | None,
        typer.Option(
            "--skip-preflight",
            metavar="REASON",
            help="Do not run the preflight checklists; REASON is recorded.",
        ),
    ] = None,
    confirm: ConfirmOption = None,
    preflight_file: PreflightFileOption = None,
    yes: YesFlag = False,
    json: JsonFlag = False,
    env: EnvOption = None,
    state_dir: StateDirOption = None,
) -> int:
    """Canary-release a new image: 10% → 50% → 100%, gated on Prometheus.

    Release a new image of SERVICE as a canary: 10% → 50% → 100%, analysed at every step.

    Each analysis checks the canary's error rate and P95 on Prometheus and compares it with the stable
    revision (Mann-Whitney U); no data is never a pass. A failed gate moves 100% back to the stable
    revision and keeps the canary at 0% with its tag. Exit codes: 0 promoted, 1 error, 2 bad usage or
    playbook, 3 rolled back, 4 held/frozen or inconclusive, 5 platform unavailable.

    \b
    Examples:
      ethixctl release backend --image local/backend:dev --load 20
      ethixctl release backend --image local/backend:dev --set-env ETHIX_FAULT_ERROR_RATE=0.2 --hold 10
      ethixctl release backend --image local/backend:dev --dry-run
      ethixctl release --resume backend
      ethixctl release backend --image REF -e production --confirm on_call=alice
      ethixctl release backend --image REF -e production --skip-preflight "hotfix INC-123, approved by cto"
    """
    from ethixctl.ops.lock import OperationLock
    from ethixctl.release import playbook, releases
    from ethixctl.release.notify import Notifier
    from ethixctl.release.orchestrator import Options, Orchestrator
    from ethixctl.release.session import open_session, smoke_hook

    if not resume and not image:
        raise UsageError("--image is required (or --resume to continue an interrupted release)")
    if resume and (image or set_env or skip_canary or dry_run or skip_preflight is not None or confirm):
        raise UsageError(
            "--resume continues the recorded release;"
            " --image, --set-env, --skip-canary, --dry-run, --skip-preflight and --confirm do not apply"
        )
    if skip_preflight is not None and not skip_preflight.strip():
        raise UsageError("--skip-preflight needs a reason (it is recorded in the ledger)")
    new_env = _parse_env(set_env or [])
    book = playbook.load(playbook_path)
    session = open_session(env, state_dir)
    try:
        environment = session.environment
        book = book.for_environment(environment.name, environment.metric_source)
        if image == "build" and not resume:
            image = _build(service, environment)
        elif image:
            _check_image(image, environment)
        options = Options(
            service=service, image=image or "", environment=environment.name, env=new_env,
            hold=hold, interval=interval, load_rps=load, skip_canary=skip_canary, on_failure=on_failure.value,
        )  # fmt: skip
        platform = session.cloud_run()
        # One Prometheus call (retries included) must fit in one gate interval.
        budget = book.timing(environment.name, hold, interval).interval or book.interval
        with session.prometheus(budget) as prometheus:
            renderer = _Renderer(json=json)
            notify = Notifier(
                session.ledger, service, environment.name, renderer, book.notifications,
                environment.slack_webhook,
            )  # fmt: skip
            use_smoke = smoke if smoke is not None else service == "backend"
            orchestrator = Orchestrator(
                platform, prometheus, session.ledger, book, notify, smoke=smoke_hook() if use_smoke else None
            )
            if not resume:
                preflight = _preflight(
                    book, session, service, skip_preflight, confirm or [], preflight_file, json=json
                )
                if preflight is not None and preflight.status != "passed" and not dry_run:
                    problems = ", ".join(r.id for r in preflight.problems())
                    raise EthixError(
                        f"preflight {preflight.status} ({problems}): nothing was changed",
                        hint="fix them, answer with --confirm ID=WHO, or --skip-preflight REASON (recorded)",
                        exit_code=preflight.exit_code,
                    )
            if dry_run:
                return _dry_run(orchestrator, options, platform, prometheus, session, json=json)
            if resume and releases.in_progress(session.ledger, service, environment.name) is None:
                raise UsageError(
                    f"no release of {service} is in progress in {environment.name}",
                    hint="see `ethixctl history`",
                )
            # Decided before anything changes: a release that cannot be judged does not start.
            plan = None if resume else orchestrator.plan(options)
            if skip_canary:
                output.warn(
                    output.markup(
                        "[bold]--skip-canary[/bold]: the new revision gets 100% with NO canary analysis"
                    )
                )
            question = f"Release {image} to {service} in {environment.name}?"
            if not resume and not output.confirm(question, assume_yes=yes):
                output.info("nothing changed")
                return int(ExitCode.FAILED)
            overrides = {"hold": hold, "interval": interval, "load_rps": load}
            lock = OperationLock(environment.state_dir, releases.KIND, environment.name, service)
            lock.acquire()
            previous = signal.signal(signal.SIGTERM, _interrupt)
            try:
                with renderer:
                    result = (
                        orchestrator.resume(service, environment.name, overrides)
                        if resume
                        else orchestrator.start(options, plan)
                    )
            finally:
                signal.signal(signal.SIGTERM, previous)
                lock.release()
        _summary(result, json=json)
        return int(result.exit_code)
    finally:
        session.close()


def _preflight(
    book: Any,
    session: Any,
    service: str,
    skip_reason: str | None,
    confirmations: list[str],
    preflight_file: Path | None,
    *,
    json: bool,
) -> Report | None:
    """The preflight checklists of the environment for SERVICE, recorded; None when skipped (recorded too)."""
    from ethixctl.preflight import model
    from ethixctl.preflight.present import ask_person, show_item
    from ethixctl.preflight.run import execute, parse_confirmations, record_skip

    environment = session.environment
    if skip_reason is not None:
        entry = record_skip(session.ledger, environment.name, service, skip_reason.strip())
        output.warn(output.markup("[bold]--skip-preflight[/bold]: {} (ledger {})", skip_reason, entry[:8]))
        return None
    checklists = model.load(preflight_file)
    report = execute(
        checklists, environment, session.ledger, services=[service], metric_source=book.metric_source,
        answers=parse_confirmations(confirmations, checklists), ask=ask_person(json),
        on_item=(lambda result: None) if json else show_item,
    )  # fmt: skip
    if report.checklists and not json:
        output.info(f"preflight {report.status} ({', '.join(report.checklists)})")
    return report


def _build(service: str, environment: Any) -> str:
    if environment.kind != "local":
        raise UsageError(f"--image build only works on the local platform, not in {environment.name}")
    from ethixctl.platform import images

    ref = images.build(service, environment.state_dir / "images").ref
    output.info(f"built {ref}")
    return ref


def _interrupt(signum: int, frame: Any) -> None:
    # SIGTERM ends the run like Ctrl-C: state is already durable, the lock is released, exit 130.
    raise KeyboardInterrupt


def _parse_env(pairs: list[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key or not key.replace("_", "a").isalnum() or key[0].isdigit():
            raise UsageError(f"--set-env expects KEY=VALUE with a valid variable name, got {key or pair!r}")
        env[key] = value
    return env


def _check_image(image: str, environment: Any) -> None:
    """Refuse an image that cannot be deployed before anything is created (no revision, no ledger row).

    Locally the image must exist in the state dir. For Cloud Run only the reference's form can be
    checked from here; a missing image then fails the deploy, which the ledger records."""
    if environment.kind == "local":
        from ethixctl.platform import images

        images.resolve(image, environment.state_dir / "images")
    elif not _IMAGE_REFERENCE.fullmatch(image):
        raise UsageError(
            f"--image {image!r} is not a container image reference",
            hint="e.g. europe-west1-docker.pkg.dev/PROJECT/REPO/backend@sha256:<64 hex> or …/backend:TAG",
        )


def _dry_run(
    orchestrator: Orchestrator, options: Options, platform: Any, prometheus: Any, session: Any, *, json: bool
) -> int:
    from ethixctl.release import analysis, releases
    from ethixctl.release.orchestrator import describe, stable_of

    book = orchestrator.book
    stable = stable_of(platform.serving_split(options.service), options.service)
    plan = orchestrator.plan(options)  # UsageError, like a real run, when a step cannot be judged
    pending = releases.in_progress(session.ledger, options.service, options.environment)
    # There is no canary yet: the gates run against what would be judged now — a pending canary, else stable.
    subject = pending.canary_revision if pending and pending.canary_revision else stable
    timing = book.timing(options.environment, options.hold, options.interval)
    verdict = analysis.evaluate(
        prometheus, book, service=options.service, canary=subject, stable=stable, timing=timing,
        compare=subject != stable,
    )  # fmt: skip
    the_plan = describe(book, plan, options, stable)
    if json:
        output.emit_json({"dry_run": True, "plan": the_plan, "gates_now": verdict.to_dict()})
        return 0
    output.show(
        output.markup(
            "[bold]plan[/bold] {}: {} (stable {}, env {})",
            options.service, options.image, stable, options.environment,
        )
    )  # fmt: skip
    rate = "unknown" if plan.rate is None else f"{plan.rate:.1f} requests/s"
    for index, step in enumerate(plan.steps, 1):
        expected = (
            "" if step.expected_requests is None else f", ~{step.expected_requests:.0f} canary requests"
        )
        output.show(
            f"  step {index}: {step.weight}% canary, hold {step.hold:g}s, analysis every {step.interval:g}s"
            f" over {step.window:g}s windows{expected}"
        )
    gates = ", ".join(f"{g['name']} < {g['max']:g}" for g in the_plan["gates"])
    output.show(f"  gates: {gates}; min {the_plan['min_requests']} requests per window; service rate {rate}")
    for warning in plan.warnings:
        output.warn(warning)
    output.show(f"  on failure: {options.on_failure}; nothing was changed (--dry-run)")
    output.show(output.markup("[bold]gates now[/bold] on {}: {}", subject, verdict.summary()))
    return 0


class _Renderer:
    """Events as a JSON stream (--json), a rich live panel (TTY) or plain lines (logs, CI)."""

    def __init__(self, *, json: bool):
        self.json = json
        self.live: Any = None
        self.status: dict[str, Any] = {}

    def __enter__(self) -> _Renderer:
        if not self.json and output.interactive():
            from rich.live import Live

            self.live = Live(self._panel(), console=output.stderr(), refresh_per_second=4, transient=True)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(None, None, None)

    def __call__(self, event: Event) -> None:
        if self.json:
            output.emit_json(event.to_dict())
            return
        if event.kind in ("step", "gate"):
            self.status.update(event.data)
        style = {
            "warning": "yellow",
            "page": "bold red",
            "rolled_back": "red",
            "promoted": "green",
            "held": "yellow",
        }
        color = style.get(event.kind)
        line = output.markup(f"[{color}]{{}}[/]", event.message) if color else output.literal(event.message)
        if self.live is not None:
            self.live.console.print(line)
            self.live.update(self._panel())
        else:
            output.info(line)

    def _panel(self) -> Any:
        from rich.table import Table

        table = Table.grid(padding=(0, 2))
        data = self.status
        if not data:
            table.add_row("starting…")
            return table
        table.add_row(
            "step", f"{data.get('step')}/{data.get('steps', '?')}", "weight", f"{data.get('weight')}%"
        )
        if "time_left" in data:
            table.add_row(
                "passes",
                f"{data.get('passes')}/{data.get('needed')}",
                "time left",
                f"{data['time_left']:.0f}s",
            )
            verdict = data.get("verdict", {})
            for gate in verdict.get("gates", []):
                value = "no data" if gate["value"] is None else f"{gate['value']:.4g}"
                table.add_row(gate["name"], value, "max", f"{gate['max']:g}")
            table.add_row(
                "verdict",
                str(verdict.get("outcome", "")),
                "next",
                str(data.get("decision", {}).get("next", "")),
            )
        return table


def _summary(result: Result, *, json: bool) -> None:
    if json:
        output.emit_json({"event": "result", **result.to_dict()})
        return
    message = f"{result.status}: {result.reason}"
    if result.exit_code == ExitCode.OK:
        output.success(message)
    else:
        output.warn(message)
    if result.status == "rolled_back" and result.canary:
        output.info(f"the canary {result.canary} is kept at 0% with its tag for inspection")
