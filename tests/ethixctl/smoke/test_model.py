from __future__ import annotations

from pathlib import Path

import pytest

from ethixctl.errors import PlaybookError, UsageError
from ethixctl.exitcodes import ExitCode
from ethixctl.smoke.model import DEFAULT_SUITE, Suite, load_suite
from tests.ethixctl.smoke.conftest import CLEANUP_STEPS, RUNBOOK_STEPS, RUNBOOK_TESTS, write_suite


def test_the_shipped_suite_loads_and_covers_the_runbook() -> None:
    suite = load_suite()
    assert sum(len(tests) for tests in RUNBOOK_TESTS.values()) == 15
    assert list(suite.categories) == list(RUNBOOK_TESTS)
    assert [step.name for step in suite.steps] == RUNBOOK_STEPS
    for category, tests in RUNBOOK_TESTS.items():
        names = {name for test in tests for name in test}
        assert {step.name for step in suite.steps if step.category == category} == names
    assert [step.name for step in suite.cleanup] == CLEANUP_STEPS
    assert {(step.request.method, step.request.path) for step in suite.cleanup} == {
        ("DELETE", "/api/v1/users/me")
    }
    steps = {step.name: step for step in suite.steps}
    fixture = DEFAULT_SUITE.parent / steps["upload dataset"].request.multipart["file"]  # type: ignore[index]
    assert len(fixture.read_text().splitlines()) == 11  # header + 10 rows
    poll = steps["analysis finishes"].poll
    assert poll is not None and poll.until.equals == "succeeded" and poll.fail_if is not None
    expected_errors = {
        "no token": 401,
        "tampered token": 401,
        "another user's dataset": 404,
        "unknown analysis": 404,
        "oversized upload": 413,
        "malformed csv": 422,
        "report not ready": 409,
    }
    assert {name: steps[name].status for name in expected_errors} == expected_errors


def test_a_category_brings_the_categories_it_needs_in_suite_order() -> None:
    suite = load_suite()
    errors = suite.select(["error-handling"])
    assert {step.category for step in errors.steps} == {"auth-flow", "error-handling"}
    assert [step.name for step in errors.steps] == [
        name for name in RUNBOOK_STEPS if steps_category(suite, name) in ("auth-flow", "error-handling")
    ]
    assert errors.cleanup == suite.cleanup
    health = suite.select(["infrastructure-health"])
    assert [step.name for step in health.steps] == ["liveness", "startup", "readiness", "metrics"]
    both = suite.select(["core-analysis", "infrastructure-health"])
    assert [step.category for step in both.steps][:4] == ["infrastructure-health"] * 4
    assert suite.dependants("auth-flow") == {"auth-flow", "core-analysis", "error-handling"}
    assert suite.dependants("core-analysis") == {"core-analysis"}


def steps_category(suite: Suite, name: str) -> str | None:
    return next(step.category for step in suite.steps if step.name == name)


def test_an_unknown_category_is_a_usage_error_listing_the_categories() -> None:
    with pytest.raises(UsageError, match="unknown smoke category 'auth'") as info:
        load_suite().select(["auth"])
    assert info.value.exit_code == ExitCode.USAGE
    assert info.value.hint == "categories: infrastructure-health, auth-flow, core-analysis, error-handling"


def test_selecting_a_category_of_a_suite_without_categories_is_a_usage_error(tmp_path: Path) -> None:
    suite = load_suite(write_suite(tmp_path, "steps:\n  - name: a\n    request: {path: /x}\n"))
    with pytest.raises(UsageError, match="declares no categories"):
        suite.select(["infrastructure-health"])


CATEGORISED = """categories:
  first: {}
  second: {needs: [first]}
steps:
  - name: make
    category: first
    request: {path: /x}
    capture: {thing: $.id}
  - name: use
    category: second
    request: {path: "/y/{{ thing }}"}
"""


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (
            CATEGORISED.replace("second: {needs: [first]}", "second: {}"),
            11,
            "steps.1.request: unknown variable 'thing': not a built-in (run_id, email, password, base_url), "
            "a suite variable or captured by an earlier step of category 'second' or a category it needs",
        ),
        (
            CATEGORISED.replace("needs: [first]", "needs: [third]"),
            3,
            "'third' is not a category declared before",
        ),
        (
            CATEGORISED.replace(
                "  first: {}\n  second: {needs: [first]}", "  second: {needs: [first]}\n  first: {}"
            ),
            2,
            "categories.second.needs: 'first' is not a category declared before 'second'",
        ),
        (CATEGORISED.replace("    category: second\n", ""), 9, "steps.1: the suite declares categories"),
        (CATEGORISED.replace("category: second", "category: sceond"), 10, "unknown category 'sceond'"),
        (
            CATEGORISED.replace("  second: {needs: [first]}", "  second: {needs: [first]}\n  third: {}"),
            4,
            "categories.third: no step",
        ),
        (
            CATEGORISED.replace("  first: {}", "  First: {}").replace("first", "First"),
            2,
            "lower case letters",
        ),
        (
            CATEGORISED + "cleanup:\n  - name: del\n    category: first\n    request: {path: /z}\n",
            14,
            "cleanup.0.category: cleanup steps have no category",
        ),
        (
            "steps:\n  - name: a\n    category: first\n    request: {path: /x}\n",
            3,
            "the suite declares no categories",
        ),
    ],
)
def test_malformed_categories_are_reported_with_file_line_and_field(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    path = write_suite(tmp_path, text)
    with pytest.raises(PlaybookError) as info:
        load_suite(path)
    assert info.value.message.startswith(f"{path}:{line}: "), info.value.message
    assert message in info.value.message


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
