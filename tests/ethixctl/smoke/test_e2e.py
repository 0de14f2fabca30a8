"""The shipped suite against the real backend and ai_core (uvicorn processes, SQLite, local bucket)."""

from __future__ import annotations

import json
import sqlite3
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ethixctl import procs
from ethixctl.cli import main
from ethixctl.procs import Service, start_service
from ethixctl.smoke import StepStatus, run_suite

pytestmark = pytest.mark.e2e


def _rows_mentioning(db: Path, *needles: str) -> list[tuple[str, str]]:
    """Every document in the backend's SQLite store that mentions one of ``needles``, and every
    expiring counter (failed logins: the wrong-password step) whose key does."""
    with sqlite3.connect(db) as connection:
        tables = [name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        assert {"c_users", "c_datasets", "c_analyses"} <= set(tables), tables
        rows = [
            (table, text)
            for table in tables
            if table.startswith(("c_", "k_"))
            for (text,) in connection.execute(
                f'SELECT {"doc" if table.startswith("c_") else "key"} FROM "{table}"'
            )
        ]
        return [(table, text) for table, text in rows if any(needle in text for needle in needles)]


def test_the_suite_passes_and_leaves_no_data_of_the_synthetic_user(backend_service: Service) -> None:
    password = "smoke-e2e-known-password"
    report = run_suite(backend_service.url, variables={"password": password})
    assert report.passed, json.dumps(report.to_dict(), indent=1)
    assert [s.status for s in [*report.steps, *report.cleanup]] == [StepStatus.PASSED] * 27
    user_id = report.captures["user_id"]
    assert report.captures["token"] == "***"
    emails = [f"smoke+{report.run_id}@example.invalid", f"smoke+{report.run_id}-other@example.invalid"]

    for email in emails:
        login = httpx.post(
            backend_service.url + "/api/v1/auth/login",
            json={"email": email, "password": password},
            timeout=10,
        )
        assert login.status_code == 401
    db = backend_service.data_dir / "ethix.db"
    assert _rows_mentioning(db, *emails, user_id) == []
    assert not list((backend_service.data_dir / "bucket").rglob(f"*{user_id}*"))


@pytest.fixture
def backend_without_ai_core(tmp_path: Path) -> Iterator[Service]:
    closed = f"http://127.0.0.1:{procs.free_port()}"
    service = start_service(
        "services.backend", tmp_path / "data", log_dir=tmp_path / "logs", env={"AI_CORE_URL": closed}
    )
    yield service
    service.process.stop()


def test_with_ai_core_down_the_analysis_fails_clearly_and_the_other_categories_still_run(
    backend_without_ai_core: Service, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junit = tmp_path / "smoke.xml"
    code = main(["smoke", backend_without_ai_core.url, "--json", "--junit", str(junit)])
    assert code == 1
    report = json.loads(capsys.readouterr().out)
    steps = {step["name"]: step for step in report["steps"]}
    assert [steps[name]["status"] for name in ("register", "login", "upload dataset")] == ["passed"] * 3
    failed = [step for step in report["steps"] if step["status"] == "failed"]
    assert [step["name"] for step in failed] == ["analysis finishes"]
    assert failed[0]["reason"].startswith("stopped polling: $.status equals 'failed' (got 'failed'); error: ")
    assert "ai_core" in failed[0]["reason"]
    assert steps["fetch report"]["status"] == "skipped"
    # error handling does not need a working ai_core: it ran in full after core analysis failed
    errors = [step for step in report["steps"] if step["category"] == "error-handling"]
    assert len(errors) == 12 and {step["status"] for step in errors} == {"passed"}
    assert [step["status"] for step in report["cleanup"]] == ["passed", "passed"]
    assert report["outcome"] == "failed" and report["exit_code"] == 1
    assert (
        _rows_mentioning(backend_without_ai_core.data_dir / "ethix.db", report["captures"]["user_id"]) == []
    )

    root = ET.parse(junit).getroot()
    cases = root.findall("./testsuite/testcase")
    assert len(cases) == len(report["steps"]) + len(report["cleanup"]) == 27
    by_name = {case.get("name"): case for case in cases}
    failure = by_name["analysis finishes"].find("failure")
    assert failure is not None and failure.get("message") == failed[0]["reason"]
    assert by_name["fetch report"].find("skipped") is not None
    assert by_name["delete synthetic user"].find("failure") is None
    analysis = next(suite for suite in root.findall("testsuite") if suite.get("name") == "core-analysis")
    assert (analysis.get("tests"), analysis.get("failures"), analysis.get("skipped")) == ("5", "1", "1")
    assert (root.get("tests"), root.get("failures"), root.get("skipped")) == ("27", "1", "1")
