"""The services' Cloud Run YAML (``services/<module>/cloudrun.yaml``) read through the Cloud Run v2 types.

The local platform deploys each service with the probes and resource limits production has: it takes
them from the same YAML, parsed by ``google.cloud.run_v2.Container``, so every value exists once. The
knative YAML's container fields for these (``resources``, ``startupProbe``, ``readinessProbe``,
``livenessProbe``) have the v2 API's JSON names, so an unknown or misspelt field is an error here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from ethixctl.errors import PlaybookError
from ethixctl.platform import images
from ethixctl.procs import REPO_ROOT

if TYPE_CHECKING:
    from google.cloud import run_v2

CONTAINER_FIELDS = ("resources", "startupProbe", "readinessProbe", "livenessProbe")


def manifest_path(service: str, source_root: Path = REPO_ROOT) -> Path:
    return source_root / "services" / images.source_name(service) / "cloudrun.yaml"


def container(service: str, source_root: Path = REPO_ROOT) -> run_v2.Container:
    """Probes and resources of ``service``'s container, as a Cloud Run v2 ``Container``."""
    from google.cloud import run_v2

    path = manifest_path(service, source_root)
    try:
        document: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
        [spec] = document["spec"]["template"]["spec"]["containers"]
    except OSError as exc:
        raise PlaybookError(str(path), None, None, f"cannot read: {exc.strerror}") from None
    except (yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
        raise PlaybookError(
            str(path), None, "spec.template.spec.containers", f"expected exactly one container ({exc})"
        ) from None
    picked = {name: spec[name] for name in CONTAINER_FIELDS if name in spec}
    try:
        return run_v2.Container.from_json(json.dumps(picked))
    except Exception as exc:  # json_format.ParseError: a field the v2 API does not have
        raise PlaybookError(str(path), None, "spec.template.spec.containers[0]", str(exc)) from None


def cpu_cores(limit: str) -> float:
    """A Cloud Run CPU limit ("1", "2", "0.5", "500m") in cores."""
    text = limit.strip()
    value = float(text[:-1]) / 1000 if text.endswith("m") else float(text)
    if not value > 0:
        raise ValueError(f"CPU limit {limit!r} is not positive")
    return value
