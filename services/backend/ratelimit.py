"""General per-client rate limits on ``/api`` (``ETHIX_RATE_LIMIT_*``), counted with ``limits``.

The counters are shared by every process: by default they live in the document store (the same
expiring counters as the failed-login throttle), or in any ``limits`` storage named by
``ETHIX_RATE_LIMIT_STORAGE_URL``. Fixed windows per client address; auth routes count against both the
default and the auth limit. Should the counter storage fail, requests pass (logged as errors): the
login throttle, which fails closed, is what guards the passwords.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from limits import RateLimitItem, parse_many
from limits.storage import Storage, storage_from_string
from limits.strategies import FixedWindowRateLimiter
from starlette.concurrency import run_in_threadpool

from services.backend.settings import BackendSettings
from services.common.docstore import DocStore, DocStoreError

AUTH_PREFIX = "/api/v1/auth/"
COUNTERS = "rate_limits"
log = logging.getLogger(__name__)


class DocStoreStorage(Storage):
    """A ``limits`` storage over the document store's expiring counters."""

    STORAGE_SCHEME = None  # built from an open DocStore, not from a URI

    def __init__(self, store: DocStore):
        super().__init__()
        self.store = store
        self.counters = store.counters(COUNTERS)

    @property
    def base_exceptions(self) -> type[Exception]:
        return DocStoreError

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        return self.counters.incr(key, amount, expiry).value

    def get(self, key: str) -> int:
        counter = self.counters.get(key)
        return counter.value if counter else 0

    def get_expiry(self, key: str) -> float:
        counter = self.counters.get(key)
        return counter.expires_at if counter else time.time()

    def check(self) -> bool:
        try:
            self.store.ping()
        except DocStoreError:
            return False
        return True

    def reset(self) -> int | None:
        return self.counters.clear_all()

    def clear(self, key: str) -> None:
        self.counters.clear(key)


class RateLimits:
    def __init__(self, settings: BackendSettings, store: DocStore):
        assert settings.rate_limit_default and settings.rate_limit_auth  # the settings enforce both
        url = settings.rate_limit_storage_url
        storage = DocStoreStorage(store) if url is None else storage_from_string(url.get_secret_value())
        self.limiter = FixedWindowRateLimiter(storage)
        self.default: list[RateLimitItem] = parse_many(settings.rate_limit_default)
        self.auth: list[RateLimitItem] = self.default + parse_many(settings.rate_limit_auth)

    def hit(self, path: str, client: str) -> int:
        """Count one request; 0 when it may pass, else the seconds until the client may retry."""
        for item in self.auth if path.startswith(AUTH_PREFIX) else self.default:
            if not self.limiter.hit(item, "client", client):
                reset, _ = self.limiter.get_window_stats(item, "client", client)
                return max(1, math.ceil(reset - time.time()))
        return 0


def install(app: FastAPI, limits: Callable[[], RateLimits | None]) -> None:
    """Refuse ``/api`` requests over the limits with 429 + ``Retry-After``; ``limits()`` is None when off."""

    @app.middleware("http")
    async def rate_limit(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        active = limits()
        path = request.url.path
        if active is None or not path.startswith("/api/"):
            return await call_next(request)
        client = request.client.host if request.client else "unknown"
        try:
            wait = await run_in_threadpool(active.hit, path, client)
        except Exception:
            log.exception("rate-limit storage failed; request let through")
            wait = 0
        if wait:
            return JSONResponse(
                {"detail": f"rate limit exceeded; retry after {wait} s"},
                status_code=429,
                headers={"Retry-After": str(wait)},
            )
        return await call_next(request)
