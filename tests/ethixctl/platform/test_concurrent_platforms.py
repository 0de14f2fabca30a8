"""Two local platforms started at the same moment by two processes never share a port.

Regression: both `ethixctl up` runs found the same ports free (here: the same ports remembered from a
previous run in ports.json, as two copies of one state dir would), and both Caddys bound them, without
an error because Caddy binds with SO_REUSEPORT; the kernel then split each port's connections between
the two platforms, so one platform's clients reached the other's revisions.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ethixctl import procs
from ethixctl.adapters.cloudrun import CloudRun
from ethixctl.platform import lifecycle, state
from ethixctl.platform.daemon import PROJECT, REGION

pytestmark = pytest.mark.e2e

CADDY_PORTS = ("router_admin", "backend", "ai-core")


@pytest.fixture
def two_platforms(tmp_path: Path) -> Iterator[list[dict[str, Any]]]:
    remembered = {name: procs.free_port() for name in CADDY_PORTS}
    state_dirs = [tmp_path / "a", tmp_path / "b"]
    for state_dir in state_dirs:
        own = {"control_plane": procs.free_port(), "prometheus": procs.free_port()}
        state.write_json(state_dir / state.PORTS_FILE, {**remembered, **own})
    ups = [
        subprocess.Popen(
            [sys.executable, "-m", "ethixctl", "up", "--free-ports", "--state-dir", str(state_dir)],
            cwd=procs.REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for state_dir in state_dirs
    ]
    try:
        outputs = [up.communicate(timeout=300)[0] for up in ups]
        assert [up.returncode for up in ups] == [0, 0], outputs
        infos = [state.read_json(state_dir / state.PLATFORM_FILE) or {} for state_dir in state_dirs]
        yield infos
    finally:
        for up in ups:
            if up.poll() is None:
                up.kill()
                up.wait()
        for state_dir in state_dirs:
            lifecycle.down(state_dir)


def _me(url: str, token: str) -> int:
    # A new connection per request: SO_REUSEPORT spreads connections, not requests, over the listeners.
    headers = {"Authorization": f"Bearer {token}", "Connection": "close"}
    return httpx.get(f"{url}/api/v1/users/me", headers=headers, timeout=10).status_code


def test_two_platforms_started_at_once_hold_disjoint_ports_and_serve_their_own_revisions(
    two_platforms: list[dict[str, Any]],
) -> None:
    a, b = two_platforms
    assert set(a["ports"].values()).isdisjoint(b["ports"].values()), (a["ports"], b["ports"])
    for info in (a, b):
        holding = procs.port_holding(
            info["pids"]["router-edge"], [info["ports"][name] for name in CADDY_PORTS]
        )
        assert holding is None or holding.exclusive, (info["ports"], holding)
        assert info["services"]["backend"] == f"http://127.0.0.1:{info['ports']['backend']}"
        # The backend calls its own platform's ai-core, at the port that platform holds.
        backend = CloudRun(PROJECT, REGION, info["control_plane_url"]).service_spec("backend")
        ai_core_url = backend.variable("AI_CORE_URL")
        assert ai_core_url is not None and ai_core_url.value == info["services"]["ai-core"], ai_core_url

    tokens = []
    for index, info in enumerate((a, b)):
        url = info["services"]["backend"]
        credentials = {"email": f"owner-{index}@example.com", "password": "correct-horse-battery"}
        assert httpx.post(f"{url}/api/v1/auth/register", json=credentials, timeout=30).status_code == 201
        login = httpx.post(f"{url}/api/v1/auth/login", json=credentials, timeout=30)
        assert login.status_code == 200
        tokens.append(login.json()["access_token"])
    # Each user exists in one platform's database only: every request through a platform's URL must be
    # answered by that platform's own backend revision.
    for info, token, other in ((a, tokens[0], tokens[1]), (b, tokens[1], tokens[0])):
        url = info["services"]["backend"]
        assert [_me(url, token) for _ in range(30)] == [200] * 30
        assert _me(url, other) == 401
