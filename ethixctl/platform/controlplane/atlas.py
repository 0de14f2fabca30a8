"""Atlas Admin API v2, cloud-backup subset, over the local snapshots (the same paths and fields as Atlas).

- ``GET  /api/atlas/v2/groups/G/clusters/C``: the cluster; ``connectionStrings.standard`` is its SQLite URL.
- ``GET|POST .../clusters/C/backup/snapshots``, ``GET .../backup/snapshots/ID``: snapshots of the live
  cluster (``ethixctl.dr.snapshot`` in the local backup bucket); a POST answers ``queued`` and the
  snapshot is taken in the background.
- ``POST .../clusters/C/backup/restoreJobs``, ``GET .../backup/restoreJobs/ID``: ``automated`` (a snapshot)
  or ``pointInTime`` (locally: the newest snapshot taken at or before it; there is no oplog) into the
  target cluster, which is wiped first, as Atlas does. Jobs have no status: ``finishedAt``, ``failed``,
  ``cancelled``, ``expired``. Restoring into the live cluster is refused here (Atlas would allow it).

A scheduler takes a snapshot every ``snapshot_every`` seconds and prunes by the playbook's retention.
Jobs live in memory, like Cloud Run operations: a restarted control plane forgets them.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ethixctl.dr import local, snapshot
from ethixctl.platform.controlplane.apierror import ApiError
from services.common.docstore import SqliteStore, open_store
from services.common.storage import LocalObjectStore, open_storage

_CLUSTER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")
_REASONS = {400: "Bad Request", 404: "Not Found", 409: "Conflict"}


class AtlasError(ApiError):
    """An error in Atlas's shape: ``detail``, ``error``, ``errorCode``, ``parameters``, ``reason``."""

    def body(self) -> dict[str, Any]:
        return {
            "detail": self.message,
            "error": self.http_status,
            "errorCode": self.status,
            "parameters": [],
            "reason": _REASONS.get(self.http_status, "Error"),
        }


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class LocalAtlas:
    def __init__(self, state_dir: Path, cluster: str, retention_seconds: float):
        self.state_dir = state_dir
        self.cluster = cluster
        self.retention_seconds = retention_seconds
        self.backups = LocalObjectStore(state_dir / "backups")
        self._lock = threading.Lock()  # one snapshot or prune at a time
        self._state = threading.Lock()
        self._pending: dict[str, dict[str, Any]] = {}  # snapshots queued, in progress or failed
        self._jobs: dict[str, dict[str, Any]] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # routing -------------------------------------------------------------------------------------
    def routes(self) -> list[tuple[str, str, Callable[[Any], Any]]]:
        base = r"/api/atlas/v2/groups/(?P<group>[^/]+)/clusters/(?P<cluster>[^/]+)"
        return [
            ("GET", base, lambda r: self.get_cluster(r["cluster"])),
            ("GET", f"{base}/backup/snapshots", lambda r: self.list_snapshots(r["cluster"])),
            ("POST", f"{base}/backup/snapshots", lambda r: self.take_snapshot(r["cluster"], _json(r.body))),
            (
                "GET",
                f"{base}/backup/snapshots/(?P<sid>[^/]+)",
                lambda r: self.get_snapshot(r["cluster"], r["sid"]),
            ),
            (
                "POST",
                f"{base}/backup/restoreJobs",
                lambda r: self.create_restore_job(r["group"], r["cluster"], _json(r.body)),
            ),
            (
                "GET",
                f"{base}/backup/restoreJobs/(?P<jid>[^/]+)",
                lambda r: self.get_restore_job(r["cluster"], r["jid"]),
            ),
        ]

    # clusters ------------------------------------------------------------------------------------
    def _check_cluster(self, name: str) -> None:
        if not _CLUSTER.match(name):
            raise AtlasError(400, "INVALID_CLUSTER_NAME", f"Cluster name {name} is invalid.")

    def get_cluster(self, name: str) -> dict[str, Any]:
        self._check_cluster(name)
        url = local.database_url(self.state_dir, name, self.cluster)
        exists = name == self.cluster or local.cluster_path(self.state_dir, name).exists()
        if not exists:
            raise AtlasError(404, "CLUSTER_NOT_FOUND", f"No cluster named {name} exists in group local.")
        return {"name": name, "stateName": "IDLE", "connectionStrings": {"standard": url}}

    # snapshots -----------------------------------------------------------------------------------
    def _from_manifest(self, manifest: dict[str, Any]) -> dict[str, Any]:
        taken = snapshot.epoch_of(manifest["point_in_time"]) or 0.0
        scheduled = manifest.get("trigger") == "scheduled"
        return {
            "id": manifest["id"],
            "createdAt": _iso(taken),
            "description": manifest.get("description", ""),
            "expiresAt": _iso(taken + self.retention_seconds),
            "frequencyType": "hourly" if scheduled else "ondemand",
            "snapshotType": "scheduled" if scheduled else "onDemand",
            "status": "completed",
            "storageSizeBytes": manifest["size_bytes"],
            "replicaSetName": manifest["cluster"],
            "type": "replicaSet",
            "cloudProvider": "LOCAL",
            "mongodVersion": "sqlite",
            "links": [],
        }

    def list_snapshots(self, cluster: str) -> dict[str, Any]:
        self._check_cluster(cluster)
        done = [
            self._from_manifest(m) for m in snapshot.list_manifests(self.backups) if m["cluster"] == cluster
        ]
        with self._state:
            pending = [dict(s) for s in self._pending.values() if s["replicaSetName"] == cluster]
        results = sorted(pending + done, key=lambda s: (s["createdAt"], s["id"]), reverse=True)
        return {"links": [], "results": results, "totalCount": len(results)}

    def get_snapshot(self, cluster: str, snapshot_id: str) -> dict[str, Any]:
        with self._state:
            if snapshot_id in self._pending:
                return dict(self._pending[snapshot_id])
        for manifest in snapshot.list_manifests(self.backups):
            if manifest["id"] == snapshot_id and manifest["cluster"] == cluster:
                return self._from_manifest(manifest)
        raise AtlasError(
            404, "SNAPSHOT_NOT_FOUND", f"No snapshot with ID {snapshot_id} exists for {cluster}."
        )

    def take_snapshot(self, cluster: str, body: dict[str, Any], trigger: str = "on_demand") -> dict[str, Any]:
        self._check_cluster(cluster)
        if cluster != self.cluster:
            raise AtlasError(
                400, "INVALID_CLUSTER", f"The local platform snapshots its live cluster {self.cluster} only."
            )
        snapshot_id = snapshot.new_id()
        now = time.time()
        entry: dict[str, Any] = {
            "id": snapshot_id,
            "createdAt": _iso(now),
            "description": str(body.get("description") or ""),
            "expiresAt": _iso(now + self.retention_seconds),
            "frequencyType": "ondemand",
            "snapshotType": "onDemand" if trigger == "on_demand" else "scheduled",
            "status": "queued",
            "storageSizeBytes": 0,
            "replicaSetName": cluster,
            "type": "replicaSet",
            "cloudProvider": "LOCAL",
            "mongodVersion": "sqlite",
            "links": [],
        }
        with self._state:
            self._pending[snapshot_id] = entry
            answer = dict(entry)
        self._background(f"snapshot-{snapshot_id}", lambda: self._snapshot(snapshot_id, entry, trigger))
        return answer

    def _snapshot(self, snapshot_id: str, entry: dict[str, Any], trigger: str) -> None:
        with self._lock:
            with self._state:
                entry["status"] = "inProgress"
            store = open_store(local.live_database_url(self.state_dir))
            try:
                snapshot.create(
                    store,
                    open_storage(local.live_bucket_url(self.state_dir)),
                    self.backups,
                    cluster=self.cluster,
                    snapshot_id=snapshot_id,
                    trigger=trigger,
                    description=entry["description"],
                )
            except Exception:
                with self._state:
                    entry["status"] = "failed"
                raise
            finally:
                store.close()
        with self._state:
            self._pending.pop(snapshot_id, None)

    # restore jobs --------------------------------------------------------------------------------
    def create_restore_job(self, group: str, cluster: str, body: dict[str, Any]) -> dict[str, Any]:
        self._check_cluster(cluster)
        delivery = body.get("deliveryType")
        target = str(body.get("targetClusterName") or "")
        if delivery not in ("automated", "pointInTime"):
            raise AtlasError(
                400, "INVALID_DELIVERY_TYPE", f"deliveryType {delivery!r} is not supported here."
            )
        self._check_cluster(target)
        live_url = local.live_database_url(self.state_dir)
        if target == self.cluster or local.database_url(self.state_dir, target, self.cluster) == live_url:
            raise AtlasError(
                400,
                "CANNOT_RESTORE_TO_LIVE_CLUSTER",
                f"Cluster {target} serves the platform; a restore would wipe it.",
            )
        manifests = [m for m in snapshot.list_manifests(self.backups) if m["cluster"] == cluster]
        if delivery == "automated":
            chosen = next((m for m in manifests if m["id"] == body.get("snapshotId")), None)
            if chosen is None:
                raise AtlasError(404, "SNAPSHOT_NOT_FOUND", f"No snapshot with ID {body.get('snapshotId')}.")
        else:
            point = body.get("pointInTimeUTCSeconds")
            if not isinstance(point, int):
                raise AtlasError(400, "INVALID_POINT_IN_TIME", "pointInTimeUTCSeconds must be an integer.")
            chosen = next(
                (m for m in manifests if (snapshot.epoch_of(m["point_in_time"]) or 0) <= point), None
            )
            if chosen is None:
                raise AtlasError(400, "INVALID_POINT_IN_TIME", f"No snapshot at or before {_iso(point)}.")
        job_id = snapshot.new_id()
        job: dict[str, Any] = {
            "id": job_id,
            "deliveryType": delivery,
            "snapshotId": chosen["id"],
            "targetClusterName": target,
            "targetGroupId": group,
            "timestamp": _iso(snapshot.epoch_of(chosen["point_in_time"]) or 0.0),
            "cancelled": False,
            "expired": False,
            "failed": False,
            "expiresAt": _iso(time.time() + timedelta(days=1).total_seconds()),
            "links": [],
        }
        if delivery == "pointInTime":
            job["pointInTimeUTCSeconds"] = body["pointInTimeUTCSeconds"]
        with self._state:
            self._jobs[job_id] = job
            answer = dict(job)
        self._background(f"restore-{job_id}", lambda: self._restore(job, chosen))
        return answer

    def _restore(self, job: dict[str, Any], manifest: dict[str, Any]) -> None:
        path = local.cluster_path(self.state_dir, job["targetClusterName"])
        try:
            # A restore wipes its target, as Atlas does: the old files go before anything is loaded.
            path.parent.mkdir(parents=True, exist_ok=True)
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            store = SqliteStore(path)
            try:
                snapshot.restore(self.backups, manifest, store)
            finally:
                store.close()
        except Exception:
            with self._state:
                job["failed"] = True
            raise
        with self._state:
            job["finishedAt"] = _iso(time.time())

    def get_restore_job(self, cluster: str, job_id: str) -> dict[str, Any]:
        with self._state:
            job = self._jobs.get(job_id)
            if job is None:
                raise AtlasError(404, "RESTORE_JOB_NOT_FOUND", f"No restore job with ID {job_id}.")
            return dict(job)

    # scheduling ----------------------------------------------------------------------------------
    def start_schedule(self, every: float) -> None:
        """Take a snapshot every ``every`` seconds, then prune by retention."""

        def loop() -> None:
            while not self._stop.wait(every):
                try:
                    entry = self.take_snapshot(
                        self.cluster, {"description": "scheduled"}, trigger="scheduled"
                    )
                    while not self._stop.is_set() and self.get_snapshot(self.cluster, entry["id"])[
                        "status"
                    ] in (
                        "queued",
                        "inProgress",
                    ):
                        time.sleep(0.05)
                    with self._lock:
                        snapshot.prune(self.backups, self.retention_seconds)
                except Exception:
                    _log("scheduled snapshot")

        thread = threading.Thread(target=loop, name="atlas-schedule", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _background(self, name: str, work: Callable[[], None]) -> None:
        def run() -> None:
            try:
                work()
            except Exception:
                _log(name)

        thread = threading.Thread(target=run, name=name, daemon=True)
        thread.start()
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]

    def shutdown(self, timeout: float = 30.0) -> None:
        self._stop.set()
        deadline = time.monotonic() + timeout
        for thread in list(self._threads):
            thread.join(max(0.0, deadline - time.monotonic()))


def _json(body: str) -> dict[str, Any]:
    try:
        data = json.loads(body or "{}")
    except ValueError:
        raise AtlasError(400, "INVALID_JSON", "The request body is not JSON.") from None
    if not isinstance(data, dict):
        raise AtlasError(400, "INVALID_JSON", "The request body must be a JSON object.")
    return data


def _log(what: str) -> None:
    print(f"atlas: {what} failed:\n{traceback.format_exc()}", file=sys.stderr, flush=True)
