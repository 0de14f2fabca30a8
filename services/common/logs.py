"""Structured logs for Cloud Logging: one JSON object per line on stdout, in both services.

Each line carries ``severity``, ``message``, ``time``, ``logger``, the request id (``request_id``, from
``X-Request-ID`` or generated: asgi-correlation-id) and, when the request came with ``traceparent`` or
``X-Cloud-Trace-Context``, ``logging.googleapis.com/trace`` / ``spanId`` / ``trace_sampled`` so Cloud
Logging groups a request's lines under its trace. Access logs use the same format, with Cloud Logging's
``httpRequest`` object. python-json-logger does the formatting.

Nothing secret reaches a line: request bodies and query strings are never logged, and a last filter
replaces anything shaped like a bearer token (JWT) and every secret value the settings hold.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from contextvars import ContextVar
from typing import Any

from asgi_correlation_id import CorrelationIdFilter, CorrelationIdMiddleware
from fastapi import FastAPI, Request, Response
from pydantic import SecretStr
from pythonjsonlogger.json import JsonFormatter

from services.common.settings import ServiceSettings

TRACE = "logging.googleapis.com/trace"
SPAN = "logging.googleapis.com/spanId"
SAMPLED = "logging.googleapis.com/trace_sampled"
ACCESS_LOGGER = "ethix.access"
REDACTED = "[redacted]"
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*")
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_CLOUD_TRACE = re.compile(r"^([0-9a-fA-F]{32})(?:/(\d{1,20}))?(?:;o=([01]))?$")

# (trace id, span id as 16 hex digits or None, sampled) of the request being handled.
_trace: ContextVar[tuple[str, str | None, bool] | None] = ContextVar("ethix_trace", default=None)


def parse_trace(traceparent: str | None, cloud_trace: str | None) -> tuple[str, str | None, bool] | None:
    """W3C ``traceparent`` first, then Google's ``X-Cloud-Trace-Context: TRACE/SPAN;o=1``."""
    if traceparent and (match := _TRACEPARENT.match(traceparent.strip().lower())):
        trace_id, span_id, flags = match.groups()
        if trace_id != "0" * 32:
            return trace_id, span_id, bool(int(flags, 16) & 1)
    if cloud_trace and (match := _CLOUD_TRACE.match(cloud_trace.strip())):
        trace_id, span, sampled = match.groups()
        span_id = f"{int(span):016x}" if span and int(span) < 2**64 else None
        return trace_id.lower(), span_id, sampled == "1"
    return None


def secret_values(settings: ServiceSettings) -> list[str]:
    """Every secret the settings hold (SecretStr fields, also inside dicts), for the redaction filter."""
    found: list[str] = []
    for value in settings.__dict__.values():
        candidates = value.values() if isinstance(value, dict) else [value]
        found += [c.get_secret_value() for c in candidates if isinstance(c, SecretStr)]
    # Short values would redact ordinary words; the settings refuse short secrets in production.
    return sorted({v for v in found if len(v) >= 8}, key=len, reverse=True)


class ContextFilter(logging.Filter):
    """Adds the request's trace fields, and Error Reporting's ``serviceContext`` on errors."""

    def __init__(self, project: str | None, service: str, revision: str):
        super().__init__()
        self.project = project
        self.service_context = {"service": service, "version": revision}

    def filter(self, record: logging.LogRecord) -> bool:
        trace = _trace.get()
        if trace is not None:
            trace_id, span_id, sampled = trace
            setattr(record, TRACE, f"projects/{self.project}/traces/{trace_id}" if self.project else trace_id)
            if span_id:
                setattr(record, SPAN, span_id)
            setattr(record, SAMPLED, sampled)
        if record.levelno >= logging.ERROR:
            record.serviceContext = self.service_context
        return True


class RedactFilter(logging.Filter):
    """Replaces bearer tokens and known secret values in the message and the traceback."""

    def __init__(self, secrets: Iterable[str]):
        super().__init__()
        self.secrets = list(secrets)
        self._plain = logging.Formatter()

    def redact(self, text: str) -> str:
        text = _JWT.sub(REDACTED, text)
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = self.redact(record.getMessage()), None
        if record.exc_info:
            record.exc_text = self.redact(self._plain.formatException(record.exc_info))
            record.exc_info = None
        return True


def configure(settings: ServiceSettings, stream: Any = None) -> None:
    """Route every logger (uvicorn's too) through one JSON handler on stdout at ``settings``' level."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(
        JsonFormatter(
            "%(levelname)s %(message)s %(name)s",
            rename_fields={"levelname": "severity", "name": "logger", "correlation_id": "request_id"},
            timestamp="time",
        )
    )
    handler.addFilter(CorrelationIdFilter(default_value=None))
    handler.addFilter(ContextFilter(settings.gcp_project, settings.service_name, settings.revision))
    handler.addFilter(RedactFilter(secret_values(settings)))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.effective_log_level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True


def _access_severity(status: int) -> int:
    # As Cloud Run's own request logs: 5xx ERROR, 4xx WARNING.
    return logging.ERROR if status >= 500 else logging.WARNING if status >= 400 else logging.INFO


def install(app: FastAPI, settings: ServiceSettings) -> None:
    """Request id, trace context and one access-log line per request; install it last (outermost)."""
    access = logging.getLogger(ACCESS_LOGGER)

    @app.middleware("http")
    async def access_log(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        token = _trace.set(
            parse_trace(request.headers.get("traceparent"), request.headers.get("x-cloud-trace-context"))
        )
        started = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        except Exception:
            access.exception("unhandled error in %s %s", request.method, request.url.path)
            raise
        finally:
            latency = time.perf_counter() - started
            # The path only: a query string may carry what must not be logged.
            http_request = {
                "requestMethod": request.method,
                "requestUrl": request.url.path,
                "status": status,
                "latency": f"{latency:.6f}s",
                "remoteIp": request.client.host if request.client else None,
                "userAgent": request.headers.get("user-agent"),
                "protocol": f"HTTP/{request.scope.get('http_version', '1.1')}",
            }
            access.log(
                _access_severity(status),
                "%s %s %d",
                request.method,
                request.url.path,
                status,
                extra={"httpRequest": http_request},
            )
            _trace.reset(token)

    # Outermost, so the request id is set before the access log and every other middleware runs.
    app.add_middleware(CorrelationIdMiddleware, header_name="X-Request-ID")
