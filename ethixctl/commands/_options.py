"""Options shared by several commands, defined once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

JsonFlag = Annotated[
    bool, typer.Option("--json", help="Machine-readable output on stdout; messages on stderr.")
]
EnvOption = Annotated[
    str | None,
    typer.Option(
        "--env", "-e", envvar="ETHIXCTL_ENV", help="Environment from ethixctl.toml (default: local)."
    ),
]


def _usable_state_dir(value: Path | None) -> Path | None:
    """Checked before the command runs, so a bad path is one line and exit 2, with nothing changed."""
    if value is not None:
        from ethixctl.platform.state import check_state_dir

        check_state_dir(value.expanduser())
    return value


StateDirOption = Annotated[
    Path | None,
    typer.Option(
        "--state-dir",
        envvar="ETHIXCTL_STATE_DIR",
        help="Local platform state (default: ~/.ethixctl/local).",
        callback=_usable_state_dir,
    ),
]
YesFlag = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask; implied when CI is set or no TTY.")]
DryRunFlag = Annotated[bool, typer.Option("--dry-run", help="Show what would change and change nothing.")]
ConfirmOption = Annotated[
    list[str] | None,
    typer.Option(
        "--confirm",
        metavar="ID=WHO",
        help="Answer a checklist question, e.g. on_call=alice (repeatable; CI).",
    ),
]
PreflightFileOption = Annotated[
    Path | None, typer.Option("--preflight", help="Checklist file (default: playbooks/preflight.yaml).")
]
