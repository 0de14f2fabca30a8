"""`ethixctl release/rollback/history` usage errors and the ledger-only paths: no platform needed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ethixctl.cli import main
from ethixctl.exitcodes import ExitCode
from ethixctl.ops.ledger import Ledger
from ethixctl.release import playbook, releases


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_release_needs_an_image(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = _run(capsys, "release", "backend", "--state-dir", str(tmp_path))
    assert code == ExitCode.USAGE
    assert "--image is required" in err


@pytest.mark.parametrize("pair", ["NOVALUE", "=x", "1ABC=x", "BAD-NAME=x", "[/x]=1"])
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


def _two_releases(state_dir: Path) -> tuple[str, str]:
    with Ledger(state_dir) as ledger:
        first = releases.create(
            ledger, "backend", "local", "local/backend@sha256:aa", "backend-00001-abc", {}
        )
        ledger.update(first.id, details={"canary_revision": "backend-00002-def"})
        ledger.event(first, "gate", "pass", {"verdict": {"outcome": "pass"}})
        change = ledger.intend_traffic("backend", "local", {"backend-00002-def": 10, "backend-00001-abc": 90},
                                       "step 1/3", first.id)  # fmt: skip
        ledger.confirm_traffic(change)
        ledger.finish_if_in_progress(first.id, "promoted", "backend-00002-def serves 100%")
        second = releases.create(
            ledger, "backend", "local", "local/backend@sha256:bb", "backend-00002-def", {}
        )
        ledger.event(second, "gate", "fail", {"verdict": {"outcome": "fail"}})
        ledger.finish_if_in_progress(second.id, "rolled_back", "error rate [5xx] above 0.5%")
        return first.id, second.id


def test_history_reads_the_ledger_without_the_platform(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    first, _ = _two_releases(tmp_path)
    code, out, _ = _run(capsys, "history", "backend", "--json", "--state-dir", str(tmp_path))
    assert code == ExitCode.OK
    data = json.loads(out)
    assert [(r["status"], r["gates"]) for r in data["releases"]] == [
        ("promoted", {"pass": 1}),
        ("rolled_back", {"fail": 1}),
    ]
    assert data["summary"]["rollback_rate"] == 0.5
    # Auditors get every traffic change, with the operation that made it.
    assert [(t["split"], t["state"], t["operation_id"]) for t in data["traffic"]] == [
        ({"backend-00002-def": 10, "backend-00001-abc": 90}, "applied", first)
    ]
    code, out, _ = _run(capsys, "history", "--traffic", "--state-dir", str(tmp_path))
    assert code == ExitCode.OK
    assert "rollback rate 50%" in out and first[:8] in out and "step 1/3" in out
    assert "error rate [5xx] above 0.5%" in out  # a reason is text, never markup


def test_history_since_filters_and_rejects_what_it_cannot_read(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _two_releases(tmp_path)
    code, out, _ = _run(capsys, "history", "--json", "--since", "2099-01-01", "--state-dir", str(tmp_path))
    assert code == ExitCode.OK
    assert json.loads(out)["operations"] == [] and json.loads(out)["traffic"] == []
    code, out, _ = _run(capsys, "history", "--json", "--since", "1h", "--state-dir", str(tmp_path))
    assert len(json.loads(out)["operations"]) == 2
    code, _, err = _run(capsys, "history", "--since", "last tuesday", "--state-dir", str(tmp_path))
    assert code == ExitCode.USAGE and "--since: cannot read 'last tuesday'" in err


def test_history_follows_default_env_from_the_config_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: with default_env in ethixctl.toml, history opened that ledger but showed `local` rows."""
    monkeypatch.delenv("ETHIXCTL_ENV", raising=False)
    monkeypatch.chdir(tmp_path)
    state = tmp_path / "staging-state"
    (tmp_path / "ethixctl.toml").write_text(
        'default_env = "staging"\n[environments.staging]\nkind = "cloudrun"\nproject = "p"\n'
        f'region = "r"\nprometheus_url = "https://prom.example"\nstate_dir = "{state}"\n'
    )
    with Ledger(state) as ledger:
        releases.create(ledger, "backend", "staging", "img", "backend-00001-abc", {})
    code, out, _ = _run(capsys, "history", "--json")
    assert code == ExitCode.OK
    data = json.loads(out)
    assert data["environment"] == "staging" and len(data["releases"]) == 1


@pytest.mark.parametrize(("pair", "shown"), [("[/x]=1", "'[/x]'"), ("[bold]=1", "'[bold]'")])
def test_user_text_is_never_read_as_markup(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, pair: str, shown: str
) -> None:
    """Regression: `--set-env '[/x]=1'` crashed with a MarkupError; `'[bold]=1'` printed an empty name."""
    code, _, err = _run(
        capsys, "release", "backend", "--image", "i", "--set-env", pair, "--state-dir", str(tmp_path)
    )
    assert code == ExitCode.USAGE
    assert f"got {shown}" in err and "Traceback" not in err
