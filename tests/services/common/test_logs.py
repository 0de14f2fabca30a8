"""Structured logs: JSON lines with severity, request id and Cloud Trace fields; secrets redacted."""

from __future__ import annotations

import io
import json
import logging
import secrets
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from ethixctl.secrets.generate import ed25519_pem
from services.backend.app import create_app
from services.backend.settings import BackendSettings
from services.common import logs
from services.common.secrets import RuntimeSecrets, StaticReader, Version

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
# A secret the settings hold (a limits storage URL with its password; unused while rate limits are off).
STORAGE_URL = "redis://:known-storage-password-" + "k" * 32 + "@127.0.0.1:1"


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
        rate_limit_storage_url=SecretStr(STORAGE_URL),
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
        raise RuntimeError(f"cannot reach {STORAGE_URL}")
    except RuntimeError:
        log.exception("failed")
    text = stream.getvalue()
    assert token not in text and STORAGE_URL not in text
    entries = [json.loads(line) for line in text.splitlines()]
    assert entries[0]["message"] == f"header was Bearer {logs.REDACTED}"
    assert entries[1]["severity"] == "ERROR" and logs.REDACTED in entries[1]["exc_info"]
    assert entries[1]["serviceContext"] == {"service": "local", "version": "local"}


def test_values_loaded_at_runtime_are_redacted_from_the_moment_they_load(
    captured: tuple[io.StringIO, BackendSettings],
) -> None:
    """The settings do not hold these: the filter learns them from the secret reader."""
    stream, _ = captured
    session_key = secrets.token_urlsafe(32)
    pem = ed25519_pem()
    key_line = pem.decode().splitlines()[1]  # the base64 body of the PEM, as a fragment would show it
    reader = StaticReader(
        {
            "session-key": {"current": Version("1", session_key.encode())},
            "jwt-signing-key": {"current": Version("3", pem)},
        }
    )
    runtime = RuntimeSecrets(
        reader, ["session-key", "jwt-signing-key"], refresh_seconds=60, service="backend", revision="r1"
    )
    log = logging.getLogger("ethix.test")
    log.warning("before loading: %s", session_key)
    assert session_key in stream.getvalue()  # not known yet: only loading teaches the filter
    assert runtime.refresh()
    log.warning("key %s, fragment %s", session_key, key_line)
    log.warning("whole key %s", pem.decode().strip())
    rotated = secrets.token_urlsafe(32)
    reader.set("session-key", "next", Version("2", rotated.encode()))
    runtime.refresh()
    log.warning("next key %s", rotated)
    after = stream.getvalue().splitlines()[1:]
    assert [json.loads(line)["message"] for line in after] == [
        f"key {logs.REDACTED}, fragment {logs.REDACTED}",
        f"whole key {logs.REDACTED}",
        f"next key {logs.REDACTED}",
    ]


def test_python_warnings_are_json_lines_too(captured: tuple[io.StringIO, BackendSettings]) -> None:
    """A library's warning printed as plain text would break the one-JSON-object-per-line contract."""
    stream, settings = captured
    with warnings.catch_warnings():
        # pytest restores `warnings.showwarning` after each test, while logging remembers it captured
        # them already: start from scratch, as a service process does.
        logging.captureWarnings(False)
        logs.configure(settings, stream)
        warnings.simplefilter("always")
        warnings.warn("an old constant is deprecated", DeprecationWarning, stacklevel=1)
    logging.captureWarnings(False)
    (entry,) = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert entry["logger"] == "py.warnings" and "an old constant is deprecated" in entry["message"]
    assert entry["severity"] == "WARNING"
