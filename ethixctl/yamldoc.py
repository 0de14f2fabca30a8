"""Load a YAML playbook into a pydantic model, reporting mistakes with file, line and field.

Shared by every playbook (release, smoke, config files): one loader, one error format
``path:line: field.path: problem``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from ethixctl.errors import PlaybookError

Model = TypeVar("Model", bound=BaseModel)


class Strict(BaseModel):
    """The base of every playbook model: unknown fields are mistakes, loaded values do not change."""

    model_config = ConfigDict(extra="forbid", frozen=True)


Location = tuple[str | int, ...]


def _walk(node: yaml.Node, path: Location, lines: dict[Location, int]) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            lines[(*path, key)] = key_node.start_mark.line + 1
            _walk(value_node, (*path, key), lines)
            lines[(*path, key)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*path, index), lines)


def load_yaml(text: str, path: str) -> tuple[Any, dict[Location, int]]:
    """Parse YAML and return the data with a map from each field's location to its line."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        raise PlaybookError(
            path, mark.line + 1 if mark else None, None, f"invalid YAML: {exc.problem}"
        ) from None
    lines: dict[Location, int] = {}
    if node is not None:
        _walk(node, (), lines)
    return data, lines


def _line_for(loc: Location, lines: dict[Location, int]) -> int | None:
    # Fall back to the nearest enclosing field: a missing key is reported where its parent starts.
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def parse(model: type[Model], text: str, path: str) -> Model:
    data, lines = load_yaml(text, path)
    if data is None:
        raise PlaybookError(path, 1, None, "the file is empty")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        # pydantic adds the union member or validator name to loc; keep only real field names/indexes.
        loc = tuple(
            part for part in first["loc"] if isinstance(part, int) or not str(part).startswith("function")
        )
        field = ".".join(str(part) for part in loc) or None
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise PlaybookError(path, _line_for(loc, lines), field, first["msg"] + more) from None


def load(model: type[Model], path: str | Path) -> Model:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PlaybookError(str(path), None, None, f"cannot read: {exc.strerror}") from None
    return parse(model, text, str(path))
