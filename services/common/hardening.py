"""CORS allow-list and standard security headers, installed the same way in both services.

CORS: only the origins in ``ETHIX_CORS_ORIGINS`` (none by default, ``*`` refused in production); no
credentials mode, since the API takes bearer tokens, not cookies. Security headers go on every answer
(OWASP Secure Headers for APIs); the interactive docs get a CSP that lets their assets load.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware

from services.common.settings import ServiceSettings

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Strict-Transport-Security": "max-age=63072000; includeSubDomains",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
API_CSP = "default-src 'none'; frame-ancestors 'none'"
# Swagger UI and ReDoc load scripts and styles from a CDN and run an inline bootstrap script.
DOCS_CSP = (
    "default-src 'none'; frame-ancestors 'none'; img-src 'self' data: https:; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; connect-src 'self'"
)
DOCS_PATHS = ("/docs", "/redoc")
EXPOSED_HEADERS = ["Retry-After", "X-Request-ID", "X-Ethix-Revision"]


def install(app: FastAPI, settings: ServiceSettings) -> None:
    """CORS (when origins are configured) inside, security headers outside: every answer gets them."""
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=EXPOSED_HEADERS,
            max_age=600,
        )

    @app.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        docs = request.url.path.startswith(DOCS_PATHS)
        response.headers["Content-Security-Policy"] = DOCS_CSP if docs else API_CSP
        if request.url.path.startswith("/api/"):
            # ASVS 8.2.1: answers with personal data and tokens are never cached.
            response.headers.setdefault("Cache-Control", "no-store")
        return response
