"""Run a smoke suite against one base URL and return a report (library entry point: ``run_suite``).

Steps run in order. A failed step skips the rest of its category and of the categories that need
it (they depend on what the earlier steps created); other categories still run, and an unanswered
request skips everything. The cleanup steps always run when the captures they use
exist, so the synthetic user never outlives the run. Network errors are retried with a bounded
backoff and, when they persist, recorded as ``error`` (target unreachable), not as a test failure.
"""

from __future__ import annotations

import mimetypes
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ethixctl import __version__
from ethixctl.errors import UsageError
from ethixctl.exitcodes import ExitCode
from ethixctl.smoke import jsonpath, template
from ethixctl.smoke.model import JsonAssertion, Step, Suite, load_suite

if TYPE_CHECKING:
    import httpx

SECRET_NAME = re.compile(r"(?i)token|secret|passw(or)?d|api[_-]?key|authorization|credential|cookie")
_BEARER = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]+")
_SECRET_JSON_FIELD = re.compile(
    r"""(?i)("[^"]*(?:token|secret|passw(?:or)?d|api[_-]?key|authorization)[^"]*"\s*:\s*)"(?:[^"\\]|\\.)*\""""
)
MASK = "***"
EXCERPT_CHARS = 300
# Connection never established: the request was not sent, so even a POST can be repeated safely.
_IDEMPOTENT = {"GET", "HEAD", "OPTIONS", "PUT", "DELETE"}


class StepStatus(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"  # network error after retries: the target did not answer
    SKIPPED = "skipped"


@dataclass
class StepResult:
    name: str
    phase: str  # "test" or "cleanup"
    status: StepStatus
    duration: float
    method: str
    path: str
    http_status: int | None = None
    reason: str | None = None
    excerpt: str | None = None
    attempts: int = 0
    network_retries: int = 0
    polls: int = 0
    category: str | None = None


def status_counts(results: list[StepResult]) -> dict[str, int]:
    return {status.value: sum(result.status is status for result in results) for status in StepStatus}


@dataclass
class SmokeReport:
    suite: str
    base_url: str
    run_id: str
    started_at: datetime
    duration: float = 0.0
    steps: list[StepResult] = field(default_factory=list)
    cleanup: list[StepResult] = field(default_factory=list)
    # what the steps captured (ids to look up in logs); secret captures are masked
    captures: dict[str, Any] = field(default_factory=dict)
    # the categories whose steps ran (selected ones and those they need), in suite order
    categories: list[str] = field(default_factory=list)

    @property
    def unreachable(self) -> bool:
        return any(step.status is StepStatus.ERROR for step in self.steps)

    @property
    def passed(self) -> bool:
        return all(step.status is StepStatus.PASSED for step in self.steps) and not any(
            step.status in (StepStatus.FAILED, StepStatus.ERROR) for step in self.cleanup
        )

    @property
    def outcome(self) -> str:
        if self.passed:
            return "passed"
        return "unreachable" if self.unreachable else "failed"

    @property
    def exit_code(self) -> ExitCode:
        return {"passed": ExitCode.OK, "unreachable": ExitCode.TARGET_UNREACHABLE}.get(
            self.outcome, ExitCode.FAILED
        )

    def counts(self) -> dict[str, int]:
        results = [*self.steps, *self.cleanup]
        return {**status_counts(results), "network_retries": sum(r.network_retries for r in results)}

    def to_dict(self) -> dict[str, Any]:
        def result(step: StepResult) -> dict[str, Any]:
            data = asdict(step)
            data["status"] = step.status.value
            data["duration"] = round(step.duration, 4)
            return data

        return {
            "suite": self.suite,
            "categories": self.categories,
            "base_url": self.base_url,
            "run_id": self.run_id,
            "started_at": self.started_at.isoformat(),
            "duration": round(self.duration, 4),
            "passed": self.passed,
            "outcome": self.outcome,
            "exit_code": int(self.exit_code),
            "counts": self.counts(),
            "steps": [result(step) for step in self.steps],
            "cleanup": [result(step) for step in self.cleanup],
            "captures": self.captures,
        }


class Masker:
    """Hides secret values (tokens, passwords, Authorization headers) in anything shown to people."""

    def __init__(self) -> None:
        self._values: set[str] = set()

    def add(self, value: Any) -> None:
        # Very short values would mask unrelated text; no real secret is that short.
        if isinstance(value, str) and len(value) >= 6:
            self._values.add(value)

    def __call__(self, text: str) -> str:
        for value in sorted(self._values, key=len, reverse=True):
            text = text.replace(value, MASK)
        text = _BEARER.sub(rf"\g<1>{MASK}", text)
        return _SECRET_JSON_FIELD.sub(rf'\g<1>"{MASK}"', text)


class _StepFailed(Exception):
    def __init__(self, reason: str, response: httpx.Response | None = None):
        super().__init__(reason)
        self.reason = reason
        self.response = response


class _NetworkError(Exception):
    def __init__(self, reason: str, attempts: int):
        super().__init__(reason)
        self.reason = reason
        self.attempts = attempts


def builtin_variables(base_url: str, run_id: str | None = None) -> dict[str, str]:
    run_id = run_id or secrets.token_hex(5)
    return {
        "run_id": run_id,
        "email": f"smoke+{run_id}@example.invalid",
        "password": secrets.token_urlsafe(18),
        "base_url": base_url,
    }


def normalise_base_url(base_url: str) -> str:
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(
            f"not an http(s) URL: {base_url!r}", hint="e.g. ethixctl smoke http://127.0.0.1:8080"
        )
    return base_url.rstrip("/")


def run_suite(
    base_url: str,
    suite: Suite | None = None,
    *,
    timeout: float | None = None,
    retries: int = 3,
    variables: Mapping[str, str] | None = None,
    on_step: Callable[[StepResult], None] | None = None,
    client: httpx.Client | None = None,
) -> SmokeReport:
    """Run ``suite`` (default: playbooks/smoke.yaml) against ``base_url``.

    ``timeout`` overrides the suite's per-request timeout; ``retries`` bounds the network retries per
    request; ``variables`` adds to or overrides the built-ins; ``on_step`` sees each result as it is
    decided (the CLI prints progress from it). Never raises for a failing target: that is the report.
    """
    import httpx

    base_url = normalise_base_url(base_url)
    suite = suite if suite is not None else load_suite()
    values: dict[str, Any] = builtin_variables(base_url)
    values.update(template.render(suite.variables, values))
    values.update(variables or {})
    masker = Masker()
    masker.add(values["password"])
    for name in suite.secrets:
        masker.add(values.get(name))
    report = SmokeReport(suite.name, base_url, values["run_id"], datetime.now(UTC))
    report.categories = [name for name in suite.categories if any(s.category == name for s in suite.steps)]
    runner = _Runner(suite, base_url, values, masker, timeout or suite.timeout, retries)
    started = time.perf_counter()
    owns_client = client is None
    http = client or httpx.Client(
        headers={"User-Agent": f"ethixctl-smoke/{__version__}", "X-Ethix-Smoke-Run": values["run_id"]},
        follow_redirects=False,
    )
    try:
        # A failed step stops the rest of its category and every category needing it (they use what
        # it should have created); the other categories still run. A target that does not answer
        # stops everything.
        blockers: dict[str | None, StepResult] = {}
        for step in suite.steps:
            blocker = blockers.get(step.category)
            if blocker is not None:
                result = runner.skipped(step, "test", f"skipped: step {blocker.name!r} did not pass")
            else:
                result = runner.run(http, step, "test")
                if result.status is not StepStatus.PASSED:
                    stopped: set[str | None] = {None, *suite.categories}
                    if step.category is not None and result.status is StepStatus.FAILED:
                        stopped = set(suite.dependants(step.category))
                    for category in stopped:
                        blockers.setdefault(category, result)
            report.steps.append(result)
            if on_step:
                on_step(result)
        for step in suite.cleanup:
            missing = sorted(template.names_in(step.request.model_dump(by_alias=True)) - values.keys())
            if missing:
                result = runner.skipped(step, "cleanup", f"skipped: {missing[0]!r} was never captured")
            else:
                result = runner.run(http, step, "cleanup")
            report.cleanup.append(result)
            if on_step:
                on_step(result)
    finally:
        if owns_client:
            http.close()
    report.duration = time.perf_counter() - started
    report.captures = {name: runner.shown(values[name]) for name in runner.captured}
    return report


class _Runner:
    def __init__(
        self,
        suite: Suite,
        base_url: str,
        values: dict[str, Any],
        masker: Masker,
        timeout: float,
        retries: int,
    ):
        self.suite = suite
        self.base_url = base_url
        self.values = values
        self.masker = masker
        self.timeout = timeout
        self.retries = max(0, retries)
        self.captured: list[str] = []

    def shown(self, value: Any) -> Any:
        return self.masker(value) if isinstance(value, str) else value

    def skipped(self, step: Step, phase: str, reason: str) -> StepResult:
        return StepResult(
            step.name,
            phase,
            StepStatus.SKIPPED,
            0.0,
            step.request.method,
            step.request.path,
            reason=reason,
            category=step.category,
        )

    def run(self, http: httpx.Client, step: Step, phase: str) -> StepResult:
        started = time.perf_counter()
        result = StepResult(
            step.name,
            phase,
            StepStatus.PASSED,
            0.0,
            step.request.method,
            step.request.path,
            category=step.category,
        )
        try:
            path = template.render(step.request.path, self.values)
            result.path = self.masker(str(path))
            response = self._execute(http, step, str(path), result)
            result.http_status = response.status_code
            self._capture(step, response)
        except _StepFailed as failure:
            result.status = StepStatus.FAILED
            result.reason = self.masker(failure.reason)
            if failure.response is not None:
                result.http_status = failure.response.status_code
                result.excerpt = self._excerpt(failure.response)
        except _NetworkError as error:
            result.status = StepStatus.ERROR
            result.reason = self.masker(error.reason)
        except template.UndefinedVariable as exc:
            result.status = StepStatus.FAILED
            result.reason = str(exc)
        result.duration = time.perf_counter() - started
        return result

    def _execute(self, http: httpx.Client, step: Step, path: str, result: StepResult) -> httpx.Response:
        poll = step.poll
        deadline = time.monotonic() + poll.deadline if poll else 0.0
        while True:
            response = self._send(http, step, path, result)
            result.polls += 1
            document = self._json(response) if (poll and response.status_code in step.statuses) else None
            if poll is None or response.status_code not in step.statuses:
                self._check(step, response)
                return response
            if poll.fail_if is not None and self._holds(poll.fail_if, document):
                raise _StepFailed(f"stopped polling: {self._describe(poll.fail_if, document)}", response)
            if self._holds(poll.until, document):
                self._check(step, response)
                return response
            if time.monotonic() + poll.interval > deadline:
                raise _StepFailed(
                    f"not done after {poll.deadline:g}s ({result.polls} polls): waiting for "
                    f"{poll.until.describe()}, last {poll.until.path} = {self._actual(poll.until, document)}",
                    response,
                )
            time.sleep(poll.interval)

    def _send(self, http: httpx.Client, step: Step, path: str, result: StepResult) -> httpx.Response:
        import httpx

        spec = step.request
        headers = template.render(spec.headers, self.values)
        for name, value in headers.items():
            if SECRET_NAME.search(name):
                self.masker.add(value.split(" ", 1)[-1])
        body = template.render(spec.json_body, self.values) if spec.json_body is not None else None
        files = None
        if spec.multipart:
            files = {}
            for field_name, fixture in spec.multipart.items():
                file_path = self.suite.base_dir / fixture
                content_type = mimetypes.guess_type(file_path.name)[0] or "application/octet-stream"
                files[field_name] = (file_path.name, file_path.read_bytes(), content_type)
        timeout = spec.timeout or self.timeout
        attempt = 0
        while True:
            attempt += 1
            result.attempts += 1
            try:
                return http.request(
                    spec.method,
                    self.base_url + path,
                    headers=headers,
                    json=body,
                    files=files,
                    timeout=timeout,
                )
            except httpx.TransportError as exc:
                never_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
                if attempt > self.retries or not (never_sent or spec.method in _IDEMPOTENT):
                    what = str(exc) or type(exc).__name__
                    tries = f"{attempt} attempt" + ("s" if attempt > 1 else "")
                    raise _NetworkError(
                        f"network error: {type(exc).__name__}: {what} ({tries})", attempt
                    ) from None
                result.network_retries += 1
                time.sleep(min(0.25 * 2 ** (attempt - 1), 2.0))

    def _json(self, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            raise _StepFailed(
                f"expected a JSON body, got {response.headers.get('content-type', 'no content type')}",
                response,
            ) from None

    def _check(self, step: Step, response: httpx.Response) -> None:
        if response.status_code not in step.statuses:
            expected = " or ".join(str(status) for status in step.statuses)
            raise _StepFailed(f"expected HTTP {expected}, got {response.status_code}", response)
        if step.checks or step.capture:
            document = self._json(response)
            for check in step.checks:
                if not self._holds(check, document):
                    raise _StepFailed(f"assertion failed: {self._describe(check, document)}", response)
        for needle in step.substrings:
            needle = str(template.render(needle, self.values))
            if needle not in response.text:
                raise _StepFailed(f"body does not contain {needle!r}", response)

    def _holds(self, check: JsonAssertion, document: Any) -> bool:
        actual = jsonpath.resolve(document, check.path)
        kind = check.kind
        if kind == "exists":
            return (actual is not jsonpath.MISSING) == check.exists
        if actual is jsonpath.MISSING:
            return False
        if kind == "equals":
            return bool(actual == template.render(check.equals, self.values))
        if kind == "in":
            return actual in template.render(check.in_, self.values)
        pattern = str(template.render(check.matches, self.values))
        return re.search(pattern, actual if isinstance(actual, str) else str(actual)) is not None

    def _actual(self, check: JsonAssertion, document: Any) -> str:
        actual = jsonpath.resolve(document, check.path)
        return "missing" if actual is jsonpath.MISSING else repr(actual)

    def _describe(self, check: JsonAssertion, document: Any) -> str:
        text = f"{check.describe()} (got {self._actual(check, document)})"
        error = jsonpath.resolve(document, "$.error")
        if isinstance(error, str) and error:
            text += f"; error: {error}"
        return text

    def _capture(self, step: Step, response: httpx.Response) -> None:
        if not step.capture:
            return
        document = self._json(response)
        for name, path in step.capture.items():
            value = jsonpath.resolve(document, path)
            if value is jsonpath.MISSING:
                raise _StepFailed(f"capture {name!r}: {path} not found in the response", response)
            if SECRET_NAME.search(name) or SECRET_NAME.search(jsonpath.last_key(path) or ""):
                self.masker.add(value)
            self.values[name] = value
            self.captured.append(name)

    def _excerpt(self, response: httpx.Response) -> str:
        text = " ".join(response.text.split())
        if len(text) > EXCERPT_CHARS:
            text = text[:EXCERPT_CHARS] + "…"
        return self.masker(text)
