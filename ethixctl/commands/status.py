"""``ethixctl status``: services, revisions, traffic, tags, readiness and what Prometheus sees."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ethixctl import output
from ethixctl.commands._options import EnvOption, JsonFlag, StateDirOption


def command(
    service: Annotated[str | None, typer.Argument(help="Only this service.")] = None,
    json: JsonFlag = False,
    env: EnvOption = None,
    state_dir: StateDirOption = None,
) -> None:
    """Services, revisions, traffic, tags, readiness and Prometheus targets.

    On the local platform it also shows whether the router, Prometheus and the control plane are alive,
    and how often each was restarted.

    Examples:

      ethixctl status

      ethixctl status backend --json
    """
    output.configure(json_mode=json)
    from ethixctl.config import load_environment
    from ethixctl.platform.status import collect

    data = collect(load_environment(env, state_dir), service)
    if json:
        output.emit_json(data)
    else:
        _render(data)


def _render(data: dict[str, Any]) -> None:
    from rich.table import Table

    parts = data.get("platform")
    if parts:
        line = "  ".join(
            f"{name}: {'[green]up[/green]' if ok == 'up' else '[red]' + ok + '[/red]'}"
            for name, ok in parts.items()
        )
        output.show(f"[bold]{data['environment']}[/bold]  {line}")
        for name, part in (data.get("parts") or {}).items():
            if part["restarts"]:
                reason = output.escape(part["last_exit"] or "?")
                output.show(f"  {name}: restarted {part['restarts']}×, last down: {reason}")
        if any(ok != "up" for ok in parts.values()):
            output.warn("part of the platform is down: the daemon restarts it; `ethixctl up` does it at once")
    for svc in data["services"]:
        output.show(f"\n[bold]{svc['name']}[/bold]  {svc['url']}")
        release = svc.get("release_in_progress")
        if release:
            output.warn(
                f"release {release['id']} in progress ({release['phase']}, step {release['step']}): "
                f"{release['stable_revision']} → {release['canary_revision']} by {release['user']}; "
                f"`ethixctl release {svc['name']} --resume` continues it, "
                f"`ethixctl rollback {svc['name']}` ends it"
            )
        table = Table(show_header=True, header_style="bold")
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
                "[green]yes[/green]" if rev["ready"] else "[red]no[/red]",
                _instances(rev),
                "" if rev["restarts"] is None else str(rev["restarts"]),
                rev["prometheus"],
                rev["image"].split("@sha256:")[0]
                + ("@" + rev["image"].split("@sha256:")[1][:12] if "@sha256:" in rev["image"] else ""),
                rev["message"],
            )
        output.show(table)


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
