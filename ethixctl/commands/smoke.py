"""``ethixctl smoke``: run the post-deployment smoke suite once, or as a synthetic-monitoring loop."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ethixctl import output
from ethixctl.commands._options import EnvOption, JsonFlag, StateDirOption
from ethixctl.errors import UsageError

if TYPE_CHECKING:
    from collections.abc import Callable

    from ethixctl.config import Environment
    from ethixctl.smoke.model import Suite
    from ethixctl.smoke.runner import SmokeReport, StepResult
    from ethixctl.smoke.watch import Alert


def command(
    url: Annotated[
        str | None,
        typer.Argument(help="Base URL of the target, e.g. http://127.0.0.1:8080 (default: from --env)."),
    ] = None,
    env: EnvOption = None,
    state_dir: StateDirOption = None,
    tag: Annotated[
        str | None, typer.Option("--tag", help="Test a tagged revision (e.g. canary-ab12cd) via its tag URL.")
    ] = None,
    service: Annotated[str, typer.Option("--service", help="Cloud Run service to resolve.")] = "backend",
    suite_file: Annotated[
        Path | None, typer.Option("--suite", help="Suite file (default: playbooks/smoke.yaml).")
    ] = None,
    categories: Annotated[
        list[str] | None,
        typer.Option(
            "--category",
            metavar="NAME",
            help="Run only this category and those it needs (repeatable; default: all).",
        ),
    ] = None,
    json: JsonFlag = False,
    junit: Annotated[Path | None, typer.Option("--junit", help="Write a JUnit XML report to FILE.")] = None,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", min=0.1, help="Per-request timeout in seconds (default: suite's)."),
    ] = None,
    retries: Annotated[
        int, typer.Option("--retries", min=0, help="Retries per request on network errors.")
    ] = 3,
    watch_interval: Annotated[
        float | None,
        typer.Option(
            "--watch", min=0.1, metavar="INTERVAL", help="Run every INTERVAL seconds (runbook: 300)."
        ),
    ] = None,
    failures: Annotated[
        int, typer.Option("--failures", min=1, help="With --watch: alert after N consecutive failed runs.")
    ] = 3,
    max_runs: Annotated[
        int | None, typer.Option("--max-runs", min=1, help="With --watch: stop after N runs.")
    ] = None,
    metrics_file: Annotated[
        Path | None,
        typer.Option("--metrics-file", help="With --watch: Prometheus textfile, replaced atomically."),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option("--metrics-port", min=0, max=65535, help="With --watch: serve /metrics here."),
    ] = None,
) -> int:
    """Run the post-deploy smoke suite against a deployment.

    The runbook's checks in four categories: infrastructure-health, auth-flow, core-analysis,
    error-handling. With no --category every category runs (what CI runs after a deploy); a
    category brings the ones it needs (error-handling runs auth-flow first). The synthetic users
    are deleted at the end, even when a step fails. Exit codes: 0 passed, 1 a step failed,
    2 bad usage or suite file, 3 target unreachable.

    \b
    Examples:
      ethixctl smoke http://127.0.0.1:8080 --junit smoke.xml
      ethixctl smoke http://127.0.0.1:8080 --category infrastructure-health --category error-handling
      ethixctl smoke --env local --tag canary-ab12cd --json
      ethixctl smoke --env prod --watch 300 --failures 3 --metrics-file /var/lib/node_exporter/smoke.prom
    """
    from ethixctl.smoke.model import load_suite
    from ethixctl.smoke.runner import normalise_base_url

    watch_only = {"--failures": failures != 3, "--max-runs": max_runs, "--metrics-file": metrics_file}
    watch_only["--metrics-port"] = metrics_port is not None
    if watch_interval is None and any(watch_only.values()):
        flag = next(name for name, given in watch_only.items() if given)
        raise UsageError(f"{flag} only applies with --watch INTERVAL")
    if url is not None and tag is not None:
        raise UsageError(
            "--tag resolves a tag URL from the environment; give either a URL or --tag", hint=None
        )

    from ethixctl.config import resolve_environment

    suite = load_suite(suite_file)
    if categories:
        suite = suite.select(categories)
    # A URL alone needs no platform; --tag, no URL, or --watch with --env resolve the environment.
    needs_platform = url is None or (watch_interval is not None and env is not None)
    environment = resolve_environment(env, state_dir=state_dir, need_platform=needs_platform)
    target = normalise_base_url(url if url is not None else _resolve_url(environment, service, tag))

    if watch_interval is None:
        output.info(f"smoke suite {suite.name} against {target}")
        from ethixctl.smoke.runner import run_suite

        report = run_suite(target, suite, timeout=timeout, retries=retries, on_step=_step_printer())
        if url is None and tag is None:
            from ethixctl.smoke.ledger import record_run

            record_run(environment.state_dir, environment.name, service, report)
        _finish(report, json=json, junit=junit)
        return int(report.exit_code)

    return _watch(
        target,
        suite,
        interval=watch_interval,
        failures=failures,
        max_runs=max_runs,
        timeout=timeout,
        retries=retries,
        metrics_file=metrics_file,
        metrics_port=metrics_port,
        webhook=environment.slack_webhook,
        json=json,
        junit=junit,
    )


def _resolve_url(environment: Environment, service: str, tag: str | None) -> str:
    from ethixctl.adapters.cloudrun import CloudRun

    run = CloudRun(environment.project, environment.region, endpoint=environment.run_endpoint)
    return run.tag_url(service, tag) if tag else run.get_service(service).uri


def _step_printer() -> Callable[[StepResult], None]:
    """Progress lines, with a heading each time a new category starts."""
    current: list[str | None] = [None]

    def show(result: StepResult) -> None:
        if result.category is not None and result.category != current[0]:
            current[0] = result.category
            output.info(output.markup("[bold]{}[/bold]", result.category))
        _show_step(result)

    return show


def _show_step(result: StepResult) -> None:
    retries = f" ({result.network_retries} network retries)" if result.network_retries else ""
    label = output.markup(
        "{}{} [dim]{} ms{}[/dim]",
        "cleanup: " if result.phase == "cleanup" else "", result.name,
        f"{result.duration * 1000:.0f}", retries,
    )  # fmt: skip
    if result.status == "passed":
        output.success(label)
    elif result.status == "skipped":
        output.info(output.markup("[dim]- {} ({})[/dim]", result.name, result.reason or "skipped"))
    elif result.status == "error":
        output.failure(label + output.markup(" [yellow]{}[/yellow]", result.reason or "network error"))
    else:
        output.failure(label + output.literal(f": {result.reason or ''}"))


def _finish(report: SmokeReport, *, json: bool, junit: Path | None) -> None:
    from rich.text import Text

    if junit is not None:
        from ethixctl.smoke import junit as junit_writer

        junit_writer.write(report, junit)
    if json:
        output.emit_json(report.to_dict())
        return
    counts = report.counts()
    summary = Text()
    summary.append(
        "PASSED" if report.passed else report.outcome.upper(), style="green" if report.passed else "red"
    )
    summary.append(
        f"  {counts['passed']} passed, {counts['failed']} failed, {counts['error']} network errors, "
        f"{counts['skipped']} skipped in {report.duration:.2f}s (run {report.run_id})"
    )
    if counts["network_retries"]:
        summary.append(f"; {counts['network_retries']} network errors recovered by retrying", style="yellow")
    output.show(summary)
    for result in [*report.steps, *report.cleanup]:
        if result.status not in ("failed", "error"):
            continue
        detail = Text(f"✗ {result.name}: {result.reason}\n", style="red")
        status = f" → HTTP {result.http_status}" if result.http_status is not None else ""
        detail.append(f"    {result.method} {result.path}{status}\n", style="dim")
        if result.excerpt:
            detail.append(f"    response: {result.excerpt}\n", style="dim")
        output.show(detail)
    if report.unreachable:
        output.error(f"{report.base_url} did not answer", hint="is the service up? check the URL / tag")


def _watch(
    target: str,
    suite: Suite,
    *,
    interval: float,
    failures: int,
    max_runs: int | None,
    timeout: float | None,
    retries: int,
    metrics_file: Path | None,
    metrics_port: int | None,
    webhook: str | None,
    json: bool,
    junit: Path | None,
) -> int:
    from ethixctl.smoke.metrics import MetricsServer, WatchMetrics
    from ethixctl.smoke.watch import SlackNotifier, failure_summary, watch

    metrics = WatchMetrics(suite.name, target)
    server = MetricsServer(metrics, port=metrics_port) if metrics_port is not None else None
    notifier = SlackNotifier(webhook) if webhook else None
    output.info(
        f"watching {target} every {interval:g}s; alert after {failures} consecutive failures"
        + (" (Slack + console)" if notifier else " (console only: no Slack webhook configured)")
    )
    if server is not None:
        output.info(f"metrics at {server.url}")

    def on_report(run: int, report: SmokeReport) -> None:
        if junit is not None:
            from ethixctl.smoke import junit as junit_writer

            junit_writer.write(report, junit)
        if json:
            output.emit_json({"run": run, **report.to_dict()})
        elif report.passed:
            output.success(f"run {run}: passed in {report.duration:.2f}s")
        else:
            output.failure(f"run {run}: {report.outcome} — {failure_summary(report)}")

    def on_alert(alert: Alert) -> None:
        output.warn(f"ALERT ({alert.kind}): {alert.text}")
        if alert.delivery_problem:
            output.warn(f"alert not delivered: {alert.delivery_problem}")

    try:
        result = watch(
            target,
            suite,
            interval=interval,
            failures=failures,
            max_runs=max_runs,
            timeout=timeout,
            retries=retries,
            metrics_file=metrics_file,
            metrics=metrics,
            notifier=notifier,
            on_report=on_report,
            on_alert=on_alert,
        )
    finally:
        if server is not None:
            server.shutdown()
    return int(result.last.exit_code) if result.last is not None else 0
