"""playbooks/preflight.yaml: the runbook's 8 + 10 items; mistakes reported as file:line: field: problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from ethixctl.errors import PlaybookError
from ethixctl.exitcodes import ExitCode
from ethixctl.preflight import model
from ethixctl.preflight.checks import REGISTRY

SHIPPED = model.DEFAULT_PATH.read_text()


def test_shipped_checklists_are_the_runbooks() -> None:
    book = model.load()
    assert [len(book.checklists[name]) for name in ("pre-release", "pre-production")] == [8, 10]
    assert book.for_environment("production") == ["pre-release", "pre-production"]
    assert book.for_environment("staging") == ["pre-release"]
    assert book.for_environment("local") == []
    items = [item for _, item in book.items(["pre-release", "pre-production"])]
    assert {i.id for i in items if i.confirm} == {"on_call", "staging_signoff"}
    assert all(i.check in REGISTRY for i in items if i.check)
    assert (model.DEFAULT_PATH.parent / "preflight.md").is_file()


@pytest.mark.parametrize(
    ("old", "new", "field", "problem"),
    [
        (
            "      check: probes\n",
            "      check: probez\n",
            "checklists.pre-release.6",
            "unknown check 'probez'",
        ),
        (
            "      max_age_hours: 168\n",
            "      max_age_hours: -1\n",
            "checklists.pre-release.2",
            "max_age_hours",
        ),
        (
            "      max_age_hours: 168\n",
            "      max_age_horus: 1\n",
            "checklists.pre-release.2",
            "max_age_horus",
        ),
        (
            "      check: probes\n",
            "      check: probes\n      confirm: really?\n",
            "checklists.pre-release.6",
            "give either check",
        ),
        ("  - id: on_call\n", "  - id: probes\n", "checklists", "item id 'probes' is used twice"),
        ("default: [pre-release]\n", "default: [pre-relase]\n", None, "unknown checklist pre-relase"),
    ],
)
def test_mistakes_report_file_line_and_field(
    tmp_path: Path, old: str, new: str, field: str | None, problem: str
) -> None:
    assert old in SHIPPED
    path = tmp_path / "preflight.yaml"
    path.write_text(SHIPPED.replace(old, new, 1))
    with pytest.raises(PlaybookError) as caught:
        model.load(path)
    assert caught.value.path == str(path) and caught.value.line is not None
    if field is not None:
        assert caught.value.field == field
    assert problem in caught.value.problem
    assert caught.value.exit_code is ExitCode.USAGE
