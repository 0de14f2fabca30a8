"""Bounded password hashing, the failed-login throttle and the general per-client rate limits, through the
real app (in-process ASGI client) on a real SQLite document store."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import shutil
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from limits.strategies import FixedWindowRateLimiter

from services.backend import ratelimit
from services.backend.app import create_app
from services.backend.ratelimit import DocStoreStorage
from services.common.docstore import SqliteStore

from .conftest import MakeSettings, register_and_login

LOGIN = "/api/v1/auth/login"
REGISTER = "/api/v1/auth/register"


def _login(client: TestClient, email: str, password: str) -> httpx.Response:
    return client.post(LOGIN, json={"email": email, "password": password})


@pytest.fixture
def throttled(make_settings: MakeSettings) -> Iterator[TestClient]:
    settings = make_settings(
        login_failures_per_account=3,
        login_failures_per_client=100,
        login_backoff_base_seconds=0.5,
        login_backoff_max_seconds=5,
        login_failure_window_seconds=60,
    )
    with TestClient(create_app(settings)) as client:
        yield client


def test_excess_concurrent_hashing_is_refused_at_once_with_429(make_settings: MakeSettings) -> None:
    """One hashing slot, four registers at once: one is hashed, the others get 429 before it finishes."""

    async def scenario() -> list[tuple[int, str | None]]:
        settings = make_settings(
            password_hash_concurrency=1, password_hash_memory_kib=32_768, password_hash_time_cost=2
        )
        app = create_app(settings)
        finished: list[tuple[int, str | None]] = []
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:

                async def register(i: int) -> None:
                    body = {"email": f"u{i}@example.com", "password": "p" * 12}
                    response = await http.post("/api/v1/auth/register", json=body)
                    finished.append((response.status_code, response.headers.get("retry-after")))

                await asyncio.gather(*(register(i) for i in range(4)))
        return finished

    finished = asyncio.run(scenario())
    assert sorted(status for status, _ in finished) == [201, 429, 429, 429]
    # Refused at once, not queued: every 429 came back before the one hash finished.
    assert [status for status, _ in finished] == [429, 429, 429, 201]
    assert all(retry == "1" for status, retry in finished if status == 429)


def test_failed_logins_back_off_exponentially_and_a_success_resets(throttled: TestClient) -> None:
    register_and_login(throttled, "erin@example.com", "right-password")
    assert [_login(throttled, "erin@example.com", "wrong-pass").status_code for _ in range(4)] == [401] * 4
    blocked = _login(throttled, "erin@example.com", "right-password")  # even the right password waits
    assert blocked.status_code == 429
    assert blocked.json() == {"detail": "too many failed logins; retry later"}
    assert int(blocked.headers["retry-after"]) >= 1
    time.sleep(0.55)  # the first block: 0.5 s
    assert _login(throttled, "erin@example.com", "wrong-pass").status_code == 401
    assert _login(throttled, "erin@example.com", "right-password").status_code == 429
    time.sleep(1.05)  # the next block doubled: 1 s
    assert _login(throttled, "erin@example.com", "right-password").status_code == 200
    # The success cleared the account's count: three more mistakes are allowed again.
    assert [_login(throttled, "erin@example.com", "wrong-pass").status_code for _ in range(4)] == [401] * 4
    assert _login(throttled, "erin@example.com", "wrong-pass").status_code == 429


def test_a_blocked_login_opens_no_session_and_the_login_after_the_backoff_gets_a_working_one(
    throttled: TestClient,
) -> None:
    """Login keeps both sides: the throttle before the password check, a server-side session after it."""
    register_and_login(throttled, "gus@example.com", "right-password")
    sessions = throttled.app.state.backend.store["sessions"]  # type: ignore[attr-defined]
    assert sessions.count({}) == 1
    assert [_login(throttled, "gus@example.com", "wrong-pass").status_code for _ in range(4)] == [401] * 4
    assert _login(throttled, "gus@example.com", "right-password").status_code == 429
    assert sessions.count({}) == 1  # neither the failures nor the blocked success opened one
    time.sleep(0.55)  # the first block: 0.5 s
    granted = _login(throttled, "gus@example.com", "right-password")
    assert granted.status_code == 200 and sessions.count({}) == 2
    refreshed = throttled.post(
        "/api/v1/auth/refresh", json={"refresh_token": granted.json()["refresh_token"]}
    )
    assert refreshed.status_code == 200
    me = throttled.get(
        "/api/v1/users/me", headers={"Authorization": f"Bearer {refreshed.json()['access_token']}"}
    )
    assert me.json()["email"] == "gus@example.com"


def test_unknown_email_and_wrong_password_are_throttled_and_answered_alike(
    make_settings: MakeSettings,
) -> None:
    settings = make_settings(login_failures_per_account=3, login_backoff_base_seconds=30)
    with TestClient(create_app(settings)) as client:
        register_and_login(client, "fay@example.com", "right-password")

        def attempts(email: str) -> list[tuple[int, Any, str | None]]:
            answers = [_login(client, email, "wrong-pass") for _ in range(6)]
            return [(a.status_code, a.json(), a.headers.get("retry-after")) for a in answers]

        known, unknown = attempts("fay@example.com"), attempts("nobody@example.com")
    assert known == unknown
    assert [status for status, _, _ in known] == [401, 401, 401, 401, 429, 429]


def test_one_client_guessing_many_accounts_is_throttled(make_settings: MakeSettings) -> None:
    settings = make_settings(login_failures_per_client=4, login_backoff_base_seconds=30)
    with TestClient(create_app(settings)) as client:
        statuses = [_login(client, f"user{i}@example.com", "wrong-pass").status_code for i in range(6)]
    assert statuses == [401, 401, 401, 401, 401, 429]


def test_throttle_counts_are_shared_by_two_apps_on_one_store(make_settings: MakeSettings) -> None:
    """Two app instances (two revisions' worth) on the same SQLite file see each other's failures."""
    settings = make_settings(login_failures_per_account=2, login_backoff_base_seconds=30)
    with TestClient(create_app(settings)) as first, TestClient(create_app(settings)) as second:
        assert _login(first, "gus@example.com", "wrong-pass").status_code == 401
        assert _login(second, "gus@example.com", "wrong-pass").status_code == 401
        assert _login(first, "gus@example.com", "wrong-pass").status_code == 401
        assert _login(second, "gus@example.com", "wrong-pass").status_code == 429


def test_rate_limits_are_off_by_default_in_development(client: TestClient) -> None:
    statuses = {client.get("/api/v1/users/me").status_code for _ in range(30)}
    assert statuses == {401}


def test_per_client_rate_limits_answer_429_with_retry_after(make_settings: MakeSettings) -> None:
    settings = make_settings(
        rate_limit_enabled=True, rate_limit_default="5/minute", rate_limit_auth="2/minute"
    )

    async def scenario() -> dict[str, list[int]]:
        app = create_app(settings)
        seen: dict[str, list[int]] = {}
        async with app.router.lifespan_context(app):
            for address in ("192.0.2.1", "192.0.2.2"):
                transport = httpx.ASGITransport(app=app, client=(address, 40000))
                async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
                    statuses = [(await http.get("/api/v1/users/me")).status_code for _ in range(6)]
                    limited = await http.get("/api/v1/users/me")
                    assert limited.json()["detail"].startswith("rate limit exceeded")
                    assert 1 <= int(limited.headers["retry-after"]) <= 60
                    health = [(await http.get("/health/liveness")).status_code for _ in range(8)]
                    assert set(health) == {200}  # probes are never limited
                    seen[address] = statuses
            transport = httpx.ASGITransport(app=app, client=("192.0.2.3", 40000))
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
                body = {"email": "x@example.com", "password": "wrong-pass"}
                seen["auth"] = [(await http.post(LOGIN, json=body)).status_code for _ in range(3)]
        return seen

    seen = asyncio.run(scenario())
    # Each client has its own budget of 5; the auth routes have a tighter one of 2.
    assert seen["192.0.2.1"] == seen["192.0.2.2"] == [401, 401, 401, 401, 401, 429]
    assert seen["auth"] == [401, 401, 429]


FRONT_END = ("169.254.8.1", 40000)  # the peer every request comes from on Cloud Run


def _behind_front_end(settings: Any, requests: list[tuple[str, str, str]]) -> list[int]:
    """Send (method, path, X-Forwarded-For) through the real app, all from the front end's address."""

    async def scenario() -> list[int]:
        app = create_app(settings)
        statuses = []
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, client=FRONT_END)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
                for number, (method, path, forwarded) in enumerate(requests):
                    body = {"email": f"user{number}@example.com", "password": "wrong-pass"}
                    headers = {"X-Forwarded-For": forwarded}
                    answer = await http.request(
                        method, path, headers=headers, json=body if method == "POST" else None
                    )
                    statuses.append(answer.status_code)
        return statuses

    return asyncio.run(scenario())


def test_a_forged_leftmost_forwarded_entry_does_not_dodge_the_rate_limit(make_settings: MakeSettings) -> None:
    settings = make_settings(
        trusted_proxy_hops=1,
        rate_limit_enabled=True,
        rate_limit_default="5/minute",
        rate_limit_auth="100/minute",
    )
    # A new made-up address on every request; the front end appended the real one after it.
    forged = [("GET", "/api/v1/users/me", f"198.51.100.{i}, 203.0.113.7") for i in range(7)]
    other = [("GET", "/api/v1/users/me", "203.0.113.8")]
    assert _behind_front_end(settings, forged + other) == [401] * 5 + [429, 429] + [401]


def test_a_forged_leftmost_forwarded_entry_does_not_dodge_the_login_throttle(
    make_settings: MakeSettings,
) -> None:
    settings = make_settings(trusted_proxy_hops=1, login_failures_per_client=3, login_backoff_base_seconds=30)
    forged = [("POST", LOGIN, f"198.51.100.{i}, 203.0.113.7") for i in range(5)]
    other = [("POST", LOGIN, "203.0.113.8")]
    # Three failures allowed, the fourth starts the block; the other client is untouched.
    assert _behind_front_end(settings, forged + other) == [401, 401, 401, 401, 429, 401]


def test_an_ipv6_client_rotating_addresses_in_its_64_is_one_client_to_the_limits(
    make_settings: MakeSettings,
) -> None:
    settings = make_settings(
        trusted_proxy_hops=1,
        login_failures_per_client=3,
        login_backoff_base_seconds=30,
        rate_limit_enabled=True,
        rate_limit_default="100/minute",
        rate_limit_auth="6/minute",
    )
    rotating = [("POST", LOGIN, f"2001:db8:1:2::{i:x}") for i in range(1, 6)]
    # The throttle blocks the /64 after three failures; the rate limit refuses its seventh auth request.
    rotating += [("POST", LOGIN, f"2001:db8:1:2:{i:x}::1") for i in range(1, 3)]
    neighbour = [("POST", LOGIN, "2001:db8:1:3::1")]
    assert _behind_front_end(settings, rotating + neighbour) == [401, 401, 401, 401, 429, 429, 429, 401]


def test_without_trusted_proxies_the_forwarded_header_is_ignored(make_settings: MakeSettings) -> None:
    settings = make_settings(login_failures_per_client=3, login_backoff_base_seconds=30)
    # Each request names another client, but nothing vouches for the header: they are all the peer.
    requests = [("POST", LOGIN, f"203.0.113.{i}") for i in range(5)]
    assert _behind_front_end(settings, requests) == [401, 401, 401, 401, 429]


@pytest.fixture
def gone_store(tmp_path: Path) -> SqliteStore:
    """A real SQLite store whose directory was removed after it opened: every call fails."""
    store = SqliteStore(tmp_path / "gone" / "ethix.db")
    store.counters(ratelimit.COUNTERS)
    store.close()
    shutil.rmtree(tmp_path / "gone")
    return store


def test_a_block_already_seen_is_refused_without_the_store(
    make_settings: MakeSettings, gone_store: SqliteStore
) -> None:
    """Once this process has seen a block, the flood it refuses costs no store round trip: the store can
    even be gone. What it has not seen still goes to the store, which fails closed."""
    settings = make_settings(login_failures_per_account=1, login_backoff_base_seconds=30)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        answers = [_login(client, "ivy@example.com", "wrong-pass") for _ in range(3)]
        assert [answer.status_code for answer in answers] == [401, 401, 429]  # the store decided
        backend = client.app.state.backend  # type: ignore[attr-defined]
        backend.throttle = dataclasses.replace(backend.throttle, store=gone_store)
        remembered = _login(client, "ivy@example.com", "wrong-pass")  # refused before the route runs
        assert remembered.status_code == 429 and remembered.json() == answers[2].json()
        assert 1 <= int(remembered.headers["retry-after"]) <= int(answers[2].headers["retry-after"])
        assert _login(client, "jo@example.com", "wrong-pass").status_code == 500


def test_a_client_over_its_rate_limit_is_refused_without_the_storage(
    make_settings: MakeSettings, gone_store: SqliteStore
) -> None:
    settings = make_settings(
        rate_limit_enabled=True, rate_limit_default="2/minute", rate_limit_auth="100/minute"
    )
    with TestClient(create_app(settings)) as client:
        assert [client.get("/api/v1/users/me").status_code for _ in range(3)] == [401, 401, 429]
        limits = client.app.state.rate_limits  # type: ignore[attr-defined]
        limits.limiter = FixedWindowRateLimiter(DocStoreStorage(gone_store))
        refused = client.get("/api/v1/users/me")
        assert refused.status_code == 429 and 1 <= int(refused.headers["retry-after"]) <= 60
        # A route the memory knows nothing about goes to the storage, which fails open (and logs it).
        assert (
            client.post(LOGIN, json={"email": "k@example.com", "password": "wrong-pass"}).status_code == 401
        )


def test_logins_the_gate_reads_reach_the_route_as_sent(make_settings: MakeSettings) -> None:
    """The gate in front of the login route reads the body to look for a known block; whatever it read
    is replayed: a body sent in pieces still logs in, one over its 4 KiB still meets the validation."""
    password = "correct-horse"

    async def scenario() -> tuple[int, int, int]:
        app = create_app(make_settings())
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
                body = {"email": "kim@example.com", "password": password}
                registered = (await http.post("/api/v1/auth/register", json=body)).status_code
                raw = json.dumps(body).encode()

                async def pieces() -> AsyncIterator[bytes]:
                    for start in range(0, len(raw), 7):
                        yield raw[start : start + 7]

                chunked = await http.post(
                    LOGIN, content=pieces(), headers={"Content-Type": "application/json"}
                )
                oversized = await http.post(LOGIN, json={**body, "password": "p" * 5000})
                return registered, chunked.status_code, oversized.status_code

    assert asyncio.run(scenario()) == (201, 200, 422)


def test_probing_emails_at_registration_is_throttled_like_guessing_passwords(
    make_settings: MakeSettings,
) -> None:
    """A 409 tells that an email has an account: each one counts as a failure for the client (never for
    the account, whose owner must not be locked out by others' registrations)."""
    settings = make_settings(login_failures_per_client=3, login_backoff_base_seconds=30)
    taken = {"email": "lee@example.com", "password": "correct-horse"}

    async def scenario() -> dict[str, list[int]]:
        app = create_app(settings)
        seen: dict[str, list[int]] = {}
        async with app.router.lifespan_context(app):
            for name, address in (("prober", "192.0.2.1"), ("other", "192.0.2.2")):
                transport = httpx.ASGITransport(app=app, client=(address, 40000))
                async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
                    attempts = 6 if name == "prober" else 1
                    statuses = [(await http.post(REGISTER, json=taken)).status_code for _ in range(attempts)]
                    statuses.append((await http.post(LOGIN, json=taken)).status_code)
                    seen[name] = statuses
        return seen

    seen = asyncio.run(scenario())
    # 201, then three taken-email failures allowed, the fourth starts the client's block: register and
    # login are refused for that client alike; the account's owner, elsewhere, logs in.
    assert seen["prober"] == [201, 409, 409, 409, 409, 429, 429]
    assert seen["other"] == [409, 200]


def test_authentication_decisions_are_logged_without_the_email(
    throttled: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    """ASVS 7.2.1: failures, the block they start and successes are security events; the account shows
    only as the hash its counter uses, never as the email."""
    email = "mia@example.com"
    register_and_login(throttled, email, "right-password")
    with caplog.at_level(logging.INFO):
        for _ in range(4):
            _login(throttled, email, "wrong-pass")
    events = [record for record in caplog.records if hasattr(record, "security_event")]
    assert [record.security_event for record in events] == (  # type: ignore[attr-defined]
        ["login_failed"] * 3 + ["login_blocked", "login_failed"]
    )
    account = events[0].account  # type: ignore[attr-defined]
    assert account == "account:" + hashlib.sha256(email.encode()).hexdigest()[:16]
    assert events[3].key == account and events[3].failures == 4  # type: ignore[attr-defined]
    assert events[0].client == "testclient"  # type: ignore[attr-defined]
    for record in caplog.records:
        assert email not in record.getMessage() and email not in str(record.__dict__)
    time.sleep(0.55)  # the block: 0.5 s
    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert _login(throttled, email, "right-password").status_code == 200
    [succeeded] = [record for record in caplog.records if hasattr(record, "security_event")]
    assert succeeded.security_event == "login_succeeded"  # type: ignore[attr-defined]
