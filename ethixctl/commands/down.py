"""``ethixctl down``: stop the local platform."""

from __future__ import annotations

from typing import Annotated

import typer

from ethixctl import output
from ethixctl.commands._options import JsonFlag, StateDirOption


def command(
    state_dir: StateDirOption = None,
    json: JsonFlag = False,
    purge: Annotated[
        bool,
        typer.Option("--purge", help="Also delete the state dir: database, bucket, metrics, images, logs."),
    ] = False,
) -> None:
    """Stop everything the local platform started; keep data unless --purge.

    Examples:

      ethixctl down

      ethixctl down --purge
    """
    from ethixctl.config import local_state_dir
    from ethixctl.errors import EthixError
    from ethixctl.platform import lifecycle

    directory = local_state_dir(state_dir)
    result = lifecycle.down(directory, purge=purge)
    data = {
        "was_running": result.was_running,
        "stopped_pids": result.stopped_pids,
        "ports_still_bound": result.ports_still_bound,
        "purged": result.purged,
        "state_dir": str(directory),
    }
    if json:
        output.emit_json(data)
    elif result.was_running:
        output.success(f"platform stopped ({len(result.stopped_pids)} processes)")
    elif result.stopped_pids:
        output.success(f"stopped {len(result.stopped_pids)} leftover processes of a previous run")
    else:
        output.info("the platform was not running")
    if result.purged and not json:
        output.success(f"deleted {directory}")
    if result.ports_still_bound:
        raise EthixError(f"ports still bound after stopping: {result.ports_still_bound}")
