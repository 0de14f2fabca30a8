"""Durable JSON state: whole-file atomic replacement so a crash never leaves half a file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ethixctl.files import write_atomic


def write_json(path: Path, data: Any) -> None:
    # State may hold encrypted secret payloads: keep it private to the owner.
    write_atomic(path, json.dumps(data, indent=1, sort_keys=True), mode=0o600)


def read_json(path: Path) -> Any:
    if not path.exists():
        return None
    return json.loads(path.read_text())


def message_to_dict(message: Any) -> dict[str, Any]:
    """A proto-plus message as its JSON mapping (the same shape the REST API answers)."""
    return dict(json.loads(type(message).to_json(message)))


def message_from_dict(kind: Any, data: dict[str, Any]) -> Any:
    return kind.from_json(json.dumps(data), ignore_unknown_fields=True)
