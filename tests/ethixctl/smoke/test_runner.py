"""The runner against a scriptable local HTTP target (see conftest.py) and against a closed port."""

from __future__ import annotations

import json
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from ethixctl import procs
from ethixctl.exitcodes import ExitCode
from ethixctl.smoke import junit, load_suite, run_suite
from ethixctl.smoke.runner import MASK, StepStatus
from tests.ethixctl.smoke.conftest import Target, make_handler, write_suite

AUTH_SUITE = """
name: auth
steps:
  - name: login
    request:
      method: POST
      path: /login
      json: {email: "{{ email }}", password: "{{ password }}"}
    capture: {token: $.access_token, user: $.user_id}
  - name: me
    request:
      path: "/users/{{ user }}"
      headers: {Authorization: "Bearer {{ token }}"}
    json:
      - {path: $.id, equals: "{{ user }}"}
      - {path: $.email, matches: "^smoke\\\\+"}
      - {path: $.role, in: [admin, member]}
  - name: after
    request: {path: /after}
cleanup:
  - name: delete
    request:
      method: DELETE
      path: /users/me
      headers: {Authorization: "Bearer {{ token }}"}
    status: [200, 204]
"""

TOKEN = "tok-ABCDEFGHIJKLMNOP"


def _login(request: dict[str, Any]) -> tuple[int, Any]:
    body = json.loads(request["body"])
    return 200, {"access_token": TOKEN, "user_id": 5, "echo_password": body["password"]}


def test_captures_flow_into_later_steps_and_cleanup_runs(tmp_path: Path, target: Target) -> None:
    target.routes[("POST", "/login")] = _login
    target.answer("GET", "/users/5", 200, {"id": 5, "email": "smoke+x@example.invalid", "role": "member"})
    target.answer("GET", "/after", 200, {})
    target.answer("DELETE", "/users/me", 204, "")
    report = run_suite(target.url, load_suite(write_suite(tmp_path, AUTH_SUITE)))
    assert report.passed, report.to_dict()
    assert report.exit_code == ExitCode.OK
    assert [s.status for s in [*report.steps, *report.cleanup]] == [StepStatus.PASSED] * 4
    me, delete = target.requests[1], target.requests[3]
    assert me["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert delete["method"] == "DELETE" and delete["headers"]["Authorization"] == f"Bearer {TOKEN}"
    sent = json.loads(target.requests[0]["body"])
    assert sent["email"] == f"smoke+{report.run_id}@example.invalid"
    assert len(sent["password"]) >= 16


def test_a_failure_skips_later_steps_masks_secrets_and_still_cleans_up(
    tmp_path: Path, target: Target
) -> None:
    target.routes[("POST", "/login")] = _login
    # The body echoes the token and the password: both must be masked in the report.
    target.routes[("GET", "/users/5")] = lambda request: (
        500,
        {"detail": "boom", "seen": request["headers"]["Authorization"], "leak": TOKEN + " " + "x"},
    )
    target.answer("DELETE", "/users/me", 204, "")
    report = run_suite(target.url, load_suite(write_suite(tmp_path, AUTH_SUITE)))
    assert not report.passed
    assert report.outcome == "failed" and report.exit_code == ExitCode.FAILED
    login, me, after = report.steps
    assert login.status is StepStatus.PASSED
    assert me.status is StepStatus.FAILED
    assert me.reason == "expected HTTP 200, got 500"
    assert me.http_status == 500
    assert me.excerpt is not None and "boom" in me.excerpt
    assert after.status is StepStatus.SKIPPED and "'me' did not pass" in (after.reason or "")
    assert report.cleanup[0].status is StepStatus.PASSED
    dumped = json.dumps(report.to_dict())
    assert TOKEN not in dumped
    assert MASK in (me.excerpt or "")


def test_cleanup_is_skipped_when_its_capture_never_happened(tmp_path: Path, target: Target) -> None:
    target.answer("POST", "/login", 401, {"detail": "bad credentials"})
    report = run_suite(target.url, load_suite(write_suite(tmp_path, AUTH_SUITE)))
    assert report.steps[0].status is StepStatus.FAILED
    assert report.cleanup[0].status is StepStatus.SKIPPED
    assert report.cleanup[0].reason == "skipped: 'token' was never captured"
    assert not any(r["method"] == "DELETE" for r in target.requests)


def test_password_in_a_failure_excerpt_is_masked(tmp_path: Path, target: Target) -> None:
    # A JSON field named like a secret is masked even when the runner never captured it.
    target.routes[("POST", "/login")] = lambda request: (
        422,
        {"detail": "invalid", "input": json.loads(request["body"]), "api_key": "k-123456789"},
    )
    report = run_suite(target.url, load_suite(write_suite(tmp_path, AUTH_SUITE)))
    sent_password = json.loads(target.requests[0]["body"])["password"]
    excerpt = report.steps[0].excerpt or ""
    assert "invalid" in excerpt and "smoke+" in excerpt
    assert sent_password not in excerpt and "k-123456789" not in excerpt


POLL_SUITE = """
steps:
  - name: wait
    request: {path: /job}
    poll:
      until: {path: $.status, equals: done}
      fail_if: {path: $.status, equals: failed}
      interval: 0.05
      deadline: {deadline}
"""


def test_polling_waits_until_done(tmp_path: Path, target: Target) -> None:
    states = iter(["queued", "running", "running", "done"])
    target.routes[("GET", "/job")] = lambda _r: (200, {"status": next(states)})
    report = run_suite(target.url, load_suite(write_suite(tmp_path, POLL_SUITE.replace("{deadline}", "5"))))
    assert report.passed
    assert report.steps[0].polls == 4


def test_polling_stops_at_fail_if_with_the_error(tmp_path: Path, target: Target) -> None:
    target.answer("GET", "/job", 200, {"status": "failed", "error": "ai_core unreachable"})
    report = run_suite(target.url, load_suite(write_suite(tmp_path, POLL_SUITE.replace("{deadline}", "5"))))
    step = report.steps[0]
    assert step.status is StepStatus.FAILED
    assert (
        step.reason == "stopped polling: $.status equals 'failed' (got 'failed'); error: ai_core unreachable"
    )
    assert step.polls == 1


def test_polling_gives_up_at_the_deadline(tmp_path: Path, target: Target) -> None:
    target.answer("GET", "/job", 200, {"status": "running"})
    started = time.monotonic()
    report = run_suite(target.url, load_suite(write_suite(tmp_path, POLL_SUITE.replace("{deadline}", "0.3"))))
    assert time.monotonic() - started < 2
    step = report.steps[0]
    assert step.status is StepStatus.FAILED
    assert step.reason is not None and step.reason.startswith("not done after 0.3s")
    assert "last $.status = 'running'" in step.reason


def test_non_json_body_fails_a_json_assertion_clearly(tmp_path: Path, target: Target) -> None:
    target.answer("GET", "/x", 200, "<html>proxy error</html>")
    suite = write_suite(
        tmp_path, "steps:\n  - name: x\n    request: {path: /x}\n    json: {path: $.a, exists: true}\n"
    )
    report = run_suite(target.url, load_suite(suite))
    assert report.steps[0].reason == "expected a JSON body, got text/plain"
    assert report.steps[0].excerpt == "<html>proxy error</html>"


def test_text_contains_assertion(tmp_path: Path, target: Target) -> None:
    target.answer("GET", "/metrics", 200, "# TYPE http_requests_total counter\n")
    suite = load_suite(
        write_suite(
            tmp_path,
            "steps:\n  - name: m\n    request: {path: /metrics}\n"
            "    contains: [http_requests_total, nope_total]\n",
        )
    )
    report = run_suite(target.url, suite)
    assert report.steps[0].reason == "body does not contain 'nope_total'"


def test_nothing_listening_is_a_network_error_not_a_failure(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{procs.free_port()}"
    started = time.monotonic()
    report = run_suite(url, load_suite(), retries=2)
    assert time.monotonic() - started < 5
    first = report.steps[0]
    assert first.status is StepStatus.ERROR
    assert first.attempts == 3 and first.network_retries == 2
    assert first.reason is not None and first.reason.startswith("network error: ConnectError")
    assert all(step.status is StepStatus.SKIPPED for step in report.steps[1:])
    assert report.unreachable and report.outcome == "unreachable"
    assert report.exit_code == ExitCode.TARGET_UNREACHABLE


def test_a_target_that_comes_up_late_is_reached_by_retrying(tmp_path: Path) -> None:
    port = procs.free_port()
    late = Target(f"http://127.0.0.1:{port}")
    late.answer("GET", "/health/liveness", 200, {"status": "alive"})
    servers: list[ThreadingHTTPServer] = []

    def start_late() -> None:
        time.sleep(0.4)
        server = ThreadingHTTPServer(("127.0.0.1", port), make_handler(late))
        servers.append(server)
        server.serve_forever(poll_interval=0.05)

    thread = threading.Thread(target=start_late, daemon=True)
    thread.start()
    try:
        suite = write_suite(
            tmp_path,
            "steps:\n  - name: live\n    request: {path: /health/liveness}\n"
            "    json: {path: $.status, equals: alive}\n",
        )
        report = run_suite(late.url, load_suite(suite), retries=4)
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
        thread.join(timeout=5)
    assert report.passed
    assert report.steps[0].network_retries >= 1
    assert report.counts()["network_retries"] == report.steps[0].network_retries


def test_a_url_without_scheme_is_a_usage_error() -> None:
    from ethixctl.errors import UsageError

    with pytest.raises(UsageError, match="not an http"):
        run_suite("127.0.0.1:8080")


CATEGORY_SUITE = """
name: cats
categories:
  health: {}
  auth: {}
  data: {needs: [auth]}
  errors: {needs: [auth]}
steps:
  - {name: live, category: health, request: {path: /live}}
  - {name: metrics, category: health, request: {path: /metrics}}
  - name: login
    category: auth
    request: {method: POST, path: /login, json: {email: "{{ email }}", password: "{{ password }}"}}
    capture: {token: $.access_token, user: $.user_id}
  - {name: upload, category: data, request: {path: /upload}}
  - {name: list, category: data, request: {path: /list}}
  - {name: no token, category: errors, request: {path: /private}, status: 401}
cleanup:
  - name: delete
    request: {method: DELETE, path: /users/me, headers: {Authorization: "Bearer {{ token }}"}}
    status: 204
"""


def _category_target(target: Target) -> None:
    target.routes[("POST", "/login")] = _login
    target.answer("GET", "/live", 200, {})
    target.answer("GET", "/metrics", 200, "up 1\n")
    target.answer("GET", "/upload", 200, {})
    target.answer("GET", "/list", 200, {})
    target.answer("GET", "/private", 401, {"detail": "missing bearer token"})
    target.answer("DELETE", "/users/me", 204, "")


def test_a_failure_skips_only_its_category_and_those_needing_it(tmp_path: Path, target: Target) -> None:
    _category_target(target)
    target.answer("GET", "/live", 503, {"detail": "starting"})
    report = run_suite(target.url, load_suite(write_suite(tmp_path, CATEGORY_SUITE)))
    statuses = {step.name: step.status.value for step in report.steps}
    assert statuses == {
        "live": "failed",
        "metrics": "skipped",
        "login": "passed",
        "upload": "passed",
        "list": "passed",
        "no token": "passed",
    }
    assert report.outcome == "failed" and report.cleanup[0].status is StepStatus.PASSED

    target.requests.clear()
    _category_target(target)
    target.answer("POST", "/login", 500, {"detail": "boom"})
    report = run_suite(target.url, load_suite(write_suite(tmp_path, CATEGORY_SUITE)))
    statuses = {step.name: step.status.value for step in report.steps}
    assert statuses == {
        "live": "passed",
        "metrics": "passed",
        "login": "failed",
        "upload": "skipped",
        "list": "skipped",
        "no token": "skipped",
    }
    assert [request["path"] for request in target.requests] == ["/live", "/metrics", "/login"]


def test_a_selected_category_runs_with_what_it_needs_and_reports_categories(
    tmp_path: Path, target: Target
) -> None:
    _category_target(target)
    suite = load_suite(write_suite(tmp_path, CATEGORY_SUITE)).select(["errors"])
    report = run_suite(target.url, suite)
    assert report.passed
    assert [(step.category, step.name) for step in report.steps] == [
        ("auth", "login"),
        ("errors", "no token"),
    ]
    assert report.categories == ["auth", "errors"]
    assert [request["path"] for request in target.requests] == ["/login", "/private", "/users/me"]
    data = report.to_dict()
    assert data["categories"] == ["auth", "errors"]
    assert [step["category"] for step in data["steps"]] == ["auth", "errors"]


def test_junit_has_one_testsuite_per_category_then_cleanup(tmp_path: Path, target: Target) -> None:
    _category_target(target)
    target.answer("GET", "/upload", 500, {"detail": "boom"})
    report = run_suite(target.url, load_suite(write_suite(tmp_path, CATEGORY_SUITE)))
    root = junit.to_xml(report)
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("skipped"), root.get("errors")) == (
        "7",
        "1",
        "1",
        "0",
    )
    suites = {
        suite.get("name"): [(case.get("classname"), case.get("name")) for case in suite.findall("testcase")]
        for suite in root.findall("testsuite")
    }
    assert suites == {
        "health": [("cats.health", "live"), ("cats.health", "metrics")],
        "auth": [("cats.auth", "login")],
        "data": [("cats.data", "upload"), ("cats.data", "list")],
        "errors": [("cats.errors", "no token")],
        "cleanup": [("cats.cleanup", "delete")],
    }
    data = next(suite for suite in root.findall("testsuite") if suite.get("name") == "data")
    assert (data.get("tests"), data.get("failures"), data.get("skipped")) == ("2", "1", "1")
    cases = {case.get("name"): case for case in root.iter("testcase")}
    assert cases["upload"].find("failure") is not None
    assert cases["list"].find("skipped") is not None
    assert cases["no token"].find("failure") is None


def test_an_unanswered_request_skips_every_category(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{procs.free_port()}"
    report = run_suite(url, load_suite(write_suite(tmp_path, CATEGORY_SUITE)), retries=0)
    assert report.steps[0].status is StepStatus.ERROR
    assert [step.status for step in report.steps[1:]] == [StepStatus.SKIPPED] * 5
    assert report.outcome == "unreachable"
