"""Fixtures for the runtime tests: a tiny real service ("echo") built into a local image, and the
runtime's real parts (Caddy, Prometheus, uvicorn revisions) on free ports in a temp state dir."""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

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
