"""The one module that owns terminal output.

Data goes to stdout (tables for people, JSON with ``--json``); messages, progress and live status go
to stderr, so ``ethixctl status --json | jq`` always sees clean JSON. ``NO_COLOR`` is honoured by rich
itself; we also drop colour when stderr is not a terminal.
"""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

_json_mode = False
_stdout: Console | None = None
_stderr: Console | None = None


def configure(*, json_mode: bool) -> None:
    global _json_mode
    _json_mode = json_mode


def json_mode() -> bool:
    return _json_mode


def interactive() -> bool:
    """True when a person is at the terminal: prompts and live displays are allowed."""
    return sys.stdin.isatty() and sys.stderr.isatty() and not os.environ.get("CI")


def _no_color() -> dict[str, Any]:
    # rich alone drops colours for NO_COLOR but keeps bold and dim; NO_COLOR users want plain text.
    return {"color_system": None} if os.environ.get("NO_COLOR") else {}


def stdout() -> Console:
    global _stdout
    if _stdout is None:
        from rich.console import Console

        # Piped output is read by people too (CI logs): don't squeeze tables into 80 columns.
        width = None if sys.stdout.isatty() else 200
        _stdout = Console(soft_wrap=True, highlight=False, width=width, **_no_color())
    return _stdout


def stderr() -> Console:
    global _stderr
    if _stderr is None:
        from rich.console import Console

        _stderr = Console(stderr=True, soft_wrap=True, highlight=False, **_no_color())
    return _stderr


def escape(text: str) -> str:
    """Text from outside (service answers, reasons, names) shown literally, never read as rich markup."""
    from rich.markup import escape as escape_markup

    return escape_markup(text)


def emit_json(data: Any) -> None:
    """Machine-readable data on stdout, one document per call."""
    sys.stdout.write(json.dumps(data, default=str, sort_keys=False) + "\n")
    sys.stdout.flush()


def line(text: str) -> None:
    """Raw text on stdout, one line, no markup or wrapping (log lines, an image reference)."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def show(renderable: RenderableType) -> None:
    """Human-readable data on stdout (tables, summaries)."""
    stdout().print(renderable)


def info(message: str) -> None:
    stderr().print(message)


def success(message: str) -> None:
    stderr().print(f"[green]✓[/green] {message}")


def failure(message: str) -> None:
    """A check that ran and did not pass (a smoke step, a gate): the counterpart of ``success``."""
    stderr().print(f"[red]✗[/red] {message}")


def warn(message: str) -> None:
    stderr().print(f"[yellow]![/yellow] {message}")


def error(message: str, hint: str | None = None) -> None:
    stderr().print(f"[red]error:[/red] {message}")
    if hint:
        stderr().print(f"  [dim]hint:[/dim] {hint}")


def confirm(question: str, *, assume_yes: bool) -> bool:
    """Ask only when a person can answer; ``--yes``, ``CI`` or no TTY means yes without a prompt."""
    if assume_yes or not interactive():
        return True
    from rich.prompt import Confirm

    return Confirm.ask(question, console=stderr(), default=False)
