"""LocalRuntime: revisions as real uvicorn processes behind the Caddy router, scraped by Prometheus.

A monitor thread probes revisions with the probes of their template (:mod:`ethixctl.platform.probes`:
READY once the startup probe passes; no traffic while readiness fails; restarted when liveness fails)
and restarts crashed ones with exponential backoff, on the same port when it is still free so the
router keeps pointing at it. Revision env values may hold resolved secrets: they go to the child's environment
only, never to argv, logs or messages.

Scale to zero, as Cloud Run does: a revision left with 0% and no tag is stopped as soon as the traffic
moves; a tagged revision at 0% is stopped after `idle_timeout` seconds without a request (read from
its own request counter). A revision scaled to zero keeps its port; its tag listener first asks the
runtime's *activator* (``GET /wake/REVISION``, Knative's name for it) to start it, and the router holds
the request until the startup probe passed. ``start_revision`` (e.g. a rollback to it) starts it too.
Each cold start's duration is recorded (``status`` shows the last one).

Revisions outlive the process that runs this runtime (the control plane): a new runtime on the same
state dir adopts the revisions ``runtime.json`` records, by pid and kernel start time, instead of
starting new ones. An adopted revision's environment is not on disk (it may hold secrets): it is
attached again when the control plane restores the service's traffic (``start_revision``), and until
then a crash stops it instead of restarting it.

``on_change`` (``RuntimeFile`` writes ``runtime.json`` from it) runs on its own notifier thread and never
while the runtime lock is held: the callback takes its own lock and then calls :meth:`snapshot`, so
calling it under the runtime lock would order the two locks both ways and deadlock the runtime (the
monitor stops probing, ``revision_status`` blocks, the control plane's operation never ends).
"""

from __future__ import annotations

import contextlib
import errno
import sys
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from ethixctl import procs
from ethixctl.errors import EthixError, UsageError
from ethixctl.platform import images, state
from ethixctl.platform.probes import Kind, Probe, Probes, Tracker
from ethixctl.platform.prometheus import PrometheusServer
from ethixctl.platform.router import Listener, Router
from ethixctl.platform.runtime import RevisionSpec, RevisionState, RevisionStatus

# A revision that dies this many times before it ever became ready is FAILED, like a Cloud Run deploy.
MAX_EARLY_CRASHES = 3
MAX_BACKOFF = 30.0
STABLE_AFTER = 30.0
_TAG_SEPARATOR = "--tag--"
# Cloud Run keeps an idle instance for up to 15 minutes; a laptop is shorter of memory than Google.
IDLE_TIMEOUT = 300.0
IDLE_CHECK_EVERY = 2.0
# How long a cold start waits for the scaled-down process to let go of its port (its stop takes <= 10 s).
DRAIN_WAIT = 12.0
ROUTER_CHECK_EVERY = 1.0
_RUNNING = (RevisionState.STARTING, RevisionState.READY)


@dataclass
class _Revision:
    spec: RevisionSpec
    port: int
    process: procs.Process | None = None
    state: RevisionState = RevisionState.STARTING
    message: str = "starting"
    restarts: int = 0
    ever_ready: bool = False
    started_at: float = 0.0
    ready_since: float = 0.0
    next_restart: float | None = None
    backoff: float = 1.0
    cwd: Path | None = None
    # False for an adopted revision until the control plane hands its spec (environment) over again.
    spec_known: bool = True
    # Scale to zero: the request counter as last read, when it last moved, the cold starts.
    requests_seen: float = -1.0
    last_request: float = 0.0
    next_idle_check: float = 0.0
    cold_start_began: float | None = None
    cold_starts: int = 0
    last_cold_start: float | None = None
    tracker: Tracker | None = None
    # False while its readiness probe fails: the router sends it nothing
    serving: bool = True
    # why the runtime stopped the process (a failed liveness probe), shown while it restarts
    killed_for: str | None = None
    # the startup probe's last failure, shown while it starts and in the failure message
    probe_answer: str = ""
    # the process scaled to zero, still finishing its requests on the port a cold start wants back
    draining: threading.Thread | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


@dataclass
class _Traffic:
    split: dict[str, int] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


class LocalRuntime:
    """Implements :class:`ethixctl.platform.runtime.Runtime` on one machine."""

    def __init__(
        self,
        state_dir: Path,
        router: Router,
        prometheus: PrometheusServer | None,
        *,
        service_ports: dict[str, int] | None = None,
        on_change: Callable[[], None] | None = None,
        poll_interval: float = 0.1,
        idle_timeout: float = IDLE_TIMEOUT,
        activator_port: int | None = None,
    ):
        self.state_dir = state_dir
        self.idle_timeout = idle_timeout
        # Where a cold start gets a revision's spec when this runtime adopted it without one (the
        # control plane resolves its secrets); set by the control plane.
        self.spec_source: Callable[[str, str], RevisionSpec | None] | None = None
        self.router = router
        self.prometheus = prometheus
        self._service_ports = dict(service_ports or {})
        self._tag_ports: dict[tuple[str, str], int] = {}
        self._on_change = on_change
        self._poll_interval = poll_interval
        self._lock = threading.RLock()
        self._revisions: dict[str, _Revision] = {}
        self._traffic: dict[str, _Traffic] = {}
        self._closing = threading.Event()
        self._dirty = threading.Event()
        self._notifier_done = threading.Event()
        self._http = httpx.Client(timeout=0.5)
        self._activator = _Activator(self, activator_port or procs.free_port())
        self._next_router_check = 0.0
        self._adopt()
        # Readiness and liveness probes run here, so one slow revision does not delay the others.
        self._probe_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="probe")
        self._monitor = threading.Thread(target=self._monitor_loop, name="revision-monitor", daemon=True)
        self._notifier = threading.Thread(target=self._notify_loop, name="runtime-notify", daemon=True)
        self._monitor.start()
        self._notifier.start()
        self._activator.start()

    # -- Runtime protocol ------------------------------------------------------------------------------

    def start_revision(self, spec: RevisionSpec) -> None:
        with self._lock:
            current = self._revisions.get(spec.revision)
            if current is not None and current.state in _RUNNING:
                if not current.spec_known:  # adopted: its environment comes back with the spec
                    self._attach_spec(current, spec)
                return
            if current is not None and current.state is RevisionState.SCALED_TO_ZERO:
                self._attach_spec(current, spec)
                self._cold_start(current)
                return
            revision = _Revision(spec=spec, port=procs.free_port())
            self._revisions[spec.revision] = revision
            try:
                image = images.resolve(spec.image, self.state_dir / "images")
            except EthixError as exc:
                revision.state, revision.message = RevisionState.FAILED, exc.message
                self._changed()
                return
            revision.cwd = image.path
            self._spawn(revision)

    def wake(self, revision: str) -> str | None:
        """Start a revision scaled to zero and wait for its startup probe (within the probe's budget):
        None once it serves, else why."""
        with self._lock:
            rev = self._revisions.get(revision)
            draining = rev.draining if rev is not None else None
        if draining is not None:
            # The request that woke it was routed to this port: start it there again, once the old
            # process has let go of it. A moved port would send that request to nobody (an empty 502).
            draining.join(timeout=DRAIN_WAIT)
        with self._lock:
            rev = self._revisions.get(revision)
            if rev is None:
                return f"unknown revision {revision}"
            rev.draining = None
            if rev.state is RevisionState.SCALED_TO_ZERO:
                if not rev.spec_known:
                    spec = self.spec_source(rev.spec.service, revision) if self.spec_source else None
                    if spec is None:
                        return f"{revision}: its environment is not known to this runtime"
                    self._attach_spec(rev, spec)
                self._cold_start(rev)
            timeout = rev.spec.probes.startup.budget
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self._closing.is_set():
            with self._lock:
                if rev.state is RevisionState.READY:
                    return None
                if rev.state not in _RUNNING:
                    return f"{revision} is {rev.state.value}: {rev.message}"
            time.sleep(0.05)
        return f"{revision} did not pass its startup probe within {timeout:.0f}s"

    def revision_status(self, revision: str) -> RevisionStatus:
        with self._lock:
            rev = self._revisions.get(revision)
            if rev is None:
                return RevisionStatus(RevisionState.STOPPED, None, "not running in this runtime", 0)
            url = (
                f"http://{rev.address}"
                if rev.state in (RevisionState.STARTING, RevisionState.READY)
                else None
            )
            return RevisionStatus(rev.state, url, rev.message, rev.restarts)

    def apply_traffic(self, service: str, split: dict[str, int], tags: dict[str, str]) -> dict[str, str]:
        with self._lock:
            self._check_traffic(service, split, tags)
            self._traffic[service] = _Traffic(dict(split), dict(tags))
            for revision in tags.values():
                rev = self._revisions[revision]
                if rev.state is RevisionState.STOPPED:  # e.g. after `ethixctl down`: started on demand
                    rev.state, rev.message = RevisionState.SCALED_TO_ZERO, "scaled to zero"
            urls = self._program(service)
            unused = [
                rev
                for name, rev in self._revisions.items()
                if rev.spec.service == service
                and rev.state in _RUNNING
                and split.get(name, 0) == 0
                and name not in tags.values()
            ]
            for rev in unused:
                self._scale_to_zero(rev, "no traffic and no tag")
            return urls

    def service_url(self, service: str) -> str:
        with self._lock:
            if service not in self._service_ports:
                self._service_ports[service] = procs.free_port()
            if service not in self.router.listeners():
                self.router.set_listener(service, self._service_ports[service], {})
                self._hold_router_ports()
                self._changed()
            return f"http://127.0.0.1:{self._service_ports[service]}"

    def stop_revision(self, revision: str) -> None:
        with self._lock:
            rev = self._revisions.get(revision)
            if rev is None:
                return
            serving = self._traffic.get(rev.spec.service, _Traffic())
            if serving.split.get(revision, 0) > 0:
                raise UsageError(f"revision {revision} still serves {serving.split[revision]}% of traffic")
            rev.state, rev.message, rev.next_restart = RevisionState.STOPPED, "stopped", None
            process = rev.process
        if process is not None:
            process.stop()
        if self.prometheus is not None:
            self.prometheus.remove_target(revision)
        self._changed()

    # -- for the daemon, status and tests ----------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """What runs where: written to the state dir for ``status`` and ``down``."""
        with self._lock:
            return {
                "revisions": {
                    name: {
                        "service": rev.spec.service,
                        "state": rev.state.value,
                        "message": rev.message,
                        "restarts": rev.restarts,
                        "port": rev.port,
                        "pid": rev.process.pid if rev.process is not None and rev.process.alive() else None,
                        "started": rev.process.started if rev.process is not None else None,
                        "image": rev.spec.image,
                        "cold_starts": rev.cold_starts,
                        "last_cold_start_seconds": rev.last_cold_start,
                        "serving": rev.serving,
                        "probes": rev.spec.probes.to_dict(),
                    }
                    for name, rev in self._revisions.items()
                },
                "services": {name: f"http://127.0.0.1:{port}" for name, port in self._service_ports.items()},
                "traffic": {
                    name: {"split": traffic.split, "tags": traffic.tags}
                    for name, traffic in self._traffic.items()
                },
            }

    @property
    def activator_url(self) -> str:
        """Where the router's wake-up calls go (``GET /wake/REVISION``)."""
        return f"http://127.0.0.1:{self._activator.port}"

    def pid_of(self, revision: str) -> int | None:
        with self._lock:
            rev = self._revisions.get(revision)
            return rev.process.pid if rev is not None and rev.process is not None else None

    def shutdown(self, stop_revisions: bool = True) -> None:
        """Stop watching; with `stop_revisions` also stop them (`ethixctl down`), else leave them serving
        for the next runtime to adopt (the control plane going away is no reason to stop serving)."""
        self._closing.set()
        self._activator.stop()
        self._monitor.join(timeout=5)
        running: list[procs.Process] = []
        if stop_revisions:
            with self._lock:
                running = [rev.process for rev in self._revisions.values() if rev.process is not None]
                for rev in self._revisions.values():
                    if rev.state in _RUNNING:
                        # At zero instances, as Cloud Run sees it: started again when traffic needs it.
                        rev.state, rev.message = RevisionState.SCALED_TO_ZERO, "stopped with the platform"
                    rev.process, rev.next_restart = None, None
        threads = [threading.Thread(target=process.stop) for process in running]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self._probe_pool.shutdown(wait=True, cancel_futures=True)
        self._notifier_done.set()
        self._dirty.set()
        self._notifier.join(timeout=5)
        self._http.close()

    # -- internals ---------------------------------------------------------------------------------

    def _adopt(self) -> None:
        """Take over what the last runtime on this state dir left running (see the module docstring)."""
        saved = state.read_json(self.state_dir / state.RUNTIME_FILE) or {}
        for name, record in (saved.get("revisions") or {}).items():
            try:
                service, port, image = str(record["service"]), int(record["port"]), str(record["image"])
            except (KeyError, TypeError, ValueError):
                continue
            pid = record.get("pid")
            log_path = self.state_dir / "logs" / service / f"{name}.log"
            process = (
                procs.adopt(name, pid, record.get("started"), log_path) if isinstance(pid, int) else None
            )
            running = process is not None and record.get("state") in (
                RevisionState.STARTING,
                RevisionState.READY,
            )
            try:
                probes = Probes.from_dict(record["probes"]) if record.get("probes") else Probes()
            except (TypeError, ValueError):
                probes = Probes()
            rev = _Revision(
                cold_starts=int(record.get("cold_starts") or 0),
                last_cold_start=record.get("last_cold_start_seconds"),
                # Its probes come back with it: probed from the start, before the spec is attached again.
                spec=RevisionSpec(service, name, service, image, {}, probes),
                tracker=Tracker(probes) if running else None,
                serving=record.get("serving") is not False,
                port=port,
                process=process if running else None,
                state=RevisionState.STARTING
                if running
                else (
                    RevisionState.SCALED_TO_ZERO
                    if record.get("state") == RevisionState.SCALED_TO_ZERO
                    else RevisionState.STOPPED
                ),
                message="adopted; probing it" if running else "not running",
                restarts=int(record.get("restarts") or 0),
                ever_ready=running and record.get("state") == RevisionState.READY,
                started_at=time.monotonic(),
                spec_known=False,
            )
            procs.claim_port(port)
            self._revisions[name] = rev
        for service, traffic in (saved.get("traffic") or {}).items():
            self._traffic[service] = _Traffic(dict(traffic.get("split", {})), dict(traffic.get("tags", {})))
        self._hold_router_ports()

    def _hold_router_ports(self) -> None:
        """Take the service and tag ports back from the router: it keeps a port only while its Caddy
        alone holds it, and moves one another process took (``Router`` docstring, "Ports")."""
        for listener_name, listener in self.router.listeners().items():
            service, _, tag = listener_name.partition(_TAG_SEPARATOR)
            if tag:
                self._tag_ports[(service, tag)] = listener.port
            else:
                self._service_ports[service] = listener.port

    def _check_traffic(self, service: str, split: dict[str, int], tags: dict[str, str]) -> None:
        if any(percent < 0 for percent in split.values()):
            raise UsageError(f"traffic for {service}: percentages must not be negative: {split}")
        if split and sum(split.values()) != 100:
            raise UsageError(f"traffic for {service} must sum to 100, got {sum(split.values())}: {split}")
        for revision, percent in split.items():
            rev = self._revisions.get(revision)
            if rev is None or rev.spec.service != service:
                raise UsageError(f"revision {revision} is not a revision of {service}")
            if percent > 0 and rev.state is not RevisionState.READY:
                raise UsageError(
                    f"revision {revision} is {rev.state.value}, only READY revisions take traffic"
                )
        for tag, revision in tags.items():
            rev = self._revisions.get(revision)
            if rev is None or rev.spec.service != service:
                raise UsageError(f"tag {tag}: revision {revision} is not a revision of {service}")

    def _program(self, service: str) -> dict[str, str]:
        traffic = self._traffic[service]
        if service not in self._service_ports:
            self._service_ports[service] = procs.free_port()
        listeners = {
            service: Listener(
                self._service_ports[service],
                {
                    self._revisions[rev].address: percent
                    for rev, percent in traffic.split.items()
                    if percent > 0 and self._revisions[rev].serving
                },
            )
        }
        for tag, revision in traffic.tags.items():
            port = self._tag_ports.setdefault((service, tag), procs.free_port())
            target = self._revisions[revision]
            cold = target.state is RevisionState.SCALED_TO_ZERO or target.cold_start_began is not None
            listeners[f"{service}{_TAG_SEPARATOR}{tag}"] = Listener(
                port, {target.address: 1}, self._activator.wake_url(revision) if cold else None
            )
        stale = [
            f"{service}{_TAG_SEPARATOR}{tag}"
            for (svc, tag) in list(self._tag_ports)
            if svc == service and tag not in traffic.tags
        ]
        for name in stale:
            self._tag_ports.pop((service, name.split(_TAG_SEPARATOR, 1)[1]), None)
        self.router.set_many(listeners, remove=stale)
        self._hold_router_ports()
        self._changed()
        return {tag: f"http://127.0.0.1:{self._tag_ports[(service, tag)]}" for tag in traffic.tags}

    def _attach_spec(self, rev: _Revision, spec: RevisionSpec) -> None:
        if rev.tracker is not None and spec.probes != rev.spec.probes:
            rev.tracker = Tracker(spec.probes)
            if rev.state is RevisionState.READY:
                rev.tracker.started(time.monotonic(), rev.serving)
        rev.spec, rev.spec_known = spec, True
        with contextlib.suppress(EthixError):
            rev.cwd = images.resolve(spec.image, self.state_dir / "images").path

    def _scale_to_zero(self, rev: _Revision, why: str) -> None:
        """Stop the process, keep the port (its tag keeps pointing at it); lock held."""
        rev.state, rev.message, rev.next_restart = (
            RevisionState.SCALED_TO_ZERO,
            f"scaled to zero: {why}",
            None,
        )
        # No process, no probes: a probe result still in flight is dropped (its pid is gone).
        process, rev.process, rev.tracker = rev.process, None, None
        if process is not None:
            # In the background: uvicorn finishes the requests it has (up to its graceful timeout).
            rev.draining = threading.Thread(
                target=process.stop, name=f"scale-to-zero {rev.spec.revision}", daemon=True
            )
            rev.draining.start()
        if self.prometheus is not None:
            self.prometheus.remove_target(rev.spec.revision)
        _log_line(f"{rev.spec.revision} scaled to zero: {why}")
        self._changed()

    def _cold_start(self, rev: _Revision) -> None:
        """Start a revision scaled to zero, on its port unless that is still taken; lock held.

        Its tag keeps the wake-up call until the startup probe passes (`_cold`), so requests that
        arrive meanwhile wait for it."""
        if rev.cwd is None or not rev.spec_known:
            rev.state, rev.message = (
                RevisionState.FAILED,
                "cannot start it again: its image or environment is unknown",
            )
            self._changed()
            return
        moved = procs.port_in_use(rev.port)  # the scaled-down process may still be draining on it
        if moved:
            rev.port = procs.free_port()
        rev.cold_start_began = time.monotonic()
        self._spawn(rev)
        if moved and rev.spec.service in self._traffic:
            self._program(rev.spec.service)

    def _scale_idle_to_zero(self, now: float) -> None:
        """Tagged revisions at 0% with no request for `idle_timeout` seconds go to zero."""
        candidates: list[tuple[str, str]] = []
        with self._lock:
            for traffic in self._traffic.values():
                for revision in set(traffic.tags.values()):
                    rev = self._revisions.get(revision)
                    if (
                        rev is not None
                        and rev.state is RevisionState.READY
                        and traffic.split.get(revision, 0) == 0
                        and now >= rev.next_idle_check
                    ):
                        rev.next_idle_check = now + IDLE_CHECK_EVERY
                        candidates.append((revision, f"http://{rev.address}/metrics"))
        for revision, url in candidates:
            count = self._requests_served(url)
            with self._lock:
                rev = self._revisions[revision]
                if rev.state is not RevisionState.READY:
                    continue
                if count is None or count != rev.requests_seen:
                    # Moved (or unreadable: never stop what we cannot prove idle).
                    rev.requests_seen = -1.0 if count is None else count
                    rev.last_request = now
                elif now - rev.last_request >= self.idle_timeout:
                    traffic = self._traffic.get(rev.spec.service, _Traffic())
                    if traffic.split.get(revision, 0) == 0:
                        self._scale_to_zero(rev, f"idle for {self.idle_timeout:g}s")
                        self._program(rev.spec.service)

    def _requests_served(self, metrics_url: str) -> float | None:
        """The revision's own request counter, without health probes and metric scrapes."""
        # prometheus-client comes with the services (the `services` extra) this runtime runs.
        from prometheus_client.parser import text_string_to_metric_families

        try:
            text = self._http.get(metrics_url).text
        except httpx.HTTPError:
            return None
        total = 0.0
        for family in text_string_to_metric_families(text):
            if family.name != "http_requests":
                continue
            for sample in family.samples:
                route = sample.labels.get("route", "")
                if (
                    sample.name == "http_requests_total"
                    and route != "/metrics"
                    and not route.startswith("/health")
                ):
                    total += sample.value
        return total

    def _spawn(self, rev: _Revision) -> None:
        spec = rev.spec
        assert rev.cwd is not None
        module = images.resolve(spec.image, self.state_dir / "images").service
        env = {
            "ETHIX_DATA_DIR": str(self.state_dir / "data" / spec.service),
            **spec.env,
            "PORT": str(rev.port),
            "K_SERVICE": spec.service,
            "K_REVISION": spec.revision,
            "K_CONFIGURATION": spec.configuration,
            # The snapshot first on the path, so the revision runs its image's code, not the checkout.
            "PYTHONPATH": str(rev.cwd),
        }
        rev.process = procs.start(
            spec.revision,
            [sys.executable, "-m", f"services.{module}"],
            env=env,
            log_path=self.state_dir / "logs" / spec.service / f"{spec.revision}.log",
            cwd=rev.cwd,
        )
        rev.state, rev.message = RevisionState.STARTING, "waiting for the startup probe"
        rev.started_at, rev.next_restart = time.monotonic(), None
        rev.tracker, rev.serving = Tracker(spec.probes), True
        self._changed()

    def _changed(self) -> None:
        """Schedule ``on_change``: it runs on the notifier thread, outside the runtime lock (see above)."""
        self._dirty.set()

    def _notify_loop(self) -> None:
        while True:
            self._dirty.wait()
            self._dirty.clear()
            if self._on_change is not None:
                try:
                    self._on_change()
                except Exception:
                    _log("runtime on_change callback failed")
            if self._notifier_done.is_set() and not self._dirty.is_set():
                return

    def _monitor_loop(self) -> None:
        while not self._closing.wait(self._poll_interval):
            try:
                self._tick()
            except Exception:
                _log("revision monitor: a tick failed")

    def _tick(self) -> None:
        now = time.monotonic()
        to_probe: list[tuple[str, Probe, int, int]] = []
        with self._lock:
            for name, rev in self._revisions.items():
                if rev.state not in _RUNNING or rev.process is None:
                    continue
                if not rev.process.alive():
                    self._on_exit(rev, now)
                elif rev.state is RevisionState.STARTING:
                    startup = rev.spec.probes.startup
                    if now - rev.started_at > startup.budget:
                        rev.state = RevisionState.FAILED
                        # The probe's last answer says why (e.g. which secret did not load).
                        last = f" (last answer: {rev.probe_answer})" if rev.probe_answer else ""
                        rev.message = f"startup probe did not pass within {startup.budget:g}s{last}"
                        threading.Thread(target=rev.process.stop, daemon=True).start()
                        self._changed()
                    else:
                        to_probe.append((name, startup, rev.port, rev.process.pid))
                elif rev.tracker is not None:
                    for kind, probe in rev.tracker.take_due(now):
                        self._probe_pool.submit(self._probe, name, rev.process.pid, kind, probe, rev.port)
        for name, probe, port, pid in to_probe:
            error = probe.check(self._http, "127.0.0.1", port)
            if error is None:
                self._mark_ready(name, pid)
            else:
                self._note_probe_answer(name, pid, error)
        self._scale_idle_to_zero(now)
        if now >= self._next_router_check:
            self._next_router_check = now + ROUTER_CHECK_EVERY
            self._confirm_router()

    def _confirm_router(self) -> None:
        """A router part the daemon restarted comes back on its file's ports: keep those it holds alone,
        move the others (``Router.confirm``) and take the moved ports back."""
        with self._lock:
            try:
                moved = self.router.confirm()
            except EthixError as exc:
                _log_line(f"router ports not confirmed: {exc.message}")
                return
            if moved:
                self._hold_router_ports()
                self._changed()

    def _probe(self, name: str, pid: int, kind: Kind, probe: Probe, port: int) -> None:
        """One readiness or liveness probe of a started revision, and what its result changes."""
        error = probe.check(self._http, "127.0.0.1", port)
        with self._lock:
            rev = self._revisions.get(name)
            if rev is None or rev.process is None or rev.process.pid != pid or rev.tracker is None:
                return  # restarted or stopped meanwhile: this result is about a process that is gone
            if rev.state is not RevisionState.READY:
                return
            crossed = rev.tracker.record(kind, error)
            if crossed is None:
                return
            failures = f"{kind.value} probe failed {probe.failure_threshold} times in a row ({error})"
            if kind is Kind.READINESS:
                rev.serving = not crossed
                rev.message = f"not serving: {failures}" if crossed else "ready"
                if rev.spec.service in self._traffic:
                    self._program(rev.spec.service)
            elif crossed:
                rev.killed_for = f"restarted: {failures}"
                rev.message = rev.killed_for
                threading.Thread(target=rev.process.stop, daemon=True).start()
            self._changed()

    def _on_exit(self, rev: _Revision, now: float) -> None:
        assert rev.process is not None
        if not rev.spec_known:
            rev.state, rev.message = RevisionState.STOPPED, "exited; it restarts when its traffic is restored"
            self._changed()
            return
        if rev.next_restart is None:
            code = rev.process.returncode
            if rev.ever_ready and now - rev.ready_since > STABLE_AFTER:
                rev.backoff = 1.0
            if not rev.ever_ready and rev.restarts + 1 >= MAX_EARLY_CRASHES:
                rev.state = RevisionState.FAILED
                rev.message = f"exited with code {code} before becoming ready ({rev.restarts + 1} times)"
                self._changed()
                return
            rev.state = RevisionState.STARTING
            rev.next_restart = now + rev.backoff
            why = rev.killed_for or f"exited with code {code}"
            rev.message, rev.killed_for = f"{why}; restarting in {rev.backoff:.0f}s", None
            rev.backoff = min(rev.backoff * 2, MAX_BACKOFF)
            self._changed()
        elif now >= rev.next_restart:
            rev.restarts += 1
            port_moved = procs.port_in_use(rev.port)
            if port_moved:
                rev.port = procs.free_port()
            self._spawn(rev)
            if port_moved and rev.spec.service in self._traffic:
                self._program(rev.spec.service)

    def _note_probe_answer(self, name: str, pid: int, answer: str) -> None:
        """Say why a starting revision is not ready yet (``ethixctl status`` shows it)."""
        with self._lock:
            rev = self._revisions.get(name)
            if rev is None or rev.process is None or rev.process.pid != pid:
                return
            changed = rev.probe_answer != answer
            rev.probe_answer = answer
            if rev.state is RevisionState.STARTING:
                rev.message = f"waiting for the startup probe ({answer})"
        if changed:
            self._changed()

    def _mark_ready(self, name: str, pid: int) -> None:
        with self._lock:
            rev = self._revisions.get(name)
            if (
                rev is None
                or rev.process is None
                or rev.process.pid != pid
                or rev.state is not RevisionState.STARTING
            ):
                return
            rev.state = RevisionState.READY
            rev.message = "ready" if rev.serving else "adopted; no traffic until a readiness probe passes"
            rev.ever_ready, rev.ready_since = True, time.monotonic()
            rev.last_request = rev.ready_since
            if rev.tracker is not None:
                rev.tracker.started(rev.ready_since, rev.serving)
            address = rev.address
            service = rev.spec.service
            if rev.cold_start_began is not None:
                rev.last_cold_start = round(rev.ready_since - rev.cold_start_began, 3)
                rev.cold_starts += 1
                rev.cold_start_began = None
                _log_line(f"{name}: cold start took {rev.last_cold_start:.2f}s")
                if service in self._traffic:
                    self._program(service)  # its tag no longer needs the wake-up call
        if self.prometheus is not None:
            self.prometheus.set_target(service, name, address)
        self._changed()


def _log(what: str) -> None:
    """A background thread's failure goes to the daemon log with its traceback, never silently away."""
    print(f"{what}:\n{traceback.format_exc()}", file=sys.stderr, flush=True)


def _log_line(what: str) -> None:
    print(what, flush=True)


class _Activator:
    """Answers the router's ``GET /wake/REVISION`` once that revision serves (see the module docstring)."""

    def __init__(self, runtime: LocalRuntime, port: int):
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                revision = self.path.removeprefix("/wake/")
                problem = runtime.wake(revision) if self.path.startswith("/wake/") else "not found"
                body = (problem or "serving").encode()
                self.send_response(200 if problem is None else 503)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        try:
            self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            # Another process took it since the last run (ports are preferences): any free one will do,
            # the router's wake-up calls are programmed with the port held.
            self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port: int = self._server.server_address[1]
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="activator", daemon=True)

    def wake_url(self, revision: str) -> str:
        return f"http://127.0.0.1:{self.port}/wake/{revision}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()


class RuntimeFile:
    """Writes ``runtime.json`` (what runs where) from the runtime's change notifications.

    The runtime calls `changed` from its notifier thread, never under its own lock: `changed` takes
    this writer's lock and then the runtime's (through `snapshot`), so calling it under the runtime
    lock would order the two locks both ways (see the module docstring).
    """

    def __init__(self, state_dir: Path):
        self._path = state_dir / state.RUNTIME_FILE
        self._lock = threading.Lock()
        self.runtime: LocalRuntime | None = None

    def changed(self) -> None:
        if self.runtime is None:
            return
        snapshot = self.runtime.snapshot()
        with self._lock:
            state.write_json(self._path, snapshot)
