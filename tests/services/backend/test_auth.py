"""Register, login, bearer tokens and key rotation through the real app (in-process ASGI client)."""

from __future__ import annotations

import asyncio
import time

import httpx
import jwt
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from services.backend.app import create_app
from services.backend.settings import DEV_JWT_SECRET

from .conftest import MakeSettings, register_and_login

OLD = "old-key-" + "o" * 40
NEW = "new-key-" + "n" * 40


def test_register_then_login_issues_a_bearer_token_with_kid(client: TestClient) -> None:
    created = client.post(
        "/api/v1/auth/register", json={"email": "Alice@Example.com", "password": "correct-horse"}
    )
    assert created.status_code == 201
    assert created.json()["email"] == "alice@example.com" and created.json()["id"]
    login = client.post(
        "/api/v1/auth/login", json={"email": "alice@example.com", "password": "correct-horse"}
    )
    assert login.status_code == 200
    body = login.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 3600
    assert jwt.get_unverified_header(body["access_token"])["kid"] == "dev"
    me = client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200
    assert me.json()["id"] == created.json()["id"] and me.json()["email"] == "alice@example.com"
    assert me.json()["created_at"]


def test_register_rejects_taken_email_case_insensitively(client: TestClient) -> None:
    register_and_login(client, "bob@example.com")
    again = client.post(
        "/api/v1/auth/register", json={"email": "BOB@example.com", "password": "another-pass"}
    )
    assert again.status_code == 409
    assert again.json()["detail"] == "email already registered"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "carol@example.com", "password": "short"}, "password"),
        ({"email": "not-an-email", "password": "long-enough"}, "email"),
        ({"email": "carol@example.com"}, "password"),
    ],
)
def test_register_validates_input(client: TestClient, body: dict[str, str], field: str) -> None:
    response = client.post("/api/v1/auth/register", json=body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][-1] == field


def test_login_failures_are_401_without_saying_which_part_was_wrong(client: TestClient) -> None:
    register_and_login(client, "dave@example.com", "right-password")
    wrong = client.post(
        "/api/v1/auth/login", json={"email": "dave@example.com", "password": "wrong-password"}
    )
    unknown = client.post("/api/v1/auth/login", json={"email": "nobody@example.com", "password": "whatever1"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json() == {"detail": "wrong email or password"}


@pytest.mark.parametrize(
    ("header", "detail"),
    [
        (None, "missing bearer token"),
        ("Bearer not.a.jwt", "malformed token"),
        ("Basic dXNlcjpwYXNz", "missing bearer token"),
    ],
)
def test_protected_routes_need_a_valid_token(client: TestClient, header: str | None, detail: str) -> None:
    headers = {"Authorization": header} if header else {}
    for method, path in [
        ("GET", "/api/v1/users/me"),
        ("GET", "/api/v1/datasets"),
        ("GET", "/api/v1/analyses/x"),
    ]:
        response = client.request(method, path, headers=headers)
        assert response.status_code == 401, (method, path)
        assert response.json()["detail"] == detail
        assert response.headers["WWW-Authenticate"] == "Bearer"


def test_expired_unknown_kid_and_bad_signature_are_401(client: TestClient) -> None:
    headers = register_and_login(client, "erin@example.com")
    user_id = client.get("/api/v1/users/me", headers=headers).json()["id"]
    past = int(time.time()) - 10
    cases = {
        "token expired": jwt.encode({"sub": user_id, "exp": past}, DEV_JWT_SECRET, headers={"kid": "dev"}),
        "token signed with an unknown key": jwt.encode(
            {"sub": user_id, "exp": past + 3600}, DEV_JWT_SECRET, headers={"kid": "other"}
        ),
        "invalid token": jwt.encode({"sub": user_id, "exp": past + 3600}, "x" * 40, headers={"kid": "dev"}),
    }
    for detail, token in cases.items():
        response = client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401 and response.json()["detail"] == detail


def test_key_rotation_keeps_old_tokens_valid_until_the_old_key_is_removed(
    make_settings: MakeSettings,
) -> None:
    """Three deployments on the same data: old key only → both keys (new active) → new key only."""
    with TestClient(
        create_app(make_settings(jwt_keys={"k-old": SecretStr(OLD)}, jwt_active_kid="k-old"))
    ) as c1:
        old_headers = register_and_login(c1, "frank@example.com", "frank-password")

    both = make_settings(jwt_keys={"k-old": SecretStr(OLD), "k-new": SecretStr(NEW)}, jwt_active_kid="k-new")
    with TestClient(create_app(both)) as c2:
        assert c2.get("/api/v1/users/me", headers=old_headers).status_code == 200
        token = c2.post(
            "/api/v1/auth/login", json={"email": "frank@example.com", "password": "frank-password"}
        )
        new_token = token.json()["access_token"]
        assert jwt.get_unverified_header(new_token)["kid"] == "k-new"

    with TestClient(
        create_app(make_settings(jwt_keys={"k-new": SecretStr(NEW)}, jwt_active_kid="k-new"))
    ) as c3:
        rejected = c3.get("/api/v1/users/me", headers=old_headers)
        assert rejected.status_code == 401 and rejected.json()["detail"] == "token signed with an unknown key"
        assert c3.get("/api/v1/users/me", headers={"Authorization": f"Bearer {new_token}"}).status_code == 200


def test_password_hashing_does_not_stall_the_event_loop(make_settings: MakeSettings) -> None:
    """While several argon2 hashes run (in threads), a liveness probe on the same loop still answers."""

    async def scenario() -> tuple[float, float]:
        # Production-like argon2 cost, so each hash takes long enough to matter; a slot for each register
        # (the bound on concurrent hashes is tested in test_login_protection.py).
        app = create_app(
            make_settings(
                password_hash_memory_kib=32_768, password_hash_time_cost=2, password_hash_concurrency=6
            )
        )
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
                started = time.perf_counter()
                registers = [
                    http.post(
                        "/api/v1/auth/register", json={"email": f"u{i}@example.com", "password": "p" * 12}
                    )
                    for i in range(6)
                ]

                async def probe() -> float:
                    await asyncio.sleep(0.005)
                    t0 = time.perf_counter()
                    assert (await http.get("/health/liveness")).status_code == 200
                    return time.perf_counter() - t0

                *responses, probe_latency = await asyncio.gather(*registers, probe())
                total = time.perf_counter() - started
                assert all(isinstance(r, httpx.Response) and r.status_code == 201 for r in responses)
                assert isinstance(probe_latency, float)
                return probe_latency, total

    probe_latency, total = asyncio.run(scenario())
    assert probe_latency < total / 2
