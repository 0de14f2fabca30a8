"""Local images: content-addressed snapshots of a service's source, the stand-in for container images.

An image holds ``services/__init__.py``, ``services/common`` and ``services/SERVICE``; a revision runs
with its snapshot as the working directory, so it really runs the code it was built from, whatever
happens to the checkout afterwards. The digest covers relative paths and contents, so building the
same source twice gives the same reference.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ethixctl.errors import UsageError
from ethixctl.procs import REPO_ROOT

REF_PATTERN = re.compile(r"^local/(?P<service>[a-z][a-z0-9_-]*)@sha256:(?P<digest>[0-9a-f]{64})$")
_SKIP_DIRS = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"}
_SKIP_SUFFIXES = (".pyc", ".pyo")


@dataclass(frozen=True)
class Image:
    service: str
    digest: str
    path: Path

    @property
    def ref(self) -> str:
        return f"local/{self.service}@sha256:{self.digest}"


def source_name(service: str) -> str:
    """Cloud Run ids use "-", Python packages "_": service ``ai-core`` is built from ``services/ai_core``."""
    return service.replace("-", "_")


def service_id(service: str) -> str:
    """The Cloud Run id of a service named either way: ``ai_core`` and ``ai-core`` are ``ai-core``."""
    return service.replace("_", "-")


def buildable_services(source_root: Path = REPO_ROOT) -> list[str]:
    """Services with an entry point (``services/NAME/__main__.py``)."""
    base = source_root / "services"
    if not base.is_dir():
        return []
    return sorted(
        child.name
        for child in base.iterdir()
        if child.is_dir() and child.name != "common" and (child / "__main__.py").is_file()
    )


def _source_files(source_root: Path, service: str) -> list[Path]:
    base = source_root / "services"
    files = [base / "__init__.py"]
    for top in (base / "common", base / service):
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
            files.extend(
                Path(dirpath) / name for name in sorted(filenames) if not name.endswith(_SKIP_SUFFIXES)
            )
    return sorted(f for f in files if f.is_file())


def build(service: str, images_dir: Path, source_root: Path = REPO_ROOT) -> Image:
    """Snapshot the service's source into ``images_dir/<digest>``; idempotent."""
    service = source_name(service)
    known = buildable_services(source_root)
    if service not in known:
        raise UsageError(
            f"unknown service {service!r}: no {source_root / 'services' / service / '__main__.py'}",
            hint=f"buildable services: {', '.join(known) or 'none'}",
        )
    files = _source_files(source_root, service)
    digest = hashlib.sha256()
    for path in files:
        rel = path.relative_to(source_root).as_posix()
        content = path.read_bytes()
        digest.update(f"{rel}\0{len(content)}\0".encode())
        digest.update(content)
    hexdigest = digest.hexdigest()
    target = images_dir / hexdigest
    if not target.is_dir():
        images_dir.mkdir(parents=True, exist_ok=True)
        # Copy into a temp dir and rename, so a half-written image is never visible under its digest.
        staging = Path(tempfile.mkdtemp(prefix=".build-", dir=images_dir))
        try:
            for path in files:
                dest = staging / path.relative_to(source_root)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, dest)
            (staging / "IMAGE").write_text(f"local/{service}@sha256:{hexdigest}\n")
            try:
                staging.rename(target)
            except OSError:
                if not target.is_dir():
                    raise
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
    return Image(service, hexdigest, target)


def resolve(ref: str, images_dir: Path) -> Image:
    """The snapshot behind ``local/SERVICE@sha256:HEX``; UsageError if malformed or never built."""
    match = REF_PATTERN.match(ref)
    if match is None:
        raise UsageError(
            f"image {ref!r} is not a local image reference (local/SERVICE@sha256:<64 hex>)",
            hint="build one with `ethixctl build SERVICE`",
        )
    image = Image(match["service"], match["digest"], images_dir / match["digest"])
    if not (image.path / "services" / image.service / "__main__.py").is_file():
        raise UsageError(
            f"image {ref} not found in {images_dir}", hint=f"run `ethixctl build {image.service}`"
        )
    return image
