"""Prometheus HTTP API client (``/api/v1/query``, ``query_range``, ``targets``, ``alerts``).

Failures are typed so callers can fail safe: an unreachable server is ``PrometheusUnavailable``,
a rejected query is ``QueryError``; an empty result is data ("no samples"), never an error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import httpx

from ethixctl.errors import EthixError, PlatformUnavailable


class PrometheusUnavailable(PlatformUnavailable):
    """Prometheus did not answer (connection refused, timeout, 5xx)."""


class QueryError(EthixError):
    """Prometheus answered but rejected the query (bad PromQL, bad parameters)."""


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


def _to_float(raw: str) -> float:
    # Prometheus encodes NaN and ±Inf as strings; float() understands all three.
    try:
        return float(raw)
    except (TypeError, ValueError):
        return math.nan


class Prometheus:
    def __init__(self, url: str, timeout: float = 2.0):
        self.url = url.rstrip("/")
        self._client = httpx.Client(base_url=self.url, timeout=timeout)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Prometheus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        try:
            response = self._client.get(path, params=params)
        except httpx.TransportError as exc:
            raise PrometheusUnavailable(
                f"Prometheus at {self.url} is unreachable ({type(exc).__name__})",
                hint="check `ethixctl status`, or the environment's prometheus_url",
            ) from None
        if response.status_code >= 500 and response.status_code != 503:
            raise PrometheusUnavailable(f"Prometheus at {self.url} answered HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError:
            raise PrometheusUnavailable(
                f"Prometheus at {self.url} answered HTTP {response.status_code} with a non-JSON body"
            ) from None
        if body.get("status") != "success":
            raise QueryError(f"Prometheus rejected the request: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, promql: str, at: float | None = None) -> list[Sample]:
        params: dict[str, Any] = {"query": promql}
        if at is not None:
            params["time"] = at
        data = self._get("/api/v1/query", params)
        if data["resultType"] == "vector":
            return [Sample(item["metric"], _to_float(item["value"][1])) for item in data["result"]]
        if data["resultType"] == "scalar":
            return [Sample({}, _to_float(data["result"][1]))]
        raise QueryError(f"expected an instant vector or scalar, got {data['resultType']}: {promql}")

    def query_range(
        self, promql: str, start: float, end: float, step: float
    ) -> dict[frozenset[tuple[str, str]], list[tuple[float, float]]]:
        data = self._get("/api/v1/query_range", {"query": promql, "start": start, "end": end, "step": step})
        return {
            frozenset(series["metric"].items()): [(float(ts), _to_float(v)) for ts, v in series["values"]]
            for series in data["result"]
        }

    def targets(self) -> list[Target]:
        data = self._get("/api/v1/targets", {"state": "active"})
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
        data = self._get("/api/v1/alerts")
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

    def ready(self) -> bool:
        try:
            return self._client.get("/-/ready").status_code == 200
        except httpx.TransportError:
            return False
