"""The typer application: a thin layer over one module per command in ``ethixctl.commands``.

Only the command being run is imported, and command modules import only typer at module level; the
heavy libraries (google-cloud-*, pandas, pymongo, …) are imported inside the command functions. That
keeps ``ethixctl --help`` as fast as importing typer itself.
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Annotated, cast

import typer
import typer.main
from typer.core import TyperGroup

from ethixctl import __version__, output
from ethixctl.errors import EthixError, from_os_error
from ethixctl.exitcodes import EXIT_CODE_TABLE, ExitCode

if TYPE_CHECKING:
    # typer vendors its own copy of click.
    from typer import _click as click


def _exit_code_epilog() -> str:
    # "\b" tells click not to rewrap the paragraph that follows.
    rows = "\n".join(f"{code:>3}  {scope:<8} {meaning}" for code, scope, meaning in EXIT_CODE_TABLE)
    return f"\b\nExit codes:\n{rows}"


# The commands, by section, with the one line `ethixctl --help` shows. A command's module is imported
# only when that command runs (or its own --help is asked for); test_cli checks these lines against
# each command's docstring.
COMMANDS: dict[str, dict[str, str]] = {
    "Releases": {
        "release": "Canary-release a new image: 10% → 50% → 100%, gated on Prometheus.",
        "rollback": "Move 100% of traffic back to the last good revision (or --to).",
        "history": "The ledger: every release, rotation and drill; traffic changes; rollback rate.",
        "smoke": "Run the post-deploy smoke suite against a deployment.",
        "preflight": "Check an environment against the runbook's pre-release and pre-production checklists.",
    },
    "Disaster recovery": {
        "backup": "Take, list and show snapshots (mongodump layout + manifest).",
        "dr-drill": "Restore a snapshot into scratch, verify, smoke-test, measure RTO/RPO.",
        "restore": "The real recovery: restore a snapshot into a new target, optionally switch to it.",
    },
    "Secrets": {
        "secrets": "Secrets: list, status (overdue → exit 4), zero-downtime and emergency rotation.",
    },
    "Local platform": {
        "up": "Start the local platform: control plane, Caddy, Prometheus, services.",
        "status": "Services, revisions, traffic, tags, readiness, Prometheus targets and firing alerts.",
        "logs": "Show (or follow) a service's revision logs (JSON lines, Cloud Logging's format).",
        "build": "Snapshot services/ into a content-addressed local image.",
        "down": "Stop everything the local platform started; keep data unless --purge.",
    },
    "Help": {"version": "Print ethixctl's version."},
}
_SUMMARIES = {name: summary for section in COMMANDS.values() for name, summary in section.items()}


def load_command(name: str) -> click.Command:
    """Import ``ethixctl.commands.NAME`` and turn its ``command`` function (or ``app`` group) into click."""
    module = importlib.import_module(f"ethixctl.commands.{name.replace('-', '_')}")
    if hasattr(module, "app"):
        return typer.main.get_group(module.app)
    single = typer.Typer(rich_markup_mode=None, add_completion=False, pretty_exceptions_enable=False)
    single.command(name)(module.command)
    return typer.main.get_command(single)


class _LazyCommands(TyperGroup):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(_SUMMARIES)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return load_command(cmd_name) if cmd_name in _SUMMARIES else None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        for section, commands in COMMANDS.items():
            with formatter.section(section):
                formatter.write_dl(list(commands.items()))


app = typer.Typer(
    cls=_LazyCommands,
    name="ethixctl",
    help=(
        "Operate the EthixAI platform: canary releases, rollbacks, secret rotation, DR drills, smoke tests\n"
        "and the local platform.\n\n"
        "\b\nExamples:\n"
        "  ethixctl up                          # start the local platform\n"
        "  ethixctl status --json               # services, revisions, traffic, alerts\n"
        "  ethixctl build backend               # snapshot the source, print the image ref\n"
        "  ethixctl release backend --image REF # canary 10% → 50% → 100%, gated on Prometheus\n"
        "  ethixctl rollback backend            # back to the last good revision\n"
        "  ethixctl secrets status              # every secret's versions and when it is due\n"
        "  ethixctl dr-drill --report drill.md  # the weekly restore test, RTO/RPO measured\n"
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
    except OSError as exc:  # a path that is a file, unreadable, on a full disk...: one line, no traceback
        failure = from_os_error(exc)
        output.error(failure.message)
        code = int(failure.exit_code)
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
