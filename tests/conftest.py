"""Fixtures shared across the suite: the two real services as uvicorn processes on free loopback ports."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


@contextlib.contextmanager
def running_platform(state_dir: Path) -> Iterator[dict[str, Any]]:
    """`ethixctl up` on free ports in ``state_dir`` (what the end-to-end tests run against); yields its
    platform.json and always brings it down."""
    from ethixctl.platform import lifecycle

    info = lifecycle.up(state_dir, free_ports=True, timeout=240).info
    try:
        yield info
    finally:
        lifecycle.down(state_dir)
