"""The platform daemon: hosts the control plane and supervises the router, Prometheus and revisions.

Started detached by ``ethixctl up`` as ``python -m ethixctl.platform.daemon --state-dir D``. It holds
``D/daemon.lock`` for its whole life (the kernel releases it if the daemon dies, which is how a stale
state dir is told apart from a running one), writes ``D/platform.json`` as it goes, repairs a dead
router or Prometheus on SIGUSR1 (sent by a second ``ethixctl up``) and stops every child on SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import signal
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import httpx

from ethixctl import procs
from ethixctl.errors import EthixError, from_os_error
from ethixctl.exitcodes import ExitCode
from ethixctl.platform import images, manifests, state
from ethixctl.platform.prometheus import PrometheusServer
from ethixctl.platform.router import Router
from ethixctl.platform.supervisor import LocalRuntime

PROJECT = "local"
REGION = "local"
# Cloud Run service ids allow no "_", so the ai_core package runs as service "ai-core".
# backend's env points at ai-core's service URL; both take their client from X-Forwarded-For as on Cloud Run.
SEEDED = ("ai-core", "backend")
DEFAULT_PORTS = {
    "backend": 8080,
    "ai-core": 8081,
    "control_plane": 8090,
    "prometheus": 9090,
    "router_admin": 2019,
}
READY_TIMEOUT = 240.0
# Seconds between scheduled snapshots; overrides the DR playbook (seconds in demos and tests).
SNAPSHOT_INTERVAL_VAR = "ETHIXCTL_SNAPSHOT_INTERVAL"


def snapshot_interval() -> float:
    """The local snapshot schedule: ETHIXCTL_SNAPSHOT_INTERVAL, else the DR playbook's for ``local``."""
    from ethixctl.dr import playbook

    override = os.environ.get(SNAPSHOT_INTERVAL_VAR)
    if override:
        try:
            seconds = float(override)
        except ValueError:
            seconds = 0.0
        if seconds <= 0:
            raise EthixError(f"{SNAPSHOT_INTERVAL_VAR} must be a positive number of seconds")
        return seconds
    return playbook.load().snapshot_every("local")


def choose_ports(state_dir: Path, free_only: bool) -> dict[str, int]:
    """Last run's ports first (stable URLs), then the defaults unless ``free_only``, else any free port."""
    previous = state.read_json(state_dir / state.PORTS_FILE) or {}
    chosen: dict[str, int] = {}
    for name, default in DEFAULT_PORTS.items():
        candidates = [previous.get(name)] + ([] if free_only else [default])
        for candidate in candidates:
            if (
                isinstance(candidate, int)
                and candidate not in chosen.values()
                and not procs.port_in_use(candidate)
            ):
                chosen[name] = candidate
                procs.claim_port(candidate)
                break
        else:
            chosen[name] = procs.free_port()
    state.write_json(state_dir / state.PORTS_FILE, dict(chosen))
    return chosen


class Daemon:
    def __init__(self, state_dir: Path, free_ports: bool):
        self.state_dir = state_dir
        self.ports = choose_ports(state_dir, free_ports)
        self.router = Router(state_dir, self.ports["router_admin"])
        self.prometheus = PrometheusServer(state_dir, self.ports["prometheus"])
        self.runtime: LocalRuntime | None = None
        self.control_plane: Any = None
        self.stop_requested = threading.Event()
        self.repair_requested = threading.Event()
        self._write_lock = threading.Lock()
        self._platform: dict[str, Any] = {
            "status": "starting",
            "phase": "starting",
            "state_dir": str(state_dir),
            "started_at": datetime.now(UTC).isoformat(),
            "ports": self.ports,
            "control_plane_url": f"http://127.0.0.1:{self.ports['control_plane']}",
            "prometheus_url": self.prometheus.url,
            "router_admin_url": self.router.admin_url,
            "services": {name: f"http://127.0.0.1:{self.ports[name]}" for name in SEEDED},
            "pids": {"daemon": os.getpid()},
        }

    # platform.json / runtime.json ------------------------------------------------------------------

    def _update(self, **changes: Any) -> None:
        with self._write_lock:
            self._platform.update(changes)
            pids = {"daemon": os.getpid()}
            for name, part in (("router", self.router), ("prometheus", self.prometheus)):
                if part.process is not None and part.process.alive():
                    pids[name] = part.process.pid
            self._platform["pids"] = pids
            state.write_json(self.state_dir / state.PLATFORM_FILE, self._platform)

    def _runtime_changed(self) -> None:
        if self.runtime is None:
            return
        # Snapshot first (it takes the runtime lock), write under our lock: never hold _write_lock
        # while waiting for the runtime lock, or the two locks can be taken in both orders.
        # The runtime calls this from one notifier thread, so snapshots are written in order.
        snapshot = self.runtime.snapshot()
        with self._write_lock:
            state.write_json(self.state_dir / state.RUNTIME_FILE, snapshot)

    def _record_held_ports(self) -> None:
        """The router keeps a chosen port only once its Caddy alone holds it (another platform may have
        bound the same one at the same moment): record the ports it ended up with."""
        assert self.runtime is not None
        self.ports["router_admin"] = self.router.admin_port
        for name in SEEDED:
            self.ports[name] = int(self.runtime.service_url(name).rsplit(":", 1)[1])
        state.write_json(self.state_dir / state.PORTS_FILE, dict(self.ports))
        self._update(
            ports=self.ports,
            router_admin_url=self.router.admin_url,
            services={name: f"http://127.0.0.1:{self.ports[name]}" for name in SEEDED},
        )

    def phase(self, text: str) -> None:
        print(f"{datetime.now(UTC).isoformat()} {text}", flush=True)
        self._update(phase=text)

    # lifecycle ---------------------------------------------------------------------------------------

    def run(self) -> None:
        self.phase("building images")
        images_dir = self.state_dir / "images"
        refs = {name: images.build(images.source_name(name), images_dir).ref for name in SEEDED}
        self.phase("starting the router (Caddy)")
        self.router.start()
        self.phase("starting Prometheus")
        self.prometheus.start()
        self.runtime = LocalRuntime(
            self.state_dir,
            self.router,
            self.prometheus,
            service_ports={name: self.ports[name] for name in SEEDED},
            on_change=self._runtime_changed,
        )
        for name in SEEDED:
            self.runtime.service_url(name)
        self._record_held_ports()
        self.phase("starting the control plane")
        from ethixctl.platform.controlplane import serve

        self.control_plane = serve(
            self.state_dir / "controlplane",
            self.runtime,
            "127.0.0.1",
            self.ports["control_plane"],
            snapshot_every=snapshot_interval(),
        )
        self._update(control_plane_url=self.control_plane.url)
        self.phase("seeding the secrets catalog")
        self._seed_secrets()
        self.phase("deploying " + ", ".join(SEEDED))
        self._seed(refs)
        self.phase("waiting for the services to be ready")
        self._wait_serving()
        self._update(status="ready", phase="ready", ready_at=datetime.now(UTC).isoformat())
        print("platform ready", flush=True)
        while not self.stop_requested.wait(0.5):
            if self.repair_requested.is_set():
                self.repair_requested.clear()
                self.repair()

    def _seed_secrets(self) -> None:
        """The catalog's secrets, before any revision that loads them starts."""
        from ethixctl.adapters.secrets import SecretManager
        from ethixctl.secrets import catalog
        from ethixctl.secrets.seed import seed_local

        seeded = seed_local(SecretManager(PROJECT, self.control_plane.url), catalog.load(), self.state_dir)
        if seeded:
            print(f"seeded secrets: {', '.join(seeded)}", flush=True)

    def _service_env(self, name: str) -> dict[str, str]:
        """A new service's env: where to find the others, and its secrets' names (never values)."""
        from ethixctl.secrets import catalog
        from ethixctl.secrets.seed import consumer_env

        assert self.runtime is not None
        env = consumer_env(catalog.load(), name, PROJECT, self.control_plane.url)
        # Behind the router as behind Cloud Run's front end: the client is the last X-Forwarded-For entry.
        env["ETHIX_TRUSTED_PROXY_HOPS"] = "1"
        if name == "backend":
            env["AI_CORE_URL"] = self.runtime.service_url("ai-core")
        return env

    def _seed(self, refs: dict[str, str]) -> None:
        """Create the services the control plane does not know yet (the first ``up``), in parallel."""
        from ethixctl.adapters.cloudrun import CloudRun

        assert self.runtime is not None
        existing = {
            service.name for service in CloudRun(PROJECT, REGION, self.control_plane.url).list_services()
        }
        errors: list[str] = []

        def create(name: str, env: dict[str, str]) -> None:
            try:
                CloudRun(PROJECT, REGION, self.control_plane.url).create_service(
                    name, refs[name], env, timeout=READY_TIMEOUT, container=manifests.container(name)
                )
            except Exception as exc:
                errors.append(f"{name}: {exc.message if isinstance(exc, EthixError) else exc}")

        threads = [
            threading.Thread(target=create, args=(name, self._service_env(name)))
            for name in SEEDED
            if name not in existing
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise EthixError("deploying the initial services failed: " + "; ".join(errors))

    def _wait_serving(self) -> None:
        """Ready means: each service answers its startup probe through the router."""
        deadline = time.monotonic() + READY_TIMEOUT
        pending = set(SEEDED)
        with httpx.Client(timeout=2.0) as client:
            while pending and not self.stop_requested.is_set():
                for name in sorted(pending):
                    with contextlib.suppress(httpx.HTTPError):
                        if (
                            client.get(f"http://127.0.0.1:{self.ports[name]}/health/startup").status_code
                            == 200
                        ):
                            pending.discard(name)
                if time.monotonic() > deadline:
                    raise EthixError(
                        f"{', '.join(sorted(pending))} not serving after {READY_TIMEOUT:.0f}s",
                        hint=f"see the logs in {self.state_dir / 'logs'}",
                    )
                time.sleep(0.2)

    def repair(self) -> None:
        """Restart a dead router or Prometheus on the same ports and data (router config is re-sent)."""
        repaired = []
        if not self.router.alive():
            self.router.start()
            if self.runtime is not None:
                self._record_held_ports()
            repaired.append("router")
        if not self.prometheus.alive():
            self.prometheus.start()
            repaired.append("prometheus")
        if repaired:
            print(f"repaired: {', '.join(repaired)}", flush=True)
        self._update(repaired_at=datetime.now(UTC).isoformat())

    def shutdown(self) -> None:
        if self.control_plane is not None:
            with contextlib.suppress(Exception):
                self.control_plane.shutdown()
        if self.runtime is not None:
            self.runtime.shutdown()
            self._runtime_changed()
        stoppers = [threading.Thread(target=part.stop) for part in (self.router, self.prometheus)]
        for thread in stoppers:
            thread.start()
        for thread in stoppers:
            thread.join()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ethixctl.platform.daemon")
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--free-ports", action="store_true", help="never use the default ports")
    args = parser.parse_args(argv)
    try:
        state.check_state_dir(args.state_dir)
        state_dir: Path = args.state_dir.resolve()
        state_dir.mkdir(parents=True, exist_ok=True)
        lock = open(state_dir / state.LOCK_FILE, "a")  # noqa: SIM115 - held for the daemon's lifetime
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"another daemon already runs for {state_dir}", file=sys.stderr)
            return 1
        (state_dir / state.PID_FILE).write_text(f"{os.getpid()}\n")
        daemon = Daemon(state_dir, args.free_ports)
    except (OSError, EthixError) as exc:
        failure = from_os_error(exc) if isinstance(exc, OSError) else exc
        print(f"platform failed: {failure.message}", file=sys.stderr, flush=True)
        return int(ExitCode.USAGE)

    def on_stop(signum: int, frame: FrameType | None) -> None:
        daemon.stop_requested.set()

    def on_repair(signum: int, frame: FrameType | None) -> None:
        daemon.repair_requested.set()

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGUSR1, on_repair)
    failed = False
    try:
        daemon.run()
    except Exception as exc:
        failed = True
        message = exc.message if isinstance(exc, EthixError) else f"{type(exc).__name__}: {exc}"
        hint = exc.hint if isinstance(exc, EthixError) else None
        print(f"platform failed: {message}", file=sys.stderr, flush=True)
        daemon._update(status="failed", error=message, hint=hint)
    finally:
        daemon.shutdown()
        with contextlib.suppress(FileNotFoundError):
            (state_dir / state.PID_FILE).unlink()
        if not failed:
            with contextlib.suppress(FileNotFoundError):
                (state_dir / state.PLATFORM_FILE).unlink()
        print("platform stopped", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
