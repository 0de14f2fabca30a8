"""Cloud Run Admin API v2 subset: services, revisions and their long-running operations.

Semantics kept from Cloud Run: a template change creates a revision `SERVICE-NNNNN-xyz`; the update's
operation completes only once that revision is READY (its startup probe passed) and the traffic is
programmed, or fails with the runtime's message; `traffic` is validated before anything changes;
`traffic_statuses` report what is in effect, with the tag URLs the runtime returned.

Every operation ends: its reconcile thread finishes it, and a watchdog fails it (and frees the service
for the next change) if that thread has not finished `startup_timeout + OPERATION_GRACE` seconds
after it started, e.g. because a runtime call blocked. Background failures go to stderr (the daemon
log) with their traceback and into the operation's error.
"""

from __future__ import annotations

import re
import secrets
import sys
import threading
import time
import traceback
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from google.cloud import run_v2
from google.longrunning import operations_pb2
from google.protobuf import any_pb2

from ethixctl.platform import manifests
from ethixctl.platform.controlplane import apierror
from ethixctl.platform.controlplane.apierror import ApiError
from ethixctl.platform.controlplane.secretmanager import SecretManager
from ethixctl.platform.controlplane.store import message_from_dict, message_to_dict, read_json, write_json
from ethixctl.platform.probes import Probes
from ethixctl.platform.runtime import RevisionSpec, RevisionState, Runtime

DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
LATEST = run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST
REVISION = run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION
Cond = run_v2.Condition.State
# Time an operation may take beyond the startup timeout (routing, saving) before the watchdog ends it.
OPERATION_GRACE = 30.0
_RESTORE = "restore"


def _now() -> datetime:
    return datetime.now(UTC)


def _etag() -> str:
    return f'"{uuid.uuid4().hex[:16]}"'


def _ready(message: str = "") -> run_v2.Condition:
    return run_v2.Condition(
        type_="Ready", state=Cond.CONDITION_SUCCEEDED, message=message, last_transition_time=_now()
    )


def _reconciling(message: str) -> run_v2.Condition:
    return run_v2.Condition(
        type_="Ready", state=Cond.CONDITION_RECONCILING, message=message, last_transition_time=_now()
    )


def _failed(message: str) -> run_v2.Condition:
    return run_v2.Condition(
        type_="Ready", state=Cond.CONDITION_FAILED, message=message, last_transition_time=_now()
    )


def _clone(message: Any) -> Any:
    return type(message).deserialize(type(message).serialize(message))


def _template_key(template: run_v2.RevisionTemplate) -> str:
    """The template without its revision name: two templates with equal keys run the same revision."""
    copy = _clone(template)
    copy.revision = ""
    return run_v2.RevisionTemplate.to_json(copy, sort_keys=True)


def _short(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def revision_ready(revision: run_v2.Revision) -> bool:
    return any(c.type_ == "Ready" and c.state == Cond.CONDITION_SUCCEEDED for c in revision.conditions)


@dataclass
class _Effective:
    split: dict[str, int]
    tags: dict[str, str]


class CloudRun:
    def __init__(
        self, state_path: Path, runtime: Runtime, secrets_store: SecretManager, startup_timeout: float
    ):
        self._path = state_path
        self._runtime = runtime
        self._secrets = secrets_store
        self._startup_timeout = startup_timeout
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._services: dict[str, run_v2.Service] = {}
        self._revisions: dict[str, run_v2.Revision] = {}
        self._counters: dict[str, int] = {}
        self._operations: dict[str, operations_pb2.Operation] = {}
        # service name -> the operation (or _RESTORE) applying a change to it; one at a time.
        self._busy: dict[str, str] = {}
        self._threads: list[threading.Thread] = []
        self._timers: dict[str, threading.Timer] = {}
        self._load()

    # persistence -------------------------------------------------------------------------------
    def _load(self) -> None:
        data = read_json(self._path) or {}
        self._services = {
            n: message_from_dict(run_v2.Service, v) for n, v in data.get("services", {}).items()
        }
        self._revisions = {
            n: message_from_dict(run_v2.Revision, v) for n, v in data.get("revisions", {}).items()
        }
        self._counters = dict(data.get("counters", {}))
        # A change that was in flight when the previous control plane stopped never finished.
        for revision in self._revisions.values():
            if revision.reconciling:
                revision.reconciling = False
                revision.conditions = [_failed("the control plane stopped before this revision became ready")]
        for service in self._services.values():
            service.reconciling = False

    def _save(self) -> None:
        write_json(
            self._path,
            {
                "services": {n: message_to_dict(s) for n, s in self._services.items()},
                "revisions": {n: message_to_dict(r) for n, r in self._revisions.items()},
                "counters": self._counters,
            },
        )

    # operations --------------------------------------------------------------------------------
    def _new_operation(self, location: str, metadata: Any) -> operations_pb2.Operation:
        op = operations_pb2.Operation(name=f"{location}/operations/{uuid.uuid4()}", done=False)
        op.metadata.CopyFrom(self._pack(metadata))
        self._operations[op.name] = op
        return op

    @staticmethod
    def _pack(message: Any) -> any_pb2.Any:
        packed = any_pb2.Any()
        packed.Pack(type(message).pb(message))
        return packed

    def _finish(self, op_name: str, result: Any) -> None:
        op = self._operations[op_name]
        op.metadata.CopyFrom(self._pack(result))
        op.response.CopyFrom(self._pack(result))
        op.done = True

    def _fail(self, op_name: str, status: str, message: str) -> None:
        op = self._operations[op_name]
        op.error.code = apierror.GRPC_CODES[status]
        op.error.message = message
        op.done = True

    def get_operation(self, name: str) -> operations_pb2.Operation:
        with self._lock:
            op = self._operations.get(name)
            if op is None:
                raise apierror.not_found(f"operation {name} not found")
            copy = operations_pb2.Operation()
            copy.CopyFrom(op)
            return copy

    # services ----------------------------------------------------------------------------------
    def _service(self, name: str) -> run_v2.Service:
        service = self._services.get(name)
        if service is None:
            raise apierror.not_found(
                f"Resource '{_short(name)}' of kind 'SERVICE' in region '{name.split('/')[3]}' "
                f"in project '{name.split('/')[1]}' does not exist."
            )
        return service

    def get_service(self, name: str) -> run_v2.Service:
        with self._lock:
            return _clone(self._service(name))

    def list_services(self, parent: str) -> list[run_v2.Service]:
        with self._lock:
            return [
                _clone(s) for n, s in sorted(self._services.items()) if n.startswith(parent + "/services/")
            ]

    def create_service(self, parent: str, service_id: str, body: run_v2.Service) -> operations_pb2.Operation:
        if not service_id or not DNS_LABEL.match(service_id) or len(service_id) > 49:
            raise apierror.invalid_argument(
                f"invalid service id {service_id!r}: lowercase letters, digits and '-', "
                "starting with a letter, at most 49 characters"
            )
        name = f"{parent}/services/{service_id}"
        with self._lock:
            if name in self._services:
                raise apierror.already_exists(f"Resource '{service_id}' already exists.")
            self._check_template(name, body.template)
            service = run_v2.Service(
                name=name,
                uid=str(uuid.uuid4()),
                generation=0,
                description=body.description,
                labels=dict(body.labels),
                annotations=dict(body.annotations),
                create_time=_now(),
                creator="local",
                launch_stage=body.launch_stage,
                template=_clone(body.template),
                uri=self._runtime.service_url(service_id),
            )
            service.urls = [service.uri]
            self._counters[name] = 0
            return self._apply_change(service, body, parent)

    def update_service(
        self, name: str, body: run_v2.Service, allow_missing: bool
    ) -> operations_pb2.Operation:
        with self._lock:
            if name not in self._services and allow_missing:
                parent, _, service_id = name.rpartition("/services/")
                return self.create_service(parent, service_id, body)
            current = self._service(name)
            if body.etag and body.etag != current.etag:
                raise apierror.aborted(
                    f"service {_short(name)} changed since it was read (etag mismatch); read it again"
                )
            self._check_template(name, body.template)
            service = _clone(current)
            service.template = _clone(body.template)
            service.description = body.description
            service.labels = dict(body.labels)
            service.annotations = dict(body.annotations)
            return self._apply_change(service, body, name.rpartition("/services/")[0])

    def _check_template(self, service_name: str, template: run_v2.RevisionTemplate) -> None:
        if len(template.containers) != 1:
            raise apierror.invalid_argument(
                "the template needs exactly one container (the local platform runs one)"
            )
        container = template.containers[0]
        if not container.image:
            raise apierror.invalid_argument("template.containers[0].image is required")
        if "cpu" in container.resources.limits:
            try:
                manifests.cpu_cores(container.resources.limits["cpu"])
            except ValueError:
                raise apierror.invalid_argument(
                    f"template.containers[0].resources.limits.cpu: {container.resources.limits['cpu']!r} "
                    "is not a CPU quantity (e.g. 1, 2, 500m)"
                ) from None
        project = service_name.split("/")[1]
        for var in container.env:
            ref = var.value_source.secret_key_ref
            if ref.secret:
                try:
                    self._secrets.check_exists(project, ref.secret)
                except ApiError:
                    raise apierror.invalid_argument(
                        f"env {var.name}: secret {ref.secret!r} does not exist in project {project!r}"
                    ) from None

    def _apply_change(
        self, service: run_v2.Service, body: run_v2.Service, location: str
    ) -> operations_pb2.Operation:
        """Validate, record the new generation and start reconciling it in the background."""
        name = service.name
        service_id = _short(name)
        if name in self._busy:
            raise apierror.aborted(
                f"service {service_id} is still applying an earlier change; retry when it is done"
            )
        current = self._services.get(name)
        new_revision: str | None = None
        requested = body.template.revision
        known = {_short(r) for r, rev in self._revisions.items() if rev.service == name}
        if (
            current is None
            or _template_key(body.template) != _template_key(current.template)
            or (requested and requested not in known)
        ):
            if requested:
                if (
                    not requested.startswith(service_id + "-")
                    or not DNS_LABEL.match(requested)
                    or len(requested) > 63
                ):
                    raise apierror.invalid_argument(
                        f"revision name {requested!r} must start with '{service_id}-' "
                        "and be a DNS label of at most 63 characters"
                    )
                if f"{name}/revisions/{requested}" in self._revisions:
                    raise apierror.already_exists(f"Revision named '{requested}' already exists.")
                new_revision = requested
            else:
                new_revision = f"{service_id}-{self._counters.get(name, 0) + 1:05d}-{self._suffix()}"
        traffic = list(body.traffic) or [run_v2.TrafficTarget(type_=LATEST, percent=100)]
        service.traffic = self._validate_traffic(service, traffic, new_revision)
        service.generation = int(service.generation) + 1
        service.update_time = _now()
        service.last_modifier = "local"
        service.etag = _etag()
        service.reconciling = True
        service.terminal_condition = _reconciling(
            "Deploying revision." if new_revision else "Routing traffic."
        )
        revision: run_v2.Revision | None = None
        if new_revision is not None:
            self._counters[name] = self._counters.get(name, 0) + 1
            service.latest_created_revision = new_revision
            revision = self._new_revision(service, new_revision)
            self._revisions[revision.name] = revision
        self._services[name] = service
        op = self._new_operation(location, service)
        self._busy[name] = op.name
        self._save()
        revision_name = revision.name if revision else None
        thread = threading.Thread(
            target=self._reconcile,
            args=(name, revision_name, op.name),
            name=f"reconcile {service_id}",
            daemon=True,
        )
        watchdog = threading.Timer(
            self._startup_timeout + OPERATION_GRACE,
            self._expire,
            args=(name, revision_name, op.name, thread),
        )
        watchdog.name = f"watchdog {service_id}"
        watchdog.daemon = True
        self._threads.append(thread)
        self._timers[op.name] = watchdog
        thread.start()
        watchdog.start()
        result = operations_pb2.Operation()
        result.CopyFrom(op)
        return result

    def _suffix(self) -> str:
        return "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(3))

    def _new_revision(self, service: run_v2.Service, revision_id: str) -> run_v2.Revision:
        template = service.template
        return run_v2.Revision(
            name=f"{service.name}/revisions/{revision_id}",
            uid=str(uuid.uuid4()),
            generation=1,
            service=service.name,
            labels=dict(template.labels),
            annotations=dict(template.annotations),
            create_time=_now(),
            update_time=_now(),
            launch_stage=service.launch_stage,
            scaling=template.scaling,
            containers=list(template.containers),
            timeout=template.timeout,
            service_account=template.service_account,
            max_instance_request_concurrency=template.max_instance_request_concurrency,
            reconciling=True,
            conditions=[_reconciling("Waiting for the startup probe to pass.")],
            observed_generation=1,
            creator="local",
            etag=_etag(),
        )

    def _validate_traffic(
        self, service: run_v2.Service, traffic: list[run_v2.TrafficTarget], new_revision: str | None
    ) -> list[run_v2.TrafficTarget]:
        total = 0
        tags: set[str] = set()
        cleaned: list[run_v2.TrafficTarget] = []
        for index, entry in enumerate(traffic):
            where = f"traffic[{index}]"
            target = _clone(entry)
            if target.revision:
                target.revision = _short(target.revision)
            if target.type_ == 0:
                target.type_ = REVISION if target.revision else LATEST
            if target.type_ == LATEST and target.revision:
                raise apierror.invalid_argument(f"{where}: type LATEST must not name a revision")
            if target.type_ == REVISION:
                if not target.revision:
                    raise apierror.invalid_argument(f"{where}: type REVISION needs a revision name")
                self._check_target_revision(service, target.revision, new_revision, where)
            elif service.latest_ready_revision == "" and new_revision is None:
                raise apierror.failed_precondition(f"{where}: LATEST has no ready revision to point at")
            if not 0 <= target.percent <= 100:
                raise apierror.invalid_argument(
                    f"{where}: percent must be between 0 and 100, got {target.percent}"
                )
            if target.tag:
                if not DNS_LABEL.match(target.tag) or len(target.tag) > 46:
                    raise apierror.invalid_argument(
                        f"{where}: tag {target.tag!r} must be lowercase letters, digits and '-', "
                        "start with a letter and be at most 46 characters"
                    )
                if target.tag in tags:
                    raise apierror.invalid_argument(f"{where}: tag {target.tag!r} is used more than once")
                tags.add(target.tag)
            elif target.percent == 0:
                raise apierror.invalid_argument(
                    f"{where}: a 0% entry needs a tag, otherwise it has no effect"
                )
            total += target.percent
            cleaned.append(target)
        if total != 100:
            raise apierror.invalid_argument(f"traffic percents must sum to 100, got {total}")
        return cleaned

    def _check_target_revision(
        self, service: run_v2.Service, revision_id: str, new_revision: str | None, where: str
    ) -> None:
        if revision_id == new_revision:
            return
        revision = self._revisions.get(f"{service.name}/revisions/{revision_id}")
        if revision is None:
            raise apierror.invalid_argument(
                f"{where}: revision {revision_id!r} does not exist "
                f"or does not belong to service {_short(service.name)!r}"
            )
        if not revision_ready(revision):
            raise apierror.failed_precondition(
                f"{where}: revision {revision_id!r} is not ready and cannot serve traffic"
            )

    # reconciliation ----------------------------------------------------------------------------
    def _reconcile(self, service_name: str, revision_name: str | None, op_name: str) -> None:
        try:
            if revision_name is not None:
                ok, message = self._bring_up(service_name, revision_name)
                with self._lock:
                    revision = self._revisions.get(revision_name)
                    if revision is not None:
                        revision.reconciling = False
                        revision.update_time = _now()
                        revision.conditions = [_ready() if ok else _failed(message)]
                    if self._operations[op_name].done:  # the watchdog ended it already
                        self._save()
                        return
                    if not ok:
                        text = (
                            f"Revision '{_short(revision_name)}' is not ready and cannot serve traffic. "
                            + message
                        )
                        self._end(service_name, op_name, _failed(text), "FAILED_PRECONDITION", text)
                        return
                    self._services[service_name].latest_ready_revision = _short(revision_name)
            self._route(service_name)
            with self._lock:
                if not self._operations[op_name].done:
                    self._end(service_name, op_name, _ready())
        except Exception as exc:  # the operation must end, whatever the runtime raised
            _log(f"control plane: applying a change to {_short(service_name)} failed")
            with self._lock:
                if not self._operations[op_name].done:
                    text = f"applying the change failed: {type(exc).__name__}: {exc}"
                    self._end(service_name, op_name, _failed(text), "INTERNAL", text)
        finally:
            with self._lock:
                if self._busy.get(service_name) == op_name:
                    del self._busy[service_name]
                timer = self._timers.pop(op_name, None)
            if timer is not None:
                timer.cancel()

    def _end(
        self,
        service_name: str,
        op_name: str,
        condition: run_v2.Condition,
        status: str | None = None,
        message: str = "",
    ) -> None:
        """Settle the service and end its operation (done, or failed with `status`); lock held."""
        service = self._services.get(service_name)
        try:
            if service is not None:
                self._settle(service, condition)
                if status is None:
                    self._finish(op_name, service)
            if status is not None or service is None:
                self._fail(op_name, status or "INTERNAL", message or f"service {service_name} is gone")
        finally:
            if not self._operations[op_name].done:
                self._fail(op_name, "INTERNAL", message or "the operation could not be completed")
            if self._busy.get(service_name) == op_name:
                del self._busy[service_name]
        try:
            self._save()
        except Exception:
            _log(f"control plane: saving the state after {op_name} failed")

    def _expire(
        self, service_name: str, revision_name: str | None, op_name: str, thread: threading.Thread
    ) -> None:
        """The watchdog: end an operation whose reconcile thread is stuck, and free the service."""
        with self._lock:
            self._timers.pop(op_name, None)
            op = self._operations.get(op_name)
            if op is None or op.done:
                return
            limit = self._startup_timeout + OPERATION_GRACE
            what = f"revision '{_short(revision_name)}'" if revision_name else "the traffic change"
            text = (
                f"applying the change to {_short(service_name)} did not finish within {limit:.0f}s: "
                f"{what} is stuck in the runtime; the operation was abandoned (see the daemon log)"
            )
            frame = sys._current_frames().get(thread.ident or -1)
            stack = "".join(traceback.format_stack(frame)) if frame is not None else "(thread ended)\n"
            print(f"control plane watchdog: {text}\nstuck thread:\n{stack}", file=sys.stderr, flush=True)
            if revision_name is not None:
                revision = self._revisions.get(revision_name)
                if revision is not None and revision.reconciling:
                    revision.reconciling = False
                    revision.update_time = _now()
                    revision.conditions = [_failed(text)]
            self._end(service_name, op_name, _failed(text), "DEADLINE_EXCEEDED", text)

    @staticmethod
    def _settle(service: run_v2.Service, condition: run_v2.Condition) -> None:
        service.terminal_condition = condition
        service.reconciling = False
        service.observed_generation = service.generation
        service.update_time = _now()

    def _bring_up(self, service_name: str, revision_name: str) -> tuple[bool, str]:
        """Start a revision and wait for its startup probe; (ok, message)."""
        with self._lock:
            revision = _clone(self._revisions[revision_name])
        project = service_name.split("/")[1]
        container = revision.containers[0]
        env: dict[str, str] = {}
        for var in container.env:
            ref = var.value_source.secret_key_ref
            if ref.secret:
                try:
                    env[var.name] = self._secrets.resolve_value(project, ref.secret, ref.version)
                except ApiError as exc:
                    return False, f"env {var.name}: {exc.message}"
            else:
                env[var.name] = var.value
        revision_id = _short(revision_name)
        service_id = _short(service_name)
        env.update({"K_SERVICE": service_id, "K_REVISION": revision_id, "K_CONFIGURATION": service_id})
        if "cpu" in container.resources.limits:
            # Cloud Run gives each instance this many vCPUs; nothing enforces it here, so the revision is
            # told (its CPU gate measures against it).
            env["ETHIX_CPU_LIMIT"] = str(manifests.cpu_cores(container.resources.limits["cpu"]))
        spec = RevisionSpec(
            service_id, revision_id, service_id, container.image, env, Probes.from_container(container)
        )
        try:
            self._runtime.start_revision(spec)
        except Exception as exc:  # the revision must end FAILED with the reason, not stay reconciling
            return False, f"the runtime could not start it: {exc}"
        return self._wait_ready(revision_id)

    def _wait_ready(self, revision_id: str) -> tuple[bool, str]:
        deadline = time.monotonic() + self._startup_timeout
        while not self._stop.is_set():
            status = self._runtime.revision_status(revision_id)
            if status.state == RevisionState.READY:
                return True, ""
            if status.state in (RevisionState.FAILED, RevisionState.STOPPED):
                self._runtime.stop_revision(revision_id)
                return False, status.message or f"the revision is {status.state.value}"
            if time.monotonic() > deadline:
                self._runtime.stop_revision(revision_id)
                return (
                    False,
                    f"the startup probe did not pass within {self._startup_timeout:.0f}s. {status.message}",
                )
            self._stop.wait(0.1)
        return False, "the control plane is shutting down"

    def _effective(self, service: run_v2.Service) -> _Effective:
        split: dict[str, int] = {}
        tags: dict[str, str] = {}
        for target in service.traffic:
            revision = target.revision if target.type_ == REVISION else service.latest_ready_revision
            if target.percent:
                split[revision] = split.get(revision, 0) + target.percent
            if target.tag:
                tags[target.tag] = revision
        return _Effective(split, tags)

    def _route(self, service_name: str) -> None:
        with self._lock:
            service = self._services[service_name]
            effective = self._effective(service)
        urls = self._runtime.apply_traffic(_short(service_name), effective.split, effective.tags)
        with self._lock:
            service = self._services[service_name]
            service.traffic_statuses = [
                run_v2.TrafficTargetStatus(
                    type_=t.type_,
                    revision=t.revision if t.type_ == REVISION else service.latest_ready_revision,
                    percent=t.percent,
                    tag=t.tag,
                    uri=urls.get(t.tag, "") if t.tag else "",
                )
                for t in service.traffic
            ]

    # revisions ---------------------------------------------------------------------------------
    def _revision(self, name: str) -> run_v2.Revision:
        revision = self._revisions.get(name)
        if revision is None:
            raise apierror.not_found(f"Revision '{_short(name)}' does not exist.")
        return revision

    def get_revision(self, name: str) -> run_v2.Revision:
        with self._lock:
            return _clone(self._revision(name))

    def list_revisions(self, parent: str) -> list[run_v2.Revision]:
        with self._lock:
            self._service(parent)
            found = [r for r in self._revisions.values() if r.service == parent]
            return [_clone(r) for r in sorted(found, key=lambda r: r.create_time, reverse=True)]

    def delete_revision(self, name: str, etag: str) -> operations_pb2.Operation:
        with self._lock:
            revision = self._revision(name)
            if etag and etag != revision.etag:
                raise apierror.aborted(f"revision {_short(name)} changed since it was read (etag mismatch)")
            service = self._services[revision.service]
            revision_id = _short(name)
            if revision.service in self._busy and service.latest_created_revision == revision_id:
                raise apierror.failed_precondition(f"revision {revision_id} is still being deployed")
            effective = self._effective(service)
            serving = {r for r, p in effective.split.items() if p}
            in_effect = {s.revision for s in service.traffic_statuses if s.percent}
            if revision_id in serving | in_effect:
                raise apierror.failed_precondition(
                    f"revision {revision_id} serves traffic; move its traffic elsewhere before deleting it"
                )
            tagged = sorted(tag for tag, r in effective.tags.items() if r == revision_id)
            if tagged:
                raise apierror.failed_precondition(
                    f"revision {revision_id} has tag(s) {', '.join(tagged)}; remove the tags first"
                )
            self._runtime.stop_revision(revision_id)
            del self._revisions[name]
            self._save()
            op = self._new_operation(name.split("/services/")[0], revision)
            self._finish(op.name, revision)
            return self.get_operation(op.name)

    # lifecycle ---------------------------------------------------------------------------------
    def restore(self) -> None:
        """Restart what the stored traffic needs (after `ethixctl down` / `up`) and re-program the router."""
        with self._lock:
            names = [n for n in self._services if n not in self._busy]
            self._busy.update(dict.fromkeys(names, _RESTORE))
        for name in names:
            thread = threading.Thread(target=self._restore_one, args=(name,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _restore_one(self, service_name: str) -> None:
        try:
            with self._lock:
                service = self._services[service_name]
                effective = self._effective(service)
                service.reconciling = True
            needed = set(effective.split) | set(effective.tags.values())
            for revision_id in sorted(needed):
                ok, message = self._bring_up(service_name, f"{service_name}/revisions/{revision_id}")
                if not ok:
                    with self._lock:
                        self._settle(
                            self._services[service_name],
                            _failed(f"Revision '{revision_id}' did not restart: {message}"),
                        )
                        self._save()
                    return
            self._route(service_name)
            with self._lock:
                self._settle(self._services[service_name], _ready())
                self._save()
        except Exception as exc:  # a broken service must not stop the others from restoring
            _log(f"control plane: restoring {_short(service_name)} failed")
            with self._lock:
                self._settle(self._services[service_name], _failed(f"restoring the service failed: {exc}"))
                self._save()
        finally:
            with self._lock:
                if self._busy.get(service_name) == _RESTORE:
                    del self._busy[service_name]

    def shutdown(self, timeout: float = 5.0) -> None:
        self._stop.set()
        with self._lock:
            timers = list(self._timers.values())
        for timer in timers:
            timer.cancel()
        for thread in self._threads:
            thread.join(timeout)


def _log(what: str) -> None:
    """A background thread's failure goes to stderr (the daemon log) with its traceback."""
    print(f"{what}:\n{traceback.format_exc()}", file=sys.stderr, flush=True)
