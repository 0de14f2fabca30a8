"""``ethixctl up``: start the local platform (or report and repair the running one)."""

from __future__ import annotations

from typing import Annotated

import typer

from ethixctl import output
from ethixctl.commands._options import JsonFlag, StateDirOption


def command(
    state_dir: StateDirOption = None,
    json: JsonFlag = False,
    free_ports: Annotated[
        bool,
        typer.Option(
            "--free-ports", help="Use any free ports instead of the defaults (8080, 8081, 8090, 9090, 2019)."
        ),
    ] = False,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds to wait for readiness.", min=1)
    ] = 300.0,
    idle_timeout: Annotated[
        float | None,
        typer.Option(
            "--idle-timeout",
            help="Seconds without a request before a tagged revision at 0% scales to zero (default 300).",
            min=1,
        ),
    ] = None,
) -> None:
    """Start the local platform: control plane, Caddy, Prometheus, services.

    Idempotent: on a running platform it reports the URLs and restarts a dead part at once (the
    daemon restarts dead parts by itself, with backoff). After a daemon crash it takes over the
    router, Prometheus and revisions still serving instead of starting new ones. Data (database,
    bucket, metrics) is kept in the state dir across restarts.

    Examples:

      ethixctl up

      ethixctl up --state-dir /tmp/ethix --free-ports --json

      ethixctl up --idle-timeout 60     # tagged revisions at 0% scale to zero after a minute
    """
    from ethixctl.config import local_state_dir
    from ethixctl.platform import lifecycle

    directory = local_state_dir(state_dir)
    if output.interactive() and not json:
        with output.stderr().status("starting the platform") as spinner:
            result = lifecycle.up(
                directory,
                free_ports=free_ports,
                idle_timeout=idle_timeout,
                timeout=timeout,
                on_phase=lambda p: spinner.update(p),
            )
    else:
        result = lifecycle.up(
            directory, free_ports=free_ports, idle_timeout=idle_timeout, timeout=timeout, on_phase=output.info
        )
    info = result.info
    data = {
        "status": "already running" if result.already_running else "started",
        "state_dir": str(directory),
        "services": info["services"],
        "control_plane_url": info["control_plane_url"],
        "prometheus_url": info["prometheus_url"],
        "repaired": result.repaired,
        "adopted": result.adopted,
    }
    from ethixctl.platform.daemon import DEFAULT_PORTS

    moved = {
        name: port
        for name, port in info.get("ports", {}).items()
        if name in DEFAULT_PORTS and port != DEFAULT_PORTS[name] and not free_ports
    }
    if moved and not result.already_running:
        output.warn(
            "default ports in use, using others: "
            + ", ".join(f"{name} {DEFAULT_PORTS[name]} → {port}" for name, port in moved.items())
        )
    if result.adopted:
        output.warn(
            f"a previous daemon stopped without `ethixctl down`: took over {', '.join(result.adopted)}"
        )
    if result.repaired:
        output.success(f"repaired: {', '.join(result.repaired)}")
    if json:
        output.emit_json(data)
        return
    output.success("platform " + data["status"] + f" (state dir {directory})")
    table = output.table(show_header=True, header_style="bold")
    table.add_column("part")
    table.add_column("URL")
    for name, url in info["services"].items():
        table.add_row(name, url)
    table.add_row("prometheus", info["prometheus_url"])
    table.add_row("control plane", info["control_plane_url"])
    output.show(table)
