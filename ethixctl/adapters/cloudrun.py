"""Cloud Run Admin API v2 through google-cloud-run (REST transport).

One code path for both targets: with `endpoint` set it talks to the local control plane with anonymous
credentials; with `endpoint=None` it talks to Google with application default credentials.
google.cloud is imported inside the methods so the CLI starts fast.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from ethixctl.adapters import _google
from ethixctl.adapters.cloudrun_names import Location, short
from ethixctl.errors import EthixError, UsageError

T = TypeVar("T")
_REVISION_NUMBER = re.compile(r"-(\d{5})-[a-z0-9]+$")


@dataclass
class TrafficTarget:
    revision: str | None
    percent: int
    tag: str | None
    uri: str | None
    latest: bool = False


@dataclass
class RevisionInfo:
    name: str
    service: str
    image: str
    env: dict[str, str]
    ready: bool
    message: str
    create_time: datetime


@dataclass
class ServiceInfo:
    name: str
    uri: str
    latest_ready_revision: str | None
    latest_created_revision: str | None
    traffic: list[TrafficTarget]
    image: str


# The local control plane is restarted by the platform daemon when it dies, within a second or two.
CONTROL_PLANE_RESTART_WAIT = 10.0


class _OperationLost(Exception):
    """The control plane no longer knows the operation: it restarted while the change was applied."""


@dataclass
class EnvEntry:
    """One env var of a service's template: an inline value or a Secret Manager reference."""

    name: str
    value: str | None = field(default=None, repr=False)  # inline values may be secrets: never shown
    secret: str | None = None
    version: str | None = None


@dataclass
class ServiceSpec:
    """What preflight checks of a service's template (the revision it would deploy next)."""

    name: str
    env: list[EnvEntry]
    startup_probe: bool
    liveness_probe: bool
    min_instances: int

    def variable(self, name: str) -> EnvEntry | None:
        return next((entry for entry in self.env if entry.name == name), None)


class CloudRun:
    def __init__(
        self,
        project: str,
        region: str,
        endpoint: str | None = None,
        *,
        restart_wait: float = CONTROL_PLANE_RESTART_WAIT,
    ):
        from google.cloud import run_v2

        self.project = project
        self.region = region
        self.endpoint = endpoint
        # Only the local control plane restarts under us; Google's client retries on its own.
        self._restart_wait = restart_wait if endpoint is not None else 0.0
        self._run = run_v2
        kwargs = _google.client_kwargs(endpoint)
        self._services = run_v2.ServicesClient(**kwargs)
        self._revisions = run_v2.RevisionsClient(**kwargs)

    # names and errors --------------------------------------------------------------------------
    @property
    def _parent(self) -> str:
        return Location(self.project, self.region).path

    def _service_name(self, service: str) -> str:
        return Location(self.project, self.region).service(service).path

    def _revision_name(self, service: str, revision: str) -> str:
        return Location(self.project, self.region).service(service).revision(revision).path

    def _call(self, what: str, fn: Callable[[], T], unknown: str | None = None) -> T:
        return _google.call(
            what,
            fn,
            endpoint=self.endpoint,
            api="Cloud Run API",
            unknown=unknown,
            unknown_hint="`ethixctl status` lists services",
            restart_wait=self._restart_wait,
        )

    def _wait(self, what: str, operation: Any, timeout: float, settled: Callable[[], Any | None]) -> Any:
        """Poll the long-running operation quickly: the default starts at 1 s and backs off to 20 s.

        Operations live in the control plane's memory: if it restarted meanwhile, the operation is
        gone but the change is not (the new control plane resumes it). Then `settled()` is polled
        instead: the result once the change is in effect, None while it is not, or it raises.
        """
        import concurrent.futures

        from google.api_core import exceptions as gexc
        from google.api_core.future import polling

        deadline = time.monotonic() + timeout
        fast = polling.DEFAULT_POLLING.with_delay(initial=0.1, maximum=1.0, multiplier=1.5).with_timeout(
            timeout
        )

        def result() -> Any:
            try:
                return operation.result(timeout=timeout, polling=fast)
            except gexc.NotFound:
                raise _OperationLost from None

        try:
            return self._call(what, result)
        except concurrent.futures.TimeoutError:
            raise EthixError(f"{what}: not finished after {timeout:.0f}s") from None
        except _OperationLost:
            while time.monotonic() < deadline:
                done = settled()
                if done is not None:
                    return done
                time.sleep(0.2)
            raise EthixError(f"{what}: not finished after {timeout:.0f}s") from None

    # reads -------------------------------------------------------------------------------------
    def _get_raw(self, service: str) -> Any:
        return self._call(
            f"get service {service}",
            lambda: self._services.get_service(name=self._service_name(service)),
            unknown=f"unknown service {service!r} in {self.project}/{self.region}",
        )

    def get_service(self, service: str) -> ServiceInfo:
        return self._service_info(self._get_raw(service))

    def list_services(self) -> list[ServiceInfo]:
        services = self._call(
            "list services", lambda: list(self._services.list_services(parent=self._parent))
        )
        return [self._service_info(s) for s in services]

    def service_spec(self, service: str) -> ServiceSpec:
        raw = self._get_raw(service)
        container = raw.template.containers[0] if raw.template.containers else None
        env = []
        for var in container.env if container else []:
            ref = var.value_source.secret_key_ref
            env.append(
                EnvEntry(var.name, secret=ref.secret, version=ref.version or None)
                if ref.secret
                else EnvEntry(var.name, value=var.value)
            )
        return ServiceSpec(
            name=short(raw.name),
            env=env,
            startup_probe=container is not None and "startup_probe" in container,
            liveness_probe=container is not None and "liveness_probe" in container,
            # Either level keeps instances warm: the service's own scaling or its revision template's.
            min_instances=max(
                int(raw.template.scaling.min_instance_count), int(raw.scaling.min_instance_count)
            ),
        )

    def list_revisions(self, service: str) -> list[RevisionInfo]:
        revisions = self._call(
            f"list revisions of {service}",
            lambda: list(self._revisions.list_revisions(parent=self._service_name(service))),
            unknown=f"unknown service {service!r} in {self.project}/{self.region}",
        )
        return [self._revision_info(r) for r in revisions]

    def get_revision(self, service: str, revision: str) -> RevisionInfo:
        raw = self._call(
            f"get revision {revision}",
            lambda: self._revisions.get_revision(name=self._revision_name(service, revision)),
            unknown=f"unknown revision {revision!r} of service {service!r}",
        )
        return self._revision_info(raw)

    def serving_split(self, service: str) -> dict[str, int]:
        """revision -> percent in effect; tag-only 0% entries do not count, wherever they are listed."""
        raw = self._get_raw(service)
        return self._split_of(raw)

    def _split_of(self, raw: Any) -> dict[str, int]:
        latest = self._run.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST
        split: dict[str, int] = {}
        for status in raw.traffic_statuses:
            revision = status.revision or (raw.latest_ready_revision if status.type_ == latest else "")
            if status.percent > 0 and revision:
                split[revision] = split.get(revision, 0) + status.percent
        return split

    def tag_url(self, service: str, tag: str) -> str:
        raw = self._get_raw(service)
        for status in raw.traffic_statuses:
            if status.tag == tag and status.uri:
                return str(status.uri)
        raise UsageError(
            f"service {service!r} has no tag {tag!r} in effect",
            hint="`ethixctl status` shows the tags of each service",
        )

    # writes ------------------------------------------------------------------------------------
    def create_service(
        self,
        service: str,
        image: str,
        env: dict[str, str],
        timeout: float = 150,
        container: Any | None = None,
    ) -> ServiceInfo:
        """Create a service whose first revision takes all traffic once ready (used by `ethixctl up`).

        ``container`` (a ``run_v2.Container``: probes, resources) is the template's starting point.
        """
        run = self._run
        spec = run.Container(container) if container is not None else run.Container()
        spec.image = image
        spec.env = [run.EnvVar(name=k, value=v) for k, v in env.items()]
        body = run.Service(
            template=run.RevisionTemplate(containers=[spec]),
            traffic=[
                run.TrafficTarget(
                    type_=run.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST, percent=100
                )
            ],
        )
        what = f"create service {service}"
        operation = self._call(
            what, lambda: self._services.create_service(parent=self._parent, service=body, service_id=service)
        )
        return self._service_info(self._wait(what, operation, timeout, lambda: self._settled(what, service)))

    def deploy_revision(
        self,
        service: str,
        image: str,
        env: dict[str, str],
        tag: str | None,
        keep_traffic: bool = True,
        timeout: float = 150,
        base_revision: str | None = None,
        secret_env: dict[str, str] | None = None,
    ) -> RevisionInfo:
        """Create a revision from the current template with `image` and `env` merged over its env vars.

        `secret_env` maps env var names to Secret Manager secrets (version `latest`): the revision
        resolves them at start, so their values never pass through ethixctl or the revision's spec.

        With `base_revision` the env vars start from that revision's instead of the template's, so a
        rolled-back release's `--set-env` does not leak into the next release.
        Secret-backed variables of the template are kept unless `env` sets the same name. With
        `keep_traffic` the split in effect is pinned, so the new revision gets 0%; `tag` (moved if it
        existed) gives it its own URL. Waits until the revision is ready or raises EthixError.
        """
        run = self._run
        raw = self._get_raw(service)
        revision_id = self._next_revision_name(service, raw)
        container = raw.template.containers[0]
        container.image = image
        if base_revision is not None:
            base = self._call(
                f"get revision {base_revision}",
                lambda: self._revisions.get_revision(name=self._revision_name(service, base_revision)),
                unknown=f"unknown revision {base_revision!r} of service {service!r}",
            )
            container.env = list(base.containers[0].env) if base.containers else []
        secret_env = secret_env or {}
        kept = [var for var in container.env if var.name not in env and var.name not in secret_env]
        container.env = (
            kept
            + [run.EnvVar(name=k, value=v) for k, v in env.items()]
            + [
                run.EnvVar(
                    name=name,
                    value_source=run.EnvVarSource(
                        secret_key_ref=run.SecretKeySelector(secret=secret, version="latest")
                    ),
                )
                for name, secret in secret_env.items()
            ]
        )
        raw.template.revision = revision_id

        traffic = (
            self._pinned(raw)
            if keep_traffic
            else [
                run.TrafficTarget(
                    type_=run.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST, percent=100
                )
            ]
        )
        tags = self._tags_in_effect(raw)
        if tag is not None:
            tags[tag] = revision_id
        raw.traffic = self._with_tags(traffic, tags)
        what = f"deploy {image} to {service}"
        operation = self._call(what, lambda: self._services.update_service(service=raw))
        self._wait(what, operation, timeout, lambda: self._settled(what, service, revision=revision_id))
        return self.get_revision(service, revision_id)

    def set_traffic(
        self, service: str, split: dict[str, int], tags: dict[str, str] | None = None
    ) -> ServiceInfo:
        """Route `split` (revision -> percent); `tags` (tag -> revision) replaces the tags; None keeps."""
        run = self._run
        raw = self._get_raw(service)
        kind = run.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION
        traffic = [run.TrafficTarget(type_=kind, revision=r, percent=p) for r, p in split.items() if p > 0]
        raw.traffic = self._with_tags(traffic, self._tags_in_effect(raw) if tags is None else dict(tags))
        what = f"set traffic of {service}"
        operation = self._call(what, lambda: self._services.update_service(service=raw))
        wanted = {r: p for r, p in split.items() if p > 0}
        return self._service_info(
            self._wait(what, operation, 120, lambda: self._settled(what, service, split=wanted))
        )

    def remove_tag(self, service: str, tag: str) -> None:
        """Drop `tag` (its URL stops answering); the traffic split in effect is kept as it is."""
        raw = self._get_raw(service)
        tags = self._tags_in_effect(raw)
        if tags.pop(tag, None) is not None:
            self.set_traffic(service, self._split_of(raw), tags)

    def delete_revision(self, service: str, revision: str, timeout: float = 120) -> None:
        """Delete a revision that serves no traffic and has no tag; a missing one is not an error."""
        if revision not in {r.name for r in self.list_revisions(service)}:
            return
        name = f"{self._service_name(service)}/revisions/{revision}"
        what = f"delete revision {revision}"
        operation = self._call(what, lambda: self._revisions.delete_revision(name=name))

        def deleted() -> bool | None:
            return True if revision not in {r.name for r in self.list_revisions(service)} else None

        self._wait(what, operation, timeout, deleted)

    # helpers -----------------------------------------------------------------------------------
    def _settled(
        self, what: str, service: str, *, revision: str | None = None, split: dict[str, int] | None = None
    ) -> Any | None:
        """The service once its change is in effect (`revision` ready, `split` serving); None before."""
        raw = self._get_raw(service)
        if raw.reconciling:
            return None
        condition = raw.terminal_condition
        if condition.state == self._run.Condition.State.CONDITION_FAILED:
            raise EthixError(f"{what}: {condition.message}")
        if revision is not None and raw.latest_ready_revision != revision:
            created = self._call(
                f"get revision {revision}",
                lambda: self._revisions.get_revision(name=self._revision_name(service, revision)),
            )
            ready = next((c for c in created.conditions if c.type_ == "Ready"), None)
            if ready is not None and ready.state == self._run.Condition.State.CONDITION_FAILED:
                raise EthixError(f"{what}: {ready.message}")
            return None
        if split is not None and self._split_of(raw) != split:
            return None
        return raw

    def _next_revision_name(self, service: str, raw: Any) -> str:
        """`SERVICE-NNNNN-xyz` after the highest number in use, as Cloud Run names them."""
        numbers = [0]
        for name in [raw.latest_created_revision, raw.latest_ready_revision]:
            found = _REVISION_NUMBER.search(name or "")
            if found:
                numbers.append(int(found.group(1)))
        suffix = "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(3))
        return f"{service}-{max(numbers) + 1:05d}-{suffix}"

    def _pinned(self, raw: Any) -> list[Any]:
        run = self._run
        kind = run.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION
        split = self._split_of(raw)
        if not split:
            raise EthixError(
                f"service {short(raw.name)} serves no traffic yet; nothing to pin",
                hint="wait for its first revision to become ready",
            )
        return [run.TrafficTarget(type_=kind, revision=r, percent=p) for r, p in split.items()]

    def _tags_in_effect(self, raw: Any) -> dict[str, str]:
        """Tags from `traffic_statuses`: after a failed deploy the spec may still name the broken revision."""
        latest = self._run.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST
        tags: dict[str, str] = {}
        for status in raw.traffic_statuses:
            if status.tag:
                tags[status.tag] = status.revision or (
                    raw.latest_ready_revision if status.type_ == latest else ""
                )
        return tags

    def _with_tags(self, traffic: list[Any], tags: dict[str, str]) -> list[Any]:
        """Attach each tag to its revision's entry, or add a 0% tag-only entry for it."""
        run = self._run
        kind = run.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION
        for tag, revision in sorted(tags.items()):
            entry = next((t for t in traffic if t.revision == revision and not t.tag), None)
            if entry is not None:
                entry.tag = tag
            else:
                traffic.append(run.TrafficTarget(type_=kind, revision=revision, percent=0, tag=tag))
        return traffic

    def _service_info(self, raw: Any) -> ServiceInfo:
        latest = self._run.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST
        traffic = [
            TrafficTarget(
                revision=(s.revision or (raw.latest_ready_revision if s.type_ == latest else "")) or None,
                percent=int(s.percent),
                tag=s.tag or None,
                uri=s.uri or None,
                latest=s.type_ == latest,
            )
            for s in raw.traffic_statuses
        ]
        containers = raw.template.containers
        return ServiceInfo(
            name=short(raw.name),
            uri=raw.uri,
            latest_ready_revision=raw.latest_ready_revision or None,
            latest_created_revision=raw.latest_created_revision or None,
            traffic=traffic,
            image=containers[0].image if containers else "",
        )

    def _revision_info(self, raw: Any) -> RevisionInfo:
        ready = next((c for c in raw.conditions if c.type_ == "Ready"), None)
        succeeded = self._run.Condition.State.CONDITION_SUCCEEDED
        container = raw.containers[0] if raw.containers else None
        return RevisionInfo(
            name=short(raw.name),
            service=short(raw.service),
            image=container.image if container else "",
            env={v.name: v.value for v in container.env if not v.value_source.secret_key_ref.secret}
            if container
            else {},
            ready=ready is not None and ready.state == succeeded,
            message=ready.message if ready is not None else "",
            create_time=raw.create_time,
        )
