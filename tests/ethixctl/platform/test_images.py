"""Local images: content-addressed snapshots of services/ source."""

from __future__ import annotations

from pathlib import Path

import pytest

from ethixctl.errors import UsageError
from ethixctl.platform import images
from tests.ethixctl.platform.conftest import make_source


def test_same_source_gives_same_ref_and_changes_give_new_ones(tmp_path: Path) -> None:
    source = make_source(tmp_path / "src", "v1")
    first = images.build("echo", tmp_path / "images", source)
    # Caches never count: a __pycache__ appearing must not change the digest.
    (source / "services" / "echo" / "__pycache__").mkdir()
    (source / "services" / "echo" / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"junk")
    again = images.build("echo", tmp_path / "images", source)
    assert again.ref == first.ref
    assert images.REF_PATTERN.match(first.ref)
    assert not (first.path / "services" / "echo" / "__pycache__").exists()
    assert (first.path / "services" / "common" / "observability.py").is_file()
    (source / "services" / "echo" / "app.py").write_text("VERSION = 'changed'\n")
    changed = images.build("echo", tmp_path / "images", source)
    assert changed.ref != first.ref
    assert images.resolve(first.ref, tmp_path / "images").path == first.path


def test_ai_core_service_name_builds_the_ai_core_package() -> None:
    assert images.source_name("ai-core") == "ai_core"


def test_unknown_service_and_bad_refs_are_usage_errors(tmp_path: Path) -> None:
    source = make_source(tmp_path / "src", "v1")
    with pytest.raises(UsageError, match="unknown service 'nope'"):
        images.build("nope", tmp_path / "images", source)
    with pytest.raises(UsageError, match="not a local image reference"):
        images.resolve("gcr.io/x/backend:latest", tmp_path / "images")
    with pytest.raises(UsageError, match="not found"):
        images.resolve("local/echo@sha256:" + "a" * 64, tmp_path / "images")
