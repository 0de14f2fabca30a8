"""A small real Runtime for control-plane tests (TEST RUNTIME, not the platform's runtime).

Each revision is a real process (envserver.py) on a free port, READY once it answers HTTP. The image
name picks the behaviour: "envserver" serves, "slow" serves after 1.5 s, "crash" exits at once (the
startup probe never passes).
There is no router: tag URLs are the tagged revision's own URL and the service URL is a placeholder
under `.invalid`. The real runtime (processes + Caddy) is tested by the runtime helper and end-to-end.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from ethixctl import procs
from ethixctl.errors import EthixError
from ethixctl.platform.controlplane import ControlPlaneServer, serve
from ethixctl.platform.runtime import RevisionSpec, RevisionState, RevisionStatus

ENVSERVER = Path(__file__).with_name("envserver.py")


class TestRuntime:
    __test__ = False  # not a pytest test class

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.processes: dict[str, procs.Process] = {}
        self.urls: dict[str, str] = {}
        self.states: dict[str, RevisionState] = {}
        self.messages: dict[str, str] = {}
        self.specs: dict[str, RevisionSpec] = {}
        self.traffic: dict[str, tuple[dict[str, int], dict[str, str]]] = {}
        self._lock = threading.Lock()

    def start_revision(self, spec: RevisionSpec) -> None:
        with self._lock:
            if self.states.get(spec.revision) in (RevisionState.STARTING, RevisionState.READY):
                return  # like the platform's runtime: a restarted control plane finds it running
        port = procs.free_port()
        argv = [sys.executable, str(ENVSERVER)]
        env = {**spec.env, "PORT": str(port)}
        if spec.image == "crash":
            argv = [sys.executable, "-c", "raise SystemExit('crash image: exiting on purpose')"]
        if spec.image == "slow":
            env["ENVSERVER_START_DELAY"] = "1.5"
        process = procs.start(spec.revision, argv, env=env, log_path=self.log_dir / f"{spec.revision}.log")
        with self._lock:
            self.specs[spec.revision] = spec
            self.processes[spec.revision] = process
            self.urls[spec.revision] = f"http://127.0.0.1:{port}"
            self.states[spec.revision] = RevisionState.STARTING
            self.messages[spec.revision] = ""
        threading.Thread(target=self._probe, args=(spec.revision,), daemon=True).start()

    def _probe(self, revision: str) -> None:
        try:
            procs.wait_http(self.urls[revision] + "/", timeout=20, process=self.processes[revision])
            state, message = RevisionState.READY, ""
        except EthixError as exc:
            # Like the real runtime, report the process's last words, not only that it died.
            state, message = RevisionState.FAILED, f"{exc.message}: {exc.hint or ''}"
        with self._lock:
            if self.states.get(revision) == RevisionState.STARTING:
                self.states[revision], self.messages[revision] = state, message

    def revision_status(self, revision: str) -> RevisionStatus:
        with self._lock:
            state = self.states.get(revision, RevisionState.STOPPED)
            return RevisionStatus(state, self.urls.get(revision), self.messages.get(revision, ""), 0)

    def apply_traffic(self, service: str, split: dict[str, int], tags: dict[str, str]) -> dict[str, str]:
        with self._lock:
            for revision in list(split) + list(tags.values()):
                if self.states.get(revision) != RevisionState.READY:
                    raise RuntimeError(f"revision {revision} is not running")
            self.traffic[service] = (dict(split), dict(tags))
            return {tag: self.urls[revision] for tag, revision in tags.items()}

    def service_url(self, service: str) -> str:
        return f"http://{service}.test-runtime.invalid"

    def stop_revision(self, revision: str) -> None:
        with self._lock:
            process = self.processes.pop(revision, None)
            self.states[revision] = RevisionState.STOPPED
        if process is not None:
            process.stop(timeout=5)

    def stop_all(self) -> None:
        for revision in list(self.processes):
            self.stop_revision(revision)

    def get(self, revision: str) -> dict[str, str]:
        """What the revision's process itself reports (its environment)."""
        return dict(httpx.get(self.urls[revision] + "/", timeout=5).json())


@contextmanager
def local_control_plane(
    base: Path, startup_timeout: float = 20
) -> Iterator[tuple[ControlPlaneServer, TestRuntime]]:
    """The real control plane on a free port with a test runtime; stops every process afterwards."""
    runtime = TestRuntime(base / "logs")
    server = serve(base / "state", runtime, "127.0.0.1", procs.free_port(), startup_timeout=startup_timeout)
    try:
        yield server, runtime
    finally:
        server.shutdown()
        runtime.stop_all()
