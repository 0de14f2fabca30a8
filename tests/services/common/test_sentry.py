"""Error reporting with sentry-sdk against a local HTTP receiver (wire-level fake of Sentry's ingest); the
backend's DSN loaded at runtime from the local control plane's Secret Manager (the real REST client)."""

from __future__ import annotations

import gzip
import io
import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
import sentry_sdk
from fastapi.testclient import TestClient

from ethixctl.adapters.secrets import SecretManager
from services.backend.app import create_app
from services.backend.keys import DEV_JWT_SECRET_NAME, DEV_SESSION_SECRET_NAME, dev_signing_pem
from services.backend.settings import BackendSettings
from services.common import logs, sentry
from services.common.secrets import StaticReader, Version
from tests.ethixctl.platform.controlplane.testruntime import local_control_plane
from tests.httpserver import serve

# Loaded at runtime (as from Secret Manager), not held by the settings: the scrubber learns it on load.
SESSION_KEY = "known-runtime-session-key-" + "s" * 32


class Receiver:
    def __init__(self) -> None:
        self.envelopes: list[tuple[str, list[dict[str, Any]]]] = []
        self.arrived = threading.Event()


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    got = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            items = [json.loads(line) for line in body.splitlines() if line.strip().startswith(b"{")]
            got.envelopes.append((self.path, items))
            got.arrived.set()
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with serve(Handler) as url:
        yield got, url.replace("http://", "http://publickey@") + "/42"
    sentry_sdk.init()  # no DSN: reporting off again for the rest of the session


def test_sentry_is_off_without_a_dsn(tmp_path: Path) -> None:
    assert sentry.init(BackendSettings(data_dir=tmp_path)) is False


def test_unhandled_error_reaches_sentry_tagged_with_the_revision_wire_level_fake(
    receiver: tuple[Receiver, str], tmp_path: Path
) -> None:
    got, dsn = receiver
    settings = BackendSettings(
        data_dir=tmp_path,
        SENTRY_DSN=dsn,
        K_SERVICE="backend",
        K_REVISION="backend-00002-abc",
    )
    reader = StaticReader(
        {
            DEV_JWT_SECRET_NAME: {"current": Version("1", dev_signing_pem())},
            DEV_SESSION_SECRET_NAME: {"current": Version("1", SESSION_KEY.encode())},
        }
    )
    app = create_app(settings, reader)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError(f"exploded while holding {SESSION_KEY}")

    with TestClient(app, raise_server_exceptions=False) as client:
        answer = client.get("/boom", headers={"Authorization": "Bearer eyJhbGciOiJI.eyJzdWIi.c2lnbmF0"})
    assert answer.status_code == 500
    sentry_sdk.flush(timeout=10)
    assert got.arrived.wait(10)
    path, items = got.envelopes[0]
    assert path == "/api/42/envelope/"
    events = [item for item in items if "exception" in item]
    assert len(events) == 1
    event = events[0]
    assert event["release"] == "backend@backend-00002-abc" and event["environment"] == "development"
    assert event["tags"]["revision"] == "backend-00002-abc"
    # The middlewares' task groups may wrap it in an ExceptionGroup; the RuntimeError is among the values.
    assert "RuntimeError" in [value["type"] for value in event["exception"]["values"]]
    sent = json.dumps(got.envelopes)
    assert SESSION_KEY not in sent and "eyJzdWIi" not in sent  # neither the key nor the bearer token


@pytest.fixture
def secret_manager(tmp_path: Path) -> Iterator[tuple[SecretManager, str]]:
    """The local control plane's Secret Manager holding the backend's keys; yields it and its URL."""
    with local_control_plane(tmp_path / "platform") as (server, _):
        manager = SecretManager("local", endpoint=server.url)
        for name, value in (("jwt-signing-key", dev_signing_pem()), ("session-key", SESSION_KEY.encode())):
            put_current(manager, name, value)
        yield manager, server.url


def put_current(manager: SecretManager, name: str, value: bytes) -> None:
    manager.create_secret(name)
    manager.set_alias(name, "current", manager.add_version(name, value))


@pytest.fixture
def log_output(tmp_path: Path) -> Iterator[io.StringIO]:
    """The service's own JSON log lines, through its redaction filter."""
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    logs.configure(BackendSettings(data_dir=tmp_path), stream)
    yield stream
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def _from_secret_manager(tmp_path: Path, endpoint: str) -> BackendSettings:
    return BackendSettings(
        data_dir=tmp_path / "data",
        secrets_project="local",
        secrets_endpoint=endpoint,
        secret_jwt_signing_key="jwt-signing-key",
        secret_session_key="session-key",
        secret_sentry_dsn="sentry-dsn",
        K_SERVICE="backend",
        K_REVISION="backend-00003-def",
        password_hash_memory_kib=1024,
        password_hash_time_cost=1,
    )


def test_dsn_loaded_from_its_runtime_secret_reports_an_unhandled_error_and_never_shows_wire_level_fake(
    receiver: tuple[Receiver, str],
    secret_manager: tuple[SecretManager, str],
    log_output: io.StringIO,
    tmp_path: Path,
) -> None:
    got, dsn = receiver
    manager, endpoint = secret_manager
    put_current(manager, "sentry-dsn", dsn.encode())
    app = create_app(_from_secret_manager(tmp_path, endpoint))
    assert sentry_sdk.get_client().dsn is None  # not in the environment: nothing to start with yet

    @app.get("/boom")
    def boom() -> None:
        logging.getLogger("boom").error("about to fail; errors go to %s", dsn)
        raise RuntimeError(f"exploded while reporting to {dsn}")

    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/health/startup").status_code == 200
        assert client.get("/boom").status_code == 500
    sentry_sdk.flush(timeout=10)
    assert got.arrived.wait(10)
    assert {path for path, _ in got.envelopes} == {"/api/42/envelope/"}
    [event] = [item for _, items in got.envelopes for item in items if "exception" in item]
    assert event["release"] == "backend@backend-00003-def"
    assert event["tags"]["revision"] == "backend-00003-def"
    # Caught by the Starlette integration although the SDK started after the app was built.
    [error] = [value for value in event["exception"]["values"] if value["type"] == "RuntimeError"]
    assert error["mechanism"] == {"type": "starlette", "handled": False}
    assert dsn not in json.dumps(got.envelopes)
    output = log_output.getvalue()
    assert f"errors go to {logs.REDACTED}" in output  # the line was logged, the DSN learned and redacted
    assert dsn not in output


@pytest.mark.parametrize(
    ("value", "problem"),
    [(None, "not loaded: sentry-dsn/current: the alias is missing"), (b"not-a-dsn", "is not a Sentry DSN")],
)
def test_a_missing_or_invalid_sentry_secret_leaves_the_service_up_without_sentry_local_control_plane(
    secret_manager: tuple[SecretManager, str],
    log_output: io.StringIO,
    tmp_path: Path,
    value: bytes | None,
    problem: str,
) -> None:
    manager, endpoint = secret_manager
    if value is not None:
        put_current(manager, "sentry-dsn", value)
    sentry_sdk.init()  # whatever an earlier test started: off
    with TestClient(create_app(_from_secret_manager(tmp_path, endpoint))) as client:
        assert client.get("/health/startup").status_code == 200
        assert client.get("/health/readiness").status_code == 200
        assert sentry_sdk.get_client().dsn is None
    [warning] = [
        entry
        for line in log_output.getvalue().splitlines()
        if (entry := json.loads(line))["severity"] == "WARNING"
    ]
    assert warning["message"].startswith("secret sentry-dsn ")
    assert problem in warning["message"] and warning["message"].endswith("; running without Sentry")
