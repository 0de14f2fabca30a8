"""Revision logs on disk: ``state_dir/logs/SERVICE/REVISION.log``; they outlive the platform.

The services write one JSON object per line in Cloud Logging's structured format (``severity``,
``message``, ``time``, ``request_id``, ``logging.googleapis.com/trace``, ``httpRequest``). Lines that
are not JSON (a crash before logging was set up) count as severity ``DEFAULT``, as Cloud Logging does.
"""

from __future__ import annotations

import json
import re
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

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


# Cloud Logging's LogSeverity values.
SEVERITIES = {
    "DEFAULT": 0,
    "DEBUG": 100,
    "INFO": 200,
    "NOTICE": 300,
    "WARNING": 400,
    "ERROR": 500,
    "CRITICAL": 600,
    "ALERT": 700,
    "EMERGENCY": 800,
}
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


def severity_level(name: str) -> int:
    """The numeric level of a severity name (``warn`` is ``WARNING``); UsageError names the choices."""
    key = {"WARN": "WARNING", "FATAL": "CRITICAL"}.get(name.upper(), name.upper())
    if key not in SEVERITIES:
        raise UsageError(
            f"unknown severity {name!r}", hint=f"one of: {', '.join(s.lower() for s in SEVERITIES)}"
        )
    return SEVERITIES[key]


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``90s``, ``15m``, ``2h``, ``1d`` ago, or an ISO 8601 time (UTC when it has no offset)."""
    now = now or datetime.now(UTC)
    if match := _DURATION.match(text.strip()):
        return now - timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(
            f"--since {text!r} is neither a duration nor a time",
            hint="e.g. 15m, 2h, 1d or 2026-12-01T08:00:00Z",
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_entry(line: str) -> dict[str, Any]:
    """A structured entry; a plain-text line becomes ``{"severity": "DEFAULT", "message": line}``."""
    if line.startswith("{"):
        try:
            entry = json.loads(line)
        except ValueError:
            entry = None
        if isinstance(entry, dict):
            return entry
    return {"severity": "DEFAULT", "message": line}


def _entry_time(entry: dict[str, Any]) -> datetime | None:
    value = entry.get("time") or entry.get("timestamp")
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class LogFilter:
    min_severity: int = 0
    request_id: str | None = None
    since: datetime | None = None

    def keep(self, entry: dict[str, Any]) -> bool:
        if SEVERITIES.get(str(entry.get("severity", "DEFAULT")).upper(), 0) < self.min_severity:
            return False
        if self.request_id is not None and entry.get("request_id") != self.request_id:
            return False
        if self.since is not None:
            moment = _entry_time(entry)
            return moment is not None and moment >= self.since
        return True


def render(entry: dict[str, Any]) -> str:
    """One entry for people: ``TIME SEVERITY message [request id]`` (+ traceback lines)."""
    if set(entry) == {"severity", "message"} and entry["severity"] == "DEFAULT":
        return str(entry["message"])
    parts = [
        str(entry.get("time", "")),
        f"{entry.get('severity', 'DEFAULT'):<8}",
        str(entry.get("message", "")),
    ]
    if entry.get("request_id"):
        parts.append(f"[{entry['request_id']}]")
    text = " ".join(part for part in parts if part)
    if entry.get("exc_info"):
        text += "\n" + str(entry["exc_info"])
    return text


Keep = Callable[[str], bool]


def _keep_all(line: str) -> bool:
    return True


def tail(sources: list[tuple[str, Path]], lines: int, keep: Keep = _keep_all) -> list[str]:
    """The last ``lines`` lines of each file that ``keep`` accepts, as ``REVISION | line``."""
    out: list[str] = []
    for name, path in sources:
        with open(path, errors="replace") as handle:
            chosen = deque((line.rstrip("\n") for line in handle if keep(line.rstrip("\n"))), maxlen=lines)
            out.extend(f"{name} | {line}" for line in chosen if lines)
    return out


def follow(sources: list[tuple[str, Path]], poll: float = 0.2, keep: Keep = _keep_all) -> Iterator[str]:
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
                if keep(line):
                    yield f"{name} | {line}"
        time.sleep(poll)
