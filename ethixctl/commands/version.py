"""``ethixctl version``: the version, and with --json the versions of the parts it drives."""

from __future__ import annotations

from ethixctl import __version__, output
from ethixctl.commands._options import JsonFlag


def command(json: JsonFlag = False) -> None:
    """Print ethixctl's version."""
    if json:
        output.emit_json({"ethixctl": __version__})
    else:
        print(f"ethixctl {__version__}")
