"""Preflight end to end against the local control plane (real google-cloud-run and secret-manager REST
clients, real control plane, test runtime), a wire-level fake Prometheus (its /api/v1/targets and
/api/v1/query), and a real ledger holding the smoke runs, rotations and drills other commands record.
Services are created with full templates (probes, scaling, secret references), like production's."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, ClassVar

import pytest
from google.cloud import run_v2

from ethixctl import procs
from ethixctl.adapters import _google
from ethixctl.adapters.secrets import SecretManager
from ethixctl.cli import main
from ethixctl.config import Environment
from ethixctl.exitcodes import ExitCode
from ethixctl.ops.ledger import Ledger
from ethixctl.preflight import model
from ethixctl.preflight.run import execute
from tests.ethixctl.platform.controlplane.testruntime import local_control_plane
from tests.httpserver import serve

SECRET_VALUE = b"s3cret-value-never-shown"
INLINE_SECRET = "mongodb+srv://admin:inline-password@db.example/ethix"


class _Prometheus(BaseHTTPRequestHandler):
    """Answers /api/v1/targets with one target per service; ``down`` names services whose target is down."""

    down: ClassVar[set[str]] = set()
    managed: ClassVar[bool] = False  # like Managed Service for Prometheus: no targets API, no series here

    def do_GET(self) -> None:
        if self.managed and self.path.startswith("/api/v1/targets"):
            self.send_response(404)
            self.end_headers()
            return
        if self.path.startswith("/api/v1/targets"):
            targets = [
                {"labels": {"service": s, "revision": f"{s}-1"}, "health": "down" if s in self.down else "up",
                 "scrapeUrl": f"http://127.0.0.1:1/{s}", "lastError": "", "scrapePool": "revisions"}
                for s in ("backend", "ai-core")
            ]  # fmt: skip
            body: dict[str, Any] = {
                "status": "success",
                "data": {"activeTargets": targets, "droppedTargets": []},
            }
        else:
            body = {"status": "success", "data": {"resultType": "vector", "result": []}}
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


def _env(name: str, value: str | None = None, secret: str | None = None, version: str = "current") -> Any:
    if secret is None:
        return run_v2.EnvVar(name=name, value=value)
    ref = run_v2.SecretKeySelector(secret=secret, version=version)
    return run_v2.EnvVar(name=name, value_source=run_v2.EnvVarSource(secret_key_ref=ref))


def _production_like(image: str, env: list[Any], *, probes: bool = True, min_instances: int = 1) -> Any:
    container = run_v2.Container(image=image, env=env)
    if probes:
        container.startup_probe = run_v2.Probe(http_get=run_v2.HTTPGetAction(path="/health/startup"))
        container.liveness_probe = run_v2.Probe(http_get=run_v2.HTTPGetAction(path="/health/liveness"))
    latest = run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST
    return run_v2.Service(
        template=run_v2.RevisionTemplate(
            containers=[container], scaling=run_v2.RevisionScaling(min_instance_count=min_instances)
        ),
        traffic=[run_v2.TrafficTarget(type_=latest, percent=100)],
    )


GOOD_BACKEND = [
    _env("ETHIX_ENV", "production"),
    _env("ETHIX_LOG_LEVEL", "warn"),  # the alias of LOG_LEVEL counts too
    _env("ETHIX_STORAGE_URL", "gs://ethix-prod-datasets"),
    _env("AI_CORE_URL", "https://ai-core.example"),
    _env("ETHIX_JWT_ACTIVE_KID", "2026-01"),
    _env("ETHIX_RATE_LIMIT_ENABLED", "true"),
    _env("ETHIX_RATE_LIMIT_DEFAULT", "120/minute"),
    _env("ETHIX_RATE_LIMIT_AUTH", "10/minute"),
    _env("ETHIX_CORS_ORIGINS", "https://app.ethix.example"),
    _env("ETHIX_JWT_KEYS", secret="ethix-jwt-keys"),
    _env("ETHIX_DATABASE_URL", secret="ethix-database-url"),
]
GOOD_AI_CORE = [_env("ETHIX_ENV", "production")]  # LOG_LEVEL unset: warning in production


@dataclass
class Lab:
    environment: Environment
    prometheus: type[_Prometheus]
    services: run_v2.ServicesClient

    def create(self, service: str, body: Any) -> None:
        parent = "projects/local/locations/local"
        self.services.create_service(parent=parent, service=body, service_id=service).result(timeout=60)

    def replace(self, service: str, body: Any) -> None:
        body.name = f"projects/local/locations/local/services/{service}"
        self.services.update_service(service=body).result(timeout=60)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    handler = type("Prometheus", (_Prometheus,), {"down": set()})
    with local_control_plane(tmp_path / "cp") as (server, _), serve(handler) as prometheus_url:
        secrets = SecretManager("local", endpoint=server.url)
        for name in ("ethix-jwt-keys", "ethix-database-url"):
            secrets.create_secret(name)
            secrets.set_alias(name, "current", secrets.add_version(name, SECRET_VALUE))
        environment = Environment(
            name="production", kind="cloudrun", project="local", region="local", run_endpoint=server.url,
            secrets_endpoint=server.url, prometheus_url=prometheus_url, state_dir=tmp_path / "state",
        )  # fmt: skip
        lab = Lab(environment, handler, run_v2.ServicesClient(**_google.client_kwargs(server.url)))
        lab.create("backend", _production_like("envserver", GOOD_BACKEND))
        lab.create("ai-core", _production_like("envserver", GOOD_AI_CORE))
        with Ledger(environment.state_dir) as ledger:
            _history(ledger, environment.name)
        yield lab


def _finished(ledger: Ledger, kind: str, subject: str, env: str, status: str, days_ago: float = 0.0) -> None:
    op = ledger.create_operation(kind, subject, env, "done")
    ledger.finish_if_in_progress(op.id, status, "recorded by the test")
    when = time.time() - days_ago * 86_400
    # The clock of a past operation: the only way to have one that is days old.
    ledger._db.execute(
        "UPDATE operations SET started_at = ?, finished_at = ? WHERE id = ?", (when, when, op.id)
    )


def _history(ledger: Ledger, env: str) -> None:
    """What the smoke, secrets and DR commands would have recorded."""
    for service in ("backend", "ai-core"):
        _finished(ledger, "smoke", service, env, "passed", days_ago=0.5)
    _finished(ledger, "rotation", "ethix-jwt-keys", env, "completed", days_ago=30)
    _finished(ledger, "rotation", "ethix-database-url", env, "completed", days_ago=10)
    _finished(ledger, "rotation", "ethix-session-key", env, "rotated", days_ago=80)  # loaded at runtime
    _finished(ledger, "drill", "database", env, "passed", days_ago=2)


ANSWERS = {"on_call": "alice", "staging_signoff": "bob"}


def _run(lab: Lab, answers: dict[str, str] = ANSWERS, **kwargs: Any) -> Any:
    with Ledger(lab.environment.state_dir) as ledger:
        return execute(
            model.load(), lab.environment, ledger, services=kwargs.pop("services", None), metric_source="app",
            answers=answers, ask=None, **kwargs,
        )  # fmt: skip


def test_production_like_services_pass_both_checklists_local_control_plane(lab: Lab) -> None:
    report = _run(lab)
    assert report.checklists == ["pre-release", "pre-production"]
    assert sorted(report.services) == ["ai-core", "backend"]
    assert [(r.id, r.detail) for r in report.problems()] == []
    assert report.status == "passed" and report.exit_code is ExitCode.OK
    assert len(report.items) == 18
    with Ledger(lab.environment.state_dir) as ledger:
        [entry] = ledger.operations("production", kind="preflight")
    assert entry.status == "passed" and entry.subject == "all"
    confirmed = {i["id"]: i["detail"] for i in entry.details["items"] if i["kind"] == "confirm"}
    assert confirmed["on_call"] == "alice (--confirm)"


def test_each_spec_problem_is_named_without_showing_values_local_control_plane(lab: Lab) -> None:
    bad = [
        _env("ETHIX_ENV", "development"),
        _env("LOG_LEVEL", "debug"),
        _env("ETHIX_CORS_ORIGINS", "*"),
        _env("ETHIX_FAULT_ERROR_RATE", "0.2"),
        _env("ETHIX_DATABASE_URL", INLINE_SECRET),  # a secret set inline
        _env("ETHIX_JWT_KEYS", secret="ethix-jwt-keys", version="latest"),
    ]
    lab.replace("backend", _production_like("envserver", bad, probes=False, min_instances=0))
    report = _run(lab, services=["backend"])
    failed = {r.id: r.detail for r in report.problems()}
    assert set(failed) == {
        "required_variables", "no_inline_secrets", "secrets_by_alias", "probes", "production_mode",
        "no_fault_injection", "min_instances", "log_level", "rate_limiting", "cors_restricted",
    }  # fmt: skip
    assert failed["required_variables"] == (
        "backend: missing ETHIX_STORAGE_URL, ETHIX_JWT_ACTIVE_KID, AI_CORE_URL, ETHIX_RATE_LIMIT_ENABLED,"
        " ETHIX_RATE_LIMIT_DEFAULT, ETHIX_RATE_LIMIT_AUTH"
    )
    assert "ETHIX_CORS_ORIGINS allows *" in failed["cors_restricted"]
    assert "ETHIX_DATABASE_URL is set inline" in failed["no_inline_secrets"]
    assert "ETHIX_JWT_KEYS reads ethix-jwt-keys version latest" in failed["secrets_by_alias"]
    assert "no startup or liveness probe" in failed["probes"]
    assert "minimum instances 0, need 1" in failed["min_instances"]
    assert report.exit_code is ExitCode.FAILED
    shown = json.dumps(report.to_dict())
    assert "inline-password" not in shown and "development" not in shown and "debug" not in shown


def test_the_ledger_decides_smoke_rotation_and_drill_local_control_plane(lab: Lab) -> None:
    with Ledger(lab.environment.state_dir) as ledger:
        _finished(ledger, "smoke", "backend", "production", "failed")  # newest run of backend failed
        _finished(ledger, "rotation", "ethix-jwt-keys", "production", "failed")  # a failed one does not count
        ledger._db.execute("DELETE FROM operations WHERE subject IN ('database', 'ethix-database-url')")
        _finished(ledger, "drill", "database", "production", "passed", days_ago=9)  # older than weekly
        _finished(ledger, "drill", "database", "production", "failed")  # a failed drill does not count
        _finished(ledger, "rotation", "ethix-database-url", "production", "completed", days_ago=120)
        ledger.create_operation("release", "ai-core", "production", "canary")  # still in progress
    failed = {r.id: r.detail for r in _run(lab).problems()}
    assert set(failed) == {"smoke_green", "dr_drill", "secrets_rotated", "no_release_in_progress"}
    assert "backend: the last smoke run failed" in failed["smoke_green"]
    assert (
        "ethix-database-url: overdue, last rotated 120.0 days ago (due every 90 days)"
        in failed["secrets_rotated"]
    )
    assert "ethix-jwt-keys" not in failed["secrets_rotated"], (
        "its completed rotation 30 days ago still counts"
    )
    assert "9.0 days ago" in failed["dr_drill"]
    assert "release" in failed["no_release_in_progress"] and "ai-core" in failed["no_release_in_progress"]


def test_unanswered_questions_fail_and_down_targets_fail_local_control_plane(lab: Lab) -> None:
    lab.prometheus.down.add("ai-core")
    report = _run(lab, answers={"on_call": "alice"}, checklists=["pre-release", "pre-production"])
    failed = {r.id: r.detail for r in report.problems()}
    assert set(failed) == {"metrics_ready", "staging_signoff"}
    assert "ai-core: target http://127.0.0.1:1/ai-core is down" in failed["metrics_ready"]
    assert "--confirm staging_signoff=WHO" in failed["staging_signoff"]


def test_without_a_targets_api_the_series_must_exist_local_control_plane(lab: Lab) -> None:
    lab.prometheus.managed = True
    failed = {r.id: r.detail for r in _run(lab).problems()}
    assert failed == {
        "metrics_ready": "ai-core: no http_requests_total series; backend: no http_requests_total series"
    }


def test_unreachable_prometheus_is_exit_5_not_a_verdict_local_control_plane(lab: Lab) -> None:
    lab.environment.prometheus_url = f"http://127.0.0.1:{procs.free_port()}"
    report = _run(lab)
    [problem] = report.problems()
    assert (problem.id, problem.status) == ("metrics_ready", "unavailable")
    assert report.status == "unavailable" and report.exit_code is ExitCode.PLATFORM_UNAVAILABLE


def _config(tmp_path: Path, lab: Lab) -> tuple[list[str], Path]:
    env = lab.environment
    config = tmp_path / "ethixctl.toml"
    config.write_text(
        f'[environments.production]\nkind = "cloudrun"\nproject = "local"\nregion = "local"\n'
        f'run_endpoint = "{env.run_endpoint}"\nsecrets_endpoint = "{env.secrets_endpoint}"\n'
        f'prometheus_url = "{env.prometheus_url}"\nstate_dir = "{env.state_dir}"\n'
    )
    return ["--env", "production"], config


def test_cli_json_and_exit_codes_local_control_plane(
    lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    args, config = _config(tmp_path, lab)
    monkeypatch.setenv("ETHIXCTL_CONFIG", str(config))
    confirmations = [f"--confirm={k}={v}" for k, v in ANSWERS.items()]
    assert main(["preflight", *args, "--json", *confirmations]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["status"] == "passed" and len(data["items"]) == 18 and data["operation_id"]

    assert main(["preflight", *args, "--json", "--confirm", "on_call=alice"]) == ExitCode.FAILED
    data = json.loads(capsys.readouterr().out)
    assert [i["id"] for i in data["items"] if i["status"] == "fail"] == ["staging_signoff"]

    assert main(["preflight", *args, "--confirm", "oncall=alice"]) == ExitCode.USAGE
    assert "no such item to confirm" in capsys.readouterr().err


def test_release_stops_on_a_failed_preflight_and_records_a_skip_local_control_plane(
    lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    args, config = _config(tmp_path, lab)
    monkeypatch.setenv("ETHIXCTL_CONFIG", str(config))
    image = "europe-west1-docker.pkg.dev/p/ethix/backend:v2"
    release = ["release", "backend", "--image", image, "--yes", *args]
    before = lab.services.get_service(
        name="projects/local/locations/local/services/backend"
    ).latest_ready_revision

    assert main([*release, "--confirm", "on_call=alice"]) == ExitCode.FAILED
    err = capsys.readouterr().err
    assert "preflight failed (staging_signoff): nothing was changed" in err
    after = lab.services.get_service(
        name="projects/local/locations/local/services/backend"
    ).latest_ready_revision
    assert after == before
    with Ledger(lab.environment.state_dir) as ledger:
        assert ledger.operations("production", kind="release") == []
        [checked] = ledger.operations("production", kind="preflight", subject="backend")
        assert checked.status == "failed"

    assert (
        main([*release, "--dry-run", "--load", "20", "--skip-preflight", "hotfix INC-7, approved by cto"])
        == 0
    )
    assert "--skip-preflight" in capsys.readouterr().err
    with Ledger(lab.environment.state_dir) as ledger:
        skipped = ledger.operations("production", kind="preflight", subject="backend", newest_first=True)[0]
    assert (skipped.status, skipped.reason) == ("skipped", "hotfix INC-7, approved by cto")
