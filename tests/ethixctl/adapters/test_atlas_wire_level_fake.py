"""The Atlas Admin API v2 adapter against a wire-level fake of the real endpoints and fields.

The fake answers the cloud-backup paths under ``/api/atlas/v2/groups/{groupId}/clusters/{clusterName}``
with the field names of the published API (``DiskBackupReplicaSet`` snapshots with ``status``;
``DiskBackupSnapshotRestoreJob`` restore jobs with no status, only ``finishedAt``/``failed``/
``cancelled``/``expired``), insists on ``Accept: application/vnd.atlas.2023-01-01+json`` (406 otherwise,
as Atlas does), and authenticates with a real HTTP Digest challenge (RFC 7616, MD5, qop=auth) or with
an OAuth client-credentials token from ``/api/oauth/token``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from ethixctl import procs
from ethixctl.adapters import atlas
from ethixctl.errors import EthixError, PlatformUnavailable, UsageError
from tests.httpserver import serve

GROUP = "5e2211c17a3e5a48f5497de3"
CLUSTER = "ethix-prod"
PUBLIC, PRIVATE = "abcdefgh", "9f3c1a2b-private-key-value"
CLIENT_ID, CLIENT_SECRET = "mdb_sa_id_123", "mdb_sa_sk_secret-value"
REALM = "MMS Public API"
BASE = f"/api/atlas/v2/groups/{GROUP}/clusters/"


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


@dataclass
class FakeAtlas:
    requests: list[dict[str, Any]] = field(default_factory=list)
    snapshots: dict[str, dict[str, Any]] = field(default_factory=dict)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    polls: dict[str, int] = field(default_factory=dict)
    nonces: set[str] = field(default_factory=set)
    tokens_issued: int = 0
    job_outcome: str = "finished"


def _handler(fake: FakeAtlas) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _send(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> None:
            reasons = {401: "Unauthorized", 404: "Not Found", 406: "Not Acceptable", 400: "Bad Request"}
            body = {
                "detail": detail,
                "error": status,
                "errorCode": code,
                "parameters": [],
                "reason": reasons.get(status, "Error"),
            }
            self._send(status, body, headers)

        def _authorised(self) -> bool:
            header = self.headers.get("Authorization", "")
            if header == "Bearer tok-1":
                return True
            if header.startswith("Digest "):
                parts = dict(re.findall(r'(\w+)="?([^",]+)"?', header[7:]))
                ha1 = _md5(f"{parts.get('username')}:{REALM}:{PRIVATE}")
                ha2 = _md5(f"{self.command}:{parts.get('uri')}")
                expected = _md5(
                    f"{ha1}:{parts.get('nonce')}:{parts.get('nc')}:{parts.get('cnonce')}:auth:{ha2}"
                )
                return (
                    parts.get("username") == PUBLIC
                    and parts.get("nonce") in fake.nonces
                    and parts.get("uri") == self.path
                    and parts.get("response") == expected
                )
            return False

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if self.path == "/api/oauth/token" and self.command == "POST":
                basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
                if (
                    self.headers.get("Authorization") != f"Basic {basic}"
                    or raw != b"grant_type=client_credentials"
                ):
                    self._error(401, "INVALID_CLIENT", "bad client credentials")
                    return
                fake.tokens_issued += 1
                self._send(200, {"access_token": "tok-1", "expires_in": 3600, "token_type": "Bearer"})
                return
            if not self._authorised():
                nonce = secrets.token_hex(8)
                fake.nonces.add(nonce)
                challenge = f'Digest realm="{REALM}", domain="", nonce="{nonce}", algorithm=MD5, '
                challenge += 'qop="auth", stale=false'
                self._error(
                    401, "NOT_ORG_GROUP_CREATOR", "You are not authorized", {"WWW-Authenticate": challenge}
                )
                return
            if self.headers.get("Accept") != atlas.ACCEPT:
                self._error(406, "INVALID_ACCEPT_HEADER", "Accept must name an API version")
                return
            body = json.loads(raw) if raw else None
            fake.requests.append(
                {"method": self.command, "path": self.path, "body": body, "accept": self.headers["Accept"]}
            )
            self._route(body)

        def _route(self, body: Any) -> None:
            path = self.path.split("?", 1)[0]
            if not path.startswith(BASE):
                self._error(404, "GROUP_NOT_FOUND", f"No group with ID {path}")
                return
            cluster, _, rest = path[len(BASE) :].partition("/")
            if cluster not in (CLUSTER, "ethix-dr-scratch"):
                self._error(404, "CLUSTER_NOT_FOUND", f"No cluster named {cluster} exists in group {GROUP}.")
                return
            if rest == "" and self.command == "GET":
                srv = f"mongodb+srv://{cluster}.ab12c.mongodb.net"
                self._send(
                    200, {"name": cluster, "stateName": "IDLE", "connectionStrings": {"standardSrv": srv}}
                )
            elif rest == "backup/snapshots" and self.command == "POST":
                snapshot_id = secrets.token_hex(12)
                fake.snapshots[snapshot_id] = {
                    "id": snapshot_id, "createdAt": "2026-12-02T07:00:00Z",
                    "description": body["description"], "expiresAt": "2026-12-09T07:00:00Z",
                    "frequencyType": "ondemand", "mongodVersion": "7.0.14",
                    "replicaSetName": CLUSTER, "snapshotType": "onDemand", "status": "queued",
                    "storageSizeBytes": 0, "type": "replicaSet", "cloudProvider": "GCP",
                    "links": [{"href": f"https://cloud.mongodb.com{self.path}/{snapshot_id}", "rel": "self"}],
                }  # fmt: skip
                self._send(200, fake.snapshots[snapshot_id])
            elif rest == "backup/snapshots" and self.command == "GET":
                results = list(fake.snapshots.values())
                self._send(200, {"links": [], "results": results, "totalCount": len(results)})
            elif rest.startswith("backup/snapshots/") and self.command == "GET":
                snapshot = fake.snapshots[rest.rsplit("/", 1)[1]]
                snapshot["status"] = {"queued": "inProgress", "inProgress": "completed"}.get(
                    snapshot["status"], snapshot["status"]
                )
                snapshot["storageSizeBytes"] = 123_456
                self._send(200, snapshot)
            elif rest == "backup/restoreJobs" and self.command == "POST":
                job_id = secrets.token_hex(12)
                fake.jobs[job_id] = {
                    "id": job_id, "deliveryType": body["deliveryType"], "snapshotId": body.get("snapshotId"),
                    "targetClusterName": body["targetClusterName"], "targetGroupId": body["targetGroupId"],
                    "cancelled": False, "expired": False, "failed": False,
                    "timestamp": "2026-12-02T07:00:00Z", "links": [],
                }  # fmt: skip
                if "pointInTimeUTCSeconds" in body:
                    fake.jobs[job_id]["pointInTimeUTCSeconds"] = body["pointInTimeUTCSeconds"]
                self._send(200, fake.jobs[job_id])
            elif rest.startswith("backup/restoreJobs/") and self.command == "GET":
                job = fake.jobs[rest.rsplit("/", 1)[1]]
                fake.polls[job["id"]] = fake.polls.get(job["id"], 0) + 1
                if fake.polls[job["id"]] >= 3:
                    if fake.job_outcome == "finished":
                        job["finishedAt"] = "2026-12-02T07:05:00Z"
                    else:
                        job[fake.job_outcome] = True
                self._send(200, job)
            else:
                self._error(404, "RESOURCE_NOT_FOUND", f"no {self.command} {path}")

        do_GET = do_POST = do_PATCH = do_DELETE = _handle

    return Handler


@pytest.fixture
def fake_atlas() -> Iterator[tuple[FakeAtlas, str]]:
    fake = FakeAtlas()
    with serve(_handler(fake)) as url:
        yield fake, url


@pytest.fixture
def digest_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(atlas.PUBLIC_KEY_VAR, PUBLIC)
    monkeypatch.setenv(atlas.PRIVATE_KEY_VAR, PRIVATE)


def test_snapshot_and_restore_job_with_digest_auth_wire_level_fake(
    fake_atlas: tuple[FakeAtlas, str], digest_env: None
) -> None:
    fake, url = fake_atlas
    with atlas.Atlas.from_environment(url, GROUP, CLUSTER, poll_interval=0.01) as api:
        taken = api.take_snapshot("dr drill", retention_days=7)
        assert taken.status == "queued" and taken.snapshot_type == "onDemand"
        done = api.wait_snapshot(taken.id, timeout=10)
        assert (done.status, done.storage_size_bytes) == ("completed", 123_456)
        assert [s.id for s in api.list_snapshots()] == [taken.id]
        job = api.create_restore_job(
            "ethix-dr-scratch", allowed_targets={"ethix-dr-scratch"}, snapshot_id=taken.id
        )
        assert job.state == "running" and job.finished_at is None
        ended = api.wait_restore_job(job.id, timeout=10)
        assert (ended.state, ended.finished_at) == ("finished", "2026-12-02T07:05:00Z")
        assert api.connection_string("ethix-dr-scratch") == "mongodb+srv://ethix-dr-scratch.ab12c.mongodb.net"
    posted = [r for r in fake.requests if r["method"] == "POST"]
    assert posted[0]["path"] == f"{BASE}{CLUSTER}/backup/snapshots"
    assert posted[0]["body"] == {"description": "dr drill", "retentionInDays": 7}
    assert posted[1]["path"] == f"{BASE}{CLUSTER}/backup/restoreJobs"
    assert posted[1]["body"] == {
        "deliveryType": "automated",
        "snapshotId": taken.id,
        "targetClusterName": "ethix-dr-scratch",
        "targetGroupId": GROUP,
    }
    assert {r["accept"] for r in fake.requests} == {atlas.ACCEPT}


def test_point_in_time_restore_and_failed_job_wire_level_fake(
    fake_atlas: tuple[FakeAtlas, str], digest_env: None
) -> None:
    fake, url = fake_atlas
    fake.job_outcome = "failed"
    with atlas.Atlas.from_environment(url, GROUP, CLUSTER, poll_interval=0.01) as api:
        job = api.create_restore_job(
            "ethix-dr-scratch", allowed_targets=["ethix-dr-scratch"], point_in_time=1_796_000_000
        )
        assert job.point_in_time == 1_796_000_000 and job.delivery_type == "pointInTime"
        assert api.wait_restore_job(job.id, timeout=10).state == "failed"
    assert fake.requests[-1]["method"] == "GET"
    assert (
        next(r for r in fake.requests if r["method"] == "POST")["body"]["pointInTimeUTCSeconds"]
        == 1_796_000_000
    )


def test_service_account_token_is_fetched_once_and_sent_as_bearer_wire_level_fake(
    fake_atlas: tuple[FakeAtlas, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, url = fake_atlas
    monkeypatch.setenv(atlas.CLIENT_ID_VAR, CLIENT_ID)
    monkeypatch.setenv(atlas.CLIENT_SECRET_VAR, CLIENT_SECRET)
    with atlas.Atlas.from_environment(url, GROUP, CLUSTER) as api:
        api.list_snapshots()
        api.list_snapshots()
    assert fake.tokens_issued == 1 and len(fake.requests) == 2


def test_a_restore_into_anything_but_the_scratch_target_is_refused_before_any_request(
    fake_atlas: tuple[FakeAtlas, str], digest_env: None
) -> None:
    fake, url = fake_atlas
    with atlas.Atlas.from_environment(url, GROUP, CLUSTER) as api:
        for target in ("ethix-other", CLUSTER):
            with pytest.raises(UsageError, match=f"refusing to restore into cluster '{target}'"):
                api.create_restore_job(target, allowed_targets={"ethix-dr-scratch", CLUSTER}, snapshot_id="x")
    assert fake.requests == []


def test_errors_carry_atlas_detail_and_never_credentials_wire_level_fake(
    fake_atlas: tuple[FakeAtlas, str], digest_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, url = fake_atlas
    missing = r"No cluster named no-such-cluster .*\(CLUSTER_NOT_FOUND\)"
    with (
        atlas.Atlas.from_environment(url, GROUP, "no-such-cluster") as api,
        pytest.raises(UsageError, match=missing),
    ):
        api.list_snapshots()
    monkeypatch.setenv(atlas.PRIVATE_KEY_VAR, "wrong-private-key")
    refused = pytest.raises(EthixError, match="refused the credentials")
    with atlas.Atlas.from_environment(url, GROUP, CLUSTER) as api, refused as caught:
        api.list_snapshots()
    assert "wrong-private-key" not in str(caught.value) and PUBLIC not in str(caught.value)
    closed = f"http://127.0.0.1:{procs.free_port()}"
    with atlas.Atlas(closed, GROUP, CLUSTER) as api, pytest.raises(PlatformUnavailable):
        api.list_snapshots()


def test_production_needs_credentials_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (atlas.PUBLIC_KEY_VAR, atlas.PRIVATE_KEY_VAR, atlas.CLIENT_ID_VAR, atlas.CLIENT_SECRET_VAR):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(UsageError, match="no Atlas credentials"):
        atlas.credentials_from_environment(atlas.PRODUCTION_URL)
    assert atlas.credentials_from_environment("http://127.0.0.1:8090") is None
