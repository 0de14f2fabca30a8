"""`ethixctl release/rollback/history` usage errors and the ledger-only paths: no platform needed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ethixctl.cli import main
from ethixctl.exitcodes import ExitCode
from ethixctl.release import playbook
from ethixctl.release.ledger import Ledger


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_release_needs_an_image(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = _run(capsys, "release", "backend", "--state-dir", str(tmp_path))
    assert code == ExitCode.USAGE
    assert "--image is required" in err


@pytest.mark.parametrize("pair", ["NOVALUE", "=x", "1ABC=x", "BAD-NAME=x"])
def test_set_env_must_be_key_value(capsys: pytest.CaptureFixture[str], tmp_path: Path, pair: str) -> None:
    code, _, err = _run(
        capsys, "release", "backend", "--image", "i", "--set-env", pair, "--state-dir", str(tmp_path)
    )
    assert code == ExitCode.USAGE
    assert "--set-env expects KEY=VALUE" in err


def test_resume_refuses_new_release_flags(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = _run(
        capsys, "release", "backend", "--resume", "--image", "i", "--state-dir", str(tmp_path)
    )
    assert code == ExitCode.USAGE
    assert "--resume continues the recorded release" in err


def test_invalid_playbook_is_exit_2_with_file_and_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    broken = tmp_path / "release.yaml"
    broken.write_text(playbook.DEFAULT_PATH.read_text().replace("max: 0.005", "max: -1"))
    code, _, err = _run(
        capsys, "release", "backend", "--image", "i", "--playbook", str(broken), "--state-dir", str(tmp_path)
    )
    assert code == ExitCode.USAGE
    assert f"{broken}:" in err and "gates.0.max" in err


def test_release_without_a_running_platform_says_ethixctl_up(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = _run(capsys, "release", "backend", "--image", "i", "--yes", "--state-dir", str(tmp_path))
    assert code == ExitCode.PLATFORM_UNAVAILABLE
    assert "ethixctl up" in err


def test_history_reads_the_ledger_without_the_platform(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with Ledger(tmp_path) as ledger:
        first = ledger.create_release("backend", "local", "local/backend@sha256:aa", "backend-00001-abc", {})
        ledger.update(first.id, canary_revision="backend-00002-def")
        ledger.event("backend", "local", "gate", "pass", {"verdict": {"outcome": "pass"}}, first.id)
        ledger.finish_if_in_progress(first.id, "promoted", "backend-00002-def serves 100%")
        second = ledger.create_release("backend", "local", "local/backend@sha256:bb", "backend-00002-def", {})
        ledger.event("backend", "local", "gate", "fail", {"verdict": {"outcome": "fail"}}, second.id)
        ledger.finish_if_in_progress(second.id, "rolled_back", "error rate")
    code, out, _ = _run(capsys, "history", "backend", "--json", "--state-dir", str(tmp_path))
    assert code == ExitCode.OK
    data = json.loads(out)
    assert [(r["status"], r["gates"]) for r in data["releases"]] == [
        ("promoted", {"pass": 1}),
        ("rolled_back", {"fail": 1}),
    ]
    assert data["summary"]["rollback_rate"] == 0.5
    code, out, _ = _run(capsys, "history", "--state-dir", str(tmp_path))
    assert code == ExitCode.OK
    assert "rollback rate 50%" in out and first.id in out
