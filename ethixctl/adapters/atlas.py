"""MongoDB Atlas Admin API v2, cloud backup subset, through httpx.

Under ``/api/atlas/v2/groups/{groupId}/clusters/{clusterName}/``: ``GET`` (the cluster),
``GET|POST backup/snapshots``, ``GET backup/snapshots/{id}``, ``POST backup/restoreJobs``,
``GET backup/restoreJobs/{id}``. Every request sends ``Accept: application/vnd.atlas.2023-01-01+json``.
A restore job has no status field: it is done when ``finishedAt`` is set, and ended badly when
``failed``, ``cancelled`` or ``expired`` is true.

One code path, two endpoints: production is ``https://cloud.mongodb.com`` with an HTTP Digest API key
or a service account's OAuth token; the local control plane speaks the same subset over the local
snapshots without credentials. A restore wipes its target cluster, so :meth:`Atlas.create_restore_job`
refuses any target the caller did not allow, and always the source cluster itself.
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Callable, Collection, Generator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from ethixctl.errors import EthixError, PlatformUnavailable, UsageError

ACCEPT = "application/vnd.atlas.2023-01-01+json"
PRODUCTION_URL = "https://cloud.mongodb.com"
# Credentials are read from the environment only, never from a file or a flag (argv is public).
PUBLIC_KEY_VAR = "ETHIXCTL_ATLAS_PUBLIC_KEY"
PRIVATE_KEY_VAR = "ETHIXCTL_ATLAS_PRIVATE_KEY"
CLIENT_ID_VAR = "ETHIXCTL_ATLAS_CLIENT_ID"
CLIENT_SECRET_VAR = "ETHIXCTL_ATLAS_CLIENT_SECRET"


@dataclass
class Snapshot:
    id: str
    created_at: str | None
    status: str  # queued | inProgress | completed | failed
    description: str
    snapshot_type: str  # onDemand | scheduled
    storage_size_bytes: int | None

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Snapshot:
        return cls(
            id=str(data["id"]),
            created_at=data.get("createdAt"),
            status=str(data.get("status", "")),
            description=str(data.get("description") or ""),
            snapshot_type=str(data.get("snapshotType") or ""),
            storage_size_bytes=data.get("storageSizeBytes"),
        )


@dataclass
class RestoreJob:
    id: str
    snapshot_id: str | None
    delivery_type: str
    target_cluster: str | None
    finished_at: str | None
    failed: bool
    cancelled: bool
    expired: bool
    point_in_time: int | None

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> RestoreJob:
        return cls(
            id=str(data["id"]),
            snapshot_id=data.get("snapshotId"),
            delivery_type=str(data.get("deliveryType", "")),
            target_cluster=data.get("targetClusterName"),
            finished_at=data.get("finishedAt"),
            failed=bool(data.get("failed")),
            cancelled=bool(data.get("cancelled")),
            expired=bool(data.get("expired")),
            point_in_time=data.get("pointInTimeUTCSeconds"),
        )

    @property
    def state(self) -> str:
        """finished | failed | cancelled | expired | running — derived, as the API has no status."""
        for name in ("failed", "cancelled", "expired"):
            if getattr(self, name):
                return name
        return "finished" if self.finished_at else "running"


class _ServiceAccountToken(httpx.Auth):
    """OAuth 2.0 client credentials: a bearer token from ``/api/oauth/token``, renewed before expiry."""

    requires_response_body = True

    def __init__(self, base_url: str, client_id: str, client_secret: str):
        self._url = f"{base_url}/api/oauth/token"
        pair = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
        self._basic = f"Basic {pair}"
        self._token: str | None = None
        self._expires = 0.0

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self._token is None or time.monotonic() > self._expires:
            response = yield httpx.Request(
                "POST",
                self._url,
                data={"grant_type": "client_credentials"},
                headers={"Accept": "application/json", "Authorization": self._basic},
            )
            if response.status_code != 200:
                raise EthixError(
                    f"Atlas refused the service account's credentials (HTTP {response.status_code})",
                    hint=f"check {CLIENT_ID_VAR} and {CLIENT_SECRET_VAR}",
                )
            body = response.json()
            self._token = str(body["access_token"])
            # Renew a minute early so a token never expires between our check and Atlas's.
            self._expires = time.monotonic() + float(body.get("expires_in", 3600)) - 60
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request


def credentials_from_environment(base_url: str) -> httpx.Auth | None:
    """Digest API key, else service account, from the environment; None for a local endpoint."""
    public, private = os.environ.get(PUBLIC_KEY_VAR), os.environ.get(PRIVATE_KEY_VAR)
    client_id, secret = os.environ.get(CLIENT_ID_VAR), os.environ.get(CLIENT_SECRET_VAR)
    if public and private:
        return httpx.DigestAuth(public, private)
    if client_id and secret:
        return _ServiceAccountToken(base_url, client_id, secret)
    if urlsplit(base_url).hostname in ("127.0.0.1", "localhost", "::1"):
        return None
    raise UsageError(
        "no Atlas credentials in the environment",
        hint=f"set {PUBLIC_KEY_VAR} + {PRIVATE_KEY_VAR} (API key) or {CLIENT_ID_VAR} + {CLIENT_SECRET_VAR} "
        "(service account)",
    )


class Atlas:
    def __init__(
        self,
        base_url: str,
        group_id: str,
        cluster: str,
        *,
        auth: httpx.Auth | None = None,
        timeout: float = 30.0,
        poll_interval: float = 0.5,
    ):
        self.base_url = base_url.rstrip("/")
        self.group_id = group_id
        self.cluster = cluster
        self.poll_interval = poll_interval
        self._http = httpx.Client(
            base_url=self.base_url, auth=auth, timeout=timeout, headers={"Accept": ACCEPT}
        )

    @classmethod
    def from_environment(cls, base_url: str, group_id: str, cluster: str, **kwargs: Any) -> Atlas:
        return cls(base_url, group_id, cluster, auth=credentials_from_environment(base_url), **kwargs)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Atlas:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # transport ------------------------------------------------------------------------------------
    def _path(self, cluster: str | None = None, tail: str = "") -> str:
        name = quote(cluster or self.cluster, safe="")
        return f"/api/atlas/v2/groups/{quote(self.group_id, safe='')}/clusters/{name}{tail}"

    def _request(self, what: str, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            response = self._http.request(method, path, json=body)
        except (httpx.ConnectError, httpx.TimeoutException, httpx.RemoteProtocolError) as exc:
            raise PlatformUnavailable(
                f"{what}: the Atlas API at {self.base_url} is not answering ({type(exc).__name__})",
                hint="locally, run `ethixctl up`",
            ) from None
        if response.status_code < 400:
            return response.json() if response.content else {}
        detail = _detail(response)
        if response.status_code in (401, 403):
            raise EthixError(f"{what}: Atlas refused the credentials (HTTP {response.status_code}): {detail}")
        if response.status_code in (400, 404, 409):
            raise UsageError(f"{what}: {detail}")
        if response.status_code >= 500:
            raise PlatformUnavailable(f"{what}: Atlas answered HTTP {response.status_code}: {detail}")
        raise EthixError(f"{what}: HTTP {response.status_code}: {detail}")

    def _wait(self, what: str, fetch: Callable[[], Any], done: Callable[[Any], bool], timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            current = fetch()
            if done(current):
                return current
            if time.monotonic() > deadline:
                raise EthixError(f"{what}: not finished after {timeout:.0f}s")
            time.sleep(self.poll_interval)

    # clusters -------------------------------------------------------------------------------------
    def connection_string(self, cluster: str) -> str:
        """The cluster's standard connection string (no credentials: Atlas never returns them)."""
        data = self._request(f"get cluster {cluster}", "GET", self._path(cluster))
        strings = data.get("connectionStrings") or {}
        value = strings.get("standardSrv") or strings.get("standard")
        if not value:
            raise EthixError(
                f"cluster {cluster} has no connection string yet (state {data.get('stateName')})"
            )
        return str(value)

    # snapshots ------------------------------------------------------------------------------------
    def list_snapshots(self) -> list[Snapshot]:
        data = self._request("list snapshots", "GET", self._path(tail="/backup/snapshots?itemsPerPage=500"))
        return [Snapshot.from_api(item) for item in data.get("results", [])]

    def get_snapshot(self, snapshot_id: str) -> Snapshot:
        data = self._request(
            f"get snapshot {snapshot_id}", "GET", self._path(tail=f"/backup/snapshots/{quote(snapshot_id)}")
        )
        return Snapshot.from_api(data)

    def take_snapshot(self, description: str, retention_days: int) -> Snapshot:
        body = {"description": description, "retentionInDays": retention_days}
        data = self._request("take a snapshot", "POST", self._path(tail="/backup/snapshots"), body)
        return Snapshot.from_api(data)

    def wait_snapshot(self, snapshot_id: str, timeout: float = 3600) -> Snapshot:
        snapshot: Snapshot = self._wait(
            f"snapshot {snapshot_id}",
            lambda: self.get_snapshot(snapshot_id),
            lambda s: s.status in ("completed", "failed"),
            timeout,
        )
        if snapshot.status == "failed":
            raise EthixError(f"snapshot {snapshot_id} failed")
        return snapshot

    # restore jobs ---------------------------------------------------------------------------------
    def create_restore_job(
        self,
        target_cluster: str,
        *,
        allowed_targets: Collection[str],
        snapshot_id: str | None = None,
        point_in_time: int | None = None,
    ) -> RestoreJob:
        """Restore a snapshot (``automated``) or a point in time (``pointInTime``) into ``target_cluster``.

        The restore wipes the target: refused unless it is one of ``allowed_targets`` and not the
        source cluster. Nothing is sent when refused.
        """
        if target_cluster == self.cluster or target_cluster not in allowed_targets:
            allowed = ", ".join(sorted(set(allowed_targets) - {self.cluster})) or "none"
            raise UsageError(
                f"refusing to restore into cluster {target_cluster!r}: a restore wipes its target "
                f"(allowed: {allowed}; never the source cluster {self.cluster!r})"
            )
        if (snapshot_id is None) == (point_in_time is None):
            raise UsageError("a restore job needs exactly one of a snapshot id and a point in time")
        body: dict[str, Any] = {"targetClusterName": target_cluster, "targetGroupId": self.group_id}
        if snapshot_id is not None:
            body.update(deliveryType="automated", snapshotId=snapshot_id)
        else:
            body.update(deliveryType="pointInTime", pointInTimeUTCSeconds=int(point_in_time or 0))
        data = self._request(
            f"restore into {target_cluster}", "POST", self._path(tail="/backup/restoreJobs"), body
        )
        return RestoreJob.from_api(data)

    def get_restore_job(self, job_id: str) -> RestoreJob:
        data = self._request(
            f"get restore job {job_id}", "GET", self._path(tail=f"/backup/restoreJobs/{quote(job_id)}")
        )
        return RestoreJob.from_api(data)

    def wait_restore_job(self, job_id: str, timeout: float = 3600) -> RestoreJob:
        """Poll until the job ends; returns it whatever the outcome (look at ``state``)."""
        job: RestoreJob = self._wait(
            f"restore job {job_id}",
            lambda: self.get_restore_job(job_id),
            lambda j: j.state != "running",
            timeout,
        )
        return job


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase or "no detail"
    if isinstance(body, dict):
        code = body.get("errorCode")
        detail = str(body.get("detail") or body.get("reason") or "no detail")
        return f"{detail} ({code})" if code else detail
    return "no detail"
