"""Applying accepted changes in the background: start revisions, wait for their startup probe, route.

Jobs run on a bounded thread pool, so the control plane's threads do not grow with the number of
changes it has applied. Every operation ends: its job finishes it, and a watchdog fails it (and frees
the service for the next change) if the job has not finished `startup_timeout + OPERATION_GRACE`
seconds after it started, e.g. because a runtime call blocked. Background failures go to stderr (the
daemon log) with their traceback and into the operation's error.
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures

from google.cloud import run_v2

from ethixctl.adapters.cloudrun_names import parse_revision, parse_service, short
from ethixctl.platform import manifests
from ethixctl.platform.controlplane.apierror import ApiError
from ethixctl.platform.controlplane.operations import Operations
from ethixctl.platform.controlplane.resources import (
    REVISION,
    clone,
    effective,
    failed,
    now,
    ready,
    settle,
)
from ethixctl.platform.controlplane.secretmanager import SecretManager
from ethixctl.platform.controlplane.servicestore import RESTORE, ServiceStore
from ethixctl.platform.probes import Probes
from ethixctl.platform.runtime import RevisionSpec, RevisionState, Runtime

# Time an operation may take beyond the startup timeout (routing, saving) before the watchdog ends it.
OPERATION_GRACE = 30.0
# Jobs at once: one per service changing (a service takes one change at a time), plus stuck ones.
WORKERS = 8


class Reconciler:
    def __init__(
        self,
        store: ServiceStore,
        operations: Operations,
        runtime: Runtime,
        secrets: SecretManager,
        startup_timeout: float,
    ):
        self._store = store
        self._operations = operations
        self._runtime = runtime
        self._secrets = secrets
        self._startup_timeout = startup_timeout
        self._stop = threading.Event()
        self._executor = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="reconcile")
        self._jobs: set[Future[None]] = set()
        self._timers: dict[str, threading.Timer] = {}
        self._workers: dict[str, int] = {}  # operation -> the thread applying it (for the watchdog)
        self._jobs_lock = threading.Lock()

    # scheduling --------------------------------------------------------------------------------
    def apply(self, service_name: str, revision_name: str | None, op_name: str) -> None:
        """Bring up `revision_name` (if any), route the service's traffic, end `op_name`."""
        watchdog = threading.Timer(
            self._startup_timeout + OPERATION_GRACE, self._expire, args=(service_name, revision_name, op_name)
        )
        watchdog.name = f"watchdog {short(service_name)}"
        watchdog.daemon = True
        with self._jobs_lock:
            self._timers[op_name] = watchdog
        self._submit(self._reconcile, service_name, revision_name, op_name)
        watchdog.start()

    def restore(self) -> None:
        """Restart what the stored traffic needs (after `ethixctl down` / `up`) and re-program the router."""
        with self._store.lock:
            names = [n for n in self._store.services if n not in self._store.busy]
            self._store.busy.update(dict.fromkeys(names, RESTORE))
        for name in names:
            self._submit(self._restore_one, name)

    def pending(self) -> int:
        """Jobs submitted and not finished (for tests and the daemon's health)."""
        with self._jobs_lock:
            return len(self._jobs)

    def shutdown(self, timeout: float = 5.0) -> None:
        self._stop.set()
        with self._jobs_lock:
            timers = list(self._timers.values())
            jobs = set(self._jobs)
        for timer in timers:
            timer.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)
        wait_futures(jobs, timeout)

    def _submit(self, job: Callable[..., None], *args: object) -> None:
        future = self._executor.submit(job, *args)
        with self._jobs_lock:
            self._jobs.add(future)
        future.add_done_callback(self._forget)

    def _forget(self, future: Future[None]) -> None:
        with self._jobs_lock:
            self._jobs.discard(future)

    # a change ----------------------------------------------------------------------------------
    def _reconcile(self, service_name: str, revision_name: str | None, op_name: str) -> None:
        store = self._store
        with self._jobs_lock:
            self._workers[op_name] = threading.get_ident()
        try:
            if revision_name is not None:
                ok, message = self._bring_up(service_name, revision_name)
                if self._stop.is_set():
                    return  # left reconciling: the next control plane resumes it
                with store.lock:
                    revision = store.revisions.get(revision_name)
                    if revision is not None:
                        revision.reconciling = False
                        revision.update_time = now()
                        revision.conditions = [ready() if ok else failed(message)]
                    if self._operations.done(op_name):  # the watchdog ended it already
                        store.save()
                        return
                    if not ok:
                        text = (
                            f"Revision '{short(revision_name)}' is not ready and cannot serve traffic. "
                            + message
                        )
                        self._end(service_name, op_name, failed(text), "FAILED_PRECONDITION", text)
                        return
                    store.services[service_name].latest_ready_revision = short(revision_name)
            problem = self._warm(service_name)
            if self._stop.is_set():
                return
            with store.lock:
                if problem is not None and not self._operations.done(op_name):
                    self._end(service_name, op_name, failed(problem), "FAILED_PRECONDITION", problem)
                    return
            self._route(service_name)
            with store.lock:
                if not self._operations.done(op_name):
                    self._end(service_name, op_name, ready())
        except Exception as exc:  # the operation must end, whatever the runtime raised
            _log(f"control plane: applying a change to {short(service_name)} failed")
            with store.lock:
                if not self._operations.done(op_name):
                    text = f"applying the change failed: {type(exc).__name__}: {exc}"
                    self._end(service_name, op_name, failed(text), "INTERNAL", text)
        finally:
            with store.lock:
                store.release(service_name, op_name)
            with self._jobs_lock:
                timer = self._timers.pop(op_name, None)
                self._workers.pop(op_name, None)
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
        """Settle the service and end its operation (done, or failed with `status`); store lock held."""
        store = self._store
        service = store.services.get(service_name)
        try:
            if service is not None:
                settle(service, condition)
                if status is None:
                    self._operations.finish(op_name, service)
            if status is not None or service is None:
                self._operations.fail(
                    op_name, status or "INTERNAL", message or f"service {service_name} is gone"
                )
        finally:
            if not self._operations.done(op_name):
                self._operations.fail(op_name, "INTERNAL", message or "the operation could not be completed")
            store.release(service_name, op_name)
        try:
            store.save()
        except Exception:
            _log(f"control plane: saving the state after {op_name} failed")

    def _expire(self, service_name: str, revision_name: str | None, op_name: str) -> None:
        """The watchdog: end an operation whose job is stuck, and free the service."""
        with self._jobs_lock:
            self._timers.pop(op_name, None)
        store = self._store
        with store.lock:
            if self._operations.done(op_name):
                return
            limit = self._startup_timeout + OPERATION_GRACE
            what = f"revision '{short(revision_name)}'" if revision_name else "the traffic change"
            text = (
                f"applying the change to {short(service_name)} did not finish within {limit:.0f}s: "
                f"{what} is stuck in the runtime; the operation was abandoned (see the daemon log)"
            )
            with self._jobs_lock:
                worker = self._workers.get(op_name, -1)
            frame = sys._current_frames().get(worker)
            stack = "".join(traceback.format_stack(frame)) if frame is not None else "(thread ended)\n"
            print(f"control plane watchdog: {text}\nstuck thread:\n{stack}", file=sys.stderr, flush=True)
            if revision_name is not None:
                revision = store.revisions.get(revision_name)
                if revision is not None and revision.reconciling:
                    revision.reconciling = False
                    revision.update_time = now()
                    revision.conditions = [failed(text)]
            self._end(service_name, op_name, failed(text), "DEADLINE_EXCEEDED", text)

    # runtime work ------------------------------------------------------------------------------
    def _bring_up(self, service_name: str, revision_name: str) -> tuple[bool, str]:
        """Start a revision (also one scaled to zero) and wait for its startup probe; (ok, message)."""
        spec = self._spec(service_name, revision_name)
        if isinstance(spec, str):
            return False, spec
        try:
            self._runtime.start_revision(spec)
        except Exception as exc:  # the revision must end FAILED with the reason, not stay reconciling
            return False, f"the runtime could not start it: {exc}"
        return self._wait_ready(spec.revision)

    def spec_for(self, service_id: str, revision_id: str) -> RevisionSpec | None:
        """What the runtime needs to start a revision: image and environment, secrets resolved."""
        with self._store.lock:
            known = [name for name in self._store.services if short(name) == service_id]
        if not known:
            return None
        spec = self._spec(known[0], parse_service(known[0]).revision(revision_id).path)
        return None if isinstance(spec, str) else spec

    def _spec(self, service_name: str, revision_name: str) -> RevisionSpec | str:
        """The revision's spec, or why it cannot be built (a secret that cannot be read)."""
        with self._store.lock:
            stored = self._store.revisions.get(revision_name)
            if stored is None:
                return f"revision {short(revision_name)} does not exist"
            revision = clone(stored)
        project = parse_service(service_name).project
        container = revision.containers[0]
        env: dict[str, str] = {}
        for var in container.env:
            ref = var.value_source.secret_key_ref
            if ref.secret:
                try:
                    env[var.name] = self._secrets.resolve_value(project, ref.secret, ref.version)
                except ApiError as exc:
                    return f"env {var.name}: {exc.message}"
            else:
                env[var.name] = var.value
        revision_id = parse_revision(revision_name).revision
        service_id = short(service_name)
        env.update({"K_SERVICE": service_id, "K_REVISION": revision_id, "K_CONFIGURATION": service_id})
        if "cpu" in container.resources.limits:
            # Cloud Run gives each instance this many vCPUs; nothing enforces it here, so the revision is
            # told (its CPU gate measures against it).
            env["ETHIX_CPU_LIMIT"] = str(manifests.cpu_cores(container.resources.limits["cpu"]))
        return RevisionSpec(
            service_id, revision_id, service_id, container.image, env, Probes.from_container(container)
        )

    def _warm(self, service_name: str) -> str | None:
        """Start every revision the split gives traffic to that is not serving (e.g. scaled to zero, a
        rollback's target) and wait for its startup probe: traffic moves only to serving revisions."""
        with self._store.lock:
            wanted = effective(self._store.services[service_name])
        for revision_id in sorted(wanted.split):
            if self._runtime.revision_status(revision_id).state is RevisionState.READY:
                continue
            ok, message = self._bring_up(service_name, parse_service(service_name).revision(revision_id).path)
            if not ok:
                return f"Revision '{revision_id}' is not ready and cannot serve traffic. {message}"
        return None

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

    def _route(self, service_name: str) -> None:
        with self._store.lock:
            wanted = effective(self._store.services[service_name])
        urls = self._runtime.apply_traffic(short(service_name), wanted.split, wanted.tags)
        with self._store.lock:
            service = self._store.services[service_name]
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

    # after a restart ---------------------------------------------------------------------------
    def _restore_one(self, service_name: str) -> None:
        """Finish the change in flight when the last control plane stopped, then restart and route."""
        store = self._store
        try:
            with store.lock:
                service = store.services[service_name]
                service.reconciling = True
                resumed = [
                    n for n, r in store.revisions.items() if r.service == service_name and r.reconciling
                ]
            for revision_name in resumed:
                ok, message = self._bring_up(service_name, revision_name)
                if self._stop.is_set():
                    return
                with store.lock:
                    revision = store.revisions[revision_name]
                    revision.reconciling = False
                    revision.update_time = now()
                    revision.conditions = [ready() if ok else failed(message)]
                    if ok and store.services[service_name].latest_created_revision == short(revision_name):
                        store.services[service_name].latest_ready_revision = short(revision_name)
            with store.lock:
                wanted = effective(store.services[service_name])
            # Tagged revisions at 0% stay at zero until a request wakes them, unless the runtime
            # cannot do that (it does not know them, or they were stopped).
            needed = set(wanted.split) | {
                revision_id
                for revision_id in wanted.tags.values()
                if self._runtime.revision_status(revision_id).state is RevisionState.STOPPED
            }
            for revision_id in sorted(needed):
                revision_name = parse_service(service_name).revision(revision_id).path
                ok, message = self._bring_up(service_name, revision_name)
                if self._stop.is_set():
                    return
                if not ok:
                    with store.lock:
                        settle(
                            store.services[service_name],
                            failed(f"Revision '{revision_id}' did not restart: {message}"),
                        )
                        store.save()
                    return
            self._route(service_name)
            with store.lock:
                settle(store.services[service_name], ready())
                store.save()
        except Exception as exc:  # a broken service must not stop the others from restoring
            _log(f"control plane: restoring {short(service_name)} failed")
            with store.lock:
                settle(store.services[service_name], failed(f"restoring the service failed: {exc}"))
                store.save()
        finally:
            with store.lock:
                store.release(service_name, RESTORE)


def _log(what: str) -> None:
    """A background thread's failure goes to stderr (the daemon log) with its traceback."""
    print(f"{what}:\n{traceback.format_exc()}", file=sys.stderr, flush=True)
