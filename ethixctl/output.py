"""The one module that owns terminal output.

Data goes to stdout (tables for people, JSON with ``--json``); messages, progress and live status go
to stderr, so ``ethixctl status --json | jq`` always sees clean JSON. ``NO_COLOR`` means plain text.

Nothing a user or a server wrote is ever read as rich markup: every ``str`` given to this module is
shown literally (a ``--set-env '[/x]=1'``, a PromQL error, a Google message with ``[...]`` in it).
Styling comes only from templates written in ethixctl's own code, through :func:`markup`, whose
values are escaped, and from :func:`table`, whose string cells are literal.
"""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.table import Table
    from rich.text import Text


_stdout: Console | None = None
_stderr: Console | None = None


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


def markup(template: str, *values: object) -> Text:
    """``template`` is ethixctl's own rich markup with ``{}`` fields; the values are shown literally."""
    from rich.markup import escape
    from rich.text import Text

    return Text.from_markup(template.format(*(escape(str(value)) for value in values)))


def literal(message: str | Text) -> Text:
    from rich.text import Text

    return message if isinstance(message, Text) else Text(message)


def table(**options: Any) -> Table:
    """A rich table whose ``str`` cells are literal text (cells hold names, reasons, server answers)."""
    from rich.table import Table

    class LiteralTable(Table):
        def add_row(self, *cells: RenderableType | None, **kwargs: Any) -> None:
            super().add_row(*(literal(c) if isinstance(c, str) else c for c in cells), **kwargs)

    return LiteralTable(**options)


def emit_json(data: Any) -> None:
    """Machine-readable data on stdout, one document per call."""
    sys.stdout.write(json.dumps(data, default=str, sort_keys=False) + "\n")
    sys.stdout.flush()


def line(text: str) -> None:
    """Raw text on stdout, one line, no markup or wrapping (log lines, an image reference)."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def show(renderable: str | RenderableType) -> None:
    """Human-readable data on stdout (tables, summaries); a ``str`` is shown literally."""
    stdout().print(literal(renderable) if isinstance(renderable, str) else renderable)


def _prefixed(prefix: str, style: str, message: str | Text) -> Text:
    from rich.text import Text

    return Text.assemble((prefix, style), literal(message))


def info(message: str | Text) -> None:
    stderr().print(literal(message))


def success(message: str | Text) -> None:
    stderr().print(_prefixed("✓ ", "green", message))


def failure(message: str | Text) -> None:
    """A check that ran and did not pass (a smoke step, a gate): the counterpart of ``success``."""
    stderr().print(_prefixed("✗ ", "red", message))


def warn(message: str | Text) -> None:
    stderr().print(_prefixed("! ", "yellow", message))


def error(message: str | Text, hint: str | Text | None = None) -> None:
    stderr().print(_prefixed("error: ", "red", message))
    if hint:
        stderr().print(_prefixed("  hint: ", "dim", hint))


def confirm(question: str, *, assume_yes: bool) -> bool:
    """Ask only when a person can answer; ``--yes``, ``CI`` or no TTY means yes without a prompt."""
    if assume_yes or not interactive():
        return True
    from rich.prompt import Confirm

    return Confirm.ask(literal(question), console=stderr(), default=False)
