"""A real local platform (`ethixctl up` in a temp state dir, free ports) for the deploy tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


@dataclass
class LocalPlatform:
    state_dir: Path
    info: dict[str, Any]


@pytest.fixture(scope="module")
def local_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPlatform]:
    from ethixctl.platform import lifecycle

    state_dir = tmp_path_factory.mktemp("platform")
    result = lifecycle.up(state_dir, free_ports=True, timeout=240)
    try:
        yield LocalPlatform(state_dir, result.info)
    finally:
        lifecycle.down(state_dir)
