"""General per-client rate limits on ``/api`` (``ETHIX_RATE_LIMIT_*``), counted with ``limits``.

The counters are shared by every process: by default they live in the document store (the same
expiring counters as the failed-login throttle), or in any ``limits`` storage named by
``ETHIX_RATE_LIMIT_STORAGE_URL``. Fixed windows per client (its address; for IPv6 its /64); auth
routes count against both the default and the auth limit. Should the counter storage fail, requests
pass (logged as errors): the login throttle, which fails closed, is what guards the passwords.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from limits import RateLimitItem, parse_many
from limits.storage import Storage, storage_from_string
from limits.strategies import FixedWindowRateLimiter
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from services.backend.refusals import Refusals
from services.backend.settings import BackendSettings
from services.common.docstore import DocStore, DocStoreError
from services.common.forwarded import scope_client, subscriber

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
        self.refused = Refusals()

    async def hit(self, path: str, client: str) -> int:
        """Count one request; 0 when it may pass, else the seconds until the client may retry.

        A client the storage has refused stays refused until its window ends (fixed windows never
        reopen early), so its further requests are refused from memory: a flood costs no storage
        round trip and no worker thread per request. Nothing is ever admitted from memory."""
        key = f"auth:{client}" if path.startswith(AUTH_PREFIX) else f"api:{client}"
        known = self.refused.remaining(key)
        if known > 0:
            return max(1, math.ceil(known))
        return await run_in_threadpool(self._hit, path, client, key)

    def _hit(self, path: str, client: str, key: str) -> int:
        for item in self.auth if path.startswith(AUTH_PREFIX) else self.default:
            if not self.limiter.hit(item, "client", client):
                reset, _ = self.limiter.get_window_stats(item, "client", client)
                self.refused.refuse(key, reset)
                return max(1, math.ceil(reset - time.time()))
        return 0


class RateLimit:
    """Pure ASGI: refuse ``/api`` requests over the limits with 429 + ``Retry-After``."""

    def __init__(self, app: ASGIApp, limits: Callable[[], RateLimits | None]):
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        active = self.limits() if scope["type"] == "http" else None
        path = scope.get("path", "")
        if active is None or not path.startswith("/api/"):
            await self.app(scope, receive, send)
            return
        try:
            wait = await active.hit(path, subscriber(scope_client(scope)))
        except Exception:
            log.exception("rate-limit storage failed; request let through")
            wait = 0
        if wait:
            refusal = JSONResponse(
                {"detail": f"rate limit exceeded; retry after {wait} s"},
                status_code=429,
                headers={"Retry-After": str(wait)},
            )
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)


def install(app: FastAPI, limits: Callable[[], RateLimits | None]) -> None:
    """Rate-limit ``/api``; ``limits()`` is None when the limits are off."""
    app.add_middleware(RateLimit, limits=limits)
