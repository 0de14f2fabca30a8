"""The DR commands' shell: bad usage exits 2 and changes nothing; no platform exits 5."""

from __future__ import annotations

from pathlib import Path

import pytest

from ethixctl.cli import main
from ethixctl.exitcodes import ExitCode


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["dr-drill", "--snapshot", "abc", "--point-in-time", "2026-12-01T00:00:00Z"], "not both"),
        (["dr-drill", "--point-in-time", "yesterday-ish"], "not a time: 'yesterday-ish'"),
        (["dr-drill", "--scenario", "region"], "region"),
        (["restore", "--snapshot", "abc"], "--to"),
    ],
)
def test_bad_usage_exits_2(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*argv, "--state-dir", str(tmp_path)]) == ExitCode.USAGE
    assert message in capsys.readouterr().err
    assert not (tmp_path / "ledger.db").exists()


@pytest.mark.parametrize(
    "argv", [["dr-drill"], ["backup", "list"], ["restore", "--snapshot", "abc", "--to", "new-cluster"]]
)
def test_no_platform_exits_5(argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*argv, "--state-dir", str(tmp_path)]) == ExitCode.PLATFORM_UNAVAILABLE
    assert "ethixctl up" in capsys.readouterr().err


def test_an_invalid_dr_playbook_is_reported_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "dr.yaml"
    bad.write_text("version: 1\nobjectives: {rto: 1h, rpo: soon}\n")
    assert main(["dr-drill", "--playbook", str(bad), "--state-dir", str(tmp_path)]) == ExitCode.USAGE
    assert f"{bad}:2: objectives.rpo: Value error, not a duration: 'soon'" in capsys.readouterr().err
