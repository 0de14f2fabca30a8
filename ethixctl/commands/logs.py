"""``ethixctl logs SERVICE``: the logs of a service's revisions on the local platform."""

from __future__ import annotations

from typing import Annotated

import typer

from ethixctl import output
from ethixctl.commands._options import JsonFlag, StateDirOption


def command(
    service: Annotated[str, typer.Argument(help="Service (backend, ai_core).")],
    revision: Annotated[
        str | None, typer.Option("--revision", "-r", help="Only this revision (default: all, prefixed).")
    ] = None,
    lines: Annotated[int, typer.Option("--lines", "-n", help="Lines from the end of each log.", min=0)] = 50,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines (Ctrl-C stops).")
    ] = False,
    severity: Annotated[
        str | None,
        typer.Option(
            "--severity", "-s", help="Only entries at or above: debug, info, warning, error, critical."
        ),
    ] = None,
    request_id: Annotated[
        str | None, typer.Option("--request-id", help="Only the entries of one request (X-Request-ID).")
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Only entries newer than 15m, 2h, 1d or an ISO 8601 time.")
    ] = None,
    json_output: JsonFlag = False,
    state_dir: StateDirOption = None,
) -> None:
    """Show (or follow) a service's revision logs (JSON lines, Cloud Logging's format).

    Examples:

      ethixctl logs backend -n 100

      ethixctl logs backend --severity warning --since 15m

      ethixctl logs backend --request-id 3f0c9a1e2b7d4c55a1e0f00d12345678 --json

      ethixctl logs ai_core --revision ai-core-00002-x7k --follow
    """
    from ethixctl.config import local_state_dir
    from ethixctl.platform import logs

    wanted = logs.LogFilter(
        min_severity=logs.severity_level(severity) if severity else 0,
        request_id=request_id,
        since=logs.parse_since(since) if since else None,
    )
    sources = logs.log_files(local_state_dir(state_dir), service, revision)
    prefix = len(sources) > 1

    def keep(line: str) -> bool:
        return wanted.keep(logs.parse_entry(line))

    def show(tagged: str) -> None:
        name, line = tagged.split(" | ", 1)
        entry = logs.parse_entry(line)
        if json_output:
            # Passthrough: the entry as the service wrote it, plus the revision it came from.
            output.emit_json({**entry, "revision": entry.get("revision", name)})
        else:
            output.line(f"{name} | {logs.render(entry)}" if prefix else logs.render(entry))

    for tagged in logs.tail(sources, lines, keep):
        show(tagged)
    if follow:
        try:
            for tagged in logs.follow(sources, keep=keep):
                show(tagged)
        except KeyboardInterrupt:
            output.info("stopped following")
