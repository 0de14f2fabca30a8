"""Structured logs: JSON lines with severity, request id and Cloud Trace fields; secrets redacted."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from services.backend.app import create_app
from services.backend.settings import BackendSettings
from services.common import logs

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
JWT_SECRET = "known-jwt-secret-" + "k" * 32


@pytest.mark.parametrize(
    ("traceparent", "cloud", "expected"),
    [
        (f"00-{TRACE_ID}-00f067aa0ba902b7-01", None, (TRACE_ID, "00f067aa0ba902b7", True)),
        (None, f"{TRACE_ID}/1;o=1", (TRACE_ID, "0000000000000001", True)),
        (None, f"{TRACE_ID.upper()}/12345;o=0", (TRACE_ID, f"{12345:016x}", False)),
        (None, TRACE_ID, (TRACE_ID, None, False)),
        ("garbage", f"{TRACE_ID}/1;o=1", (TRACE_ID, "0000000000000001", True)),
        (f"00-{'0' * 32}-00f067aa0ba902b7-01", None, None),
        ("00-xyz", "not-a-trace", None),
    ],
)
def test_trace_headers_parse(traceparent: str | None, cloud: str | None, expected: object) -> None:
    assert logs.parse_trace(traceparent, cloud) == expected


@pytest.fixture
def captured(tmp_path: Path) -> Iterator[tuple[io.StringIO, BackendSettings]]:
    settings = BackendSettings(
        data_dir=tmp_path,
        jwt_keys={"k1": SecretStr(JWT_SECRET)},
        jwt_active_kid="k1",
        GOOGLE_CLOUD_PROJECT="ethix-prod",
        password_hash_memory_kib=1024,
        password_hash_time_cost=1,
    )
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    logs.configure(settings, stream)
    yield stream, settings
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def test_access_logs_are_json_lines_with_trace_and_request_id(
    captured: tuple[io.StringIO, BackendSettings],
) -> None:
    stream, settings = captured
    with TestClient(create_app(settings)) as client:
        response = client.get(
            "/api/v1/users/me?token=sneaky",
            headers={"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01", "X-Request-ID": "0" * 32},
        )
    assert response.status_code == 401
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]  # every line is JSON
    access = [entry for entry in lines if entry["logger"] == logs.ACCESS_LOGGER]
    assert len(access) == 1
    entry = access[0]
    assert entry["severity"] == "WARNING" and entry["message"] == "GET /api/v1/users/me 401"
    assert entry[logs.TRACE] == f"projects/ethix-prod/traces/{TRACE_ID}"
    assert entry[logs.SPAN] == "00f067aa0ba902b7" and entry[logs.SAMPLED] is True
    assert entry["request_id"] == response.headers["x-request-id"]
    assert entry["httpRequest"]["requestUrl"] == "/api/v1/users/me"  # never the query string
    assert entry["httpRequest"]["status"] == 401 and entry["time"]
    # (The test's own client logs through httpx in this process; the service's lines never hold it.)
    assert not [entry for entry in lines if entry["logger"] != "httpx" and "sneaky" in json.dumps(entry)]


def test_tokens_and_secret_values_are_redacted(captured: tuple[io.StringIO, BackendSettings]) -> None:
    stream, _ = captured
    token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1MSJ9.c2lnbmF0dXJlLWhlcmU"
    log = logging.getLogger("ethix.test")
    log.warning("header was Bearer %s", token)
    try:
        raise RuntimeError(f"cannot use key {JWT_SECRET}")
    except RuntimeError:
        log.exception("failed")
    text = stream.getvalue()
    assert token not in text and JWT_SECRET not in text
    entries = [json.loads(line) for line in text.splitlines()]
    assert entries[0]["message"] == f"header was Bearer {logs.REDACTED}"
    assert entries[1]["severity"] == "ERROR" and logs.REDACTED in entries[1]["exc_info"]
    assert entries[1]["serviceContext"] == {"service": "local", "version": "local"}
