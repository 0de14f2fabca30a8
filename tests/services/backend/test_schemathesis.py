"""Schemathesis against the backend's own OpenAPI schema, served by a real uvicorn process.

Checks: no 5xx, and every response matches its documented schema. Authenticated routes get a real
token through a schemathesis config file (an env placeholder), so the token is never on a command line.
ai_core is not needed: analyses started by the fuzzer fail in the background ("unreachable").
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ethixctl import procs
from ethixctl.procs import Service, start_service

CHECKS = [
    "not_a_server_error",
    "response_schema_conformance",
    "status_code_conformance",
    "unsupported_method",
]


@pytest.fixture
def backend_alone(tmp_path: Path) -> Iterator[Service]:
    env = {
        "AI_CORE_URL": f"http://127.0.0.1:{procs.free_port()}",
        "ETHIX_AI_CORE_BACKOFF_SECONDS": "0.01",
        "ETHIX_PASSWORD_HASH_MEMORY_KIB": "1024",
        "ETHIX_PASSWORD_HASH_TIME_COST": "1",
    }
    service = start_service("services.backend", tmp_path / "data", log_dir=tmp_path / "logs", env=env)
    yield service
    service.process.stop()


def _answered_past_auth(url: str) -> Counter[tuple[str, str]]:
    """Requests per (method, route template) that got past authentication (any status but 401)."""
    counts: Counter[tuple[str, str]] = Counter()
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics").text):
        for sample in family.samples:
            if sample.name == "http_requests_total" and sample.labels["status"] != "401":
                counts[(sample.labels["method"], sample.labels["route"])] += int(sample.value)
    return counts


def _authenticated_operations(url: str) -> set[tuple[str, str]]:
    schema = httpx.get(f"{url}/openapi.json").json()
    return {
        (method.upper(), path)
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if operation.get("security") and operation["operationId"] != FUZZ_EXCLUDED_OPERATION
    }


# Deleting the fuzzing user would turn every later request into a 401.
FUZZ_EXCLUDED_OPERATION = "delete_me_api_v1_users_me_delete"


@pytest.mark.e2e
def test_openapi_schema_holds_under_schemathesis(backend_alone: Service, tmp_path: Path) -> None:
    url = backend_alone.url
    credentials = {"email": "fuzz@example.com", "password": "fuzz-password"}
    assert httpx.post(f"{url}/api/v1/auth/register", json=credentials).status_code == 201
    token = httpx.post(f"{url}/api/v1/auth/login", json=credentials).json()["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    csv = b"score,group,approved\n1,a,yes\n2,b,no\n"
    dataset = httpx.post(f"{url}/api/v1/datasets", headers=auth, files={"file": ("d.csv", csv, "text/csv")})
    body = {
        "dataset_id": dataset.json()["id"],
        "target": "approved",
        "protected_attribute": "group",
        "positive_label": "yes",
    }
    analysis = httpx.post(f"{url}/api/v1/analyses", headers=auth, json=body)
    assert analysis.status_code == 202
    config = tmp_path / "schemathesis.toml"
    # Real ids let the fuzzer past the 404s into the handlers of existing resources.
    config.write_text(
        'headers = { Authorization = "Bearer ${ETHIX_FUZZ_TOKEN}" }\n'
        "[parameters]\n"
        f'"path.analysis_id" = "{analysis.json()["id"]}"\n'
        f'"path.dataset_id" = "{dataset.json()["id"]}"\n'
    )
    before_fuzzing = _answered_past_auth(url)
    binary = Path(sys.executable).parent / "schemathesis"
    argv = [
        str(binary), "--config-file", str(config), "--no-color", "run", f"{url}/openapi.json",
        # Status conformance too: every status the service answers must be in its document (issue #8).
        "--checks", ",".join(CHECKS),
        "--phases", "examples,coverage,fuzzing",
        "--max-examples", "15", "--seed", "7", "--workers", "1",
        "--generation-database", "none", "--request-timeout", "10",
        "--exclude-operation-id", FUZZ_EXCLUDED_OPERATION,
    ]  # fmt: skip
    done = subprocess.run(
        argv,
        env={"ETHIX_FUZZ_TOKEN": token, "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,  # schemathesis keeps a .schemathesis/ cache in its working directory
        capture_output=True,
        text=True,
        timeout=120,
    )
    (tmp_path / "schemathesis.out").write_text(done.stdout + done.stderr)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert "passed" in done.stdout
    # The token worked: the fuzzer's own requests (counted after the setup's) reached the handler of
    # every authenticated operation, not only the 401 of the auth dependency.
    fuzzed = _answered_past_auth(url) - before_fuzzing
    operations = _authenticated_operations(url)
    assert ("GET", "/api/v1/users/me") in operations
    unreached = sorted(op for op in operations if fuzzed[op] == 0)
    assert not unreached, f"no fuzzed request got past authentication on {unreached}"
