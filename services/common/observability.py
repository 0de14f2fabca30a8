"""Prometheus metrics and fault injection, installed the same way in both services.

Metric names and labels are a contract: the release gates in ``playbooks/release.yaml`` query them.
Labels stay bounded: ``route`` is the route template (``/api/v1/analyses/{analysis_id}``), never a raw path.
"""

from __future__ import annotations

import asyncio
import random
import time

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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
_INJECTED_FAULT = b'{"detail":"injected fault (ETHIX_FAULT_ERROR_RATE)"}'


class Observe:
    """Pure ASGI (a ``BaseHTTPMiddleware`` costs a task group and memory streams per request): fault
    injection, then one count and one latency sample per request, labelled with the route template."""

    def __init__(self, app: ASGIApp, settings: ServiceSettings):
        self.app = app
        self.settings = settings
        self.fault_random = random.Random()
        self.revision_header = (b"x-ethix-revision", settings.revision.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        settings = self.settings
        started = time.perf_counter()
        # An exception that escapes the app reaches the client as a 500: it counts as one.
        status = 500

        async def send_with_revision(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                # Lets `ethixctl rollback` measure when clients see only the target revision.
                message["headers"] = [*message.get("headers", ()), self.revision_header]
            await send(message)

        injectable = not scope["path"].startswith(_EXEMPT_FROM_FAULTS)
        try:
            if injectable and settings.fault_latency_ms:
                await asyncio.sleep(settings.fault_latency_ms / 1000)
            if (
                injectable
                and settings.fault_error_rate
                and self.fault_random.random() < settings.fault_error_rate
            ):
                fault = Response(_INJECTED_FAULT, status_code=500, media_type="application/json")
                await fault(scope, receive, send_with_revision)
            else:
                await self.app(scope, receive, send_with_revision)
        finally:
            template = getattr(scope.get("route"), "path", UNMATCHED_ROUTE)
            labels = (settings.service_name, settings.revision, scope["method"], template, str(status))
            REQUESTS.labels(*labels).inc()
            LATENCY.labels(*labels).observe(time.perf_counter() - started)


def install(app: FastAPI, settings: ServiceSettings) -> None:
    """Add request metrics, fault injection and ``GET /metrics`` to ``app``."""
    app.add_middleware(Observe, settings=settings)

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
