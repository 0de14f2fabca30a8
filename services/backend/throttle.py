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
import math
import time
from dataclasses import dataclass

from services.backend.settings import BackendSettings
from services.common.docstore import Counter, DocStore

COUNTERS = "login_failures"


class TooManyFailures(Exception):
    """Logins for this account or client are blocked for ``retry_after`` more seconds."""

    def __init__(self, retry_after: int):
        super().__init__(f"too many failed logins; retry after {retry_after} s")
        self.retry_after = retry_after


def account_key(email: str) -> str:
    # Hashed: the counters never hold the addresses attackers try.
    return "account:" + hashlib.sha256(email.encode()).hexdigest()


def client_key(address: str) -> str:
    return f"client:{address}"


@dataclass(frozen=True)
class LoginThrottle:
    settings: BackendSettings
    store: DocStore

    def _limits(self, email: str, address: str) -> list[tuple[str, int]]:
        s = self.settings
        return [
            (account_key(email), s.login_failures_per_account),
            (client_key(address), s.login_failures_per_client),
        ]

    def _blocked_for(self, counter: Counter | None, allowed: int, now: float) -> float:
        if counter is None or counter.value <= allowed:
            return 0.0
        s = self.settings
        backoff = min(
            s.login_backoff_base_seconds * 2 ** (counter.value - allowed - 1), s.login_backoff_max_seconds
        )
        return max(0.0, counter.updated_at + backoff - now)

    def check(self, email: str, address: str) -> None:
        """Raise :class:`TooManyFailures` while the account or the client is in its backoff."""
        counters = self.store.counters(COUNTERS)
        now = time.time()
        wait = max(
            self._blocked_for(counters.get(key), allowed, now)
            for key, allowed in self._limits(email, address)
        )
        if wait > 0:
            raise TooManyFailures(max(1, math.ceil(wait)))

    def failed(self, email: str, address: str) -> None:
        counters = self.store.counters(COUNTERS)
        window = self.settings.login_failure_window_seconds
        for key, _ in self._limits(email, address):
            # extend: the count lives as long as failures keep coming, so backoff keeps doubling.
            counters.incr(key, 1, window, extend=True)

    def succeeded(self, email: str) -> None:
        self.store.counters(COUNTERS).clear(account_key(email))
