"""Playbook loading reports mistakes with file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, Field

from ethixctl.errors import PlaybookError
from ethixctl.exitcodes import ExitCode
from ethixctl.yamldoc import load


class Step(BaseModel):
    weight: int = Field(ge=0, le=100)
    hold_seconds: float = 60


class Playbook(BaseModel):
    name: str
    steps: list[Step]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "release.yaml"
    path.write_text(text)
    return path


def test_valid_file_loads(tmp_path: Path) -> None:
    playbook = load(Playbook, _write(tmp_path, "name: r\nsteps:\n  - weight: 10\n  - weight: 100\n"))
    assert [s.weight for s in playbook.steps] == [10, 100]


def test_bad_value_reports_its_line_and_field(tmp_path: Path) -> None:
    path = _write(tmp_path, "name: r\nsteps:\n  - weight: 10\n  - weight: 150\n")
    with pytest.raises(PlaybookError) as caught:
        load(Playbook, path)
    assert caught.value.line == 4
    assert caught.value.field == "steps.1.weight"
    assert str(caught.value).startswith(f"{path}:4: steps.1.weight: ")
    assert caught.value.exit_code == ExitCode.USAGE


def test_missing_field_points_at_its_parent(tmp_path: Path) -> None:
    with pytest.raises(PlaybookError) as caught:
        load(Playbook, _write(tmp_path, "name: r\nsteps:\n  - hold_seconds: 5\n"))
    assert caught.value.field == "steps.0.weight"
    assert caught.value.line == 3
    assert "Field required" in caught.value.problem


def test_invalid_yaml_reports_the_line(tmp_path: Path) -> None:
    with pytest.raises(PlaybookError) as caught:
        load(Playbook, _write(tmp_path, "name: r\nsteps: [\n  - weight: 1\n"))
    assert caught.value.line is not None
    assert "invalid YAML" in caught.value.problem


def test_empty_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(PlaybookError, match="empty"):
        load(Playbook, _write(tmp_path, "\n"))
    with pytest.raises(PlaybookError, match="cannot read"):
        load(Playbook, tmp_path / "absent.yaml")
