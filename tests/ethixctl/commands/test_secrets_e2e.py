"""`ethixctl secrets` end to end on the REAL local platform (`ethixctl up`: the local control plane as
Secret Manager and Cloud Run, two uvicorn revisions of services.backend splitting traffic 50/50 behind
Caddy, Prometheus scraping them). Nothing is faked; token lifetimes are compressed through a test
catalog (the platform gives the backend the catalog's lifetimes).

The tests share one platform and run in file order.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from ethixctl import procs
from ethixctl.adapters.secrets import SecretManager
from ethixctl.cli import main
from ethixctl.exitcodes import ExitCode
from ethixctl.ops.ledger import Ledger
from ethixctl.platform import state
from ethixctl.secrets import catalog

pytestmark = pytest.mark.e2e

ACCESS_TTL = 20  # seconds; the grace of jwt-signing-key is this plus 1 s of clock skew
PASSWORD = "rotation-password"


@dataclass
class Platform:
    state_dir: Path
    info: dict[str, Any]
    catalog_path: Path
    fast_catalog_path: Path  # jwt-signing-key with a 1 s grace, for the interruption tests
    outputs: list[str] = field(default_factory=list)
    # Every secret value seen, for the leak check; never in a repr (pytest prints failing fixtures).
    values: set[str] = field(default_factory=set, repr=False)

    @property
    def url(self) -> str:
        return str(self.info["services"]["backend"])

    def args(self, fast: bool = False, catalog: bool = True) -> list[str]:
        if not catalog:
            return ["--state-dir", str(self.state_dir)]
        return [
            "--state-dir",
            str(self.state_dir),
            "--catalog",
            str(self.fast_catalog_path if fast else self.catalog_path),
        ]

    def secrets(self) -> SecretManager:
        return SecretManager("local", endpoint=self.info["control_plane_url"])

    def ledger(self) -> Ledger:
        return Ledger(self.state_dir)

    def remember_values(self) -> None:
        """The value of every enabled version of every secret, so the leak check can look for them."""
        sm = self.secrets()
        for secret in ("jwt-signing-key", "session-key", "slack-webhook"):
            for version in sm.list_versions(secret):
                if version.state == "ENABLED":
                    self.values.add(sm.access(secret, version.version).decode())

    def cli(
        self, capsys: pytest.CaptureFixture[str], *argv: str, fast: bool = False
    ) -> tuple[int, list[dict[str, Any]]]:
        capsys.readouterr()
        code = main([*argv, *self.args(fast, catalog=argv[0] == "secrets")])
        captured = capsys.readouterr()
        self.outputs += [captured.out, captured.err]
        events = [json.loads(line) for line in captured.out.splitlines() if line.startswith("{")]
        return code, events

    def spawn(self, *argv: str, fast: bool = True) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "ethixctl", *argv, *self.args(fast)],
            cwd=procs.REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True,
        )  # fmt: skip


def _write_catalogs(base: Path) -> tuple[Path, Path]:
    text = catalog.DEFAULT_PATH.read_text()
    text = text.replace("access_token_ttl: 15m", f"access_token_ttl: {ACCESS_TTL}s")
    text = text.replace("clock_skew: 1m", "clock_skew: 1s")
    assert f"access_token_ttl: {ACCESS_TTL}s" in text and "clock_skew: 1s" in text
    normal, fast = base / "secrets.yaml", base / "secrets-fast.yaml"
    normal.write_text(text)
    fast.write_text(text.replace("    grace: access_token_ttl", "    grace: 1s"))
    return normal, fast


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    from ethixctl.adapters.cloudrun import CloudRun
    from ethixctl.platform import lifecycle

    base = tmp_path_factory.mktemp("secrets-platform")
    normal, fast = _write_catalogs(base)
    state_dir = base / "state"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(
            "ETHIXCTL_SECRETS_CATALOG", str(normal)
        )  # the daemon seeds from it, revisions get its TTLs
        result = lifecycle.up(state_dir, free_ports=True, timeout=240)
    try:
        cloud_run = CloudRun("local", "local", endpoint=result.info["control_plane_url"])
        first = next(iter(cloud_run.serving_split("backend")))
        image = cloud_run.get_service("backend").image
        second = cloud_run.deploy_revision("backend", image, {"ETHIX_TEST_REPLICA": "2"}, tag=None).name
        cloud_run.set_traffic("backend", {first: 50, second: 50})
        yield Platform(state_dir, result.info, normal, fast)
    finally:
        lifecycle.down(state_dir)


@pytest.fixture(scope="module")
def users(platform: Platform) -> list[str]:
    emails = [f"user{i}@example.com" for i in range(4)]
    with httpx.Client(base_url=platform.url, timeout=30) as client:
        for email in emails:
            assert (
                client.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD}).status_code
                == 201
            )
    return emails


def _login(client: httpx.Client, email: str) -> dict[str, Any]:
    # The backend hashes one password per core at a time and refuses the excess (429, Retry-After) rather
    # than queueing it: several clients logging in at once retry as a real client would.
    deadline = time.monotonic() + 30
    while True:
        response = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        if response.status_code != 429 or time.monotonic() > deadline:
            break
        time.sleep(float(response.headers.get("retry-after", "1")))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


class Load:
    """Authenticated requests from several threads through the router; each thread refreshes its token
    every couple of seconds, so tokens are issued before, during and after a rotation."""

    def __init__(self, url: str, emails: list[str], refresh_every: float = 2.0):
        self.url = url
        self.emails = emails
        self.refresh_every = refresh_every
        self.statuses: Counter[int] = Counter()
        self.failures: list[str] = []
        self.kids: set[str] = set()
        self.requests = 0
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(e,), daemon=True) for e in emails]
        self.started = 0.0
        self.ended = 0.0

    def __enter__(self) -> Load:
        self.started = time.monotonic()
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)
        self.ended = time.monotonic()

    def rate(self) -> float:
        return self.requests / max(self.ended - self.started, 1e-9)

    def _run(self, email: str) -> None:
        try:
            self._drive(email)
        except Exception as exc:  # a load thread that dies must fail the test, not thin the load
            self.failures.append(f"load thread for {email} died: {exc!r}")

    def _drive(self, email: str) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            tokens = _login(client, email)
            issued = time.monotonic()
            while not self.stop.is_set():
                if time.monotonic() - issued > self.refresh_every:
                    response = client.post(
                        "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
                    )
                    self._count(response, "refresh")
                    if response.status_code == 200:
                        tokens, issued = response.json(), time.monotonic()
                    continue
                self.kids.add(jwt.get_unverified_header(tokens["access_token"])["kid"])
                me = client.get(
                    "/api/v1/users/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
                )
                self._count(me, "me")

    def _count(self, response: httpx.Response, what: str) -> None:
        self.statuses[response.status_code] += 1
        self.requests += 1
        if response.status_code == 401 or response.status_code >= 500:
            self.failures.append(
                f"{what} {response.status_code} {response.headers.get('x-ethix-revision')}:"
                f" {response.text[:200]}"
            )


def _me(platform: Platform, token: str) -> httpx.Response:
    return httpx.get(
        f"{platform.url}/api/v1/users/me", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


def _state(platform: Platform, secret: str) -> tuple[dict[str, str], dict[str, str]]:
    sm = platform.secrets()
    return sm.aliases(secret), {v.version: v.state for v in sm.list_versions(secret)}


def test_dry_run_shows_the_stages_and_what_revisions_loaded_and_changes_nothing(
    platform: Platform, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _state(platform, "jwt-signing-key")
    deadline = time.monotonic() + 30
    while True:  # the second revision was just deployed: until Prometheus scraped it, it reports nothing
        code, (plan,) = platform.cli(capsys, "secrets", "rotate", "jwt-signing-key", "--dry-run", "--json")
        if all(seen == ["1"] for seen in plan["current_loaded"].values()) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert code == 0 and plan["dry_run"] is True and plan["aliases"] == {"current": "1"}
    assert plan["phases"][:3] == ["add_version", "alias_next", "await_next"]
    assert plan["grace_seconds"] == ACCESS_TTL + 1 and len(plan["serving_revisions"]) == 2
    assert all(seen == ["1"] for seen in plan["current_loaded"].values()), plan["current_loaded"]
    assert _state(platform, "jwt-signing-key") == before
    with platform.ledger() as ledger:
        assert ledger.operations("local", "rotation") == []


def test_scheduled_jwt_rotation_under_load_has_zero_401_and_zero_5xx_and_pyjwkclient_follows(
    platform: Platform, users: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    platform.remember_values()
    jwks = jwt.PyJWKClient(f"{platform.url}/.well-known/jwks.json")
    with httpx.Client(base_url=platform.url, timeout=30) as client:
        before = _login(client, users[0])
    old_kid = jwt.get_unverified_header(before["access_token"])["kid"]
    assert jwt.decode(
        before["access_token"], jwks.get_signing_key_from_jwt(before["access_token"]), ["EdDSA"]
    )
    fetched_at = time.monotonic()

    with Load(platform.url, users[1:]) as load:
        time.sleep(3)
        code, events = platform.cli(
            capsys, "secrets", "rotate", "jwt-signing-key", "--yes", "--json", "--max-wait", "60"
        )
        after_rotation = time.monotonic()
        time.sleep(3)
    assert code == 0, platform.outputs[-1]
    result = events[-1]
    assert result["status"] == "rotated" and result["old_version"] == "1" and result["new_version"] == "2"
    # Zero 401s and zero 5xx across the whole rotation, at >= 50 authenticated requests/s.
    assert load.failures == [], load.failures[:5]
    assert load.rate() >= 50, (load.rate(), load.statuses)
    assert set(load.statuses) == {200}
    print(f"rotation under load: {load.requests} requests at {load.rate():.0f}/s, {dict(load.statuses)}")
    # Tokens were issued with both keys during the run; the new key signs now.
    with httpx.Client(base_url=platform.url, timeout=30) as client:
        after = _login(client, users[0])
    new_kid = jwt.get_unverified_header(after["access_token"])["kid"]
    assert new_kid != old_kid and {old_kid, new_kid} <= load.kids
    # PyJWKClient meets an unknown kid, refetches, and verifies the new token. PyJWT >= 2.14 refetches at
    # most once per cooldown (30 s by default) after its last fetch: wait out what remains of it.
    time.sleep(max(0.0, fetched_at + getattr(jwks, "cooldown_duration", 0.0) - time.monotonic()))
    assert jwt.decode(after["access_token"], jwks.get_signing_key_from_jwt(after["access_token"]), ["EdDSA"])
    # The old key was disabled only after the grace (longest token + skew): the token issued before the
    # rotation stayed valid until it expired, and has expired now.
    with platform.ledger() as ledger:
        op = ledger.operation(result["operation"])
    assert op.details["finished_rotation_at"] - op.details["promoted_at"] >= ACCESS_TTL + 1
    assert after_rotation > 0 and _me(platform, before["access_token"]).json()["detail"] in (
        "token expired",
        "token signed with an unknown key",
    )
    aliases, states = _state(platform, "jwt-signing-key")
    assert aliases == {"current": "2"} and states == {"1": "DISABLED", "2": "ENABLED"}
    assert [k["kid"] for k in httpx.get(f"{platform.url}/.well-known/jwks.json").json()["keys"]] == [new_kid]
    platform.remember_values()


def test_history_lists_the_rotation_with_its_stages(
    platform: Platform, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = platform.cli(capsys, "history", "jwt-signing-key", "--json")
    assert code == 0
    data = json.loads(platform.outputs[-2])
    (rotation,) = [op for op in data["operations"] if op["kind"] == "rotation"]
    assert rotation["status"] == "rotated" and rotation["user"]
    with platform.ledger() as ledger:
        phases = [e["data"]["phase"] for e in ledger.events(rotation["id"], "phase")]
    assert phases == [
        "add_version",
        "alias_next",
        "await_next",
        "promote",
        "await_current",
        "grace",
        "disable_old",
    ]


@pytest.mark.parametrize("kill_after", [1, 2, 3, 4, 5, 6])
def test_sigkill_at_each_stage_then_resume_finishes_cleanly(
    platform: Platform, capsys: pytest.CaptureFixture[str], kill_after: int
) -> None:
    """SIGKILL after the Nth stage event (version, alias next, loaded, alias current, loaded, grace)."""
    aliases_before, states_before = _state(platform, "jwt-signing-key")
    old = aliases_before["current"]
    process = platform.spawn("secrets", "rotate", "jwt-signing-key", "--yes", "--json")
    seen = 0
    assert process.stdout is not None
    try:
        for line in process.stdout:
            event = json.loads(line)
            if event["event"] in ("version", "alias", "loaded", "grace", "disabled"):
                seen += 1
            if seen == kill_after:
                os.killpg(process.pid, signal.SIGKILL)
                break
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    with platform.ledger() as ledger:
        pending = ledger.in_progress("rotation", "jwt-signing-key", "local")
    if pending is not None:  # killed before it ended: a second rotation is refused, --resume finishes it
        code, _ = platform.cli(capsys, "secrets", "rotate", "jwt-signing-key", "--yes", fast=True)
        assert code == ExitCode.USAGE and "already in progress" in platform.outputs[-1]
        code, events = platform.cli(
            capsys, "secrets", "rotate", "jwt-signing-key", "--resume", "--json", fast=True
        )
        assert code == 0, platform.outputs[-1]
        assert events[-1]["status"] == "rotated"
    aliases, states = _state(platform, "jwt-signing-key")
    new = str(max(int(v) for v in states))
    # Exactly one version added, nothing left half-applied: current is it, the old one is disabled.
    assert len(states) == len(states_before) + 1
    assert aliases == {"current": new} and states[new] == "ENABLED" and states[old] == "DISABLED"
    platform.remember_values()


def test_control_plane_stopped_mid_rotation_exits_5_services_keep_serving_and_resume_finishes(
    platform: Platform, users: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    # The control plane (Secret Manager + Cloud Run) is a process of its own, supervised by the daemon:
    # both are stopped, so the daemon does not restart the hung control plane behind the test's back.
    pids = state.read_json(platform.state_dir / state.PLATFORM_FILE)["pids"]
    hung = [int(pids["daemon"]), int(pids["control-plane"])]
    with httpx.Client(base_url=platform.url, timeout=30) as client:
        token = _login(client, users[0])["access_token"]
    aliases_before, states_before = _state(platform, "jwt-signing-key")
    process = platform.spawn("secrets", "rotate", "jwt-signing-key", "--yes", "--json")
    stopped = False
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if json.loads(line)["event"] == "version":
                for pid in hung:
                    os.kill(pid, signal.SIGSTOP)
                stopped = True
                break
        code = process.wait(timeout=120)
        err = process.stderr.read() if process.stderr else ""
        assert code == ExitCode.PLATFORM_UNAVAILABLE, err
        assert "not answering" in err or "unreachable" in err
        # The services keep serving with the keys they hold (fail static); readiness says how stale.
        assert _me(platform, token).status_code == 200
        time.sleep(3)
        readiness = httpx.get(f"{platform.url}/health/readiness", timeout=30).json()
        assert readiness["status"] == "ready" and readiness["checks"]["secret:jwt-signing-key"].startswith(
            "stale"
        )
    finally:
        if stopped:
            for pid in reversed(hung):
                os.kill(pid, signal.SIGCONT)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    # Nothing half-applied that the ledger does not record.
    with platform.ledger() as ledger:
        pending = ledger.in_progress("rotation", "jwt-signing-key", "local")
    assert pending is not None and pending.details["new_version"]
    aliases, states = _state(platform, "jwt-signing-key")
    assert aliases["current"] == aliases_before["current"]
    assert aliases.get("next") in (None, pending.details["new_version"])
    assert len(states) == len(states_before) + 1
    code, events = platform.cli(
        capsys, "secrets", "rotate", "jwt-signing-key", "--resume", "--json", fast=True
    )
    assert code == 0 and events[-1]["status"] == "rotated", platform.outputs[-1]
    assert _state(platform, "jwt-signing-key")[0] == {"current": pending.details["new_version"]}
    platform.remember_values()


def test_emergency_rotation_revokes_sessions_and_old_tokens_are_refused_within_one_refresh_interval(
    platform: Platform, users: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with httpx.Client(base_url=platform.url, timeout=30) as client:
        sessions = [_login(client, email) for email in users]
    code, events = platform.cli(
        capsys, "secrets", "rotate", "jwt-signing-key", "--emergency", "--yes", "--json"
    )
    assert code == 0, platform.outputs[-1]
    result = events[-1]
    assert result["status"] == "rotated" and result["sessions_revoked"] >= len(sessions)
    assert (
        result["old_refused_after_seconds"]
        <= catalog.load(platform.catalog_path).refresh_seconds("local") + 2.0
    )
    page = [e for e in events if e["event"] == "page"]
    assert page and "session(s) revoked" in page[0]["message"]
    for tokens in sessions:
        response = _me(platform, tokens["access_token"])
        assert response.status_code == 401 and response.json()["detail"] == "token signed with an unknown key"
        refresh = httpx.post(
            f"{platform.url}/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}, timeout=30
        )
        assert refresh.status_code == 401 and refresh.json()["detail"] == "session revoked"
    aliases, states = _state(platform, "jwt-signing-key")
    assert aliases == {"current": result["new_version"]}
    assert [v for v, state in states.items() if state == "ENABLED"] == [result["new_version"]]
    with httpx.Client(base_url=platform.url, timeout=30) as client:
        assert _me(platform, _login(client, users[0])["access_token"]).status_code == 200
    platform.remember_values()


def test_database_url_rotation_is_refused_on_the_local_platform(
    platform: Platform, capsys: pytest.CaptureFixture[str]
) -> None:
    _, states_before = _state(platform, "database-url")
    code, _ = platform.cli(capsys, "secrets", "rotate", "database-url", "--yes")
    assert code == ExitCode.USAGE and "SQLite, which has no credentials" in platform.outputs[-1]
    assert _state(platform, "database-url")[1] == states_before


def test_status_exits_4_when_a_secret_is_overdue(
    platform: Platform, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = platform.cli(capsys, "secrets", "status", "--json")
    assert code == 0 and json.loads(platform.outputs[-2])["ok"] is True
    overdue = platform.catalog_path.parent / "overdue.yaml"
    overdue.write_text(
        platform.catalog_path.read_text().replace("rotation_period: 90d", "rotation_period: 1s")
    )
    time.sleep(1.1)
    capsys.readouterr()
    code = main(["secrets", "status", "--state-dir", str(platform.state_dir), "--catalog", str(overdue)])
    out = capsys.readouterr()
    platform.outputs += [out.out, out.err]
    assert code == ExitCode.OVERDUE and "session-key: overdue" in out.err


def test_a_manual_secret_needs_its_value_from_a_file_and_rotates_without_consumers(
    platform: Platform, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _ = platform.cli(capsys, "secrets", "rotate", "slack-webhook", "--yes")
    assert code == ExitCode.USAGE and "--value-file" in platform.outputs[-1]
    value = tmp_path / "webhook.txt"
    for url in (
        "https://hooks.slack.example/services/T0/B0/first",
        "https://hooks.slack.example/services/T0/B0/second",
    ):
        value.write_text(url + "\n")
        code, events = platform.cli(
            capsys, "secrets", "rotate", "slack-webhook", "--yes", "--json", "--value-file", str(value)
        )
        assert code == 0 and events[-1]["status"] == "rotated", platform.outputs[-1]
        assert platform.secrets().access("slack-webhook", "current").decode() == url
        platform.values.add(url)
    assert _state(platform, "slack-webhook") == ({"current": "2"}, {"1": "DISABLED", "2": "ENABLED"})


def test_no_secret_value_in_output_logs_process_listings_or_revision_environments(platform: Platform) -> None:
    values = {v for v in platform.values if v}
    assert len(values) >= 8  # several jwt keys and the session key
    # A PEM is matched by each of its base64 lines, so a key printed in pieces is caught too.
    needles = {line for v in values for line in v.splitlines() if line and not line.startswith("-----")}
    haystacks = {"ethixctl output": "\n".join(platform.outputs)}
    for log in (platform.state_dir / "logs").rglob("*.log"):
        haystacks[str(log)] = log.read_text(errors="replace")
    haystacks["ps -eo args"] = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    revisions = [
        p for p in Path("/proc").iterdir() if p.name.isdigit() and _is_revision(p, platform.state_dir)
    ]
    assert len(revisions) >= 2
    for proc in revisions:
        haystacks[f"{proc}/environ"] = (proc / "environ").read_bytes().decode(errors="replace")
    for where, text in haystacks.items():
        leaked = [n[:12] + "…" for n in needles if n in text]
        assert not leaked, f"secret material in {where}: {leaked}"
    # The revisions were given the names, not the values.
    environ = haystacks[f"{revisions[0]}/environ"]
    assert re.search(r"ETHIX_SECRET_JWT_SIGNING_KEY=jwt-signing-key\x00", environ)


def _is_revision(proc: Path, state_dir: Path) -> bool:
    try:
        environ = (proc / "environ").read_bytes()
    except OSError:
        return False
    return b"K_REVISION=backend-" in environ and str(state_dir).encode() in environ
