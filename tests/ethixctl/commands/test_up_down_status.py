"""`ethixctl up / status / logs / down` end to end: the real daemon, Caddy, Prometheus, backend and ai_core,
driven through the local control plane and the Cloud Run adapter."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ethixctl import procs
from ethixctl.cli import main
from ethixctl.platform import manifests, state
from ethixctl.platform.probes import Probes

pytestmark = pytest.mark.e2e


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    state_dir = tmp_path_factory.mktemp("platform") / "state"
    try:
        assert main(["up", "--state-dir", str(state_dir), "--free-ports", "--json"]) == 0
        yield state_dir
    finally:
        main(["down", "--state-dir", str(state_dir), "--json"])


def test_up_serves_both_services_at_100_percent(platform: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "status", "--state-dir", str(platform), "--json")
    assert code == 0
    data = json.loads(out)
    assert data["platform"] == {"router": "up", "prometheus": "up", "control_plane": "up"}
    services = {svc["name"]: svc for svc in data["services"]}
    assert set(services) == {"backend", "ai-core"}
    for svc in services.values():
        assert list(svc["traffic"].values()) == [100]
        (revision,) = svc["revisions"]
        assert revision["ready"] and revision["state"] == "READY" and revision["percent"] == 100
        assert httpx.get(svc["url"] + "/health/liveness", timeout=5).status_code == 200
    info = state.read_json(platform / state.PLATFORM_FILE)
    assert info is not None and info["services"]["backend"] == services["backend"]["url"]
    # backend reaches ai_core through the router (AI_CORE_URL = ai-core's service URL).
    backend_rev = services["backend"]["revisions"][0]["name"]
    pid = state.read_json(platform / state.RUNTIME_FILE)["revisions"][backend_rev]["pid"]  # type: ignore[index]
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert f"AI_CORE_URL={services['ai-core']['url']}".encode() in environ


def test_prometheus_sees_every_revision(platform: Path, capsys: pytest.CaptureFixture[str]) -> None:
    deadline = time.monotonic() + 30
    while True:
        data = json.loads(run(capsys, "status", "--state-dir", str(platform), "--json")[1])
        health = [rev["prometheus"] for svc in data["services"] for rev in svc["revisions"]]
        if health == ["up", "up"] or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert health == ["up", "up"]


def test_the_platform_enforces_the_probes_of_the_yaml(
    platform: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "status", "--state-dir", str(platform), "--json")
    assert code == 0
    for svc in json.loads(out)["services"]:
        (revision,) = svc["revisions"]
        # The YAML read through the Cloud Run v2 types, against what the runtime applies to the revision.
        assert revision["probes"] == Probes.from_container(manifests.container(svc["name"])).to_dict()
        assert revision["probes"]["readiness"]["failure_threshold"] == 2
        assert revision["probes"]["liveness"]["failure_threshold"] == 3
        assert revision["serving"] is True


def test_unknown_service_is_a_usage_error(platform: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "status", "nope", "--state-dir", str(platform))
    assert code == 2 and "nope" in err
    code, _, err = run(capsys, "logs", "nope", "--state-dir", str(platform))
    assert code == 2 and "unknown service 'nope'" in err
    code, _, err = run(
        capsys, "logs", "backend", "--revision", "backend-99999-zzz", "--state-dir", str(platform)
    )
    assert code == 2 and "unknown revision" in err


def test_logs_show_the_revision_output(platform: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "logs", "ai_core", "--lines", "5", "--state-dir", str(platform))
    assert code == 0 and 0 < len(out.splitlines()) <= 5
    # The revisions write JSON lines (issue #15): every one parses, uvicorn's own lines included.
    code, out, _ = run(capsys, "logs", "ai_core", "--lines", "1000", "--json", "--state-dir", str(platform))
    entries = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and all(entry["severity"] != "DEFAULT" for entry in entries)
    assert "Application startup complete." in [entry["message"] for entry in entries]


def test_an_oversized_upload_through_the_router_always_gets_the_json_413(platform: Path) -> None:
    """Regression: 1 upload in 30 of 20 MB through the router got an empty 502 instead of the
    backend's JSON 413. Each attempt here opens a new connection, as the failing clients did."""
    url = (state.read_json(platform / state.PLATFORM_FILE) or {})["services"]["backend"]
    account = {"email": "big-upload@example.com", "password": "correct horse battery"}
    assert httpx.post(url + "/api/v1/auth/register", json=account, timeout=30).status_code == 201
    token = httpx.post(url + "/api/v1/auth/login", json=account, timeout=30).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    csv = b"score,group,approved\n" + b"1,a,yes\n" * (20 * 1024 * 1024 // 8)
    answers = []
    for _ in range(30):
        response = httpx.post(
            url + "/api/v1/datasets",
            files={"file": ("big.csv", csv, "text/csv")},
            headers=headers,
            timeout=60,
        )
        answers.append((response.status_code, response.headers.get("content-type"), response.text))
    expected = (
        413,
        "application/json",
        '{"detail":"request body exceeds the upload limit of 10485760 bytes"}',
    )
    assert answers == [expected] * 30
    # Over Cloud Run's 32 MiB request limit, the router answers itself, in JSON too.
    huge = httpx.post(
        url + "/api/v1/datasets", content=b"x" * (33 * 1024 * 1024), headers=headers, timeout=60
    )
    assert huge.status_code == 413 and "platform's limit of 33554432 bytes" in huge.json()["detail"]


def test_second_up_is_idempotent_and_a_killed_router_is_restarted_by_the_daemon(
    platform: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = state.read_json(platform / state.PLATFORM_FILE)
    assert before is not None
    code, out, _ = run(capsys, "up", "--state-dir", str(platform), "--json")
    assert code == 0
    again = json.loads(out)
    assert again["status"] == "already running" and again["repaired"] == []
    assert again["services"] == before["services"]

    os.kill(before["pids"]["router-edge"], signal.SIGKILL)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        parts = json.loads(run(capsys, "status", "--state-dir", str(platform), "--json")[1])["parts"]
        if parts["router-edge"]["restarts"] == 1 and parts["router-edge"]["state"] == "up":
            break
        time.sleep(0.2)
    assert parts["router-edge"]["last_exit"] == "killed by SIGKILL"
    assert parts["router-edge"]["pid"] != before["pids"]["router-edge"]
    assert parts["router-split"]["restarts"] == 0  # the other half was left alone
    for url in before["services"].values():
        assert httpx.get(url + "/health/liveness", timeout=5).status_code == 200


def test_a_crashed_daemon_leaves_the_data_plane_serving_and_up_adopts_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state_dir = tmp_path / "state"
    try:
        assert run(capsys, "up", "--state-dir", str(state_dir), "--free-ports", "--json")[0] == 0
        info = state.read_json(state_dir / state.PLATFORM_FILE)
        runtime = state.read_json(state_dir / state.RUNTIME_FILE)
        assert info is not None and runtime is not None
        backend = info["services"]["backend"]
        # The daemon dies without cleaning up.
        os.killpg(info["pids"]["daemon"], signal.SIGKILL)
        deadline = time.monotonic() + 5
        while procs.pid_alive(info["pids"]["control-plane"]) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not procs.pid_alive(info["pids"]["control-plane"])  # no traffic change without a daemon
        assert state.daemon_pid(state_dir) is None
        assert httpx.get(backend + "/health/liveness", timeout=5).status_code == 200  # still serving
        # Status says what is true: the data plane serves, the control plane is down, `up` adopts it.
        code, out, err = run(capsys, "status", "--state-dir", str(state_dir), "--json")
        assert code == 5
        seen = json.loads(out)
        assert seen["daemon"] == "down"
        assert seen["platform"] == {"router": "up", "prometheus": "up", "control_plane": "down"}
        backend_revisions = [n for n, r in runtime["revisions"].items() if r["service"] == "backend"]
        assert seen["services"]["backend"] == {
            "url": backend,
            "serving": True,
            "revisions": backend_revisions,
        }
        assert "the control plane is down" in err and "ethixctl up" in err
        code, out, err = run(capsys, "status", "--state-dir", str(state_dir))
        assert code == 5 and "serving" in out and backend in out
        assert "the local platform is not running" not in err
        code, out, _ = run(capsys, "up", "--state-dir", str(state_dir), "--json")
        assert code == 0
        result = json.loads(out)
        assert result["status"] == "started"
        assert result["adopted"] == ["router-split", "router-edge", "prometheus"]
        assert result["services"] == info["services"]  # same ports as before: stable URLs
        after = state.read_json(state_dir / state.PLATFORM_FILE) or {}
        for part in result["adopted"]:
            assert after["pids"][part] == info["pids"][part]
        revisions = (state.read_json(state_dir / state.RUNTIME_FILE) or {})["revisions"]
        assert {n: r["pid"] for n, r in revisions.items()} == {
            n: r["pid"] for n, r in runtime["revisions"].items()
        }
        assert httpx.get(backend + "/health/liveness", timeout=5).status_code == 200
    finally:
        final = state.read_json(state_dir / state.PLATFORM_FILE) or {}
        ports = state.recorded_ports(state_dir)
        pids = state.recorded_pids(state_dir)
        code, out, _ = run(capsys, "down", "--state-dir", str(state_dir), "--json")
    assert code == 0 and json.loads(out)["was_running"]
    assert final, "platform.json missing before down"
    assert not [pid for pid in pids if procs.pid_alive(pid)]
    assert not [port for port in ports if procs.port_in_use(port)]
    assert not (state_dir / state.PLATFORM_FILE).exists()
    code, out, _ = run(capsys, "down", "--state-dir", str(state_dir), "--purge", "--json")
    assert code == 0 and json.loads(out) == {
        "was_running": False,
        "stopped_pids": [],
        "ports_still_bound": [],
        "purged": True,
        "state_dir": str(state_dir),
    }
    assert not state_dir.exists()


def test_missing_prometheus_binary_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ETHIXCTL_PROMETHEUS_BIN", str(tmp_path / "no-prometheus"))
    code, _, err = run(capsys, "up", "--state-dir", str(tmp_path / "state"), "--free-ports")
    assert code == 5
    assert "prometheus binary not found" in err
    assert "apt-get install -y --no-install-recommends prometheus" in err
    assert not (tmp_path / "state" / state.PID_FILE).exists()


def test_status_without_platform_exits_5_with_hint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "status", "--state-dir", str(tmp_path / "none"))
    assert code == 5 and "ethixctl up" in err


def test_a_default_port_in_use_moves_to_a_free_one_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    from ethixctl.platform.daemon import DEFAULT_PORTS

    blocker = socket.socket()
    occupied = DEFAULT_PORTS["control_plane"]
    if not procs.port_in_use(occupied):
        blocker.bind(("127.0.0.1", occupied))
        blocker.listen()
    state_dir = tmp_path / "state"
    try:
        code, out, err = run(capsys, "up", "--state-dir", str(state_dir), "--json")
        assert code == 0, err
        assert f"control_plane {occupied} →" in err
        assert not json.loads(out)["control_plane_url"].endswith(f":{occupied}")
    finally:
        run(capsys, "down", "--purge", "--state-dir", str(state_dir))
        blocker.close()
