"""``ethixctl status``: services, revisions, traffic, tags, readiness, what Prometheus sees and its
firing alerts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from ethixctl import output
from ethixctl.commands._options import EnvOption, JsonFlag, StateDirOption
from ethixctl.errors import PlatformUnavailable

if TYPE_CHECKING:
    from rich.text import Text

    from ethixctl.config import Environment


def command(
    service: Annotated[str | None, typer.Argument(help="Only this service.")] = None,
    json: JsonFlag = False,
    env: EnvOption = None,
    state_dir: StateDirOption = None,
) -> None:
    """Services, revisions, traffic, tags, readiness, Prometheus targets and firing alerts.

    On the local platform it also shows whether the router, Prometheus and the control plane are alive,
    and how often each was restarted.

    Examples:

      ethixctl status

      ethixctl status backend --json
    """
    from ethixctl.config import resolve_environment
    from ethixctl.platform.status import collect

    environment = resolve_environment(env, state_dir, need_platform=False)
    if not environment.platform_running:
        _data_plane_only(environment, json)
    data = collect(environment, service)
    if json:
        output.emit_json(data)
    else:
        _render(data)


def _data_plane_only(environment: Environment, json: bool) -> None:
    """No daemon: say what still serves (the data plane outlives it), then fail as the platform is down."""
    from ethixctl.platform.status import data_plane

    serving = data_plane(environment)
    if serving is None:
        environment.require_platform()  # nothing runs: the plain "not running" error
        return
    if json:
        output.emit_json(serving)
    else:
        line = output.markup("[bold]{}[/bold]  daemon: [red]down[/]", serving["environment"])
        for name, ok in serving["platform"].items():
            line += output.markup("  {}: [{}]{}[/]", name, "green" if ok == "up" else "red", ok)
        output.show(line)
        for name, svc in serving["services"].items():
            output.show(
                output.markup(
                    "[bold]{}[/bold]  {}  {}  {}",
                    name,
                    svc["url"],
                    "serving" if svc["serving"] else "not serving",
                    ", ".join(svc["revisions"]) or "no revision running",
                )
            )
    raise PlatformUnavailable(
        f"the control plane is down (no daemon runs for {environment.state_dir}) while the data plane "
        "still serves: traffic cannot change and status cannot read the services",
        hint="`ethixctl up` starts a daemon that adopts the running router, Prometheus and revisions",
    )


def _render(data: dict[str, Any]) -> None:
    parts = data.get("platform")
    if parts:
        line = output.markup("[bold]{}[/bold]", data["environment"])
        for name, ok in parts.items():
            line += output.markup("  {}: [{}]{}[/]", name, "green" if ok == "up" else "red", ok)
        output.show(line)
        for name, part in (data.get("parts") or {}).items():
            if part["restarts"]:
                output.show(
                    output.markup(
                        "  {}: restarted {}×, last down: {}", name, part["restarts"], part["last_exit"] or "?"
                    )
                )
        if any(ok != "up" for ok in parts.values()):
            output.warn("part of the platform is down: the daemon restarts it; `ethixctl up` does it at once")
    alerts = data.get("alerts")
    if alerts is None:
        output.warn("Prometheus did not list its alerts: firing alerts unknown")
    elif alerts:
        table = output.table(
            title=output.markup("[bold red]firing alerts[/]"),
            show_header=True,
            header_style="bold",
        )
        for column in ("alert", "revision", "since", "summary", "runbook"):
            table.add_column(column)
        for alert in alerts:
            table.add_row(
                output.markup("[red]{}[/red]", alert["name"]),
                alert["revision"] or alert["service"] or "",
                alert["since"],
                alert["summary"],
                alert["runbook"] or "",
            )
        output.show(table)
    for svc in data["services"]:
        output.show(output.markup("\n[bold]{}[/bold]  {}", svc["name"], svc["url"]))
        release = svc.get("release_in_progress")
        if release:
            output.warn(
                f"release {release['id']} in progress ({release['phase']}, step {release['step']}): "
                f"{release['stable_revision']} → {release['canary_revision']} by {release['user']}; "
                f"`ethixctl release {svc['name']} --resume` continues it, "
                f"`ethixctl rollback {svc['name']}` ends it"
            )
        table = output.table(show_header=True, header_style="bold")
        for column in (
            "revision", "traffic", "tags", "ready", "instances", "restarts", "prometheus", "image", "message"
        ):  # fmt: skip
            table.add_column(column)
        for rev in svc["revisions"]:
            tags = ", ".join(f"{t['tag']} {t['url'] or ''}".strip() for t in rev["tags"])
            table.add_row(
                rev["name"],
                f"{rev['percent']}%",
                tags,
                _readiness(rev),
                _instances(rev),
                "" if rev["restarts"] is None else str(rev["restarts"]),
                rev["prometheus"],
                rev["image"].split("@sha256:")[0]
                + ("@" + rev["image"].split("@sha256:")[1][:12] if "@sha256:" in rev["image"] else ""),
                rev["message"],
            )
        output.show(table)


def _readiness(revision: dict[str, Any]) -> Text:
    if not revision["ready"]:
        return output.markup("[red]no[/red]")
    # Deployed and started, but its readiness probe fails: the router sends it nothing.
    if revision.get("serving") is False:
        return output.markup("[yellow]not serving[/yellow]")
    return output.markup("[green]yes[/green]")


def _instances(rev: dict[str, Any]) -> str:
    """What runs: one instance, none (scaled to zero), and how long the last cold start took."""
    state = rev.get("state")
    if state is None:
        return ""
    shown = {"READY": "1", "STARTING": "starting", "SCALED_TO_ZERO": "0 (scaled to zero)"}.get(
        state, state.lower()
    )
    if rev.get("last_cold_start_seconds") is not None:
        shown += f", cold start {rev['last_cold_start_seconds']:.1f}s"
    return shown
