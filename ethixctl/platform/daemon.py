"""The platform daemon: supervises the router, Prometheus and the control plane, which runs the revisions.

Started detached by ``ethixctl up`` as ``python -m ethixctl.platform.daemon --state-dir D``. It holds
``D/daemon.lock`` for its whole life (the kernel releases it if the daemon dies, which is how a stale
state dir is told apart from a running one) and writes ``D/platform.json`` as it goes: URLs, and per
part its pid, start time, restarts and why it last went down.

Every part is a process of its own, restarted with backoff when it dies (``ethixctl.platform.parts``);
SIGUSR1 (a second ``ethixctl up``) restarts dead ones at once; SIGTERM (``ethixctl down``) stops
everything. The data plane outlives the daemon: if the daemon dies, the router, Prometheus and the
revisions keep serving (the control plane exits with it, so traffic cannot change meanwhile), and the
next daemon adopts them, by pid and start time from ``platform.json``, instead of starting new ones.
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
import traceback
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import httpx

from ethixctl import procs
from ethixctl.errors import EthixError, from_os_error
from ethixctl.exitcodes import ExitCode
from ethixctl.platform import images, manifests, state
from ethixctl.platform.parts import Part, PartSupervisor
from ethixctl.platform.prometheus import PrometheusServer
from ethixctl.platform.router import CaddyPart, Router
from ethixctl.platform.state import SEEDED
from ethixctl.platform.supervisor import IDLE_TIMEOUT

PROJECT = "local"
REGION = "local"
DEFAULT_PORTS = {
    "backend": 8080,
    "ai-core": 8081,
    "control_plane": 8090,
    "prometheus": 9090,
    "router_admin": 2019,
}
# Ports without a default: any free one the first time, the same one afterwards.
INTERNAL_PORTS = ("router_split_admin", "activator")
READY_TIMEOUT = 240.0
SUPERVISE_EVERY = 0.1
# How often the ports actually held (a part or the control plane may have moved one) go to ports.json.
RECORD_PORTS_EVERY = 1.0
CONTROL_PLANE_MODULE = "ethixctl.platform.controlplane"
# Parts a new daemon takes over when they still run (the control plane exits with its daemon).
ADOPTABLE = ("router-split", "router-edge", "prometheus")
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
    defaults: dict[str, int | None] = {**DEFAULT_PORTS, **dict.fromkeys(INTERNAL_PORTS)}
    for name, default in defaults.items():
        candidates = [previous.get(name)] + ([] if free_only or default is None else [default])
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


class ControlPlanePart:
    """The control plane process (see ``ethixctl.platform.controlplane.__main__``)."""

    name = "control-plane"

    def __init__(self, state_dir: Path, port: int, idle_timeout: float, snapshot_every: float):
        self.state_dir = state_dir
        self.url = f"http://127.0.0.1:{port}"
        self.idle_timeout = idle_timeout
        self.snapshot_every = snapshot_every
        self.process: procs.Process | None = None

    def start(self, timeout: float = 60.0) -> None:
        argv = [sys.executable, "-m", CONTROL_PLANE_MODULE, "--state-dir", str(self.state_dir)]
        self.process = procs.start(
            self.name,
            [
                *argv,
                "--idle-timeout",
                f"{self.idle_timeout:g}",
                "--snapshot-every",
                f"{self.snapshot_every:g}",
            ],
            log_path=self.state_dir / "logs" / "controlplane.log",
        )
        procs.wait_http(self.url + "/healthz", timeout=timeout, process=self.process)

    def stop(self) -> None:
        # SIGTERM: it stops its revisions (up to 10 s each, in parallel) before it exits.
        if self.process is not None:
            self.process.stop(timeout=30)


class Daemon:
    def __init__(self, state_dir: Path, free_ports: bool, idle_timeout: float = IDLE_TIMEOUT):
        self.state_dir = state_dir
        self.previous = state.read_json(state_dir / state.PLATFORM_FILE) or {}
        previous_ports = state.read_json(state_dir / state.PORTS_FILE) or {}
        if any(self._recorded(name) for name in ADOPTABLE) and previous_ports:
            # The data plane of the previous daemon still serves on these ports: keep every one of them.
            self.ports = {name: int(port) for name, port in previous_ports.items()}
            for port in self.ports.values():
                procs.claim_port(port)
        else:
            self.ports = choose_ports(state_dir, free_ports)
        self.router = Router(state_dir, self.ports["router_admin"], self.ports["router_split_admin"])
        self.prometheus = PrometheusServer(state_dir, self.ports["prometheus"])
        # Checked here, so that a bad ETHIXCTL_SNAPSHOT_INTERVAL fails `up` instead of every control plane.
        self.control_plane = ControlPlanePart(
            state_dir, self.ports["control_plane"], idle_timeout, snapshot_interval()
        )
        # In start order: the split before the edge that proxies to it, the control plane last (it
        # programs the router and writes Prometheus's targets).
        self.parts: list[Part] = [self.router.split, self.router.edge, self.prometheus, self.control_plane]
        self.supervisor = PartSupervisor(self.parts, on_change=self._update, log=_log)
        self.adopted: list[str] = []
        self.stop_requested = threading.Event()
        self.repair_requested = threading.Event()
        self._write_lock = threading.Lock()
        self._platform: dict[str, Any] = {
            "status": "starting",
            "phase": "starting",
            "state_dir": str(state_dir),
            "started_at": datetime.now(UTC).isoformat(),
            "ports": self.ports,
            "control_plane_url": self.control_plane.url,
            "prometheus_url": self.prometheus.url,
            "router_admin_url": self.router.admin_url,
            "services": {name: f"http://127.0.0.1:{self.ports[name]}" for name in SEEDED},
            "pids": {"daemon": os.getpid()},
        }

    # platform.json -----------------------------------------------------------------------------------

    def _update(self, **changes: Any) -> None:
        with self._write_lock:
            self._platform.update(changes)
            parts = self.supervisor.snapshot()
            self._platform["parts"] = parts
            pids = {"daemon": os.getpid()}
            pids.update({name: part["pid"] for name, part in parts.items() if part["pid"] is not None})
            self._platform["pids"] = pids
            state.write_json(self.state_dir / state.PLATFORM_FILE, self._platform)

    def _record_held_ports(self) -> None:
        """Ports are preferences until held (another platform may have bound the same one at the same
        moment): record the ones the platform ended up with. The router's parts move their admin port
        themselves; the control plane moves a service's listener and writes the port it holds in
        ``runtime.json``."""
        held = {
            "router_admin": self.router.edge.admin_port,
            "router_split_admin": self.router.split.admin_port,
        }
        runtime = state.read_json(self.state_dir / state.RUNTIME_FILE) or {}
        for name, url in (runtime.get("services") or {}).items():
            if name in SEEDED and isinstance(url, str):
                held[name] = int(url.rsplit(":", 1)[1])
        if all(self.ports.get(name) == port for name, port in held.items()):
            return
        self.ports.update(held)
        state.write_json(self.state_dir / state.PORTS_FILE, dict(self.ports))
        self._update(
            ports=self.ports,
            router_admin_url=self.router.admin_url,
            services={name: f"http://127.0.0.1:{self.ports[name]}" for name in SEEDED},
        )

    def phase(self, text: str) -> None:
        _log(text)
        self._update(phase=text)

    # lifecycle ---------------------------------------------------------------------------------------

    def run(self) -> None:
        self.phase("building images")
        images_dir = self.state_dir / "images"
        refs = {name: images.build(images.source_name(name), images_dir).ref for name in SEEDED}
        self._retire_orphaned_control_plane()
        for part in self.parts:
            if self._adopt(part):
                self.adopted.append(part.name)
                _log(f"adopted {part.name} (pid {part.process.pid if part.process else '?'})")
                continue
            self.phase(f"starting {part.name}")
            part.start()
        self._update(adopted=self.adopted)
        self.phase("seeding the secrets catalog")
        self._seed_secrets()
        # A service port may have moved when the control plane took it (another platform held it):
        # the backend is given ai-core's URL from the ports actually held.
        self._record_held_ports()
        self.phase("deploying " + ", ".join(SEEDED))
        self._seed(refs)
        # Now runtime.json is the new control plane's (it names the service ports it holds).
        self._record_held_ports()
        self.phase("waiting for the services to be ready")
        self._wait_serving()
        self._update(status="ready", phase="ready", ready_at=datetime.now(UTC).isoformat())
        _log("platform ready")
        next_record = time.monotonic()
        while not self.stop_requested.wait(SUPERVISE_EVERY):
            if time.monotonic() >= next_record:
                next_record = time.monotonic() + RECORD_PORTS_EVERY
                with contextlib.suppress(OSError, ValueError):
                    self._record_held_ports()
            if self.repair_requested.is_set():
                self.repair_requested.clear()
                self.supervisor.restart_dead_now()
                self._update(repaired_at=datetime.now(UTC).isoformat())
            else:
                try:
                    self.supervisor.check()
                except Exception:  # a supervision bug must not take the platform down with the daemon
                    _log(f"supervision round failed:\n{traceback.format_exc()}")

    def _recorded(self, name: str) -> procs.Process | None:
        record = (self.previous.get("parts") or {}).get(name) or {}
        pid = record.get("pid")
        if not isinstance(pid, int) or not state.owned(pid, self.state_dir):
            return None
        return procs.adopt(name, pid, record.get("started"))

    def _adopt(self, part: Part) -> bool:
        """Take over a router or Prometheus process the previous daemon left serving."""
        if part.name not in ADOPTABLE:
            return False
        process = self._recorded(part.name)
        if process is None:
            return False
        part.process = process
        if isinstance(part, CaddyPart):
            part.adopt_admin_port()
        return True

    def _retire_orphaned_control_plane(self) -> None:
        """The previous daemon's control plane exits by itself once it notices; never run two."""
        process = self._recorded(self.control_plane.name)
        if process is None:
            return
        deadline = time.monotonic() + 5
        while process.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        if process.alive():
            # SIGKILL, not SIGTERM: SIGTERM would stop the revisions it leaves for us.
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)

    def _seed_secrets(self) -> None:
        """The catalog's secrets, before any revision that loads them starts."""
        from ethixctl.adapters.secrets import SecretManager
        from ethixctl.secrets import catalog
        from ethixctl.secrets.seed import seed_local

        seeded = seed_local(SecretManager(PROJECT, self.control_plane.url), catalog.load(), self.state_dir)
        if seeded:
            _log(f"seeded secrets: {', '.join(seeded)}")

    def _seed_env(self, name: str) -> dict[str, str]:
        """A new service's env: where to find the others, and its secrets' names (never values)."""
        from ethixctl.secrets import catalog
        from ethixctl.secrets.seed import consumer_env

        env = consumer_env(catalog.load(), name, PROJECT, self.control_plane.url)
        # Behind the router as behind Cloud Run's front end: the client is the last X-Forwarded-For entry.
        env["ETHIX_TRUSTED_PROXY_HOPS"] = "1"
        if name == "backend":
            env["AI_CORE_URL"] = self._platform["services"]["ai-core"]
        return env

    def _seed(self, refs: dict[str, str]) -> None:
        """Create the services the control plane does not know yet (the first ``up``), in parallel."""
        from ethixctl.adapters.cloudrun import CloudRun

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
            threading.Thread(target=create, args=(name, self._seed_env(name)))
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

    def shutdown(self) -> None:
        """`ethixctl down`: the control plane first (it stops the revisions), then router and Prometheus."""
        self.control_plane.stop()
        stoppers = [threading.Thread(target=part.stop) for part in (self.router, self.prometheus)]
        for thread in stoppers:
            thread.start()
        for thread in stoppers:
            thread.join()


def _log(text: str) -> None:
    print(f"{datetime.now(UTC).isoformat()} {text}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ethixctl.platform.daemon")
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--free-ports", action="store_true", help="never use the default ports")
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=IDLE_TIMEOUT,
        help="seconds before an idle tagged revision at 0%% stops",
    )
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
        daemon = Daemon(state_dir, args.free_ports, args.idle_timeout)
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
