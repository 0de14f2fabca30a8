"""The Prometheus adapter (prometheus-api-client underneath) against the local platform's real Prometheus
scraping a real (in-test) exporter. Auth, the managed path and failures: test_prometheus_wire.py."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from typing import TypeVar

import pytest

from ethixctl import procs
from ethixctl.adapters.prometheus import Prometheus, PrometheusUnavailable, QueryError
from ethixctl.platform.prometheus import PrometheusServer
from tests.httpserver import serve

pytestmark = pytest.mark.e2e


Answer = TypeVar("Answer")


def until_scraped(look: Callable[[], Answer]) -> Answer:
    """``look()`` again, for up to 20 s, while it answers empty: until a scrape has landed."""
    deadline = time.monotonic() + 20
    while not (answer := look()) and time.monotonic() < deadline:
        time.sleep(0.5)
    return answer


EXPOSITION = b"""# TYPE demo_requests_total counter
demo_requests_total{route="/a"} 5
demo_requests_total{route="/b"} 7
# TYPE demo_ratio gauge
demo_ratio NaN
"""


class _Exporter(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.end_headers()
        self.wfile.write(EXPOSITION)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    server = PrometheusServer(tmp_path_factory.mktemp("prom"), procs.free_port())
    server.start(timeout=30)
    with serve(_Exporter) as exporter_url, Prometheus(server.url) as client:
        server.set_target("demo", "live", exporter_url.removeprefix("http://"))
        server.set_target("demo", "dead", f"127.0.0.1:{procs.free_port()}")
        try:
            until_scraped(lambda: client.query("demo_requests_total"))
            yield client
        finally:
            server.stop()


def test_query_returns_labelled_samples(prometheus: Prometheus) -> None:
    samples = {s.labels["route"]: s.value for s in prometheus.query('demo_requests_total{revision="live"}')}
    assert samples == {"/a": 5.0, "/b": 7.0}


def test_scalar_and_nan_values(prometheus: Prometheus) -> None:
    assert prometheus.query("scalar(sum(demo_requests_total))")[0].value == 12.0
    assert math.isnan(prometheus.query("demo_ratio")[0].value)


def test_empty_result_is_data_not_an_error(prometheus: Prometheus) -> None:
    assert prometheus.query('demo_requests_total{route="/nowhere"}') == []


def test_bad_promql_is_a_query_error(prometheus: Prometheus) -> None:
    with pytest.raises(QueryError, match="bad_data"):
        prometheus.query("sum(")


def test_query_range_groups_by_series(prometheus: Prometheus) -> None:
    # Seen once empty on a loaded machine (both series stale over the whole last minute, cause not
    # found): look again until a scrape has landed, as the fixture does before the first query.
    def last_minute() -> dict[frozenset[tuple[str, str]], list[tuple[float, float]]]:
        now = time.time()
        return prometheus.query_range("demo_requests_total", now - 60, now, 1)

    series = until_scraped(last_minute)
    assert {dict(labels)["route"] for labels in series} == {"/a", "/b"}
    assert all(points for points in series.values())


def test_targets_report_health(prometheus: Prometheus) -> None:
    deadline = time.monotonic() + 10
    health: dict[str, str] = {}
    while time.monotonic() < deadline:
        health = {t.labels["revision"]: t.health for t in prometheus.targets()}
        if health.get("dead") == "down":
            break
        time.sleep(0.5)
    assert health == {"live": "up", "dead": "down"}


def test_unreachable_prometheus_is_typed() -> None:
    with (
        Prometheus(f"http://127.0.0.1:{procs.free_port()}", budget=0.5) as client,
        pytest.raises(PrometheusUnavailable, match="unreachable"),
    ):
        client.query("up")
