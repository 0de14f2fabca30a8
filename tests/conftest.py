"""Fixtures shared across the suite: the two real services as uvicorn processes on free loopback ports."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ethixctl import procs


@pytest.fixture(scope="session")
def ai_core_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[procs.Service]:
    base = tmp_path_factory.mktemp("ai_core")
    service = procs.start_service("services.ai_core", base / "data", log_dir=base / "logs")
    yield service
    service.process.stop()


@pytest.fixture(scope="session")
def backend_service(
    tmp_path_factory: pytest.TempPathFactory, ai_core_service: procs.Service
) -> Iterator[procs.Service]:
    base = tmp_path_factory.mktemp("backend")
    service = procs.start_service(
        "services.backend", base / "data", log_dir=base / "logs", env={"AI_CORE_URL": ai_core_service.url}
    )
    yield service
    service.process.stop()
