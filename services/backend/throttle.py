"""Failed-login throttling per account and per client address, with exponential backoff.

The counts live in the document store's expiring counters, so every process and revision shares them:
an attacker gains nothing by spreading attempts over instances. The account key is a hash of the email
as typed (normalised), whether or not such an account exists, so an unknown email and a wrong password
are throttled — and answered — the same way. A successful login clears the account's count, not the
client's, so owning one account does not buy unlimited guesses at others.

ASVS 2.2.1: after ``login_failures_per_*`` failures, each further failure blocks that key for
``base × 2^(extra failures - 1)`` seconds (capped at ``login_backoff_max_seconds``); the count is
forgotten once ``login_failure_window_seconds`` pass without a failure.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.backend.refusals import Refusals
from services.backend.settings import BackendSettings
from services.common.docstore import Counter, DocStore
from services.common.forwarded import scope_client, subscriber

COUNTERS = "login_failures"
log = logging.getLogger(__name__)


LOGIN_PATH = "/api/v1/auth/login"
# A login body is an email and a password; anything bigger goes to the route unexamined.
MAX_GATED_BODY_BYTES = 4096


def normalized_email(email: str) -> str:
    """The form accounts are stored and throttled under."""
    return email.strip().lower()


class TooManyFailures(Exception):
    """Logins for this account or client are blocked for ``retry_after`` more seconds."""

    def __init__(self, retry_after: int):
        super().__init__(f"too many failed logins; retry after {retry_after} s")
        self.retry_after = retry_after

    def response(self) -> JSONResponse:
        # The same for a known and an unknown email: it never says whether the account exists.
        return JSONResponse(
            {"detail": "too many failed logins; retry later"},
            status_code=429,
            headers={"Retry-After": str(self.retry_after)},
        )


def account_key(email: str) -> str:
    # Hashed: the counters never hold the addresses attackers try.
    return "account:" + hashlib.sha256(email.encode()).hexdigest()


def client_key(address: str) -> str:
    return f"client:{subscriber(address)}"


def loggable(key: str) -> str:
    """A counter key as logs show it: the account hash shortened (enough to match a known email's)."""
    kind, _, value = key.partition(":")
    return f"{kind}:{value[:16]}" if kind == "account" else key


@dataclass(frozen=True)
class LoginThrottle:
    """One per process: it remembers the blocks the store decided (``refusals``) for as long as they run."""

    settings: BackendSettings
    store: DocStore
    refused: Refusals = field(default_factory=Refusals)

    def _limits(self, email: str | None, address: str) -> list[tuple[str, int]]:
        """The keys an attempt counts against: the client's, and the account's when there is one."""
        s = self.settings
        limits = [(client_key(address), s.login_failures_per_client)]
        if email is not None:
            limits.insert(0, (account_key(email), s.login_failures_per_account))
        return limits

    def _blocked_for(self, counter: Counter | None, allowed: int, now: float) -> float:
        if counter is None or counter.value <= allowed:
            return 0.0
        s = self.settings
        backoff = min(
            s.login_backoff_base_seconds * 2 ** (counter.value - allowed - 1), s.login_backoff_max_seconds
        )
        return max(0.0, counter.updated_at + backoff - now)

    async def check(self, email: str | None, address: str) -> None:
        """Raise :class:`TooManyFailures` while the account (None: none) or the client is in its backoff.

        A block this process already saw is refused from memory (no store read, no worker thread): a
        block only ends when its time runs out, since the success that clears a count cannot pass it."""
        blocked = self.known_block(email, address)
        if blocked is not None:
            raise blocked
        await run_in_threadpool(self._check_store, self._limits(email, address))

    def known_block(self, email: str | None, address: str) -> TooManyFailures | None:
        """The block this process already saw for the account or the client, if one still runs."""
        known = max(self.refused.remaining(key) for key, _ in self._limits(email, address))
        return TooManyFailures(max(1, math.ceil(known))) if known > 0 else None

    def _check_store(self, limits: list[tuple[str, int]]) -> None:
        counters = self.store.counters(COUNTERS)
        now = time.time()
        wait = 0.0
        for key, allowed in limits:
            blocked = self._blocked_for(counters.get(key), allowed, now)
            if blocked > 0:
                self.refused.refuse(key, now + blocked)
                wait = max(wait, blocked)
        if wait > 0:
            raise TooManyFailures(max(1, math.ceil(wait)))

    def failed(self, email: str | None, address: str) -> None:
        """Count a failure against the account (None: none, as for a taken email at registration) and the
        client; a count past its allowance starts a block, logged as a security event (ASVS 7.2)."""
        counters = self.store.counters(COUNTERS)
        window = self.settings.login_failure_window_seconds
        now = time.time()
        for key, allowed in self._limits(email, address):
            # extend: the count lives as long as failures keep coming, so backoff keeps doubling.
            counter = counters.incr(key, 1, window, extend=True)
            blocked = self._blocked_for(counter, allowed, now)
            if blocked > 0:
                log.warning(
                    "login blocked for %s after %d failures: %.0f s",
                    loggable(key),
                    counter.value,
                    blocked,
                    extra={
                        "security_event": "login_blocked",
                        "key": loggable(key),
                        "failures": counter.value,
                        "blocked_seconds": round(blocked, 1),
                    },
                )

    def succeeded(self, email: str) -> None:
        self.store.counters(COUNTERS).clear(account_key(email))


def _email_in(body: bytes) -> str | None:
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    email = payload.get("email") if isinstance(payload, dict) else None
    return email if isinstance(email, str) else None


class KnownBlocksGate:
    """Pure ASGI, on ``POST /api/v1/auth/login`` only: an attempt on an account, or from a client, whose
    block this process already saw is answered here with the throttle's 429, before FastAPI routes it,
    validates its body and solves its dependencies (most of what such a refusal cost). Anything else (a
    body over 4 KiB, not JSON, without an email, or no known block) goes on with its body replayed."""

    def __init__(self, app: ASGIApp, throttle: Callable[[], LoginThrottle | None]):
        self.app = app
        self.throttle = throttle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gated = scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == LOGIN_PATH
        throttle = self.throttle() if gated else None
        if throttle is None:
            await self.app(scope, receive, send)
            return
        received: list[Message] = []
        size = 0
        while True:
            message = await receive()
            received.append(message)
            size += len(message.get("body", b""))
            if not message.get("more_body", False) or size > MAX_GATED_BODY_BYTES:
                break
        last = received[-1]
        if last["type"] == "http.request" and not last.get("more_body", False):
            email = _email_in(b"".join(message.get("body", b"") for message in received))
            client = scope_client(scope)
            blocked = throttle.known_block(normalized_email(email), client) if email is not None else None
            if blocked is not None:
                await blocked.response()(scope, receive, send)
                return

        async def replay() -> Message:
            return received.pop(0) if received else await receive()

        await self.app(scope, replay, send)
