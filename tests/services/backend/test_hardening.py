"""CORS allow-list and security headers on every answer, through the real backend app."""

from __future__ import annotations

from fastapi.testclient import TestClient

from services.backend.app import create_app
from services.common.hardening import API_CSP, SECURITY_HEADERS

from .conftest import MakeSettings

ALLOWED = "https://app.example.com"


def _preflight(client: TestClient, origin: str) -> dict[str, str]:
    response = client.options(
        "/api/v1/auth/login",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    return dict(response.headers)


def test_no_origin_is_allowed_by_default(client: TestClient) -> None:
    headers = _preflight(client, ALLOWED)
    assert "access-control-allow-origin" not in headers
    plain = client.get("/health/liveness", headers={"Origin": ALLOWED})
    assert "access-control-allow-origin" not in plain.headers


def test_only_listed_origins_get_cors_headers(make_settings: MakeSettings) -> None:
    with TestClient(create_app(make_settings(cors_origins=[ALLOWED]))) as client:
        assert _preflight(client, ALLOWED)["access-control-allow-origin"] == ALLOWED
        assert "access-control-allow-origin" not in _preflight(client, "https://evil.example.com")
        answer = client.post("/api/v1/auth/login", json={}, headers={"Origin": ALLOWED})
        assert answer.headers["access-control-allow-origin"] == ALLOWED
        assert "Retry-After" in answer.headers["access-control-expose-headers"]
        assert "access-control-allow-credentials" not in answer.headers


def test_security_headers_on_every_kind_of_answer(make_settings: MakeSettings) -> None:
    settings = make_settings(
        max_upload_bytes=10,
        rate_limit_enabled=True,
        rate_limit_default="2/minute",
        rate_limit_auth="1/minute",
    )
    with TestClient(create_app(settings)) as client:
        answers = {
            "ok": client.get("/health/liveness"),
            "unauthorized": client.get("/api/v1/users/me"),
            "not found": client.get("/nowhere"),
            "too large": client.post(
                "/api/v1/datasets", content=b"x" * 100_000, headers={"Content-Length": "100000"}
            ),
            "rate limited": client.get("/api/v1/users/me"),
        }
        assert [a.status_code for a in answers.values()] == [200, 401, 404, 413, 429]
        for name, answer in answers.items():
            for header, value in SECURITY_HEADERS.items():
                assert answer.headers.get(header) == value, (name, header)
            assert answer.headers["content-security-policy"] == API_CSP, name
            assert answer.headers["x-request-id"], name
        assert answers["unauthorized"].headers["cache-control"] == "no-store"
        docs = client.get("/docs")
        assert "cdn.jsdelivr.net" in docs.headers["content-security-policy"]
