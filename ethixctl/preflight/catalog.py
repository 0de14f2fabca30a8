"""The env-var catalog of each bundled service, built from its settings class (``services/NAME/settings.py``),
so preflight checks a service's Cloud Run spec against what the code actually reads."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache
from typing import Any, get_args

# Set by Cloud Run itself on every instance: a service spec never carries them.
PLATFORM_SET = frozenset({"PORT", "K_SERVICE", "K_REVISION", "K_CONFIGURATION"})


@dataclass(frozen=True)
class Variable:
    names: tuple[str, ...]  # every name the setting is read from; the first is the one to document
    secret: bool  # a SecretStr setting: its value only ever comes from Secret Manager

    @property
    def name(self) -> str:
        return self.names[0]


def _mentions(annotation: Any, wanted: type) -> bool:
    return annotation is wanted or any(_mentions(arg, wanted) for arg in get_args(annotation))


def _names(field_name: str, alias: Any, prefix: str) -> tuple[str, ...]:
    if isinstance(alias, str):
        return (alias,)
    choices = getattr(alias, "choices", None)  # pydantic's AliasChoices
    if choices:
        return tuple(choice for choice in choices if isinstance(choice, str))
    return (f"{prefix}{field_name}".upper(),)


@cache
def catalog(service: str) -> dict[str, Variable] | None:
    """``service``'s variables by every name they are read from; None when it is not a bundled service."""
    from pydantic import SecretStr

    from ethixctl.platform.images import source_name
    from services.common.settings import ServiceSettings

    try:
        module = importlib.import_module(f"services.{source_name(service)}.settings")
    except ModuleNotFoundError:
        return None
    classes = [
        value
        for value in vars(module).values()
        if isinstance(value, type)
        and issubclass(value, ServiceSettings)
        and value.__module__ == module.__name__
    ]
    if not classes:
        return None
    settings = max(classes, key=lambda cls: len(cls.__mro__))  # the most derived one
    prefix = str(settings.model_config.get("env_prefix", ""))
    variables: dict[str, Variable] = {}
    for field_name, info in settings.model_fields.items():
        variable = Variable(
            _names(field_name, info.validation_alias, prefix), _mentions(info.annotation, SecretStr)
        )
        if PLATFORM_SET.isdisjoint(variable.names):
            variables.update(dict.fromkeys(variable.names, variable))
    return variables
