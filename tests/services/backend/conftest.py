"""Backend test helpers: settings on temp dirs, an in-process client, and a wire-level fake of ai_core."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.backend.app import create_app
from services.backend.settings import BackendSettings
from tests.httpserver import serve

REPORT = {
    "n_rows": 4,
    "n_columns": 3,
    "model": {"type": "gradient_boosting", "max_depth": 3, "accuracy": 0.75},
    "fairness": {
        "selection_rate": {"a": 0.5, "b": 0.5},
        "demographic_parity_difference": 0.0,
        "equalized_odds_difference": 0.0,
        "disparate_impact_ratio": 1.0,
    },
    "feature_importance": {"score": 0.4},
    "duration_ms": 12,
}
CSV = b"score,group,approved\n1,a,yes\n2,b,no\n3,a,yes\n4,b,no\n"

MakeSettings = Callable[..., BackendSettings]


@pytest.fixture
def make_settings(tmp_path: Path) -> MakeSettings:
    def make(**overrides: Any) -> BackendSettings:
        values: dict[str, Any] = {
            "data_dir": tmp_path / "data",
            "AI_CORE_URL": "http://127.0.0.1:9",
            "ai_core_backoff_seconds": 0.01,
            "ai_core_timeout_seconds": 5,
            # Cheap argon2 parameters keep the suite fast; production defaults are checked in test_settings.
            "password_hash_memory_kib": 1024,
            "password_hash_time_cost": 1,
        }
        values.update(overrides)
        return BackendSettings(**values)

    return make


@pytest.fixture
def client(make_settings: MakeSettings) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings())) as test_client:
        yield test_client


def register_and_login(
    client: TestClient, email: str = "alice@example.com", password: str = "correct-horse"
) -> dict[str, str]:
    response = client.post("/api/v1/auth/register", json={"email": email, "password": password})
    assert response.status_code == 201, response.text
    token = client.post("/api/v1/auth/login", json={"email": email, "password": password}).json()[
        "access_token"
    ]
    return {"Authorization": f"Bearer {token}"}


def upload(client: TestClient, headers: dict[str, str], data: bytes = CSV, name: str = "loans.csv") -> Any:
    return client.post("/api/v1/datasets", headers=headers, files={"file": (name, data, "text/csv")})


def wait_finished(
    client: TestClient, headers: dict[str, str], analysis_id: str, timeout: float = 15
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body: dict[str, Any] = client.get(f"/api/v1/analyses/{analysis_id}", headers=headers).json()
        if body["status"] in ("succeeded", "failed"):
            return body
        time.sleep(0.05)
    raise AssertionError(f"analysis {analysis_id} still {body['status']} after {timeout} s")


def _open_gate() -> threading.Event:
    gate = threading.Event()
    gate.set()
    return gate


@dataclass
class FakeAiCore:
    """A real HTTP server on a free loopback port that answers ``POST /api/v1/analyze`` from a script.

    Clear ``gate`` to hold every answer until it is set again; ``answered`` counts answers sent.
    """

    url: str
    script: list[tuple[int, Any]] = field(default_factory=list)
    delay: float = 0.0
    requests: list[dict[str, Any]] = field(default_factory=list)
    gate: threading.Event = field(default_factory=_open_gate)
    answered: int = 0

    def answer(self) -> tuple[int, Any]:
        return self.script.pop(0) if len(self.script) > 1 else self.script[0]


@pytest.fixture
def fake_ai_core() -> Iterator[FakeAiCore]:
    fake = FakeAiCore(url="", script=[(200, REPORT)])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length))
            fake.requests.append({"path": self.path, "body": body})
            fake.gate.wait(timeout=30)
            time.sleep(fake.delay)
            status, payload = fake.answer()
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            fake.answered += 1

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with serve(Handler) as fake.url:
        yield fake
