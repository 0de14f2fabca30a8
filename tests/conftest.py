"""Fixtures shared across the suite: the two real services as uvicorn processes on free loopback ports."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ethixctl import procs


@dataclass
class RunningService:
    name: str
    url: str
    process: procs.Process
    data_dir: Path


def start_service(
    module: str,
    data_dir: Path,
    log_dir: Path,
    env: dict[str, str] | None = None,
    probe: str = "/health/startup",
) -> RunningService:
    port = procs.free_port()
    name = module.rsplit(".", 1)[-1]
    process = procs.start(
        name,
        procs.python_module(module),
        env={"PORT": str(port), "ETHIX_DATA_DIR": str(data_dir), "K_SERVICE": name, **(env or {})},
        log_path=log_dir / f"{name}-{port}.log",
    )
    url = f"http://127.0.0.1:{port}"
    try:
        procs.wait_http(url + probe, timeout=90, process=process)
    except Exception:
        process.stop()
        raise
    return RunningService(name, url, process, data_dir)


@pytest.fixture(scope="session")
def ai_core_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    base = tmp_path_factory.mktemp("ai_core")
    service = start_service("services.ai_core", base / "data", base / "logs")
    yield service
    service.process.stop()


@pytest.fixture(scope="session")
def backend_service(
    tmp_path_factory: pytest.TempPathFactory, ai_core_service: RunningService
) -> Iterator[RunningService]:
    base = tmp_path_factory.mktemp("backend")
    service = start_service(
        "services.backend", base / "data", base / "logs", env={"AI_CORE_URL": ai_core_service.url}
    )
    yield service
    service.process.stop()
