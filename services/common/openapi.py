"""What every operation can answer besides its own responses, written into the OpenAPI document.

Starlette answers 400 itself when a JSON or multipart body cannot be parsed, before any route runs, and
the rate limiter answers 429 on ``/api`` routes: FastAPI's generated document knows neither (issue #8),
so clients and schemathesis' status-code check would meet undocumented statuses. And a 405's ``Allow``
named only the methods of the first route on the path (``GET`` for ``/api/v1/users/me``, which also
takes ``DELETE``): it now names every method the path's routes take, as the document does.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exception_handlers import http_exception_handler
from starlette.exceptions import HTTPException

_DETAIL = {
    "type": "object",
    "properties": {"detail": {"type": "string"}},
    "required": ["detail"],
}
UNPARSABLE = {
    "description": "The body could not be parsed (malformed JSON or multipart)",
    "content": {"application/json": {"schema": _DETAIL}},
}
RATE_LIMITED = {
    "description": "Rate limit exceeded; the Retry-After header says when to retry",
    "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait"}},
    "content": {"application/json": {"schema": _DETAIL}},
}


def install(app: FastAPI, *, rate_limited_prefix: str | None = None) -> None:
    """Add 400 to operations with a body and 429 to those under ``rate_limited_prefix``."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        cached = app.openapi_schema is not None
        document = generate()  # FastAPI caches it in app.openapi_schema: amend it once
        if not cached:
            for path, operations in document.get("paths", {}).items():
                for operation in operations.values():
                    responses = operation.setdefault("responses", {})
                    if "requestBody" in operation:
                        responses.setdefault("400", UNPARSABLE)
                    if rate_limited_prefix and path.startswith(rate_limited_prefix):
                        responses.setdefault("429", RATE_LIMITED)
        return document

    app.openapi = openapi  # type: ignore[method-assign]

    async def allow_every_method(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 405:
            # The document is the one list of what each path takes (routers nest, the document is flat).
            methods = {
                method.upper()
                for template, operations in openapi()["paths"].items()
                if re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", template), request.url.path)
                for method in operations
            }
            if methods:
                exc.headers = {**(exc.headers or {}), "Allow": ", ".join(sorted(methods))}
        return await http_exception_handler(request, exc)

    app.add_exception_handler(HTTPException, allow_every_method)
