"""``dr-drill``: the weekly restore test as a state machine on the shared operations framework.

declared → picking → restoring → verifying → deploying → smoking → cleaning_up → passed | missed | failed
picking → cleaning_up → unverifiable: the snapshot has no manifest (Atlas's own), so nothing is restored

Each phase is timed into ``details.steps``. Whatever a phase is about to create (the scratch cluster's
data, the scratch bucket, the tagged revision) is written to the ledger first, so a drill killed at
any point leaves a record of what to remove: the next drill cleans it up and ends the dead one as
``aborted``. The objects scenario skips deploying and smoking; a failed restore or verification goes
straight to cleaning up. RTO = declared incident → smoke green (objects: → every object verified).
RPO = incident − the newest heartbeat found in the restored data.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ethixctl.dr import objects, snapshot, verify
from ethixctl.dr.context import DrContext
from ethixctl.errors import EthixError, PlatformUnavailable, UsageError
from ethixctl.ops.ledger import Ledger, Operation
from ethixctl.ops.machine import Machine

KIND = "drill"
LOCK_SUBJECT = "scratch"  # one drill or restore at a time uses an environment's scratch target


class Phase(StrEnum):
    DECLARED = "declared"
    PICKING = "picking"
    RESTORING = "restoring"
    VERIFYING = "verifying"
    DEPLOYING = "deploying"
    SMOKING = "smoking"
    CLEANING_UP = "cleaning_up"
    PASSED = "passed"
    MISSED = "missed"
    FAILED = "failed"
    UNVERIFIABLE = "unverifiable"


TRANSITIONS: dict[Phase, frozenset[Phase]] = {
    Phase.DECLARED: frozenset({Phase.PICKING}),
    Phase.PICKING: frozenset({Phase.RESTORING, Phase.CLEANING_UP}),
    Phase.RESTORING: frozenset({Phase.VERIFYING, Phase.CLEANING_UP}),
    Phase.VERIFYING: frozenset({Phase.DEPLOYING, Phase.CLEANING_UP}),
    Phase.DEPLOYING: frozenset({Phase.SMOKING, Phase.CLEANING_UP}),
    Phase.SMOKING: frozenset({Phase.CLEANING_UP}),
    Phase.CLEANING_UP: frozenset({Phase.PASSED, Phase.MISSED, Phase.FAILED, Phase.UNVERIFIABLE}),
}
FINAL: dict[Phase, str] = {
    Phase.PASSED: "passed",
    Phase.MISSED: "missed",
    Phase.FAILED: "failed",
    Phase.UNVERIFIABLE: "unverifiable",
}
STEPS = (Phase.DECLARED, Phase.PICKING, Phase.RESTORING, Phase.VERIFYING, Phase.DEPLOYING, Phase.SMOKING,
         Phase.CLEANING_UP)  # fmt: skip


@dataclass
class DrillOptions:
    scenario: str  # database | objects | full
    snapshot_id: str | None = None
    point_in_time: float | None = None
    keep: bool = False
    restore_timeout: float = 3600.0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def tag_of(op: Operation) -> str:
    return f"dr-{op.short_id.lower()}"


class Drill:
    def __init__(
        self,
        ctx: DrContext,
        ledger: Ledger,
        options: DrillOptions,
        on_step: Callable[[str, dict[str, Any]], None] | None = None,
    ):
        self.ctx = ctx
        self.ledger = ledger
        self.options = options
        self.on_step = on_step or (lambda phase, details: None)
        self.machine = Machine(ledger, Phase, TRANSITIONS, FINAL)
        subject, rto, rpo = ctx.book.targets_of(options.scenario)
        self.targets: dict[str, Any] = {"against": subject, "rto_seconds": rto, "rpo_seconds": rpo}
        self._manifest: dict[str, Any] | None = None

    # entry points ---------------------------------------------------------------------------------
    def start(self) -> Operation:
        incident = time.time()
        details = {
            "incident_declared_at": incident,
            # With --point-in-time, the incident is that moment: writes after it are discarded by design.
            "incident_at": self.options.point_in_time or incident,
            "targets": self.targets,
            "steps": {},
        }
        return self.ledger.create_operation(
            KIND,
            self.options.scenario,
            self.ctx.environment.name,
            Phase.DECLARED.value,
            details=details,
            options=self.options.to_dict(),
        )

    def run(self, op: Operation) -> Operation:
        handlers = {
            Phase.DECLARED: self._declare,
            Phase.PICKING: self._pick,
            Phase.RESTORING: self._restore,
            Phase.VERIFYING: self._verify,
            Phase.DEPLOYING: self._deploy,
            Phase.SMOKING: self._smoke,
            Phase.CLEANING_UP: self._clean_up,
        }
        return self.machine.run(
            op, {phase: self._timed(phase, handler) for phase, handler in handlers.items()}
        )

    def _timed(self, phase: Phase, handler: Callable[[Operation], Phase]) -> Callable[[Operation], Phase]:
        def run(op: Operation) -> Phase:
            started = time.time()
            self.on_step(f"{phase.value} …", {})
            target = handler(op)
            steps = dict(self.ledger.operation(op.id).details.get("steps", {}))
            steps[phase.value] = {"started_at": started, "seconds": round(time.time() - started, 3)}
            self.ledger.update(op.id, details={"steps": steps})
            self.on_step(phase.value, steps[phase.value])
            return target

        return run

    def _note(self, op: Operation, **details: Any) -> Operation:
        return self.ledger.update(op.id, details=details)

    def _fail(self, op: Operation, failure: str, outcome: str = "failed", **details: Any) -> Phase:
        self.ledger.update(op.id, details={"outcome": outcome, "failure": failure, **details}, reason=failure)
        self.ledger.event(op, "failure", failure)
        return Phase.CLEANING_UP

    def manifest(self, op: Operation) -> dict[str, Any]:
        if self._manifest is None or self._manifest["id"] != op.details["snapshot_id"]:
            self._manifest = self.ctx.manifest(op.details["snapshot_id"])
        return self._manifest

    # phases ---------------------------------------------------------------------------------------
    def _declare(self, op: Operation) -> Phase:
        return Phase.PICKING

    def _pick(self, op: Operation) -> Phase:
        if op.details.get("outcome") == "unverifiable":
            return Phase.CLEANING_UP
        if op.details.get("snapshot_id"):
            return Phase.RESTORING
        try:
            if self.options.snapshot_id:
                chosen = self.ctx.manifest(self.options.snapshot_id)
            else:
                chosen = self.ctx.newest_manifest(self.options.point_in_time)
        except snapshot.NoManifest as exc:
            # Fails safe: data nobody can check is not restored, smoke-tested and reported as good.
            check = verify.Check("manifest", exc.snapshot_id, False, "not possible: no manifest")
            return self._fail(
                op,
                exc.message,
                outcome="unverifiable",
                snapshot_id=exc.snapshot_id,
                snapshot={"point_in_time": exc.taken_at},
                checks=[check.to_dict()],
            )
        self._note(
            op,
            snapshot_id=chosen["id"],
            snapshot={
                k: chosen[k] for k in ("point_in_time", "newest_write", "newest_heartbeat", "documents")
            },
        )
        return Phase.RESTORING

    def _restore(self, op: Operation) -> Phase:
        manifest = self.manifest(op)
        scenario = self.options.scenario
        if scenario in ("database", "full"):
            outcome = self._restore_database(op, manifest)
            if outcome is not None:
                return outcome
        # The scratch bucket is recorded before anything is written to it.
        op = self._note(op, scratch_bucket=self.ctx.scratch_bucket.url)
        objects.clear(self.ctx.scratch_bucket)
        copied = objects.copy_to_scratch(
            self.ctx.live_bucket,
            self.ctx.backups,
            self.ctx.scratch_bucket,
            manifest,
            history=scenario in ("objects", "full"),
        )
        results = [c.to_dict() for c in copied]
        if scenario in ("objects", "full"):
            damage = objects.damage(
                self.ctx.scratch_bucket,
                manifest,
                deleted=self.ctx.book.drill.objects_deleted,
                overwritten=self.ctx.book.drill.objects_overwritten,
                seed=int(op.started_at * 1000),
            )
            recovered = objects.recover(self.ctx.scratch_bucket, self.ctx.backups, manifest)
            self._note(op, damage=damage, objects_recovered=[r.to_dict() for r in recovered])
        self._note(op, objects_copied=results)
        return Phase.VERIFYING

    def _restore_database(self, op: Operation, manifest: dict[str, Any]) -> Phase | None:
        scratch = self.ctx.target.scratch_cluster
        job_id = op.details.get("restore_job_id")
        if job_id is None:
            op = self._note(op, scratch_cluster=scratch)
            if self.options.point_in_time is not None and not self.options.snapshot_id:
                job = self.ctx.atlas.create_restore_job(
                    scratch, allowed_targets={scratch}, point_in_time=int(self.options.point_in_time)
                )
            else:
                job = self.ctx.atlas.create_restore_job(
                    scratch, allowed_targets={scratch}, snapshot_id=manifest["id"]
                )
            job_id = job.id
            op = self._note(op, restore_job_id=job_id)
        job = self.ctx.atlas.wait_restore_job(job_id, timeout=self.options.restore_timeout)
        if job.snapshot_id and job.snapshot_id != manifest["id"]:
            # A point-in-time job chose its own snapshot: verify against that one.
            self._note(op, snapshot_id=job.snapshot_id)
        self._note(op, restore_job={"id": job.id, "state": job.state, "finished_at": job.finished_at})
        if job.state != "finished":
            return self._fail(op, self._explain_failed_restore(op, job.state))
        return None

    def _explain_failed_restore(self, op: Operation, state: str) -> str:
        """Name the culprit: a snapshot file that fails its checksum names its collection."""
        try:
            for _ in snapshot.check_files(self.ctx.backups, self.manifest(self.ledger.operation(op.id))):
                pass
        except snapshot.SnapshotCorrupt as exc:
            return f"restore job {state}: {exc.message}"
        return f"restore job {state}; every snapshot file matches its checksum"

    def _verify(self, op: Operation) -> Phase:
        manifest = self.manifest(op)
        checks: list[verify.Check] = []
        if self.options.scenario in ("database", "full"):
            from services.common.docstore import open_store

            restored = open_store(self.ctx.scratch_database_url())
            try:
                checks += verify.database(restored, manifest)
                checks += verify.references(restored, self.ctx.scratch_bucket, manifest)
                beats = [snapshot.epoch_of(b.get("at")) for b in restored["heartbeats"].find({})]
            finally:
                restored.close()
            newest = max((b for b in beats if b is not None), default=None)
            self._note(
                op,
                newest_heartbeat=newest,
                rpo_seconds=None if newest is None else round(op.details["incident_at"] - newest, 3),
            )
        else:
            checks += _object_checks(self.ctx.scratch_bucket, manifest)
        failed = verify.failures(checks)
        op = self._note(op, checks=[c.to_dict() for c in checks])
        if failed:
            first = failed[0]
            more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
            return self._fail(op, f"verification failed: {first.kind} {first.subject}: {first.detail}{more}")
        if self.options.scenario == "objects":
            lost = [r for r in op.details.get("objects_recovered", []) if r["action"] == "lost"]
            self._note(op, recovered_at=time.time(), rpo_seconds=0.0 if not lost else None)
            return Phase.CLEANING_UP
        return Phase.DEPLOYING

    def _deploy(self, op: Operation) -> Phase:
        run = self.ctx.cloud_run()
        service = self.ctx.service
        tag = tag_of(op)
        if op.details.get("revision"):
            return Phase.SMOKING
        op = self._note(op, tag=tag, service=service)  # intent first: cleanup knows the tag
        env = {"ETHIX_STORAGE_URL": self.ctx.scratch_bucket.url}
        secret_env: dict[str, str] = {}
        if self.ctx.target.is_local:
            env["ETHIX_DATABASE_URL"] = self.ctx.scratch_database_url()  # a file path, no credentials
        else:
            assert self.ctx.target.scratch_database_url_secret is not None
            secret_env["ETHIX_DATABASE_URL"] = self.ctx.target.scratch_database_url_secret
        try:
            image = run.get_service(service).image
            revision = run.deploy_revision(service, image, env, tag, keep_traffic=True, secret_env=secret_env)
        except (UsageError, PlatformUnavailable):
            raise
        except EthixError as exc:
            return self._fail(op, f"the backend revision on the restored data did not start: {exc.message}")
        self._note(op, revision=revision.name, image=image)
        return Phase.SMOKING

    def _smoke(self, op: Operation) -> Phase:
        from ethixctl.smoke.runner import run_suite

        url = self.ctx.cloud_run().tag_url(self.ctx.service, op.details["tag"])
        report = run_suite(url)
        failed = next((s for s in [*report.steps, *report.cleanup] if s.status.value != "passed"), None)
        summary = {
            "outcome": report.outcome,
            "counts": report.counts(),
            "seconds": round(report.duration, 3),
            "failed_step": None if failed is None else {"name": failed.name, "reason": failed.reason},
        }
        if not report.passed:
            return self._fail(
                op, f"smoke suite {report.outcome} at step {failed.name if failed else '?'}", smoke=summary
            )
        self._note(op, smoke=summary, green_at=time.time())
        return Phase.CLEANING_UP

    def _clean_up(self, op: Operation) -> Phase:
        if self.options.keep:
            self._note(op, kept=leftovers(op))
        else:
            self._note(op, cleaned=clean_up(self.ctx, op))
        op = self.ledger.operation(op.id)
        if op.details.get("outcome") == "failed":
            return Phase.FAILED
        if op.details.get("outcome") == "unverifiable":
            return Phase.UNVERIFIABLE
        measured = measure(op)
        missed = []
        for name in ("rto", "rpo"):
            value, target = measured[name], float(self.targets[f"{name}_seconds"])
            if value is None:
                missed.append(f"{name.upper()} could not be measured")
            elif value > target:
                missed.append(f"{name.upper()} {_seconds(value)} > target {_seconds(target)}")
        outcome = "missed" if missed else "passed"
        reason = "; ".join(missed) if missed else "objectives met"
        self.ledger.update(
            op.id,
            details={"outcome": outcome, **{f"{k}_measured": v for k, v in measured.items()}},
            reason=reason,
        )
        return Phase.MISSED if missed else Phase.PASSED


def _seconds(value: float) -> str:
    return f"{value:.1f}s" if value < 120 else f"{value / 60:.1f}min"


def measure(op: Operation) -> dict[str, float | None]:
    """RTO: declared incident → smoke green (objects: → verified); RPO: incident → newest heartbeat."""
    recovered = op.details.get("green_at") or op.details.get("recovered_at")
    declared = op.details["incident_declared_at"]
    return {
        "rto": None if recovered is None else round(recovered - declared, 3),
        "rpo": op.details.get("rpo_seconds"),
    }


def _object_checks(bucket: Any, manifest: dict[str, Any]) -> list[verify.Check]:
    from services.common.storage import ObjectNotFound

    checks = []
    for entry in manifest["objects"]:
        if entry.get("missing"):
            checks.append(verify.Check("object", entry["name"], False, "missing when the snapshot was taken"))
            continue
        try:
            data = bucket.get(entry["name"])
        except ObjectNotFound:
            checks.append(verify.Check("object", entry["name"], False, f"missing from {bucket.url}"))
            continue
        digest = snapshot.sha256(data)
        checks.append(
            verify.Check(
                "object",
                entry["name"],
                digest == entry["sha256"],
                f"sha256 {digest[:12]}… (manifest: {entry['sha256'][:12]}…)",
            )
        )
    return checks


def leftovers(op: Operation) -> dict[str, Any]:
    """What the drill recorded having created (or being about to create)."""
    details = op.details
    return {
        key: details[key]
        for key in ("scratch_cluster", "scratch_bucket", "revision", "tag", "service")
        if details.get(key)
    }


def clean_up(ctx: DrContext, op: Operation) -> dict[str, Any]:
    """Remove what ``op`` recorded: the tag and revision, the scratch bucket's objects, the scratch
    cluster's data (locally). Each part is idempotent, so a second cleanup of the same drill is a no-op."""
    found = leftovers(op)
    done: dict[str, Any] = {}
    if found.get("tag") and found.get("service"):
        run = ctx.cloud_run()
        run.remove_tag(found["service"], found["tag"])
        done["tag"] = found["tag"]
        if found.get("revision"):
            run.delete_revision(found["service"], found["revision"])
            done["revision"] = found["revision"]
    if found.get("scratch_bucket"):
        done["scratch_objects_deleted"] = objects.clear(ctx.scratch_bucket)
    if found.get("scratch_cluster"):
        done["scratch_cluster_dropped"] = ctx.drop_cluster(found["scratch_cluster"])
    return done


def clean_up_abandoned(ctx: DrContext, ledger: Ledger, by: str) -> list[dict[str, Any]]:
    """Drills still ``in_progress`` whose process is gone (the caller holds the lock, so no live drill
    can own them): clean up what each left, then end it as ``aborted``."""
    cleaned = []
    for op in ledger.all_in_progress(ctx.environment.name):
        if op.kind != KIND:
            continue
        done = clean_up(ctx, op)
        ledger.update(op.id, details={"cleaned": done})
        ledger.finish_if_in_progress(op.id, "aborted", f"interrupted in {op.phase}; cleaned up by drill {by}")
        cleaned.append({"id": op.id, "phase": op.phase, "cleaned": done})
    return cleaned


def execute(
    ctx: DrContext, options: DrillOptions, on_step: Callable[[str, dict[str, Any]], None] | None = None
) -> tuple[Operation, list[dict[str, Any]]]:
    """Run one drill under the environment's scratch lock; returns its final record and the abandoned
    drills it cleaned up first."""
    from ethixctl.ops.lock import OperationLock

    with (
        Ledger(ctx.state_dir) as ledger,
        OperationLock(ctx.state_dir, KIND, ctx.environment.name, LOCK_SUBJECT) as lock,
    ):
        drill = Drill(ctx, ledger, options, on_step)
        abandoned = clean_up_abandoned(ctx, ledger, by="the next drill")
        op = drill.start()
        lock.set_operation(op.id)
        if abandoned:
            ledger.update(op.id, details={"abandoned_cleaned": abandoned})
        return drill.run(op), abandoned
