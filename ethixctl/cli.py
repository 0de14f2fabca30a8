"""The typer application: a thin layer that finds one module per command in ``ethixctl.commands``.

Command modules import only typer at module level; the heavy libraries (google-cloud-*, pandas,
pymongo, …) are imported inside the command functions, which keeps ``ethixctl --help`` instant.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from typing import Annotated

import typer

from ethixctl import __version__, output
from ethixctl.errors import EthixError
from ethixctl.exitcodes import EXIT_CODE_TABLE, ExitCode


def _exit_code_epilog() -> str:
    rows = "\n".join(f"  {code:>3}  {scope:<8} {meaning}" for code, scope, meaning in EXIT_CODE_TABLE)
    return f"Exit codes:\n\n{rows}"


app = typer.Typer(
    name="ethixctl",
    help=(
        "Operate the EthixAI platform: canary releases, rollbacks, smoke tests and the local platform.\n\n"
        "Examples:\n\n"
        "  ethixctl up                                  # start the local platform\n\n"
        "  ethixctl status --json                       # services, revisions, traffic\n\n"
        "  ethixctl release backend --image local/backend@sha256:…\n\n"
        "  ethixctl rollback backend                    # back to the last good revision\n\n"
        "  ethixctl smoke http://127.0.0.1:8080 --junit smoke.xml"
    ),
    epilog=_exit_code_epilog(),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"ethixctl {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """ethixctl — the EthixAI operations toolkit."""


def _register_commands() -> None:
    import ethixctl.commands as commands

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        name = getattr(module, "NAME", info.name.replace("_", "-"))
        panel = getattr(module, "PANEL", None)
        if hasattr(module, "app"):
            app.add_typer(module.app, name=name, rich_help_panel=panel)
        else:
            app.command(name, rich_help_panel=panel)(module.command)


_register_commands()


def main(argv: list[str] | None = None) -> int:
    """Entry point: runs the app and maps failures to the documented exit codes."""
    # typer vendors click; its exception classes are reachable through BadParameter's bases.
    usage_error, click_exception = typer.BadParameter.__mro__[1:3]
    try:
        result = app(args=argv, standalone_mode=False)
    except EthixError as exc:
        output.error(exc.message, exc.hint)
        code = int(exc.exit_code)
    except usage_error as exc:
        exc.show()  # type: ignore[attr-defined]
        code = int(ExitCode.USAGE)
    except (KeyboardInterrupt, typer.Abort):
        output.error("interrupted")
        code = int(ExitCode.INTERRUPTED)
    except click_exception as exc:
        exc.show()  # type: ignore[attr-defined]
        code = int(exc.exit_code)  # type: ignore[attr-defined]
    except typer.Exit as exc:
        code = int(exc.exit_code)
    else:
        code = result if isinstance(result, int) else 0
    if argv is None:
        sys.exit(code)
    return code
