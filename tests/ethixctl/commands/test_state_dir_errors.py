"""A state dir that cannot be used is one line naming the path, exit 2, and nothing changed.

Regression: `ethixctl up --state-dir <an existing file>` printed a 41-line traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from ethixctl.cli import main

COMMANDS = [
    ["up"],
    ["status"],
    ["release", "backend", "--image", "local/backend@sha256:0", "--dry-run"],
    ["history"],
    ["build", "backend"],
    ["down"],
    ["logs", "backend"],
]


def a_file(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "state"
    path.write_text("not a directory\n")
    return path, "not a directory"


def under_a_file(tmp_path: Path) -> tuple[Path, str]:
    (tmp_path / "file").write_text("")
    return tmp_path / "file" / "state", "Not a directory"


def a_symlink_loop(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "state"
    path.symlink_to(path)
    return path, "Too many levels of symbolic links"


def unreadable(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "state"
    path.mkdir(mode=0o000)
    return path, "permission denied"


BAD_STATE_DIRS = [
    a_file,
    under_a_file,
    a_symlink_loop,
    pytest.param(
        unreadable,
        marks=pytest.mark.skipif(os.geteuid() == 0, reason="root reads a 0o000 directory anyway"),
    ),
]


def _snapshot(root: Path) -> dict[str, str]:
    return {
        str(p): (p.read_text() if p.is_file() else "") for p in sorted(root.rglob("*")) if not p.is_symlink()
    }


@pytest.mark.parametrize("make", BAD_STATE_DIRS)
@pytest.mark.parametrize("argv", COMMANDS, ids=lambda argv: argv[0])
def test_an_unusable_state_dir_is_one_line_and_exit_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    make: Callable[[Path], tuple[Path, str]],
    argv: list[str],
) -> None:
    monkeypatch.chdir(tmp_path)  # no ethixctl.toml of the checkout
    path, reason = make(tmp_path)
    before = _snapshot(tmp_path)
    try:
        code = main([*argv, "--state-dir", str(path)])
    finally:
        if path.is_dir() and not path.is_symlink():
            path.chmod(0o700)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert str(path) in err and reason in err
    assert _snapshot(tmp_path) == before


def test_the_state_dir_from_the_environment_is_checked_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, reason = a_file(tmp_path)
    monkeypatch.setenv("ETHIXCTL_STATE_DIR", str(path))
    assert main(["status"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err and reason in err


def test_an_os_error_inside_a_command_is_one_line_naming_the_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The state dir is fine, but a path inside it is not: the CLI's last line of defence."""
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    (state_dir / "images").write_text("a file where the images directory belongs")
    assert main(["build", "backend", "--state-dir", str(state_dir)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"{state_dir / 'images'}: File exists" in err


@pytest.mark.parametrize("make", [a_file, a_symlink_loop])
def test_the_platform_daemon_start_path_is_one_line_and_exit_2(
    tmp_path: Path, make: Callable[[Path], tuple[Path, str]]
) -> None:
    path, reason = make(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "ethixctl.platform.daemon", "--state-dir", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert str(path) in result.stderr and reason in result.stderr
