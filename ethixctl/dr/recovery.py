"""``restore``: the real recovery, as a state machine on the shared operations framework.

planned → restoring → verifying → switching → restored | switched | failed

The target must be a new cluster: never the live one, never the drills' scratch cluster. Verification
is the drill's (counts, hashes, indexes, references against the manifest); nothing is switched unless
it passes. ``--switch`` adds a version to the ``database-url`` secret and deploys a backend revision
that reads it, with all the traffic (until runtime secret loading lands, a new revision is how
running services pick up a new secret).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ethixctl.dr import local, verify
from ethixctl.dr.context import DATABASE_URL_SECRET, DrContext
from ethixctl.errors import UsageError
from ethixctl.ops.ledger import Ledger, Operation
from ethixctl.ops.machine import Machine

KIND = "restore"


class Phase(StrEnum):
    PLANNED = "planned"
    RESTORING = "restoring"
    VERIFYING = "verifying"
    SWITCHING = "switching"
    RESTORED = "restored"
    SWITCHED = "switched"
    FAILED = "failed"


TRANSITIONS: dict[Phase, frozenset[Phase]] = {
    Phase.PLANNED: frozenset({Phase.RESTORING}),
    Phase.RESTORING: frozenset({Phase.VERIFYING, Phase.FAILED}),
    Phase.VERIFYING: frozenset({Phase.SWITCHING, Phase.RESTORED, Phase.FAILED}),
    Phase.SWITCHING: frozenset({Phase.SWITCHED}),
}
FINAL: dict[Phase, str] = {Phase.RESTORED: "restored", Phase.SWITCHED: "switched", Phase.FAILED: "failed"}


@dataclass
class RestoreOptions:
    snapshot_id: str
    target: str
    switch: bool = False
    restore_timeout: float = 3600.0


def check_target(ctx: DrContext, target: str) -> None:
    """Refuse targets a restore must never wipe; locally, also any cluster that already holds data."""
    if target == ctx.target.cluster:
        raise UsageError(f"{target} is the live cluster: a restore wipes its target; restore into a new one")
    if target == ctx.target.scratch_cluster:
        raise UsageError(f"{target} is the scratch cluster the drills wipe; restore into a new one")
    if ctx.target.is_local:
        url = local.database_url(ctx.state_dir, target, ctx.target.cluster)
        if url == local.live_database_url(ctx.state_dir):
            raise UsageError(f"{target} serves the platform now (after an earlier switch)")
        if local.cluster_path(ctx.state_dir, target).exists():
            raise UsageError(f"cluster {target} already holds data; restore into a new target")


def plan(ctx: DrContext, options: RestoreOptions) -> dict[str, Any]:
    check_target(ctx, options.target)
    manifest = ctx.manifest(options.snapshot_id)  # no manifest: refused, nothing could verify it
    return {
        "snapshot": manifest["id"],
        "point_in_time": manifest["point_in_time"],
        "newest_write": manifest["newest_write"],
        "documents": manifest["documents"],
        "target": options.target,
        "switch": options.switch,
        "steps": ["restoring", "verifying"] + (["switching"] if options.switch else []),
    }


class Recovery:
    def __init__(
        self, ctx: DrContext, ledger: Ledger, options: RestoreOptions, on_step: Callable[[str], None]
    ):
        self.ctx = ctx
        self.ledger = ledger
        self.options = options
        self.on_step = on_step
        self.machine = Machine(ledger, Phase, TRANSITIONS, FINAL)

    def start(self, manifest_id: str) -> Operation:
        return self.ledger.create_operation(
            KIND,
            self.options.target,
            self.ctx.environment.name,
            Phase.PLANNED.value,
            details={"snapshot_id": manifest_id},
            options=dict(self.options.__dict__),
        )

    def run(self, op: Operation) -> Operation:
        handlers = {
            Phase.PLANNED: lambda op: Phase.RESTORING,
            Phase.RESTORING: self._restore,
            Phase.VERIFYING: self._verify,
            Phase.SWITCHING: self._switch,
        }
        return self.machine.run(op, handlers)

    def _fail(self, op: Operation, reason: str) -> Phase:
        self.ledger.update(op.id, details={"failure": reason}, reason=reason)
        return Phase.FAILED

    def _restore(self, op: Operation) -> Phase:
        self.on_step(f"restoring snapshot {op.details['snapshot_id']} into {self.options.target}")
        job_id = op.details.get("restore_job_id")
        if job_id is None:
            job = self.ctx.atlas.create_restore_job(
                self.options.target,
                allowed_targets={self.options.target},
                snapshot_id=op.details["snapshot_id"],
            )
            job_id = job.id
            self.ledger.update(op.id, details={"restore_job_id": job_id})
        job = self.ctx.atlas.wait_restore_job(job_id, timeout=self.options.restore_timeout)
        self.ledger.update(op.id, details={"restore_job": {"id": job.id, "state": job.state}})
        if job.state != "finished":
            return self._fail(op, f"restore job {job.id} {job.state}")
        return Phase.VERIFYING

    def _verify(self, op: Operation) -> Phase:
        from services.common.docstore import open_store

        self.on_step("verifying against the manifest")
        manifest = self.ctx.manifest(op.details["snapshot_id"])
        restored = open_store(self.ctx.cluster_database_url(self.options.target))
        try:
            checks = verify.database(restored, manifest) + verify.references(
                restored, self.ctx.live_bucket, manifest
            )
        finally:
            restored.close()
        failed = verify.failures(checks)
        self.ledger.update(op.id, details={"checks": [c.to_dict() for c in checks]})
        if failed:
            first = failed[0]
            return self._fail(op, f"verification failed: {first.kind} {first.subject}: {first.detail}")
        return Phase.SWITCHING if self.options.switch else Phase.RESTORED

    def _switch(self, op: Operation) -> Phase:
        from ethixctl.adapters.secrets import SecretManager

        self.on_step(f"switching {self.ctx.service} to {self.options.target}")
        env = self.ctx.environment
        url = self.ctx.cluster_database_url(self.options.target)
        if not op.details.get("secret_version"):
            secrets = SecretManager(env.project, endpoint=env.secrets_endpoint)
            secrets.create_secret(DATABASE_URL_SECRET, exist_ok=True)
            version = secrets.add_version(DATABASE_URL_SECRET, url.encode())
            op = self.ledger.update(op.id, details={"secret_version": version})
        if self.ctx.target.is_local:
            # Scheduled snapshots and the drills' guard follow the data the platform now serves.
            local.set_live_database_url(self.ctx.state_dir, url)
        if not op.details.get("revision"):
            run = self.ctx.cloud_run()
            image = run.get_service(self.ctx.service).image
            revision = run.deploy_revision(
                self.ctx.service,
                image,
                {},
                None,
                keep_traffic=False,
                secret_env={"ETHIX_DATABASE_URL": DATABASE_URL_SECRET},
            )
            self.ledger.update(op.id, details={"revision": revision.name})
        return Phase.SWITCHED


def execute(ctx: DrContext, options: RestoreOptions, on_step: Callable[[str], None]) -> Operation:
    """Run one restore under a lock on its target; returns the final record."""
    from ethixctl.ops.lock import OperationLock

    planned = plan(ctx, options)
    with (
        Ledger(ctx.state_dir) as ledger,
        OperationLock(ctx.state_dir, KIND, ctx.environment.name, options.target) as lock,
    ):
        recovery = Recovery(ctx, ledger, options, on_step)
        op = recovery.start(planned["snapshot"])
        lock.set_operation(op.id)
        return recovery.run(op)
