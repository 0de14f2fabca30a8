"""A small scriptable HTTP target for the runner's own behaviour (retries, polling, masking).

The smoke runner is a generic HTTP client, so these tests drive it against a real stdlib
``ThreadingHTTPServer`` answering canned JSON; the suite against the real services is in test_e2e.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from tests.httpserver import serve

Answer = tuple[int, Any]
Route = Callable[[dict[str, Any]], Answer]


# The runbook's 15 tests in its 4 categories, each as the step names of playbooks/smoke.yaml that make
# it up (liveness and startup are one test; the 404 test registers a second user first).
RUNBOOK_TESTS: dict[str, list[list[str]]] = {
    "infrastructure-health": [["liveness", "startup"], ["readiness"], ["metrics"]],
    "auth-flow": [["register"], ["login"], ["current user"], ["wrong password"]],
    "core-analysis": [
        ["upload dataset", "list datasets"],
        ["trigger analysis"],
        ["analysis finishes"],
        ["fetch report"],
    ],
    "error-handling": [
        ["no token", "tampered token"],
        [
            "upload probe dataset",
            "register other user",
            "other user login",
            "another user's dataset",
            "unknown analysis",
        ],
        ["oversized upload", "malformed csv"],
        ["trigger failing analysis", "report not ready", "failed analysis says why"],
    ],
}
RUNBOOK_STEPS = [step for tests in RUNBOOK_TESTS.values() for test in tests for step in test]
CLEANUP_STEPS = ["delete other user", "delete synthetic user"]


@dataclass
class Target:
    url: str
    routes: dict[tuple[str, str], Route] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)

    def answer(self, method: str, path: str, status: int, body: Any) -> None:
        self.routes[(method, path)] = lambda _request: (status, body)


def make_handler(target: Target) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            request = {"method": self.command, "path": self.path, "headers": dict(self.headers), "body": raw}
            target.requests.append(request)
            route = target.routes.get((self.command, self.path))
            status, body = route(request) if route else (404, {"detail": "Not Found"})
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            self.send_response(status)
            content_type = "text/plain" if isinstance(body, str) else "application/json"
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = _handle

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def target() -> Iterator[Target]:
    handler_target = Target("")
    with serve(make_handler(handler_target)) as handler_target.url:
        yield handler_target


def write_suite(directory: Path, text: str, name: str = "suite.yaml") -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path
