"""The Prometheus adapter against wire-level fakes: what goes over HTTP (auth headers, the Managed Service
for Prometheus path, the OAuth token exchange) and how every kind of failure comes out typed and bounded.

Google's token endpoint and monitoring.googleapis.com cannot be reached from here, so a local HTTP fake
plays both; the bearer/basic credentials come from the local control plane's Secret Manager.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ethixctl.adapters.prometheus import (
    MONITORING_READ_SCOPE,
    Prometheus,
    PrometheusUnavailable,
    QueryError,
    RetryPolicy,
    managed_url,
    open_prometheus,
)
from ethixctl.adapters.secrets import SecretManager
from ethixctl.config import Environment
from tests.ethixctl.platform.controlplane.testruntime import local_control_plane
from tests.httpserver import serve

VECTOR = {
    "status": "success",
    "data": {"resultType": "vector", "result": [{"metric": {"route": "/a"}, "value": [1.0, "5"]}]},
}
TOKEN = "tok-7f3a9c"  # a test credential, never a real one


class _Fake(BaseHTTPRequestHandler):
    """Answers like Prometheus; each test sets ``reply`` and reads ``seen`` (path, query, headers)."""

    reply: ClassVar[Any] = None
    seen: ClassVar[list[dict[str, Any]]] = []
    lock: ClassVar[threading.Lock] = threading.Lock()

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        with self.lock:
            self.seen.append(
                {
                    "path": parts.path,
                    "query": parse_qs(parts.query),
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                }
            )
        status, body, headers = type(self).reply(self)
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body if isinstance(body, bytes) else json.dumps(body).encode())

    def do_POST(self) -> None:
        # The OAuth token endpoint of the managed test: a service-account JWT assertion in, a token out.
        form = parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
        claims = json.loads(base64.urlsafe_b64decode(form["assertion"][0].split(".")[1] + "=="))
        with self.lock:
            self.seen.append(
                {"path": urlsplit(self.path).path, "grant": form["grant_type"][0], "claims": claims}
            )
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(
            json.dumps({"access_token": TOKEN, "expires_in": 3600, "token_type": "Bearer"}).encode()
        )

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def fake() -> Iterator[tuple[str, type[_Fake]]]:
    handler = type("Fake", (_Fake,), {"seen": [], "reply": staticmethod(lambda request: (200, VECTOR, {}))})
    with serve(handler) as url:
        yield url, handler


def _environment(tmp_path: Path, prometheus_url: str, **fields: Any) -> Environment:
    return Environment(
        name="staging", kind="cloudrun", project="local", region="local", run_endpoint=None,
        secrets_endpoint=fields.pop("secrets_endpoint", None), prometheus_url=prometheus_url,
        state_dir=tmp_path, **fields,
    )  # fmt: skip


def test_managed_prometheus_path_and_adc_token_wire_level_fake(
    fake: tuple[str, type[_Fake]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Application-default credentials (a service-account key file whose token_uri is the fake) are
    exchanged for a token with the monitoring.read scope, and the query goes to the managed path."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    url, handler = fake
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    adc = tmp_path / "adc.json"
    adc.write_text(
        json.dumps({
            "type": "service_account", "project_id": "ethix-prod", "private_key_id": "k1", "private_key": pem,
            "client_email": "ethixctl@ethix-prod.iam.gserviceaccount.com", "client_id": "1",
            "token_uri": f"{url}/token",
        })
    )  # fmt: skip
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(adc))
    base = managed_url("ethix-prod", endpoint=url)
    with open_prometheus(_environment(tmp_path, base, prometheus_auth="google")) as prometheus:
        samples = prometheus.query("sum(rate(x[1m]))", at=1700000000.0)
    assert [(s.labels, s.value) for s in samples] == [({"route": "/a"}, 5.0)]
    exchange, query = handler.seen
    assert exchange["path"] == "/token"
    assert exchange["grant"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    assert MONITORING_READ_SCOPE in exchange["claims"]["scope"].split()
    assert query["path"] == "/v1/projects/ethix-prod/location/global/prometheus/api/v1/query"
    assert query["headers"]["authorization"] == f"Bearer {TOKEN}"
    assert query["query"] == {"query": ["sum(rate(x[1m]))"], "time": ["1700000000.0"]}


def test_managed_without_credentials_is_unavailable_wire_level_fake(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    with pytest.raises(PrometheusUnavailable, match="application-default credentials") as caught:
        open_prometheus(_environment(tmp_path, managed_url("ethix-prod"), prometheus_auth="google"))
    assert "gcloud auth application-default login" in (caught.value.hint or "")


@pytest.mark.parametrize(
    ("kind", "stored", "expected"),
    [
        ("bearer", TOKEN.encode() + b"\n", f"Bearer {TOKEN}"),
        ("basic", b"ops:s3cret-pw", "Basic " + base64.b64encode(b"ops:s3cret-pw").decode()),
    ],
)
def test_self_hosted_credential_from_secret_manager_local_control_plane(
    fake: tuple[str, type[_Fake]], tmp_path: Path, kind: str, stored: bytes, expected: str
) -> None:
    """The credential is read from Secret Manager (real client, local control plane) by name:alias."""
    url, handler = fake
    with local_control_plane(tmp_path / "cp") as (server, _):
        secrets = SecretManager("local", endpoint=server.url)
        secrets.create_secret("prometheus-cred")
        secrets.add_version("prometheus-cred", b"stale")
        secrets.set_alias("prometheus-cred", "current", secrets.add_version("prometheus-cred", stored))
        secrets.add_version("prometheus-cred", b"next-not-yet-current")
        environment = _environment(
            tmp_path, url, prometheus_auth=kind, prometheus_secret="prometheus-cred:current",
            secrets_endpoint=server.url,
        )  # fmt: skip
        with open_prometheus(environment) as prometheus:
            assert prometheus.query("up")[0].value == 5.0
    assert handler.seen[0]["headers"]["authorization"] == expected
    assert handler.seen[0]["path"] == "/api/v1/query"


def test_refused_credentials_are_a_query_error_without_the_secret_wire_level_fake(
    fake: tuple[str, type[_Fake]],
) -> None:
    from ethixctl.adapters.prometheus import credential_session

    url, handler = fake
    handler.reply = staticmethod(lambda request: (401, b"Unauthorized", {}))
    with (
        Prometheus(url, session=credential_session("bearer", TOKEN.encode())) as prometheus,
        pytest.raises(QueryError, match="refused the credentials") as caught,
    ):
        prometheus.query("up")
    assert TOKEN not in str(caught.value) and TOKEN not in (caught.value.hint or "")
    assert len(handler.seen) == 1, "a 4xx is not retried"


def test_bad_promql_is_a_query_error_with_its_detail_wire_level_fake(fake: tuple[str, type[_Fake]]) -> None:
    url, handler = fake
    body = {"status": "error", "errorType": "bad_data", "error": "parse error at char 5"}
    handler.reply = staticmethod(lambda request: (400, body, {}))
    with Prometheus(url) as prometheus, pytest.raises(QueryError, match="bad_data: parse error at char 5"):
        prometheus.query("sum(")


def test_persistent_5xx_is_unavailable_after_bounded_retries_wire_level_fake(
    fake: tuple[str, type[_Fake]],
) -> None:
    """Retries stop after the policy's count, and a Retry-After of a minute is not honoured."""
    url, handler = fake
    handler.reply = staticmethod(lambda request: (503, {"status": "error"}, {"Retry-After": "60"}))
    budget = 5.0  # the local gate interval
    with Prometheus(url, budget=budget) as prometheus:
        started = time.monotonic()
        with pytest.raises(PrometheusUnavailable, match="after 3 attempts"):
            prometheus.query("up")
        elapsed = time.monotonic() - started
    assert len(handler.seen) == prometheus.policy.retries + 1 == 3
    assert elapsed < budget, f"a failing call took {elapsed:.1f}s, over its {budget}s budget"


def test_slow_prometheus_times_out_within_budget_wire_level_fake(fake: tuple[str, type[_Fake]]) -> None:
    url, handler = fake

    def stall(request: BaseHTTPRequestHandler) -> tuple[int, Any, dict[str, str]]:
        time.sleep(3)
        return 200, VECTOR, {}

    handler.reply = staticmethod(stall)
    with (
        Prometheus(url, budget=1.5) as prometheus,
        pytest.raises(PrometheusUnavailable, match="did not answer"),
    ):
        prometheus.query("up")
    assert len(handler.seen) == prometheus.policy.retries + 1


def test_non_json_answer_is_unavailable_wire_level_fake(fake: tuple[str, type[_Fake]]) -> None:
    url, handler = fake
    handler.reply = staticmethod(lambda request: (200, b"<html>proxy login</html>", {}))
    with Prometheus(url) as prometheus, pytest.raises(PrometheusUnavailable, match="unusable answer"):
        prometheus.query("up")


def test_scalar_and_range_vector_results_wire_level_fake(fake: tuple[str, type[_Fake]]) -> None:
    url, handler = fake
    handler.reply = staticmethod(
        lambda request: (
            200,
            {"status": "success", "data": {"resultType": "scalar", "result": [1, "NaN"]}},
            {},
        )
    )
    with Prometheus(url) as prometheus:
        [sample] = prometheus.query("scalar(x)")
        assert sample.labels == {} and sample.value != sample.value  # NaN
        matrix = {"resultType": "matrix", "result": [{"metric": {}, "values": [[1, "2"]]}]}
        handler.reply = staticmethod(lambda request: (200, {"status": "success", "data": matrix}, {}))
        with pytest.raises(QueryError, match="range vector"):
            prometheus.query("x[1m]")


@given(st.floats(min_value=0.5, max_value=900))
def test_retry_policy_worst_case_fits_the_budget(budget: float) -> None:
    policy = RetryPolicy.within(budget)
    assert policy.worst_case() <= budget
    assert policy.connect_timeout > 0 and policy.read_timeout > 0
    assert policy.retries == 2 or budget < 5, "normal gate intervals keep two retries"


def test_managed_prometheus_without_targets_api_is_not_an_error_wire_level_fake(
    fake: tuple[str, type[_Fake]],
) -> None:
    """Managed Service for Prometheus answers 404 on /api/v1/targets: the gates then judge on the
    request count alone instead of failing every analysis with a query error (and rolling back)."""
    from ethixctl.adapters.prometheus import NotOffered
    from ethixctl.release import analysis, playbook

    url, handler = fake

    def managed(request: BaseHTTPRequestHandler) -> tuple[int, Any, dict[str, str]]:
        if request.path.startswith("/api/v1/targets"):
            return 404, b"404 page not found", {}
        return 200, VECTOR, {}  # every query: 5

    handler.reply = staticmethod(managed)
    with Prometheus(url) as prometheus:
        with pytest.raises(NotOffered):
            prometheus.targets()
        verdict = analysis.evaluate(
            prometheus, playbook.load(), service="backend", canary="backend-2", stable="backend-1",
            timing=playbook.Timing(window=60, sample_step=10, sample_window=30), compare=False,
        )  # fmt: skip
    assert verdict.outcome is analysis.Outcome.INCONCLUSIVE, verdict.summary()
    assert verdict.targets_up is None
    assert verdict.reasons == ["5 canary requests in 60s, need 20"]


def test_alerts_go_through_the_clients_session_and_retries_wire_level_fake(
    fake: tuple[str, type[_Fake]],
) -> None:
    """prometheus-api-client has no alerts call: ours uses its session, so the credential, the bounded
    retries and the typed errors are the same as for a query."""
    from ethixctl.adapters.prometheus import credential_session

    url, handler = fake
    firing = {
        "labels": {"alertname": "ServiceNotReady", "service": "backend", "severity": "page"},
        "annotations": {"summary": "backend-1 (backend) fails 40% of its readiness probes"},
        "state": "firing",
        "activeAt": "2025-01-01T10:00:00Z",
        "value": "4e-01",
    }
    handler.reply = staticmethod(
        lambda request: (200, {"status": "success", "data": {"alerts": [firing]}}, {})
    )
    with Prometheus(url, session=credential_session("bearer", TOKEN.encode())) as prometheus:
        [alert] = prometheus.alerts()
        assert (alert.name, alert.state, alert.value, alert.active_at) == (
            "ServiceNotReady",
            "firing",
            0.4,
            "2025-01-01T10:00:00Z",
        )
        assert alert.annotations["summary"].startswith("backend-1 (backend) fails")
        assert handler.seen[-1]["path"] == "/api/v1/alerts"
        assert handler.seen[-1]["headers"]["authorization"] == f"Bearer {TOKEN}"

        handler.seen.clear()
        handler.reply = staticmethod(lambda request: (503, {"status": "error"}, {"Retry-After": "60"}))
        with pytest.raises(PrometheusUnavailable, match="after 3 attempts"):
            prometheus.alerts()
        assert len(handler.seen) == prometheus.policy.retries + 1

        # Managed Prometheus has no alerts API: a 404 is a QueryError (status then says alerts unknown).
        handler.reply = staticmethod(lambda request: (404, b"404 page not found", {}))
        with pytest.raises(QueryError, match="HTTP 404"):
            prometheus.alerts()
