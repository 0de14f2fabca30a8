"""Revision logs on disk: ``state_dir/logs/SERVICE/REVISION.log``; they outlive the platform."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path

from ethixctl.errors import PlatformUnavailable, UsageError
from ethixctl.platform.images import service_id


def log_files(state_dir: Path, service: str, revision: str | None = None) -> list[tuple[str, Path]]:
    """(revision, path) pairs, oldest first; exit-code-2 errors name what does exist."""
    root = state_dir / "logs"
    if not root.is_dir():
        raise PlatformUnavailable(
            f"no local platform logs in {state_dir}", hint="start the platform with `ethixctl up`"
        )
    services = sorted(p.name for p in root.iterdir() if p.is_dir())
    if service not in services and service_id(service) in services:
        service = service_id(service)
    if service not in services:
        raise UsageError(
            f"unknown service {service!r}", hint=f"services with logs: {', '.join(services) or 'none'}"
        )
    files = sorted((root / service).glob("*.log"), key=lambda p: (p.stat().st_mtime, p.name))
    if revision is not None:
        chosen = [p for p in files if p.stem == revision]
        if not chosen:
            known = ", ".join(p.stem for p in files) or "none"
            raise UsageError(f"unknown revision {revision!r} of {service}", hint=f"revisions: {known}")
        files = chosen
    return [(p.stem, p) for p in files]


def tail(sources: list[tuple[str, Path]], lines: int) -> list[str]:
    """The last ``lines`` lines of each file, as ``REVISION | line``."""
    out: list[str] = []
    for name, path in sources:
        with open(path, errors="replace") as handle:
            out.extend(f"{name} | {line.rstrip(chr(10))}" for line in deque(handle, maxlen=lines) if lines)
    return out


def follow(sources: list[tuple[str, Path]], poll: float = 0.2) -> Iterator[str]:
    """New complete lines as they are written (a restarted revision appends to the same file)."""
    offsets = {path: path.stat().st_size for _, path in sources}
    partial = {path: "" for _, path in sources}
    while True:
        for name, path in sources:
            size = path.stat().st_size
            if size < offsets[path]:
                offsets[path] = 0
            if size == offsets[path]:
                continue
            with open(path, errors="replace") as handle:
                handle.seek(offsets[path])
                chunk = handle.read()
                offsets[path] = handle.tell()
            *complete, partial[path] = (partial[path] + chunk).split("\n")
            for line in complete:
                yield f"{name} | {line}"
        time.sleep(poll)
