"""The connections a DR command needs for one environment, built one way for local and production.

Local: the Atlas API is the local control plane, buckets are directories in the state dir, clusters
are SQLite files (:mod:`ethixctl.dr.local`). Production: ``https://cloud.mongodb.com`` with credentials
from the environment, ``gs://`` buckets and connection strings whose credentials come from Secret
Manager. Database URLs carry passwords: they are passed around, never shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from ethixctl.dr import local, snapshot
from ethixctl.dr.playbook import Playbook, Target
from ethixctl.errors import UsageError

if TYPE_CHECKING:
    from ethixctl.adapters.atlas import Atlas, Snapshot
    from ethixctl.adapters.cloudrun import CloudRun
    from ethixctl.config import Environment
    from services.common.storage import ObjectStore

DATABASE_URL_SECRET = "database-url"


@dataclass
class DrContext:
    environment: Environment
    book: Playbook
    target: Target
    atlas: Atlas
    backups: ObjectStore
    live_bucket: ObjectStore
    scratch_bucket: ObjectStore

    @property
    def state_dir(self) -> Path:
        return self.environment.state_dir

    @property
    def service(self) -> str:
        return self.target.backend_service

    def manifest(self, snapshot_id: str) -> dict[str, Any]:
        """The manifest of ``snapshot_id`` (or a unique prefix of it); :class:`snapshot.NoManifest` when
        the snapshot exists without one, a usage error when there is no such snapshot."""
        try:
            return snapshot.read_manifest(self.backups, snapshot_id)
        except UsageError:
            bare = [s for s in self._completed() if s.id == snapshot_id or s.id.startswith(snapshot_id)]
            if len(bare) == 1 and snapshot_id:
                raise snapshot.NoManifest(bare[0].id, bare[0].created_at, self.backups.url) from None
            raise

    def newest_manifest(self, point_in_time: float | None = None) -> dict[str, Any]:
        """The manifest of the newest completed snapshot (taken at or before ``point_in_time``) that has
        one; :class:`snapshot.NoManifest` names the newest such snapshot when none has."""
        completed = self._completed()
        ids = {s.id for s in completed}
        manifests = [m for m in snapshot.list_manifests(self.backups) if m["id"] in ids]
        try:
            return snapshot.pick(manifests, point_in_time)
        except UsageError:
            taken = [(snapshot.epoch_of(s.created_at), s) for s in completed]
            eligible = [
                (at, s)
                for at, s in taken
                if at is not None and (point_in_time is None or at <= point_in_time)
            ]
            if not eligible:
                raise
            _, newest = max(eligible, key=lambda pair: pair[0])
            raise snapshot.NoManifest(newest.id, newest.created_at, self.backups.url) from None

    def _completed(self) -> list[Snapshot]:
        return [s for s in self.atlas.list_snapshots() if s.status == "completed"]

    def cloud_run(self) -> CloudRun:
        from ethixctl.adapters.cloudrun import CloudRun

        env = self.environment
        return CloudRun(env.project, env.region, endpoint=env.run_endpoint)

    def scratch_database_url(self) -> str:
        """Where the scratch cluster answers, with credentials (production: from Secret Manager)."""
        if self.target.is_local:
            return self.atlas.connection_string(self.target.scratch_cluster)
        from ethixctl.adapters.secrets import SecretManager

        secret = self.target.scratch_database_url_secret
        assert secret is not None  # a production target names it (validated by the playbook)
        manager = SecretManager(self.environment.project, endpoint=self.environment.secrets_endpoint)
        return manager.access(secret).decode()

    def cluster_database_url(self, cluster: str) -> str:
        """A restored cluster's URL: locally its SQLite file; in production its host with the
        credentials and database of the current ``database-url`` secret."""
        standard = self.atlas.connection_string(cluster)
        if self.target.is_local:
            return standard
        from ethixctl.adapters.secrets import SecretManager

        manager = SecretManager(self.environment.project, endpoint=self.environment.secrets_endpoint)
        return with_host_of(manager.access(DATABASE_URL_SECRET).decode(), standard)

    def drop_cluster(self, cluster: str) -> bool:
        """Delete a local scratch cluster's files; production clusters are left (the next restore wipes
        them). Returns whether anything was deleted."""
        if not self.target.is_local or cluster == self.target.cluster:
            return False
        path = local.cluster_path(self.state_dir, cluster)
        existed = path.exists()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return existed

    def close(self) -> None:
        self.atlas.close()


def with_host_of(current: str, standard: str) -> str:
    """``current`` (with user, password, database, options) pointed at the host of ``standard``."""
    old, new = urlsplit(current), urlsplit(standard)
    credentials = old.netloc.rsplit("@", 1)[0] + "@" if "@" in old.netloc else ""
    host = new.netloc.rsplit("@", 1)[-1]
    return urlunsplit((new.scheme or old.scheme, credentials + host, old.path, old.query, old.fragment))


def connect(environment: Environment, book: Playbook) -> DrContext:
    from ethixctl.adapters.atlas import Atlas
    from services.common.storage import open_storage

    target = book.target(environment.name)
    if environment.kind == "local":
        if not target.is_local:
            raise UsageError(
                f"the DR playbook's {environment.name} target names Atlas, but it is a local one"
            )
        state_dir = environment.state_dir
        assert environment.run_endpoint is not None  # a running local platform has a control plane
        return DrContext(
            environment=environment,
            book=book,
            target=target,
            atlas=Atlas(environment.run_endpoint, local.GROUP, target.cluster, poll_interval=0.1),
            backups=open_storage(local.backups_url(state_dir)),
            live_bucket=open_storage(local.live_bucket_url(state_dir, target.backend_service)),
            scratch_bucket=open_storage(local.scratch_bucket_url(state_dir)),
        )
    if target.is_local:
        raise UsageError(
            f"the DR playbook's {environment.name} target has no Atlas project",
            hint="a production target needs atlas_group_id and the buckets (playbooks/dr.md)",
        )
    assert target.atlas_group_id and target.backup_bucket and target.live_bucket and target.scratch_bucket
    return DrContext(
        environment=environment,
        book=book,
        target=target,
        atlas=Atlas.from_environment(
            target.atlas_url, target.atlas_group_id, target.cluster, poll_interval=10
        ),
        backups=open_storage(target.backup_bucket),
        live_bucket=open_storage(target.live_bucket),
        scratch_bucket=open_storage(target.scratch_bucket),
    )
