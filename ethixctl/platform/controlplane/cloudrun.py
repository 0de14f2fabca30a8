"""Cloud Run Admin API v2 subset: services, revisions and their long-running operations.

Semantics kept from Cloud Run: a template change creates a revision `SERVICE-NNNNN-xyz`; the update's
operation completes only once that revision is READY (its startup probe passed) and the traffic is
programmed, or fails with the runtime's message; `traffic` is validated before anything changes;
`traffic_statuses` report what is in effect, with the tag URLs the runtime returned.

The parts: resource names (`ethixctl.adapters.cloudrun_names`, shared with the adapter), checks
(`validation`), the resources and their file (`servicestore`), operations (`operations`), and the
background work that applies a change (`reconciler`). This module is the API over them.
"""

from __future__ import annotations

import secrets
import uuid
from pathlib import Path

from google.cloud import run_v2
from google.longrunning import operations_pb2

from ethixctl.adapters.cloudrun_names import parse_location, parse_revision, parse_service, short
from ethixctl.platform.controlplane import apierror, validation
from ethixctl.platform.controlplane.operations import Operations, preview
from ethixctl.platform.controlplane.paging import Page, paginate
from ethixctl.platform.controlplane.reconciler import Reconciler
from ethixctl.platform.controlplane.resources import (
    LATEST,
    clone,
    effective,
    new_etag,
    now,
    reconciling,
    template_key,
)
from ethixctl.platform.controlplane.secretmanager import SecretManager
from ethixctl.platform.controlplane.servicestore import ServiceStore
from ethixctl.platform.runtime import Runtime

_SUFFIX_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


class CloudRun:
    def __init__(
        self, state_path: Path, runtime: Runtime, secrets_store: SecretManager, startup_timeout: float
    ):
        self._store = ServiceStore(state_path)
        self._runtime = runtime
        self._secrets = secrets_store
        self.operations = Operations()
        self.reconciler = Reconciler(self._store, self.operations, runtime, secrets_store, startup_timeout)

    # services ----------------------------------------------------------------------------------
    def get_service(self, name: str) -> run_v2.Service:
        with self._store.lock:
            return clone(self._store.service(name))

    def list_services(self, parent: str, page_size: int = 0, page_token: str = "") -> Page[run_v2.Service]:
        location = parse_location(parent)
        with self._store.lock:
            found = [s for s in self._store.services.values() if parse_service(s.name).parent == location]
            page = paginate(found, key=lambda s: (s.name,), size=page_size, token=page_token)
            return Page([clone(s) for s in page.items], page.next_token)

    def create_service(
        self, parent: str, service_id: str, body: run_v2.Service, validate_only: bool = False
    ) -> operations_pb2.Operation:
        validation.check_service_id(service_id)
        name = parse_location(parent).service(service_id).path
        with self._store.lock:
            if name in self._store.services:
                raise apierror.already_exists(f"Resource '{service_id}' already exists.")
            validation.check_template(name, body.template, self._secrets)
            service = run_v2.Service(
                name=name,
                uid=str(uuid.uuid4()),
                generation=0,
                description=body.description,
                labels=dict(body.labels),
                annotations=dict(body.annotations),
                create_time=now(),
                creator="local",
                launch_stage=body.launch_stage,
                template=clone(body.template),
            )
            return self._apply_change(service, body, validate_only)

    def update_service(
        self, name: str, body: run_v2.Service, allow_missing: bool, validate_only: bool = False
    ) -> operations_pb2.Operation:
        with self._store.lock:
            # A change sent while this control plane restores the service after its restart waits for it.
            self._store.await_restored(name)
            if name not in self._store.services and allow_missing:
                parsed = parse_service(name)
                return self.create_service(parsed.parent.path, parsed.service, body, validate_only)
            current = self._store.service(name)
            if body.etag and body.etag != current.etag:
                raise apierror.aborted(
                    f"service {short(name)} changed since it was read (etag mismatch); read it again"
                )
            validation.check_template(name, body.template, self._secrets)
            service = clone(current)
            service.template = clone(body.template)
            service.description = body.description
            service.labels = dict(body.labels)
            service.annotations = dict(body.annotations)
            return self._apply_change(service, body, validate_only)

    def _apply_change(
        self, service: run_v2.Service, body: run_v2.Service, validate_only: bool
    ) -> operations_pb2.Operation:
        """Validate, record the new generation and hand it to the reconciler; store lock held.

        With `validate_only` nothing is recorded, started or routed: the answer is an operation that
        is already done, with the service as the change would make it.
        """
        store = self._store
        name = service.name
        parsed = parse_service(name)
        if name in store.busy:
            raise apierror.aborted(
                f"service {parsed.service} is still applying an earlier change; retry when it is done"
            )
        current = store.services.get(name)
        new_revision: str | None = None
        requested = body.template.revision
        known = {short(r) for r, rev in store.revisions.items() if rev.service == name}
        if (
            current is None
            or template_key(body.template) != template_key(current.template)
            or (requested and requested not in known)
        ):
            if requested:
                validation.check_revision_name(name, requested, store.revisions)
                new_revision = requested
            else:
                new_revision = f"{parsed.service}-{store.counters.get(name, 0) + 1:05d}-{_suffix()}"
        traffic = list(body.traffic) or [run_v2.TrafficTarget(type_=LATEST, percent=100)]
        service.traffic = validation.validate_traffic(service, traffic, new_revision, store.revisions)
        service.generation = int(service.generation) + 1
        service.update_time = now()
        service.last_modifier = "local"
        service.etag = new_etag()
        service.reconciling = True
        service.terminal_condition = reconciling(
            "Deploying revision." if new_revision else "Routing traffic."
        )
        if new_revision is not None:
            service.latest_created_revision = new_revision
        if validate_only:
            return preview(parsed.parent.path, service)
        if current is None:
            service.uri = self._runtime.service_url(parsed.service)
            service.urls = [service.uri]
        revision: run_v2.Revision | None = None
        if new_revision is not None:
            store.counters[name] = store.counters.get(name, 0) + 1
            revision = _new_revision(service, new_revision)
            store.revisions[revision.name] = revision
        store.services[name] = service
        op = self.operations.start(parsed.parent.path, service)
        store.busy[name] = op.name
        store.save()
        self.reconciler.apply(name, revision.name if revision else None, op.name)
        return op

    # revisions ---------------------------------------------------------------------------------
    def get_revision(self, name: str) -> run_v2.Revision:
        with self._store.lock:
            return clone(self._store.revision(name))

    def list_revisions(self, parent: str, page_size: int = 0, page_token: str = "") -> Page[run_v2.Revision]:
        """Newest first, like Cloud Run."""
        with self._store.lock:
            self._store.service(parent)
            found = [r for r in self._store.revisions.values() if r.service == parent]
            page = paginate(
                found,
                key=lambda r: (r.create_time.timestamp(), r.name),
                size=page_size,
                token=page_token,
                newest_first=True,
            )
            return Page([clone(r) for r in page.items], page.next_token)

    def delete_revision(self, name: str, etag: str, validate_only: bool = False) -> operations_pb2.Operation:
        store = self._store
        with store.lock:
            revision = store.revision(name)
            if etag and etag != revision.etag:
                raise apierror.aborted(f"revision {short(name)} changed since it was read (etag mismatch)")
            service = store.services[revision.service]
            revision_id = parse_revision(name).revision
            if revision.service in store.busy and service.latest_created_revision == revision_id:
                raise apierror.failed_precondition(f"revision {revision_id} is still being deployed")
            wanted = effective(service)
            serving = {r for r, p in wanted.split.items() if p}
            in_effect = {s.revision for s in service.traffic_statuses if s.percent}
            if revision_id in serving | in_effect:
                raise apierror.failed_precondition(
                    f"revision {revision_id} serves traffic; move its traffic elsewhere before deleting it"
                )
            tagged = sorted(tag for tag, r in wanted.tags.items() if r == revision_id)
            if tagged:
                raise apierror.failed_precondition(
                    f"revision {revision_id} has tag(s) {', '.join(tagged)}; remove the tags first"
                )
            location = parse_revision(name).parent.parent.path
            if validate_only:
                return preview(location, revision)
            self._runtime.stop_revision(revision_id)
            del store.revisions[name]
            store.save()
            op = self.operations.start(location, revision)
            self.operations.finish(op.name, revision)
            return self.operations.get(op.name)

    # lifecycle ---------------------------------------------------------------------------------
    def restore(self) -> None:
        """Restart what the stored traffic needs (after `ethixctl down` / `up`) and re-program the router."""
        self.reconciler.restore()

    def shutdown(self, timeout: float = 5.0) -> None:
        self.reconciler.shutdown(timeout)


def _suffix() -> str:
    return "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(3))


def _new_revision(service: run_v2.Service, revision_id: str) -> run_v2.Revision:
    template = service.template
    return run_v2.Revision(
        name=parse_service(service.name).revision(revision_id).path,
        uid=str(uuid.uuid4()),
        generation=1,
        service=service.name,
        labels=dict(template.labels),
        annotations=dict(template.annotations),
        create_time=now(),
        update_time=now(),
        launch_stage=service.launch_stage,
        scaling=template.scaling,
        containers=list(template.containers),
        timeout=template.timeout,
        service_account=template.service_account,
        max_instance_request_concurrency=template.max_instance_request_concurrency,
        reconciling=True,
        conditions=[reconciling("Waiting for the startup probe to pass.")],
        observed_generation=1,
        creator="local",
        etag=new_etag(),
    )
