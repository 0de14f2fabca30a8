"""The small JSON-path subset the smoke suite uses: ``$``, ``$.a.b``, ``$.items[0].id``, ``$.m["odd key"]``.

Deliberately tiny (no wildcards, filters or slices) so a suite stays readable and no dependency is
needed; anything richer belongs in a real test, not in a smoke step.
"""

from __future__ import annotations

import re
from typing import Any

# One segment: .name | [index] | ["quoted key"]
_SEGMENT = re.compile(r"""\.(?P<name>[A-Za-z_][A-Za-z0-9_\-]*)|\[(?P<index>-?\d+)\]|\["(?P<key>[^"]*)"\]""")

Segment = str | int


class JsonPathError(ValueError):
    """The expression is not in the supported subset."""


class Missing:
    """Marks a path that does not resolve (distinct from a JSON ``null``)."""

    def __repr__(self) -> str:
        return "<missing>"


MISSING = Missing()


def parse(expression: str) -> tuple[Segment, ...]:
    if not expression.startswith("$"):
        raise JsonPathError(f"{expression!r}: a path starts with '$' (e.g. $.status or $.items[0].id)")
    segments: list[Segment] = []
    position = 1
    while position < len(expression):
        match = _SEGMENT.match(expression, position)
        if match is None:
            raise JsonPathError(
                f"{expression!r}: unsupported syntax at {expression[position:]!r} "
                '(supported: .name, [index], ["key"])'
            )
        if match.group("name") is not None:
            segments.append(match.group("name"))
        elif match.group("index") is not None:
            segments.append(int(match.group("index")))
        else:
            segments.append(match.group("key"))
        position = match.end()
    return tuple(segments)


def resolve(document: Any, expression: str) -> Any:
    """The value at ``expression`` in ``document``, or ``MISSING`` when any segment does not exist."""
    current = document
    for segment in parse(expression):
        if isinstance(segment, int):
            if not isinstance(current, list) or not -len(current) <= segment < len(current):
                return MISSING
            current = current[segment]
        else:
            if not isinstance(current, dict) or segment not in current:
                return MISSING
            current = current[segment]
    return current


def last_key(expression: str) -> str | None:
    """The final field name of a path (used to recognise secrets such as ``$.access_token``)."""
    names = [segment for segment in parse(expression) if isinstance(segment, str)]
    return names[-1] if names else None
