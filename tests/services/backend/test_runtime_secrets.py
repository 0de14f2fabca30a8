"""Secrets loaded at runtime: startup waits for them and names the missing one, Secret Manager outages
are served through (fail static) with staleness in readiness, versions are exported as metrics
(in-memory reader standing in for Secret Manager; the real client is tested end to end)."""

from __future__ import annotations

import time
from pathlib import Path

from fastapi.testclient import TestClient
from limits import parse_many
from prometheus_client.parser import text_string_to_metric_families

from services.backend import ratelimit, throttle
from services.backend.app import create_app
from services.backend.keys import dev_signing_pem
from services.common.docstore import open_store
from services.common.secrets import StaticReader, Version

from .conftest import MakeSettings

SIGNING = Version("3", dev_signing_pem())
SESSION_KEY = Version("7", b"k" * 32)


def _reader(**extra: dict[str, Version]) -> StaticReader:
    return StaticReader(
        {"jwt-signing-key": {"current": SIGNING}, "session-key": {"current": SESSION_KEY}, **extra}
    )


# The backend's secrets by name, its database URL among them.
DATABASE_URL_FROM_SECRETS = {
    "secrets_project": "p",
    "secret_jwt_signing_key": "jwt-signing-key",
    "secret_session_key": "session-key",
    "secret_database_url": "database-url",
}


def _two_database_versions(tmp_path: Path) -> tuple[str, str, StaticReader]:
    """Two SQLite database URLs, and a reader whose database-url secret names the first."""
    first, second = (f"sqlite://{tmp_path / name}" for name in ("first.db", "second.db"))
    return first, second, _reader(**{"database-url": {"current": Version("1", first.encode())}})


def _count(url: str, counters: str, key: str) -> int:
    """The value of one expiring counter in the database at ``url`` (0 when absent)."""
    store = open_store(url)
    try:
        counter = store.counters(counters).get(key)
        return counter.value if counter else 0
    finally:
        store.close()


def _metric(client: TestClient, name: str) -> dict[tuple[str, ...], float]:
    found: dict[tuple[str, ...], float] = {}
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == name and sample.labels.get("revision") == "rev-under-test":
                found[
                    tuple(v for k, v in sorted(sample.labels.items()) if k not in ("service", "revision"))
                ] = sample.value
    return found


def test_a_revision_without_its_secrets_fails_startup_naming_the_secret_then_starts_once_loaded(
    make_settings: MakeSettings,
) -> None:
    reader = StaticReader({"session-key": {"current": SESSION_KEY}})
    settings = make_settings(secrets_refresh_seconds=0.2, K_REVISION="rev-under-test")
    with TestClient(create_app(settings, reader)) as client:
        startup = client.get("/health/startup")
        assert startup.status_code == 503
        assert "jwt-signing-key" in startup.json()["checks"]
        assert "alias is missing" in startup.json()["checks"]["jwt-signing-key"]
        refused = client.post(
            "/api/v1/auth/login", json={"email": "a@example.com", "password": "whatever-long-1"}
        )
        assert refused.status_code == 503 and "jwt-signing-key" in refused.json()["detail"]
        reader.set("jwt-signing-key", "current", SIGNING)
        deadline = time.monotonic() + 10
        while client.get("/health/startup").status_code != 200:
            assert time.monotonic() < deadline, client.get("/health/startup").json()
            time.sleep(0.05)
        assert (
            client.post(
                "/api/v1/auth/register", json={"email": "a@example.com", "password": "whatever-long-1"}
            ).status_code
            == 201
        )


def test_secret_manager_unreachable_keeps_serving_with_the_last_values_and_readiness_says_how_stale(
    make_settings: MakeSettings,
) -> None:
    reader = _reader()
    with TestClient(create_app(make_settings(K_REVISION="rev-under-test"), reader)) as client:
        secrets = client.app.state.secrets  # type: ignore[attr-defined]
        client.post("/api/v1/auth/register", json={"email": "b@example.com", "password": "whatever-long-1"})
        ready = client.get("/health/readiness").json()
        assert ready["checks"]["secret:jwt-signing-key"] == "ok"
        failures_before = _metric(client, "ethix_secret_refresh_failures_total").get(
            ("jwt-signing-key",), 0.0
        )
        reader.unreachable = True
        assert secrets.refresh() is False
        login = client.post(
            "/api/v1/auth/login", json={"email": "b@example.com", "password": "whatever-long-1"}
        )
        assert login.status_code == 200
        readiness = client.get("/health/readiness")
        assert readiness.status_code == 200
        assert readiness.json()["checks"]["secret:jwt-signing-key"].startswith("stale: last refreshed")
        assert "unreachable" in readiness.json()["checks"]["secret:session-key"]
        failures = _metric(client, "ethix_secret_refresh_failures_total")
        assert failures[("jwt-signing-key",)] == failures_before + 1
        reader.unreachable = False
        assert secrets.refresh() is True
        assert client.get("/health/readiness").json()["checks"]["secret:jwt-signing-key"] == "ok"


def test_loaded_versions_are_metrics_per_secret_and_alias_and_absent_aliases_disappear(
    make_settings: MakeSettings,
) -> None:
    reader = _reader()
    with TestClient(create_app(make_settings(K_REVISION="rev-under-test"), reader)) as client:
        secrets = client.app.state.secrets  # type: ignore[attr-defined]
        assert _metric(client, "ethix_secret_version") == {
            ("current", "jwt-signing-key"): 3.0,
            ("current", "session-key"): 7.0,
        }
        reader.set("session-key", "next", Version("8", b"n" * 32))
        secrets.refresh()
        assert _metric(client, "ethix_secret_version")[("next", "session-key")] == 8.0
        reader.set("session-key", "next", None)
        secrets.refresh()
        assert ("next", "session-key") not in _metric(client, "ethix_secret_version")


def test_an_unusable_key_version_keeps_the_keys_in_use_and_is_reported(make_settings: MakeSettings) -> None:
    reader = _reader()
    with TestClient(create_app(make_settings(), reader)) as client:
        secrets = client.app.state.secrets  # type: ignore[attr-defined]
        kid = client.get("/.well-known/jwks.json").json()["keys"][0]["kid"]
        reader.set("jwt-signing-key", "next", Version("4", b"not a key"))
        secrets.refresh()
        assert [k["kid"] for k in client.get("/.well-known/jwks.json").json()["keys"]] == [kid]
        assert "version 4 is not an Ed25519 private key" in client.app.state.keys_error  # type: ignore[attr-defined]
        assert b"not a key".decode() not in client.app.state.keys_error  # type: ignore[attr-defined]


def test_jwks_has_cache_headers_and_answers_304_to_a_matching_etag(client: TestClient) -> None:
    first = client.get("/.well-known/jwks.json")
    assert first.status_code == 200 and first.headers["content-type"] == "application/jwk-set+json"
    assert first.headers["cache-control"] == "public, max-age=60"
    (key,) = first.json()["keys"]
    assert key["kty"] == "OKP" and key["crv"] == "Ed25519" and key["alg"] == "EdDSA" and "d" not in key
    again = client.get("/.well-known/jwks.json", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304


def test_a_new_database_url_version_reconnects_and_reports_the_version_in_use(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    _, second, reader = _two_database_versions(tmp_path)
    settings = make_settings(K_REVISION="rev-under-test", **DATABASE_URL_FROM_SECRETS)
    with TestClient(create_app(settings, reader)) as client:
        secrets = client.app.state.secrets  # type: ignore[attr-defined]
        assert _metric(client, "ethix_secret_in_use_version") == {("database-url",): 1.0}
        credentials = {"email": "c@example.com", "password": "whatever-long-1"}
        assert client.post("/api/v1/auth/register", json=credentials).status_code == 201
        reader.set("database-url", "current", Version("2", second.encode()))
        secrets.refresh()
        assert _metric(client, "ethix_secret_in_use_version") == {("database-url",): 2.0}
        # The user lives in the first database only: the requests now use the second.
        assert client.post("/api/v1/auth/login", json=credentials).status_code == 401
        assert client.post("/api/v1/auth/register", json=credentials).status_code == 201

        reader.set("database-url", "current", Version("3", b"sqlite:///proc/no/such/dir/x.db"))
        secrets.refresh()  # cannot connect: keeps the working connection
        assert _metric(client, "ethix_secret_in_use_version") == {("database-url",): 2.0}
        assert client.post("/api/v1/auth/login", json=credentials).status_code == 200


def test_rate_limits_count_in_the_database_of_the_new_database_url_version(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    """The per-client limits count in the document store: after a rotation, in the new database."""
    first, second, reader = _two_database_versions(tmp_path)
    settings = make_settings(
        **DATABASE_URL_FROM_SECRETS,
        rate_limit_enabled=True,
        rate_limit_default="1000/minute",
        rate_limit_auth="1000/minute",
    )
    key = parse_many("1000/minute")[0].key_for("client", "testclient")

    with TestClient(create_app(settings, reader)) as client:
        for _ in range(3):
            client.get("/api/v1/users/me")
        assert (_count(first, ratelimit.COUNTERS, key), _count(second, ratelimit.COUNTERS, key)) == (3, 0)
        reader.set("database-url", "current", Version("2", second.encode()))
        client.app.state.secrets.refresh()  # type: ignore[attr-defined]
        for _ in range(2):
            client.get("/api/v1/users/me")
        assert (_count(first, ratelimit.COUNTERS, key), _count(second, ratelimit.COUNTERS, key)) == (3, 2)


def test_the_login_throttle_counts_in_the_database_of_the_new_database_url_version(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    first, second, reader = _two_database_versions(tmp_path)
    settings = make_settings(**DATABASE_URL_FROM_SECRETS)
    key = throttle.account_key("nobody@example.com")

    wrong = {"email": "nobody@example.com", "password": "wrong-password"}
    with TestClient(create_app(settings, reader)) as client:
        assert client.post("/api/v1/auth/login", json=wrong).status_code == 401
        reader.set("database-url", "current", Version("2", second.encode()))
        client.app.state.secrets.refresh()  # type: ignore[attr-defined]
        assert client.post("/api/v1/auth/login", json=wrong).status_code == 401
    assert (_count(first, throttle.COUNTERS, key), _count(second, throttle.COUNTERS, key)) == (1, 1)
