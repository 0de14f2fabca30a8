"""Fixtures for the runtime tests: a tiny real service ("echo") built into a local image, and the
runtime's real parts (Caddy, Prometheus, uvicorn revisions) on free ports in a temp state dir."""

from __future__ import annotations

import shutil
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from ethixctl import procs
from ethixctl.platform import images
from ethixctl.platform.prometheus import PrometheusServer
from ethixctl.platform.router import Router
from ethixctl.platform.supervisor import IDLE_TIMEOUT, LocalRuntime

ECHO_MAIN = """
from services.common.server import run
from services.common.settings import ServiceSettings

run("services.echo.app:create_app", ServiceSettings())
"""

ECHO_APP = """
import os

from fastapi import FastAPI

from services.common import observability
from services.common.settings import ServiceSettings

VERSION = {version!r}


def create_app() -> FastAPI:
    settings = ServiceSettings()
    app = FastAPI()
    observability.install(app, settings)

    @app.get("/health/startup")
    def startup() -> dict[str, str]:
        return {{"status": "started"}}

    @app.get("/")
    def who() -> dict[str, str]:
        seen = str("ECHO_SECRET" in os.environ)
        return {{"revision": settings.revision, "version": VERSION, "secret_seen": seen}}

    @app.post("/crash")
    def crash() -> None:
        os._exit(3)

    return app
"""


def make_source(root: Path, version: str) -> Path:
    """A source tree with the real services/common and a minimal ``echo`` service."""
    services = root / "services"
    services.mkdir(parents=True)
    (services / "__init__.py").write_text("")
    shutil.copytree(
        procs.REPO_ROOT / "services" / "common",
        services / "common",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    (services / "echo").mkdir()
    (services / "echo" / "__init__.py").write_text("")
    (services / "echo" / "__main__.py").write_text(textwrap.dedent(ECHO_MAIN))
    (services / "echo" / "app.py").write_text(textwrap.dedent(ECHO_APP.format(version=version)))
    return root


@dataclass
class Parts:
    state_dir: Path
    router: Router
    prometheus: PrometheusServer | None
    runtime: LocalRuntime

    def build_echo(self, version: str) -> str:
        source = make_source(self.state_dir.parent / f"src-{version}", version)
        return images.build("echo", self.state_dir / "images", source).ref


def _parts(tmp_path: Path, with_prometheus: bool, idle_timeout: float = IDLE_TIMEOUT) -> Iterator[Parts]:
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    router = Router(state_dir, procs.free_port(), procs.free_port())
    prometheus = PrometheusServer(state_dir, procs.free_port()) if with_prometheus else None
    runtime: LocalRuntime | None = None
    try:
        router.start()
        if prometheus is not None:
            prometheus.start()
        runtime = LocalRuntime(state_dir, router, prometheus, idle_timeout=idle_timeout)
        yield Parts(state_dir, router, prometheus, runtime)
    finally:
        if runtime is not None:
            runtime.shutdown()
        router.stop()
        if prometheus is not None:
            prometheus.stop()


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[Parts]:
    yield from _parts(tmp_path, with_prometheus=False)


@pytest.fixture
def parts_with_prometheus(tmp_path: Path) -> Iterator[Parts]:
    yield from _parts(tmp_path, with_prometheus=True)


@pytest.fixture
def parts_idle(tmp_path: Path) -> Iterator[Parts]:
    """The runtime with a 2 s idle timeout: tagged revisions at 0% scale to zero quickly."""
    yield from _parts(tmp_path, with_prometheus=False, idle_timeout=2.0)


LOAD_WORKERS = 4


def router_errors(state_dir: Path) -> list[str]:
    """The router's own account of failed requests (Caddy logs them at error level): what a failed
    load assertion shows besides the outcome counts."""
    lines: list[str] = []
    for log in sorted((state_dir / "logs").glob("caddy-*.log")):
        lines += [f"{log.name}: {line}" for line in log.read_text().splitlines() if '"level":"error"' in line]
    return lines[-20:]


def changes_under_load(
    change: Callable[[int], None],
    request: Callable[[httpx.Client, int], str],
    *,
    changes: int,
    interval: float,
    requests_per_change: int = 10,
) -> Counter[str]:
    """LOAD_WORKERS clients call ``request(client, worker)`` (it returns an outcome key) back to back while
    ``change(step)`` runs ``changes`` times, every ``interval`` s at the earliest.

    The pace follows the load, not the clock: each change waits until at least ``requests_per_change``
    requests sent after the previous one have completed, so every change happens under load however
    busy the machine is. Rates are the benchmark's business (bench/bench_platform.py).
    """
    stop = threading.Event()
    results: Counter[str] = Counter()
    lock = threading.Lock()

    def load(worker: int) -> None:
        with httpx.Client(timeout=5) as client:
            while not stop.is_set():
                try:
                    outcome = request(client, worker)
                except httpx.HTTPError as exc:
                    outcome = type(exc).__name__
                with lock:
                    results[outcome] += 1

    def completed() -> int:
        with lock:
            return sum(results.values())

    workers = [threading.Thread(target=load, args=(i,)) for i in range(LOAD_WORKERS)]
    for worker in workers:
        worker.start()
    try:
        for step in range(1, changes + 1):
            # Requests in flight when the change lands were sent before it: they do not count.
            wanted = completed() + LOAD_WORKERS + requests_per_change
            change(step)
            time.sleep(interval)
            deadline = time.monotonic() + 60
            while completed() < wanted:
                assert time.monotonic() < deadline, f"load too thin after change {step}: {results}"
                time.sleep(0.01)
    finally:
        stop.set()
        for worker in workers:
            worker.join()
    return results
