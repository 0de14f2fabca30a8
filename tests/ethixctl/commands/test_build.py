"""`ethixctl build`: the real services/ tree snapshotted into the state dir."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ethixctl.cli import main


def test_build_twice_same_ref_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", "backend", "--state-dir", str(tmp_path)]) == 0
    ref = capsys.readouterr().out.strip()
    assert ref.startswith("local/backend@sha256:") and len(ref.split(":")[1]) == 64
    assert main(["build", "backend", "--state-dir", str(tmp_path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ref"] == ref
    assert (Path(data["path"]) / "services" / "backend" / "__main__.py").is_file()


def test_build_ai_core_under_either_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", "ai_core", "--state-dir", str(tmp_path)]) == 0
    first = capsys.readouterr().out.strip()
    assert main(["build", "ai-core", "--state-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == first


def test_build_unknown_service_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", "frontend", "--state-dir", str(tmp_path)]) == 2
    assert "unknown service 'frontend'" in capsys.readouterr().err
