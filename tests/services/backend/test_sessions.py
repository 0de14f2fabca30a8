"""Server-side sessions through the real app: refresh rotates the token, reuse revokes, logout is immediate,
session-key rotation keeps sessions alive until the old key goes (in-memory secrets reader)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from services.backend import sessions
from services.backend.app import create_app
from services.backend.keys import dev_signing_pem
from services.common.secrets import StaticReader, Version

from .conftest import MakeSettings

SIGNING = Version("1", dev_signing_pem())
OLD_SESSION_KEY = Version("1", b"o" * 32)
NEW_SESSION_KEY = Version("2", b"n" * 32)
CREDENTIALS = {"email": "sam@example.com", "password": "sam-password"}


def _login(client: TestClient) -> dict[str, str]:
    client.post("/api/v1/auth/register", json=CREDENTIALS)
    response = client.post("/api/v1/auth/login", json=CREDENTIALS)
    assert response.status_code == 200, response.text
    body: dict[str, str] = response.json()
    return body


def _me(client: TestClient, access_token: str) -> int:
    return client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {access_token}"}).status_code


def test_refresh_issues_a_new_pair_and_the_used_refresh_token_stops_working(client: TestClient) -> None:
    first = _login(client)
    refreshed = client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert refreshed.status_code == 200
    second = refreshed.json()
    assert second["refresh_token"] != first["refresh_token"] and _me(client, second["access_token"]) == 200
    # Replaying the used token is theft or a bug: the whole session ends, including the new tokens.
    replay = client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert replay.status_code == 401 and "already used" in replay.json()["detail"]
    assert _me(client, second["access_token"]) == 401
    again = client.post("/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert again.status_code == 401 and again.json()["detail"] == "session revoked"


def test_malformed_and_unknown_refresh_tokens_are_401(client: TestClient) -> None:
    for token in ("nodot", "unknown-session.secret", ".x"):
        response = client.post("/api/v1/auth/refresh", json={"refresh_token": token})
        assert response.status_code == 401, token


def test_logout_revokes_this_session_at_once_and_all_revokes_every_session(client: TestClient) -> None:
    laptop, phone, tablet = _login(client), _login(client), _login(client)
    bearer = {"Authorization": f"Bearer {laptop['access_token']}"}
    assert client.post("/api/v1/auth/logout", headers=bearer).status_code == 204
    assert _me(client, laptop["access_token"]) == 401  # the access token has not expired: still refused
    refused = client.post("/api/v1/auth/refresh", json={"refresh_token": laptop["refresh_token"]})
    assert refused.status_code == 401
    assert _me(client, phone["access_token"]) == 200
    everywhere = {"Authorization": f"Bearer {phone['access_token']}"}
    assert client.post("/api/v1/auth/logout", headers=everywhere, json={"all": True}).status_code == 204
    assert _me(client, phone["access_token"]) == _me(client, tablet["access_token"]) == 401
    assert client.post("/api/v1/auth/logout", headers=everywhere).status_code == 401


def test_revoke_all_counts_active_sessions_only(client: TestClient) -> None:
    tokens = [_login(client) for _ in range(3)]
    store = client.app.state.backend.store  # type: ignore[attr-defined]
    sessions.revoke(store, _session_id(tokens[0]), "test")
    assert sessions.revoke_all(store, "emergency rotation") == 2
    assert sessions.revoke_all(store, "emergency rotation") == 0
    assert all(_me(client, t["access_token"]) == 401 for t in tokens)


def _session_id(tokens: dict[str, str]) -> str:
    return tokens["refresh_token"].split(".", 1)[0]


def test_session_key_rotation_keeps_sessions_until_the_old_key_is_gone(make_settings: MakeSettings) -> None:
    reader = StaticReader(
        {"jwt-signing-key": {"current": SIGNING}, "session-key": {"current": OLD_SESSION_KEY}}
    )
    with TestClient(create_app(make_settings(), reader)) as client:
        secrets = client.app.state.secrets  # type: ignore[attr-defined]
        sealed_with_old = _login(client)
        kept_until_the_end = _login(client)
        reader.set("session-key", "current", NEW_SESSION_KEY)
        reader.set("session-key", "previous", OLD_SESSION_KEY)
        secrets.refresh()
        # Sealed with the old key, opened with `previous`, re-sealed with the new one.
        resealed = client.post(
            "/api/v1/auth/refresh", json={"refresh_token": sealed_with_old["refresh_token"]}
        )
        assert resealed.status_code == 200
        reader.set("session-key", "previous", None)
        secrets.refresh()
        again = client.post("/api/v1/auth/refresh", json={"refresh_token": resealed.json()["refresh_token"]})
        assert again.status_code == 200
        stale = client.post(
            "/api/v1/auth/refresh", json={"refresh_token": kept_until_the_end["refresh_token"]}
        )
        assert stale.status_code == 401


def test_deleting_the_user_deletes_its_sessions(client: TestClient) -> None:
    tokens = _login(client)
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert client.delete("/api/v1/users/me", headers=bearer).status_code == 204
    store = client.app.state.backend.store  # type: ignore[attr-defined]
    assert store[sessions.COLLECTION].count({}) == 0
