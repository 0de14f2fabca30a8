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
    name: str
    secret: bool  # a SecretStr setting: only ever from Secret Manager
    required: bool  # in production: a secret, or a setting whose development default is None


def _mentions(annotation: Any, wanted: type) -> bool:
    return annotation is wanted or any(_mentions(arg, wanted) for arg in get_args(annotation))


@cache
def catalog(service: str) -> dict[str, Variable] | None:
    """``service``'s variables by name; None when it is not a bundled service (no settings class)."""
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
    variables = {}
    for field_name, info in settings.model_fields.items():
        alias = info.validation_alias
        name = alias if isinstance(alias, str) else f"{prefix}{field_name}".upper()
        if name in PLATFORM_SET:
            continue
        secret = _mentions(info.annotation, SecretStr)
        no_default = info.default is None and info.default_factory is None
        variables[name] = Variable(name, secret, secret or no_default or name == f"{prefix}ENV".upper())
    return variables
