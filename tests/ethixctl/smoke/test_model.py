from __future__ import annotations

from pathlib import Path

import pytest

from ethixctl.errors import PlaybookError
from ethixctl.exitcodes import ExitCode
from ethixctl.smoke.model import DEFAULT_SUITE, load_suite
from tests.ethixctl.smoke.conftest import RUNBOOK_TESTS, write_suite


def test_the_shipped_suite_loads_and_covers_the_runbook() -> None:
    suite = load_suite()
    assert [step.name for step in suite.steps] == RUNBOOK_TESTS
    assert [step.name for step in suite.cleanup] == ["delete synthetic user"]
    assert suite.cleanup[0].request.method == "DELETE"
    assert suite.cleanup[0].request.path == "/api/v1/users/me"
    fixture = DEFAULT_SUITE.parent / suite.steps[4].request.multipart["file"]  # type: ignore[index]
    assert len(fixture.read_text().splitlines()) == 11  # header + 10 rows
    poll = suite.steps[6].poll
    assert poll is not None and poll.until.equals == "succeeded" and poll.fail_if is not None


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("steps:\n  - name: a\n    request: {path: /x\n", 4, "invalid YAML"),
        (
            "steps:\n  - name: a\n    request: {path: /x}\n    stauts: 200\n",
            4,
            "steps.0.stauts: Extra inputs",
        ),
        (
            "steps:\n  - name: a\n    request: {path: x}\n",
            3,
            "steps.0.request.path: Value error, the path starts with '/'",
        ),
        (
            "steps:\n  - name: a\n    request: {path: /x}\n    json: {path: $.a, equals: 1, exists: true}\n",
            4,
            "steps.0.json: Value error, give exactly one of",
        ),
        (
            "steps:\n  - name: a\n    request: {path: /x}\n    json: {path: status, equals: 1}\n",
            4,
            "path starts with '$'",
        ),
        ("steps:\n  - name: a\n    request: {path: /x, method: FETCH}\n", 3, "steps.0.request.method"),
        (
            "steps:\n  - name: a\n    request:\n      path: /x/{{ tokn }}\n",
            3,
            "steps.0.request: unknown variable 'tokn'",
        ),
        (
            "steps:\n  - name: a\n    request: {path: /x}\n  - name: a\n    request: {path: /y}\n",
            1,
            "step name 'a' is used twice",
        ),
        ("steps: []\n", 1, "steps: List should have at least 1 item"),
        ("", 1, "the file is empty"),
    ],
)
def test_malformed_suites_are_reported_with_file_line_and_field(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    path = write_suite(tmp_path, text)
    with pytest.raises(PlaybookError) as info:
        load_suite(path)
    assert info.value.exit_code == ExitCode.USAGE
    assert info.value.message.startswith(f"{path}:{line}: "), info.value.message
    assert message in info.value.message


def test_a_variable_captured_by_a_later_step_is_unknown_earlier(tmp_path: Path) -> None:
    path = write_suite(
        tmp_path,
        "steps:\n"
        "  - name: use\n    request: {path: '/a/{{ token }}'}\n"
        "  - name: get\n    request: {path: /b}\n    capture: {token: $.t}\n",
    )
    with pytest.raises(PlaybookError, match=r"suite.yaml:3: steps.0.request: unknown variable 'token'"):
        load_suite(path)


def test_a_missing_multipart_fixture_is_reported_at_its_line(tmp_path: Path) -> None:
    path = write_suite(
        tmp_path,
        "steps:\n  - name: up\n    request:\n      method: POST\n      path: /u\n"
        "      multipart:\n        file: fixtures/nope.csv\n",
    )
    with pytest.raises(PlaybookError, match=r"suite.yaml:7: steps.0.request.multipart.file: fixture file"):
        load_suite(path)


def test_capture_may_not_shadow_a_builtin(tmp_path: Path) -> None:
    path = write_suite(
        tmp_path, "steps:\n  - name: a\n    request: {path: /x}\n    capture: {password: $.p}\n"
    )
    with pytest.raises(PlaybookError, match="shadows a built-in variable"):
        load_suite(path)


def test_unreadable_suite_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(PlaybookError, match="cannot read"):
        load_suite(tmp_path / "absent.yaml")
