"""Bounded password hashing, the failed-login throttle and the general per-client rate limits, through the
real app (in-process ASGI client) on a real SQLite document store."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from services.backend.app import create_app

from .conftest import MakeSettings, register_and_login

LOGIN = "/api/v1/auth/login"


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
