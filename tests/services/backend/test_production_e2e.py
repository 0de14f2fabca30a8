"""The hardened backend as a real uvicorn process: JSON logs after a full smoke run hold no secret, and a
flood of wrong passwords is throttled while the account's owner still gets in after the backoff."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from ethixctl.procs import Service, start_service
from ethixctl.smoke import run_suite
from services.common.logs import TRACE

pytestmark = pytest.mark.e2e

JWT_SECRET = "known-e2e-jwt-signing-key-" + "j" * 24
PASSWORD = "smoke-known-password-e2e"
TRACE_ID = "105445aa7843bc8bf206b12000100000"
CSV_ROW = "34,52000,1010,female,yes"  # a row of playbooks/fixtures/smoke_loans.csv


@pytest.fixture(scope="module")
def hardened(tmp_path_factory: pytest.TempPathFactory, ai_core_service: Service) -> Iterator[Service]:
    base = tmp_path_factory.mktemp("hardened")
    env = {
        "AI_CORE_URL": ai_core_service.url,
        "ETHIX_JWT_KEYS": json.dumps({"k1": JWT_SECRET}),
        "ETHIX_JWT_ACTIVE_KID": "k1",
        "ETHIX_LOGIN_FAILURES_PER_ACCOUNT": "5",
        "ETHIX_LOGIN_BACKOFF_BASE_SECONDS": "1",
        "ETHIX_LOGIN_BACKOFF_MAX_SECONDS": "4",
    }
    service = start_service("services.backend", base / "data", log_dir=base / "logs", env=env)
    yield service
    service.process.stop()


def test_logs_after_a_smoke_run_are_json_lines_with_the_trace_and_no_secret(hardened: Service) -> None:
    report = run_suite(hardened.url, variables={"password": PASSWORD})
    assert report.passed, json.dumps(report.to_dict(), indent=1)
    traced = httpx.get(
        f"{hardened.url}/api/v1/users/me", headers={"X-Cloud-Trace-Context": f"{TRACE_ID}/7;o=1"}, timeout=10
    )
    assert traced.status_code == 401
    time.sleep(0.2)  # the access line is written as the answer leaves
    assert hardened.process.log_path is not None
    text = hardened.process.log_path.read_text()
    entries = [json.loads(line) for line in text.splitlines()]  # every line is one JSON object
    assert {"severity", "message", "time"} <= set(entries[-1])
    mine = [e for e in entries if e.get("request_id") == traced.headers["x-request-id"]]
    assert len(mine) == 1 and mine[0][TRACE] == TRACE_ID
    assert mine[0]["logging.googleapis.com/spanId"] == f"{7:016x}"
    logins = [e for e in entries if e["message"] == "POST /api/v1/auth/login 200"]
    assert logins, "the smoke run's login is in the access log"
    for secret in (PASSWORD, JWT_SECRET, "eyJ", CSV_ROW, report.captures["user_id"] + ".csv"):
        assert secret not in text, secret


def test_a_flood_of_wrong_passwords_is_throttled_and_the_owner_gets_in_after_backoff(
    hardened: Service,
) -> None:
    victim = {"email": "victim@example.com", "password": "the-right-password"}
    url = hardened.url
    assert httpx.post(f"{url}/api/v1/auth/register", json=victim, timeout=30).status_code == 201
    statuses: list[int] = []
    deadline = time.monotonic() + 4

    def flood(client_number: int) -> list[int]:
        # 16 clients behind the local proxy address: each is its own client for the per-client throttle.
        headers = {"X-Forwarded-For": f"198.51.100.{client_number}"}
        seen: list[int] = []
        with httpx.Client(base_url=url, timeout=30, headers=headers) as client:
            while time.monotonic() < deadline:
                body = {"email": victim["email"], "password": f"guess-{client_number}-{len(seen)}"}
                seen.append(client.post("/api/v1/auth/login", json=body).status_code)
        return seen

    with ThreadPoolExecutor(16) as pool:
        for seen in pool.map(flood, range(1, 17)):
            statuses += seen
    assert set(statuses) <= {401, 429}
    assert statuses.count(429) > 10 * statuses.count(401)
    # 5 free failures, then each further one doubles a block of 1 → 4 s: over 4 s only a handful more
    # get to the password check (16 in flight when a block starts can each add one).
    assert statuses.count(401) <= 5 + 16 + 4
    owner = httpx.Client(base_url=url, timeout=30, headers={"X-Forwarded-For": "203.0.113.9"})
    blocked = owner.post("/api/v1/auth/login", json=victim)
    assert blocked.status_code == 429
    time.sleep(int(blocked.headers["retry-after"]) + 0.2)
    assert owner.post("/api/v1/auth/login", json=victim).status_code == 200
    owner.close()
