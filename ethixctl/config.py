"""Environments: where ethixctl finds the platform it operates (the local one or a Cloud Run project).

Precedence: flags > environment variables > ``ethixctl.toml`` > defaults. ``local`` needs no file: its
endpoints come from the running platform's ``platform.json``. Example ``ethixctl.toml``::

    default_env = "staging"

    [environments.staging]
    kind = "cloudrun"
    project = "ethix-staging"
    region = "europe-west1"
    prometheus_url = "https://prometheus.staging.example.com"
    prometheus_auth = "bearer"                 # none | google | bearer | basic
    prometheus_secret = "prometheus-token:current"   # Secret Manager secret[:version or alias]

``prometheus_url = "managed"`` means Google Cloud Managed Service for Prometheus in ``project``, read
with application-default credentials (``prometheus_auth`` defaults to ``google`` there).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

from ethixctl.adapters.prometheus import AUTH_KINDS, AuthKind, managed_url
from ethixctl.errors import PlatformUnavailable, PlaybookError, UsageError
from ethixctl.platform import state

CONFIG_NAME = "ethixctl.toml"
_KINDS = ("local", "cloudrun")
_FIELDS = {
    "kind",
    "project",
    "region",
    "run_endpoint",
    "secrets_endpoint",
    "prometheus_url",
    "prometheus_auth",
    "prometheus_secret",
    "state_dir",
    "slack_webhook",
}


@dataclass
class Environment:
    name: str
    kind: Literal["local", "cloudrun"]
    project: str
    region: str
    run_endpoint: str | None
    secrets_endpoint: str | None
    prometheus_url: str
    state_dir: Path
    slack_webhook: str | None = field(default=None, repr=False)
    prometheus_auth: AuthKind = "none"
    # The Secret Manager secret (``name`` or ``name:version``) holding the bearer token or user:password.
    prometheus_secret: str | None = None

    def __repr__(self) -> str:
        webhook = "'***'" if self.slack_webhook else "None"
        return (
            f"Environment(name={self.name!r}, kind={self.kind!r}, project={self.project!r}, "
            f"region={self.region!r}, run_endpoint={self.run_endpoint!r}, "
            f"secrets_endpoint={self.secrets_endpoint!r}, prometheus_url={self.prometheus_url!r}, "
            f"state_dir={str(self.state_dir)!r}, slack_webhook={webhook}, "
            f"prometheus_auth={self.prometheus_auth!r}, prometheus_secret={self.prometheus_secret!r})"
        )


def _line_of(text: str, section: str | None, key: str | None) -> int | None:
    """Best-effort line of ``key`` (inside ``[section]``) for error messages; tomllib gives no positions."""
    in_section = section is None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line.startswith("["):
            in_section = section is not None and line.strip("[] ").replace('"', "") == section
            if in_section and key is None:
                return number
            continue
        if in_section and key is not None and line.split("=", 1)[0].strip().strip('"') == key:
            return number
    return None


@dataclass
class _ConfigFile:
    path: Path
    text: str
    data: dict[str, Any]

    def error(self, section: str | None, key: str | None, problem: str) -> PlaybookError:
        where = ".".join(part for part in (section, key) if part) or None
        return PlaybookError(str(self.path), _line_of(self.text, section, key), where, problem)


def _read_config(config_path: Path | None) -> _ConfigFile | None:
    explicit = config_path or (
        Path(os.environ["ETHIXCTL_CONFIG"]) if os.environ.get("ETHIXCTL_CONFIG") else None
    )
    path = explicit or Path.cwd() / CONFIG_NAME
    if not path.is_file():
        if explicit is not None:
            raise UsageError(f"config file {path} not found")
        return None
    text = path.read_text()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PlaybookError(str(path), None, None, f"invalid TOML: {exc}") from None
    config = _ConfigFile(path, text, data)
    envs = data.get("environments", {})
    if not isinstance(envs, dict):
        raise config.error(None, "environments", "must be a table of [environments.NAME]")
    for name, table in envs.items():
        section = f"environments.{name}"
        if not isinstance(table, dict):
            raise config.error(None, section, "must be a table")
        for key, value in table.items():
            if key not in _FIELDS:
                raise config.error(section, key, f"unknown field (known: {', '.join(sorted(_FIELDS))})")
            if not isinstance(value, str):
                raise config.error(section, key, f"must be a string, got {type(value).__name__}")
        kind = table.get("kind", "local" if name == "local" else None)
        if kind not in _KINDS:
            raise config.error(section, "kind", f"must be one of {', '.join(_KINDS)}, got {kind!r}")
        if kind == "cloudrun":
            for required in ("project", "region", "prometheus_url"):
                if not table.get(required):
                    raise config.error(section, None, f'{required}: required for kind = "cloudrun"')
        auth = table.get("prometheus_auth", "none")
        if auth not in AUTH_KINDS:
            raise config.error(
                section, "prometheus_auth", f"must be one of {', '.join(AUTH_KINDS)}, got {auth!r}"
            )
        if auth in ("bearer", "basic") and not table.get("prometheus_secret"):
            raise config.error(
                section, "prometheus_secret", f'required for prometheus_auth = "{auth}" (a secret id)'
            )
        if table.get("prometheus_url") == "managed" and kind != "cloudrun":
            raise config.error(section, "prometheus_url", '"managed" needs kind = "cloudrun" and its project')
    default_env = data.get("default_env")
    if default_env is not None and not isinstance(default_env, str):
        raise config.error(None, "default_env", "must be a string")
    return config


def local_state_dir(state_dir: Path | None = None, table: dict[str, Any] | None = None) -> Path:
    if state_dir is not None:
        return state_dir.expanduser().resolve()
    if os.environ.get("ETHIXCTL_STATE_DIR"):
        return Path(os.environ["ETHIXCTL_STATE_DIR"]).expanduser().resolve()
    if table and table.get("state_dir"):
        return Path(table["state_dir"]).expanduser().resolve()
    return state.default_state_dir()


def load_environment(
    name: str | None = None, state_dir: Path | None = None, config_path: Path | None = None
) -> Environment:
    """Resolve environment ``name`` (default: ETHIXCTL_ENV, the file's default_env, then ``local``)."""
    config = _read_config(config_path)
    envs: dict[str, Any] = config.data.get("environments", {}) if config else {}
    chosen = (
        name
        or os.environ.get("ETHIXCTL_ENV")
        or (config.data.get("default_env") if config else None)
        or "local"
    )
    if chosen not in envs and chosen != "local":
        known = ", ".join(sorted({"local", *envs}))
        where = f" in {config.path}" if config else f" (no {CONFIG_NAME} found)"
        raise UsageError(f"unknown environment {chosen!r}{where}", hint=f"known environments: {known}")
    table: dict[str, Any] = envs.get(chosen, {})
    kind = cast(Literal["local", "cloudrun"], table.get("kind", "local"))
    prometheus_override = os.environ.get("ETHIXCTL_PROMETHEUS_URL")
    webhook = os.environ.get("ETHIXCTL_SLACK_WEBHOOK") or table.get("slack_webhook")
    directory = local_state_dir(state_dir, table)
    if kind == "cloudrun":
        prometheus_url = prometheus_override or table["prometheus_url"]
        managed = prometheus_url == "managed"
        return Environment(
            name=chosen,
            kind=kind,
            project=table["project"],
            region=table["region"],
            run_endpoint=table.get("run_endpoint"),
            secrets_endpoint=table.get("secrets_endpoint"),
            prometheus_url=managed_url(table["project"]) if managed else prometheus_url,
            state_dir=directory,
            slack_webhook=webhook,
            prometheus_auth=table.get("prometheus_auth", "google" if managed else "none"),
            prometheus_secret=table.get("prometheus_secret"),
        )
    platform = state.platform_info(directory)
    if platform is None or not platform.get("control_plane_url"):
        raise PlatformUnavailable(
            f"the local platform is not running (state dir {directory})", hint="start it with `ethixctl up`"
        )
    control_plane = table.get("run_endpoint") or platform["control_plane_url"]
    return Environment(
        name=chosen,
        kind="local",
        project=table.get("project", "local"),
        region=table.get("region", "local"),
        run_endpoint=control_plane,
        secrets_endpoint=table.get("secrets_endpoint") or platform["control_plane_url"],
        prometheus_url=prometheus_override or table.get("prometheus_url") or platform["prometheus_url"],
        state_dir=directory,
        slack_webhook=webhook,
        prometheus_auth=table.get("prometheus_auth", "none"),
        prometheus_secret=table.get("prometheus_secret"),
    )
