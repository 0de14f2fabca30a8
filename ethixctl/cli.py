"""The typer application: a thin layer that finds one module per command in ``ethixctl.commands``.

Command modules import only typer at module level; the heavy libraries (google-cloud-*, pandas,
pymongo, …) are imported inside the command functions, which keeps ``ethixctl --help`` instant.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from typing import Annotated, cast

import typer

from ethixctl import __version__, output
from ethixctl.errors import EthixError
from ethixctl.exitcodes import EXIT_CODE_TABLE, ExitCode


def _exit_code_epilog() -> str:
    # "\b" tells click not to rewrap the paragraph that follows.
    rows = "\n".join(f"{code:>3}  {scope:<8} {meaning}" for code, scope, meaning in EXIT_CODE_TABLE)
    return f"\b\nExit codes:\n{rows}"


app = typer.Typer(
    name="ethixctl",
    help=(
        "Operate the EthixAI platform: canary releases, rollbacks, smoke tests and the local platform.\n\n"
        "\b\nExamples:\n"
        "  ethixctl up                          # start the local platform\n"
        "  ethixctl status --json               # services, revisions, traffic\n"
        "  ethixctl build backend               # snapshot the source, print the image ref\n"
        "  ethixctl release backend --image REF # canary 10% → 50% → 100%, gated on Prometheus\n"
        "  ethixctl rollback backend            # back to the last good revision\n"
        "  ethixctl smoke --env local --junit smoke.xml"
    ),
    epilog=_exit_code_epilog(),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain click help: typer's rich help imports markdown-it and friends, doubling start-up time.
    rich_markup_mode=None,
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


# typer vendors its own click; the exception classes are reachable through BadParameter's bases.
_CLICK_USAGE_ERROR = cast("type[Exception]", typer.BadParameter.__mro__[1])
_CLICK_EXCEPTION = cast("type[Exception]", typer.BadParameter.__mro__[2])


def main(argv: list[str] | None = None) -> int:
    """Entry point: runs the app and maps failures to the documented exit codes."""
    try:
        result = app(args=argv, prog_name="ethixctl", standalone_mode=False)
    except EthixError as exc:
        output.error(exc.message, exc.hint)
        code = int(exc.exit_code)
    except _CLICK_USAGE_ERROR as exc:
        exc.show()  # type: ignore[attr-defined]
        code = int(ExitCode.USAGE)
    except (KeyboardInterrupt, typer.Abort):
        output.error("interrupted")
        code = int(ExitCode.INTERRUPTED)
    except _CLICK_EXCEPTION as exc:
        exc.show()  # type: ignore[attr-defined]
        code = int(exc.exit_code)  # type: ignore[attr-defined]
    except typer.Exit as exc:
        code = int(exc.exit_code)
    else:
        code = result if isinstance(result, int) else 0
    if argv is None:
        sys.exit(code)
    return code
