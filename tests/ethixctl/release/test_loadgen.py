"""The load generator against a real HTTP server on loopback."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler

import pytest

from ethixctl.errors import UsageError
from ethixctl.release import loadgen
from tests.httpserver import serve


class _Counter(BaseHTTPRequestHandler):
    hits = 0
    lock = threading.Lock()

    def do_GET(self) -> None:
        with type(self).lock:
            type(self).hits += 1
        self.send_response(204 if self.path == "/ok" else 500)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_steady_rate_and_status_counts() -> None:
    with serve(_Counter) as url:
        statuses = loadgen.run(f"{url}/ok", rps=40, duration=1.5)
    assert set(statuses) == {"204"}
    assert 45 <= statuses["204"] <= 75  # 60 scheduled; a shared 2-core machine may lag a little
    assert _Counter.hits == statuses["204"]


def test_connection_errors_are_counted_not_raised() -> None:
    from ethixctl.procs import free_port

    statuses = loadgen.run(f"http://127.0.0.1:{free_port()}/", rps=20, duration=0.3)
    assert statuses["ConnectError"] >= 3


@pytest.mark.parametrize(
    ("url", "rps", "message"),
    [
        ("http://example.com/", 10, "only targets loopback"),
        ("http://127.0.0.1:1/", 0, "between 0 and 200"),
        ("http://127.0.0.1:1/", 500, "between 0 and 200"),
    ],
)
def test_refuses_remote_targets_and_unbounded_rates(url: str, rps: float, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        loadgen.LoadGenerator(url, rps)
