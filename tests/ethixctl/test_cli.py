"""The CLI shell: help, version, exit codes for bad usage, and a light start-up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ethixctl import __version__, procs
from ethixctl.cli import main
from ethixctl.exitcodes import EXIT_CODE_TABLE, ExitCode

HEAVY_MODULES = ("google.cloud", "pandas", "shap", "pymongo", "sklearn", "scipy", "fastapi", "numpy")


def test_version_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"ethixctl {__version__}"


def test_version_json_goes_to_stdout_only(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["version", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out) == {"ethixctl": __version__}
    assert captured.err == ""


def test_help_shows_examples_and_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "Usage: ethixctl" in out
    assert "Examples:" in out
    for code, scope, _ in EXIT_CODE_TABLE:
        assert f"{code:>3}  {scope}" in out


@pytest.mark.parametrize("argv", [["no-such-command"], ["version", "--no-such-flag"]])
def test_bad_usage_exits_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == ExitCode.USAGE
    assert "No such" in capsys.readouterr().err


def test_help_imports_no_heavy_module() -> None:
    """`ethixctl --help` must stay instant: heavy libraries load only inside the commands that use them."""
    probe = (
        "import sys; from ethixctl.cli import main; main(['--help']);"
        f"print([m for m in sys.modules if m.startswith({HEAVY_MODULES!r})], file=sys.stderr)"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stderr.strip() == "[]"


def test_readme_exit_code_table_matches_the_code() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    rows = [
        tuple(cell.strip() for cell in line.strip("|").split("|"))
        for line in section.splitlines()
        if line.startswith("| ") and not line.startswith("| code")
    ]
    assert rows == [(str(code), scope, meaning) for code, scope, meaning in EXIT_CODE_TABLE]


@pytest.mark.parametrize(("no_color", "expect_ansi"), [(None, True), ("1", False)])
def test_no_color_is_honoured(no_color: str | None, expect_ansi: bool) -> None:
    """FORCE_COLOR makes rich colour a pipe; NO_COLOR must still win."""
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    env["FORCE_COLOR"] = "1"
    if no_color is not None:
        env["NO_COLOR"] = no_color
    closed = f"http://127.0.0.1:{procs.free_port()}"
    result = subprocess.run(
        [sys.executable, "-m", "ethixctl", "smoke", closed, "--retries", "0"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == ExitCode.TARGET_UNREACHABLE
    assert ("\x1b[" in result.stderr) is expect_ansi


def test_every_command_module_is_listed_with_its_own_summary() -> None:
    import pkgutil

    import ethixctl.commands
    from ethixctl.cli import COMMANDS, load_command

    # Command names use "-" where module names use "_" (dr-drill lives in dr_drill.py).
    modules = {
        m.name.replace("_", "-")
        for m in pkgutil.iter_modules(ethixctl.commands.__path__)
        if not m.name.startswith("_")
    }
    listed = {name: summary for section in COMMANDS.values() for name, summary in section.items()}
    assert set(listed) == modules
    for name, summary in listed.items():
        assert (load_command(name).help or "").splitlines()[0] == summary, name
