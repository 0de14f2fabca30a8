"""Register, login, refresh, logout, bearer tokens and key rotation through the real app (in-process ASGI
client; secrets from an in-memory reader, the same RuntimeSecrets the services use with Secret Manager)."""

from __future__ import annotations

import asyncio
import time

import httpx
import jwt
import mongomock
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from fastapi.testclient import TestClient

from services.backend.app import create_app
from services.backend.keys import dev_signing_pem, private_key_pem, public_jwk
from services.common.docstore import MongoStore
from services.common.secrets import StaticReader, Version

from .conftest import MakeSettings, register_and_login

DEV_KEY = load_pem_private_key(dev_signing_pem(), None)
assert isinstance(DEV_KEY, Ed25519PrivateKey)
DEV_KID = public_jwk(DEV_KEY.public_key())["kid"]
SESSION = Version("1", b"s" * 32)


def _key_version(number: str) -> tuple[Ed25519PrivateKey, Version]:
    key = Ed25519PrivateKey.generate()
    return key, Version(number, private_key_pem(key))


def _kid(key: Ed25519PrivateKey) -> str:
    return public_jwk(key.public_key())["kid"]


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
    assert body["token_type"] == "bearer" and body["expires_in"] == 900
    assert body["refresh_token"] and body["refresh_expires_in"] == 14 * 86_400
    header = jwt.get_unverified_header(body["access_token"])
    assert header["alg"] == "EdDSA" and header["kid"] == DEV_KID
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
        ({"email": "carol@example.com", "password": "eleven-char"}, "password"),  # ASVS 2.1.1: 12
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
    token = headers["Authorization"].split()[1]
    claims = jwt.decode(token, options={"verify_signature": False})
    past = int(time.time()) - 10
    stranger = Ed25519PrivateKey.generate()
    cases = {
        "token expired": jwt.encode({**claims, "exp": past}, DEV_KEY, "EdDSA", headers={"kid": DEV_KID}),
        "token signed with an unknown key": jwt.encode(
            claims, stranger, "EdDSA", headers={"kid": _kid(stranger)}
        ),
        "invalid token": jwt.encode(claims, stranger, "EdDSA", headers={"kid": DEV_KID}),
        # A symmetric token signed with the public key must not pass as EdDSA (algorithm confusion).
        "invalid token ": jwt.encode(claims, "x" * 40, "HS256", headers={"kid": DEV_KID}),
    }
    for detail, bad in cases.items():
        response = client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {bad}"})
        assert response.status_code == 401 and response.json()["detail"] == detail.strip(), detail


def test_key_rotation_keeps_old_tokens_valid_until_the_old_key_is_removed(
    make_settings: MakeSettings,
) -> None:
    """One app, its secrets changing under it as a rotation moves the aliases: next → current → gone."""
    old, old_version = _key_version("1")
    new, new_version = _key_version("2")
    reader = StaticReader({"jwt-signing-key": {"current": old_version}, "session-key": {"current": SESSION}})
    with TestClient(create_app(make_settings(), reader)) as c:
        secrets = c.app.state.secrets  # type: ignore[attr-defined]
        old_headers = register_and_login(c, "frank@example.com", "frank-password")
        assert jwt.get_unverified_header(old_headers["Authorization"].split()[1])["kid"] == _kid(old)

        reader.set("jwt-signing-key", "next", new_version)  # published, verify-only
        secrets.refresh()
        assert {k["kid"] for k in c.get("/.well-known/jwks.json").json()["keys"]} == {_kid(old), _kid(new)}
        login = c.post(
            "/api/v1/auth/login", json={"email": "frank@example.com", "password": "frank-password"}
        )
        assert jwt.get_unverified_header(login.json()["access_token"])["kid"] == _kid(old)

        reader.set("jwt-signing-key", "current", new_version)  # signs
        reader.set("jwt-signing-key", "previous", old_version)
        reader.set("jwt-signing-key", "next", None)
        secrets.refresh()
        assert c.get("/api/v1/users/me", headers=old_headers).status_code == 200
        login = c.post(
            "/api/v1/auth/login", json={"email": "frank@example.com", "password": "frank-password"}
        )
        new_token = login.json()["access_token"]
        assert jwt.get_unverified_header(new_token)["kid"] == _kid(new)

        reader.set("jwt-signing-key", "previous", None)  # the old version disabled after the grace
        secrets.refresh()
        rejected = c.get("/api/v1/users/me", headers=old_headers)
        assert rejected.status_code == 401 and rejected.json()["detail"] == "token signed with an unknown key"
        assert c.get("/api/v1/users/me", headers={"Authorization": f"Bearer {new_token}"}).status_code == 200
        assert [k["kid"] for k in c.get("/.well-known/jwks.json").json()["keys"]] == [_kid(new)]


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


def test_bearer_tokens_work_on_a_store_read_through_worker_threads_mongomock(client: TestClient) -> None:
    """The SQLite store's point reads run on the event loop; MongoDB's (here mongomock: no real mongod
    can run on these machines) go through a worker thread. Both paths authenticate."""
    backend = client.app.state.backend  # type: ignore[attr-defined]
    assert backend.store.local_reads
    mongo = MongoStore(mongomock.MongoClient(), "ethix")
    assert not mongo.local_reads
    backend.store = mongo
    headers = register_and_login(client, "mo@example.com", "correct-horse")
    me = client.get("/api/v1/users/me", headers=headers)
    assert me.status_code == 200 and me.json()["email"] == "mo@example.com"
    assert mongo["users"].find_one({"email": "mo@example.com"}) is not None
