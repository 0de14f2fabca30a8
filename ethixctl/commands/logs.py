"""``ethixctl logs SERVICE``: the logs of a service's revisions on the local platform."""

from __future__ import annotations

from typing import Annotated

import typer

from ethixctl import output
from ethixctl.commands._options import StateDirOption


def command(
    service: Annotated[str, typer.Argument(help="Service (backend, ai_core).")],
    revision: Annotated[
        str | None, typer.Option("--revision", "-r", help="Only this revision (default: all, prefixed).")
    ] = None,
    lines: Annotated[int, typer.Option("--lines", "-n", help="Lines from the end of each log.", min=0)] = 50,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines (Ctrl-C stops).")
    ] = False,
    state_dir: StateDirOption = None,
) -> None:
    """Show (or follow) a service's revision logs.

    Examples:

      ethixctl logs backend -n 100

      ethixctl logs ai_core --revision ai_core-00002-x7k --follow
    """
    from ethixctl.config import local_state_dir
    from ethixctl.platform import logs

    sources = logs.log_files(local_state_dir(state_dir), service, revision)
    prefix = len(sources) > 1
    for line in logs.tail(sources, lines):
        output.line(line if prefix else line.split(" | ", 1)[1])
    if follow:
        try:
            for line in logs.follow(sources):
                output.line(line if prefix else line.split(" | ", 1)[1])
        except KeyboardInterrupt:
            output.info("stopped following")
