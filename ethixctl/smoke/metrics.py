"""Prometheus exposition of the watch loop's results: a textfile (node_exporter textfile collector)
and/or a tiny ``/metrics`` endpoint. Written by hand: the format is four series, and the CLI must not
depend on prometheus-client (a services-only dependency)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from ethixctl.files import write_atomic

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
RESULTS = ("passed", "failed", "unreachable")


@dataclass
class WatchMetrics:
    suite: str
    target: str
    runs: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RESULTS, 0))
    last_duration: float | None = None
    last_success: float | None = None
    consecutive_failures: int = 0
    alerts: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, outcome: str, duration: float, finished_at: float) -> None:
        with self._lock:
            self.runs[outcome] += 1
            self.last_duration = duration
            if outcome == "passed":
                self.last_success = finished_at
                self.consecutive_failures = 0
            else:
                self.consecutive_failures += 1

    def alerted(self) -> None:
        with self._lock:
            self.alerts += 1

    def render(self) -> str:
        with self._lock:
            base = f'suite="{_escape(self.suite)}",target="{_escape(self.target)}"'
            lines = [
                "# HELP ethixctl_smoke_runs_total Smoke suite runs by result.",
                "# TYPE ethixctl_smoke_runs_total counter",
                *(f'ethixctl_smoke_runs_total{{{base},result="{r}"}} {self.runs[r]}' for r in RESULTS),
                "# HELP ethixctl_smoke_alerts_total Alerts sent after consecutive failures.",
                "# TYPE ethixctl_smoke_alerts_total counter",
                f"ethixctl_smoke_alerts_total{{{base}}} {self.alerts}",
                "# HELP ethixctl_smoke_consecutive_failures Failed runs since the last passing run.",
                "# TYPE ethixctl_smoke_consecutive_failures gauge",
                f"ethixctl_smoke_consecutive_failures{{{base}}} {self.consecutive_failures}",
            ]
            # A gauge with no value yet is left out rather than exported as 0 (which reads as 1970).
            if self.last_duration is not None:
                lines += [
                    "# HELP ethixctl_smoke_last_duration_seconds Duration of the last run.",
                    "# TYPE ethixctl_smoke_last_duration_seconds gauge",
                    f"ethixctl_smoke_last_duration_seconds{{{base}}} {self.last_duration:.6f}",
                ]
            if self.last_success is not None:
                lines += [
                    "# HELP ethixctl_smoke_last_success_timestamp_seconds Unix time of the last passing run.",
                    "# TYPE ethixctl_smoke_last_success_timestamp_seconds gauge",
                    f"ethixctl_smoke_last_success_timestamp_seconds{{{base}}} {self.last_success:.3f}",
                ]
            return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace('"', r"\"").replace("\n", r"\n")


def write_textfile(metrics: WatchMetrics, path: str | Path) -> None:
    """Atomic replace: the textfile collector must never read a half-written file."""
    write_atomic(Path(path), metrics.render())


class MetricsServer:
    """``GET /metrics`` on a background thread; ``port=0`` picks a free port."""

    def __init__(self, metrics: WatchMetrics, host: str = "127.0.0.1", port: int = 0):
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?", 1)[0] != "/metrics":
                    self.send_error(404)
                    return
                body = metrics.render().encode()
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                """Scrapes every few seconds would flood the console; stay quiet."""

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="smoke-metrics", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/metrics"

    def shutdown(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
