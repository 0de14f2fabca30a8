"""Prometheus metrics and fault injection, installed the same way in both services.

Metric names and labels are a contract: the release gates in ``playbooks/release.yaml`` query them.
Labels stay bounded: ``route`` is the route template (``/api/v1/analyses/{analysis_id}``), never a raw path.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

from services.common.settings import ServiceSettings

HTTP_LABELS = ("service", "revision", "method", "route", "status")
REQUESTS = Counter("http_requests_total", "HTTP requests handled", HTTP_LABELS)
LATENCY = Histogram(
    "http_request_duration_seconds",
    "HTTP request latency",
    HTTP_LABELS,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0),
)
ANALYSES = Counter(
    "ethix_analyses_total", "Analyses finished, by outcome", ("service", "revision", "outcome")
)
ANALYSIS_DURATION = Histogram(
    "ethix_analysis_duration_seconds",
    "Time to compute one analysis",
    ("service", "revision"),
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0),
)

UNMATCHED_ROUTE = "<unmatched>"
_EXEMPT_FROM_FAULTS = ("/health/", "/metrics")


def install(app: FastAPI, settings: ServiceSettings) -> None:
    """Add request metrics, fault injection and ``GET /metrics`` to ``app``."""
    fault_random = random.Random()

    @app.middleware("http")
    async def observe(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        path = request.url.path
        injectable = not path.startswith(_EXEMPT_FROM_FAULTS)
        if injectable and settings.fault_latency_ms:
            await asyncio.sleep(settings.fault_latency_ms / 1000)
        if injectable and settings.fault_error_rate and fault_random.random() < settings.fault_error_rate:
            response: Response = Response(
                content=b'{"detail":"injected fault (ETHIX_FAULT_ERROR_RATE)"}',
                status_code=500,
                media_type="application/json",
            )
        else:
            response = await call_next(request)
        route = request.scope.get("route")
        template = getattr(route, "path", UNMATCHED_ROUTE)
        labels = (
            settings.service_name,
            settings.revision,
            request.method,
            template,
            str(response.status_code),
        )
        REQUESTS.labels(*labels).inc()
        LATENCY.labels(*labels).observe(time.perf_counter() - started)
        # Lets `ethixctl rollback` measure when clients see only the target revision through the router.
        response.headers["X-Ethix-Revision"] = settings.revision
        return response

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
