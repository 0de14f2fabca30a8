"""Durable JSON state: whole-file atomic replacement so a crash never leaves half a file."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        # State may hold encrypted secret payloads: keep it private to the owner.
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=1, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path) -> Any:
    if not path.exists():
        return None
    return json.loads(path.read_text())


def message_to_dict(message: Any) -> dict[str, Any]:
    """A proto-plus message as its JSON mapping (the same shape the REST API answers)."""
    return dict(json.loads(type(message).to_json(message)))


def message_from_dict(kind: Any, data: dict[str, Any]) -> Any:
    return kind.from_json(json.dumps(data), ignore_unknown_fields=True)
