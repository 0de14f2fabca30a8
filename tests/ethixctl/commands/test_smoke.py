"""``ethixctl smoke`` through ``ethixctl.cli.main``: exit codes, output, JUnit."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from ethixctl import procs
from ethixctl.cli import main
from ethixctl.procs import Service
from tests.ethixctl.smoke.conftest import CLEANUP_STEPS, RUNBOOK_STEPS, RUNBOOK_TESTS

ALL_CASES = len(RUNBOOK_STEPS) + len(CLEANUP_STEPS)


def test_nothing_listening_exits_3_and_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{procs.free_port()}"
    junit = tmp_path / "out" / "smoke.xml"
    assert main(["smoke", url, "--retries", "1", "--junit", str(junit)]) == 3
    captured = capsys.readouterr()
    assert "✗ liveness" in captured.err and "network error" in captured.err
    assert f"{url} did not answer" in captured.err
    assert "UNREACHABLE" in captured.out
    root = ET.parse(junit).getroot()
    cases = root.findall("./testsuite/testcase")
    assert len(cases) == ALL_CASES
    error = cases[0].find("error")
    assert error is not None and (error.get("message") or "").startswith("network error: ConnectError")
    assert all(case.find("skipped") is not None for case in cases[1:])


def test_malformed_suite_exits_2_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = tmp_path / "bad.yaml"
    suite.write_text("name: bad\nsteps:\n  - name: a\n    request: {path: /x}\n    status: lots\n")
    assert main(["smoke", "http://127.0.0.1:9", "--suite", str(suite)]) == 2
    err = capsys.readouterr().err
    assert f"{suite}:5: steps.0.status" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["http://127.0.0.1:9", "--max-runs", "2"], "--max-runs only applies with --watch"),
        (["http://127.0.0.1:9", "--metrics-port", "0"], "--metrics-port only applies with --watch"),
        (["http://127.0.0.1:9", "--tag", "canary-1"], "give either a URL or --tag"),
        (["ftp://example.invalid"], "not an http(s) URL"),
        (["http://127.0.0.1:9", "--category", "auth"], "unknown smoke category 'auth'"),
    ],
)
def test_bad_usage_exits_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["smoke", *argv]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.e2e
def test_all_steps_pass_with_human_output_and_junit(
    backend_service: Service, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junit = tmp_path / "smoke.xml"
    assert main(["smoke", backend_service.url, "--junit", str(junit)]) == 0
    captured = capsys.readouterr()
    for name in (*RUNBOOK_STEPS, *(f"cleanup: {name}" for name in CLEANUP_STEPS)):
        assert f"✓ {name} " in captured.err
    headings = [line for line in captured.err.splitlines() if line in RUNBOOK_TESTS]
    assert headings == list(RUNBOOK_TESTS)
    assert f"PASSED  {ALL_CASES} passed, 0 failed, 0 network errors, 0 skipped" in captured.out
    root = ET.parse(junit).getroot()
    suites = root.findall("testsuite")
    assert [suite.get("name") for suite in suites] == [*RUNBOOK_TESTS, "cleanup"]
    for suite in suites[:-1]:
        tests = RUNBOOK_TESTS[suite.get("name") or ""]
        assert [case.get("name") for case in suite.findall("testcase")] == [n for test in tests for n in test]
    cases = root.findall("./testsuite/testcase")
    assert len(cases) == ALL_CASES == int(root.get("tests") or 0)
    assert all(len(case) == 0 for case in cases), "a passing testcase has no failure/error/skipped child"


@pytest.mark.e2e
def test_junit_times_are_the_measured_step_durations(
    backend_service: Service, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junit = tmp_path / "smoke.xml"
    assert main(["smoke", backend_service.url, "--junit", str(junit), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    measured = [step["duration"] for step in (*report["steps"], *report["cleanup"])]
    root = ET.parse(junit).getroot()
    case_times = [float(case.get("time", "nan")) for case in root.findall("./testsuite/testcase")]
    # JUnit keeps 3 decimals of the durations the runner measured (the JSON report keeps 4).
    assert case_times == pytest.approx(measured, abs=0.0006)
    assert float(root.get("time", "nan")) == pytest.approx(report["duration"], abs=0.0006)
    # Each category's testsuite lasts as long as its steps together.
    for suite in root.findall("testsuite"):
        steps = [float(case.get("time", "nan")) for case in suite.findall("testcase")]
        assert float(suite.get("time", "nan")) == pytest.approx(sum(steps), abs=0.0006 * len(steps))
    assert all(duration > 0 for duration in measured), measured  # every step made a real HTTP request
    # The steps ran one after another inside the suite: their times add up to at most the suite's.
    assert sum(measured) <= report["duration"] + 0.0001 * len(measured)


@pytest.mark.e2e
def test_json_report_masks_the_tokens_and_password(
    backend_service: Service, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["smoke", backend_service.url, "--json"]) == 0
    out = capsys.readouterr().out
    report = json.loads(out)
    assert report["passed"] is True and report["exit_code"] == 0
    assert report["captures"]["token"] == report["captures"]["other_token"] == "***"
    assert set(report["captures"]) == {
        "user_id",
        "token",
        "dataset_id",
        "analysis_id",
        "probe_dataset_id",
        "other_token",
        "failing_analysis_id",
    }
    assert "eyJ" not in out  # no JWT anywhere in the output


@pytest.mark.e2e
def test_category_runs_only_that_category_and_what_it_needs(
    backend_service: Service, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["smoke", backend_service.url, "--category", "infrastructure-health", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["categories"] == ["infrastructure-health"]
    assert [step["name"] for step in report["steps"]] == ["liveness", "startup", "readiness", "metrics"]
    assert [step["status"] for step in report["cleanup"]] == ["skipped", "skipped"]

    assert main(["smoke", backend_service.url, "--category", "error-handling", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["categories"] == ["auth-flow", "error-handling"]
    ran = {step["category"] for step in report["steps"]}
    assert ran == {"auth-flow", "error-handling"}
    assert [step["status"] for step in report["cleanup"]] == ["passed", "passed"]


def test_without_url_the_environment_is_used_and_a_stopped_platform_exits_5(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # no ethixctl.toml here
    monkeypatch.delenv("ETHIXCTL_ENV", raising=False)
    monkeypatch.delenv("ETHIXCTL_CONFIG", raising=False)
    assert main(["smoke", "--state-dir", str(tmp_path / "state"), "--tag", "canary-ab12cd"]) == 5
    err = capsys.readouterr().err
    assert "the local platform is not running" in err and "ethixctl up" in err
