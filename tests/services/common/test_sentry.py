"""Error reporting with sentry-sdk against a local HTTP receiver (wire-level fake of Sentry's ingest)."""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
import sentry_sdk
from fastapi.testclient import TestClient
from pydantic import SecretStr

from services.backend.app import create_app
from services.backend.settings import BackendSettings
from services.common import sentry
from tests.httpserver import serve

JWT_SECRET = "known-jwt-secret-" + "s" * 32


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
        jwt_keys={"k1": SecretStr(JWT_SECRET)},
        jwt_active_kid="k1",
    )
    app = create_app(settings)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError(f"exploded while holding {JWT_SECRET}")

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
    assert JWT_SECRET not in sent and "eyJzdWIi" not in sent  # neither the key nor the bearer token
