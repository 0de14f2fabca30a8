"""A real local platform (`ethixctl up` in a temp state dir, free ports) for the deploy tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import running_platform


@dataclass
class LocalPlatform:
    state_dir: Path
    info: dict[str, Any]


@pytest.fixture(scope="module")
def local_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPlatform]:
    state_dir = tmp_path_factory.mktemp("platform")
    with running_platform(state_dir) as info:
        yield LocalPlatform(state_dir, info)
