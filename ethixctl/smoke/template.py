"""``{{ name }}`` templating for suite requests and expectations.

Only whole-variable substitution: no expressions, filters or escapes, so what a step sends is
obvious from the YAML. A value that is exactly one placeholder keeps the variable's type
(``dataset_id: "{{ id }}"`` stays an int when the capture was an int).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


class UndefinedVariable(KeyError):
    def __init__(self, name: str):
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:
        return f"undefined variable {{{{ {self.name} }}}}"


def names_in(value: Any) -> set[str]:
    """Every variable referenced anywhere in ``value`` (strings, lists, dict keys and values)."""
    if isinstance(value, str):
        return set(PLACEHOLDER.findall(value))
    if isinstance(value, Mapping):
        found: set[str] = set()
        for key, item in value.items():
            found |= names_in(key) | names_in(item)
        return found
    if isinstance(value, list | tuple):
        return set().union(*(names_in(item) for item in value)) if value else set()
    return set()


def render(value: Any, variables: Mapping[str, Any]) -> Any:
    if isinstance(value, str):
        whole = PLACEHOLDER.fullmatch(value.strip())
        if whole:
            return _lookup(whole.group(1), variables)
        return PLACEHOLDER.sub(lambda match: str(_lookup(match.group(1), variables)), value)
    if isinstance(value, Mapping):
        return {render(key, variables): render(item, variables) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [render(item, variables) for item in value]
    return value


def _lookup(name: str, variables: Mapping[str, Any]) -> Any:
    if name not in variables:
        raise UndefinedVariable(name)
    return variables[name]
