"""Prometheus HTTP API (``/api/v1/query``, ``query_range``, ``targets``, ``alerts``) through
prometheus-api-client.

One client for every Prometheus ethixctl talks to: the local platform's, a self-hosted server behind
bearer or basic auth (the credential read from Secret Manager), and Google Cloud Managed Service for
Prometheus (an ``AuthorizedSession`` with application-default credentials).

Failures are typed so callers can fail safe: unreachable, timed out or 5xx after the retries is
``PrometheusUnavailable``; a rejected query or request (4xx, bad PromQL, refused credentials) is
``QueryError``; an empty result is data ("no samples"), never an error.

Every call is bounded: ``PrometheusConnect`` has no timeout by default (and its timeout replaces an
authorised session's own), and its default retries sleep up to seconds and honour ``Retry-After``.
So each client gets a :class:`RetryPolicy` whose worst case fits the budget the caller gives it (the
release gate interval), and ``Retry-After`` is ignored.
"""

from __future__ import annotations

import ast
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from urllib.parse import urlsplit, urlunsplit

from ethixctl.errors import EthixError, PlatformUnavailable, UsageError

if TYPE_CHECKING:
    import requests
    from urllib3.util.retry import Retry

    from ethixctl.config import Environment

T = TypeVar("T")

MANAGED_ENDPOINT = "https://monitoring.googleapis.com"
MONITORING_READ_SCOPE = "https://www.googleapis.com/auth/monitoring.read"
AuthKind = Literal["none", "google", "bearer", "basic"]
# Where the release gates read request counts and latencies (each playbook query has one per source):
#   app       the services' own http_requests_total / http_request_duration_seconds (scraped locally,
#             by the managed collector sidecar in production);
#   cloudrun  Cloud Run's built-in run_googleapis_com:request_count / request_latencies (milliseconds).
MetricSource = Literal["app", "cloudrun"]
# Status codes worth another attempt: Prometheus overloaded or restarting, a proxy in between.
_RETRY_STATUSES = (429, 500, 502, 503, 504)
_CLIENT_ERROR = re.compile(r"HTTP Status Code (\d+) \((.*)\)\Z", re.DOTALL)


class PrometheusUnavailable(PlatformUnavailable):
    """Prometheus did not answer (connection refused, timeout, 5xx after the retries)."""


class QueryError(EthixError):
    """Prometheus answered but rejected the request (bad PromQL, bad parameters, refused credentials)."""


class NotOffered(QueryError):
    """This Prometheus has no such API (HTTP 404): Managed Service for Prometheus has no targets API."""


@dataclass
class Sample:
    labels: dict[str, str]
    value: float


@dataclass
class Target:
    job: str
    labels: dict[str, str]
    health: str
    last_error: str
    scrape_url: str


@dataclass
class Alert:
    name: str
    state: str  # "pending" (for: not yet elapsed) or "firing"
    labels: dict[str, str]
    annotations: dict[str, str]
    active_at: str
    value: float


@dataclass(frozen=True)
class RetryPolicy:
    """Timeouts and retries of one call; :meth:`worst_case` is the longest a failing call can take."""

    connect_timeout: float
    read_timeout: float
    retries: int
    backoff: float

    @classmethod
    def within(cls, budget: float) -> RetryPolicy:
        """The most patient policy whose worst case stays under 80% of ``budget`` seconds."""
        target = 0.8 * budget
        for retries in (2, 1, 0):
            backoff = 0.1
            sleeps = _sleeps(retries, backoff)
            per_attempt = (target - sleeps) / (retries + 1)
            if per_attempt >= 0.5 or retries == 0:
                break
        connect = min(3.0, per_attempt * 0.25)
        return cls(connect, min(15.0, per_attempt - connect), retries, backoff)

    def worst_case(self) -> float:
        attempts = self.retries + 1
        return attempts * (self.connect_timeout + self.read_timeout) + _sleeps(self.retries, self.backoff)

    def attempts_text(self) -> str:
        return "1 attempt" if self.retries == 0 else f"{self.retries + 1} attempts"

    def retry(self) -> Retry:
        from urllib3.util.retry import Retry

        return Retry(
            total=self.retries,
            connect=self.retries,
            read=self.retries,
            status=self.retries,
            backoff_factor=self.backoff,
            status_forcelist=_RETRY_STATUSES,
            # A Retry-After of minutes would blow the budget; our own backoff is bounded.
            respect_retry_after_header=False,
            allowed_methods=frozenset({"GET"}),
        )


def _sleeps(retries: int, backoff: float) -> float:
    # urllib3 2.x sleeps nothing before the first retry, then backoff * 2**(n-1) before retry n.
    return sum(backoff * 2 ** (n - 1) for n in range(2, retries + 2))


def managed_url(project: str, endpoint: str = MANAGED_ENDPOINT) -> str:
    """Base URL of Managed Service for Prometheus's PromQL API for ``project``."""
    return f"{endpoint.rstrip('/')}/v1/projects/{project}/location/global/prometheus"


def redacted(url: str) -> str:
    """``url`` without user:password, for messages."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def _to_float(raw: str) -> float:
    # Prometheus encodes NaN and ±Inf as strings; float() understands all three.
    try:
        return float(raw)
    except (TypeError, ValueError):
        return math.nan


def google_session(policy: RetryPolicy) -> requests.Session:
    """An ``AuthorizedSession`` on application-default credentials with the monitoring.read scope."""
    import google.auth
    from google.auth.transport.requests import AuthorizedSession

    credentials, _ = google.auth.default(scopes=[MONITORING_READ_SCOPE])
    return AuthorizedSession(credentials, refresh_timeout=policy.connect_timeout + policy.read_timeout)


def credential_session(kind: Literal["bearer", "basic"], credential: bytes) -> requests.Session:
    """A session that sends ``credential`` (a token, or ``user:password``) on every request."""
    import requests
    from requests.auth import HTTPBasicAuth

    session = requests.Session()
    text = credential.decode().strip()
    if kind == "bearer":
        session.auth = _Bearer(text)
    else:
        user, sep, password = text.partition(":")
        if not sep:
            raise UsageError("the Prometheus basic-auth secret must hold user:password")
        session.auth = HTTPBasicAuth(user, password)
    return session


class _Bearer:
    """``requests`` auth hook; the token is kept off ``repr`` so it cannot leak into a log or traceback."""

    def __init__(self, token: str):
        self._token = token

    def __call__(self, request: Any) -> Any:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "_Bearer('***')"


class Prometheus:
    """The gates' view of Prometheus. ``budget``: seconds one call may take, retries included."""

    def __init__(self, url: str, *, budget: float = 10.0, session: requests.Session | None = None):
        import requests
        from prometheus_api_client import PrometheusConnect

        self.url = url.rstrip("/")
        self.policy = RetryPolicy.within(budget)
        # Ours as well as the client's (it mounts its retrying adapter on it): for the alerts API, which
        # prometheus-api-client has no call for.
        self._session = session if session is not None else requests.Session()
        self._client = PrometheusConnect(
            self.url,
            session=self._session,
            retry=self.policy.retry(),
            timeout=(self.policy.connect_timeout, self.policy.read_timeout),
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Prometheus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, fn: Callable[[], T]) -> T:
        import requests
        from google.auth import exceptions as auth_exc
        from prometheus_api_client import PrometheusApiClientException

        where = f"Prometheus at {redacted(self.url)}"
        try:
            return fn()
        except PrometheusApiClientException as exc:
            raise _rejected(where, str(exc)) from None
        except requests.exceptions.RetryError:
            raise PrometheusUnavailable(
                f"{where} kept failing (HTTP 5xx/429) after {self.policy.attempts_text()}"
            ) from None
        except (requests.Timeout, requests.ConnectionError) as exc:
            if _timed_out(exc):
                raise PrometheusUnavailable(
                    f"{where} did not answer within {self.policy.read_timeout:.1f}s"
                    f" ({self.policy.attempts_text()})"
                ) from None
            raise PrometheusUnavailable(
                f"{where} is unreachable ({type(exc).__name__})",
                hint="check `ethixctl status`, or the environment's prometheus_url",
            ) from None
        except requests.RequestException as exc:
            raise PrometheusUnavailable(f"{where} gave an unusable answer ({type(exc).__name__})") from None
        except auth_exc.GoogleAuthError as exc:
            raise PrometheusUnavailable(
                f"{where}: could not get a Google access token ({type(exc).__name__})"
            ) from None

    def query(self, promql: str, at: float | None = None) -> list[Sample]:
        params = {} if at is None else {"time": at}
        result = self._call(lambda: self._client.custom_query(promql, params=params))
        if not result:
            return []
        if not isinstance(result[0], dict):  # a scalar: [time, "value"]
            return [Sample({}, _to_float(result[1]))]
        if "value" not in result[0]:
            raise QueryError(f"expected an instant vector or scalar, got a range vector: {promql}")
        return [Sample(item["metric"], _to_float(item["value"][1])) for item in result]

    def query_range(
        self, promql: str, start: float, end: float, step: float
    ) -> dict[frozenset[tuple[str, str]], list[tuple[float, float]]]:
        result = self._call(
            lambda: self._client.custom_query_range(
                promql,
                datetime.fromtimestamp(start, UTC),
                datetime.fromtimestamp(end, UTC),
                step=f"{step:g}",
            )
        )
        return {
            frozenset(series["metric"].items()): [(float(ts), _to_float(v)) for ts, v in series["values"]]
            for series in result
        }

    def targets(self) -> list[Target]:
        """Active scrape targets; NotOffered where there are none to list (Managed Prometheus)."""
        data = self._call(lambda: self._client.get_targets(state="active"))
        return [
            Target(
                job=item.get("scrapePool", item["labels"].get("job", "")),
                labels=item["labels"],
                health=item["health"],
                last_error=item.get("lastError", ""),
                scrape_url=item.get("scrapeUrl", ""),
            )
            for item in data["activeTargets"]
        ]

    def alerts(self) -> list[Alert]:
        """The alerts of the alerting rules Prometheus evaluates, pending or firing."""
        data = self._call(lambda: self._get_data("/api/v1/alerts"))
        return [
            Alert(
                name=item["labels"].get("alertname", ""),
                state=item["state"],
                labels=item["labels"],
                annotations=item.get("annotations", {}),
                active_at=item.get("activeAt", ""),
                value=_to_float(item.get("value", "nan")),
            )
            for item in data["alerts"]
        ]

    def _get_data(self, path: str) -> Any:
        """``GET path``'s ``data`` as prometheus-api-client's own calls make it (same retries, timeout
        and error), for an endpoint the client has no call for."""
        from prometheus_api_client import PrometheusApiClientException

        response = self._session.get(
            self.url + path, timeout=(self.policy.connect_timeout, self.policy.read_timeout)
        )
        if response.status_code != 200:
            raise PrometheusApiClientException(
                f"HTTP Status Code {response.status_code} ({response.content!r})"
            )
        return response.json()["data"]


def _timed_out(exc: Exception) -> bool:
    """requests reports read timeouts that exhausted the retries as a ConnectionError around urllib3's
    MaxRetryError; its reason tells a slow server from a refused connection."""
    import requests
    from urllib3.exceptions import MaxRetryError, NewConnectionError, TimeoutError

    if isinstance(exc, requests.Timeout):
        return True
    cause = exc.args[0] if exc.args else None
    # NewConnectionError (refused) subclasses urllib3's TimeoutError for backward compatibility.
    reason = cause.reason if isinstance(cause, MaxRetryError) else None
    return isinstance(reason, TimeoutError) and not isinstance(reason, NewConnectionError)


def _rejected(where: str, message: str) -> EthixError:
    """prometheus-api-client puts the status and body only in its message: recover both."""
    match = _CLIENT_ERROR.match(message)
    status = int(match.group(1)) if match else None
    error = ""
    if match:
        try:
            body = json.loads(ast.literal_eval(match.group(2)))
            error = f"{body.get('errorType')}: {body.get('error')}"
        except (ValueError, SyntaxError, TypeError, AttributeError):
            error = ""
    if status is None or status >= 500:
        return PrometheusUnavailable(f"{where} answered HTTP {status or '?'}")
    if status == 404:
        return NotOffered(f"{where} does not offer this API (HTTP 404)")
    if status in (401, 403):
        return QueryError(
            f"{where} refused the credentials (HTTP {status})",
            hint="check the environment's prometheus_auth and prometheus_secret",
        )
    return QueryError(f"{where} rejected the request (HTTP {status}): {error or 'no error detail'}")


def open_prometheus(environment: Environment, *, budget: float = 10.0) -> Prometheus:
    """The environment's Prometheus with its credentials: Google ADC for Managed Prometheus, a token or
    user:password from Secret Manager for a self-hosted server, nothing for the local platform."""
    session: requests.Session | None = None
    policy = RetryPolicy.within(budget)
    if environment.prometheus_auth == "google":
        from google.auth import exceptions as auth_exc

        try:
            session = google_session(policy)
        except auth_exc.DefaultCredentialsError:
            raise PrometheusUnavailable(
                f"Prometheus at {redacted(environment.prometheus_url)}: no Google application-default"
                " credentials",
                hint="run `gcloud auth application-default login`, or set GOOGLE_APPLICATION_CREDENTIALS",
            ) from None
    elif environment.prometheus_auth in ("bearer", "basic"):
        from ethixctl.adapters.secrets import SecretManager

        if not environment.prometheus_secret:
            raise UsageError(
                f"environment {environment.name}: prometheus_auth = {environment.prometheus_auth!r}"
                " needs prometheus_secret (the Secret Manager secret holding the credential)"
            )
        name, _, version = environment.prometheus_secret.partition(":")
        credential = SecretManager(environment.project, environment.secrets_endpoint).access(
            name, version or "latest"
        )
        session = credential_session(environment.prometheus_auth, credential)
    return Prometheus(environment.prometheus_url, budget=budget, session=session)
