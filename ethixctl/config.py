"""Environments: where ethixctl finds the platform it operates (the local one or a Cloud Run project).

``resolve_environment`` is the one place that decides; no command reads ``os.environ`` itself.
Precedence: flags > environment variables (``ETHIXCTL_ENV``, ``ETHIXCTL_STATE_DIR``,
``ETHIXCTL_PROMETHEUS_URL``, ``ETHIXCTL_SLACK_WEBHOOK``, ``ETHIXCTL_CONFIG``) > ``ethixctl.toml`` >
defaults. ``local`` needs no file: its endpoints come from the running platform's ``platform.json``.
Example ``ethixctl.toml``::

    default_env = "staging"

    [environments.staging]
    kind = "cloudrun"
    project = "ethix-staging"
    region = "europe-west1"
    prometheus_url = "https://prometheus.staging.example.com"
    prometheus_auth = "bearer"                       # none | google | bearer | basic
    prometheus_secret = "prometheus-token:current"   # Secret Manager secret[:version or alias]
    metric_source = "app"                            # app | cloudrun: which metrics the gates read

``prometheus_url = "managed"`` means Google Cloud Managed Service for Prometheus in ``project``, read
with application-default credentials (``prometheus_auth`` defaults to ``google`` there).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from ethixctl.adapters.prometheus import AuthKind, MetricSource, managed_url
from ethixctl.errors import PlatformUnavailable, PlaybookError, UsageError
from ethixctl.platform import state

CONFIG_NAME = "ethixctl.toml"
LOCAL = "local"


class EnvironmentTable(BaseModel):
    """One ``[environments.NAME]`` table of ethixctl.toml."""

    model_config = ConfigDict(extra="forbid", strict=True)

    kind: Literal["local", "cloudrun"] = "local"
    project: str | None = None
    region: str | None = None
    run_endpoint: str | None = None
    secrets_endpoint: str | None = None
    prometheus_url: str | None = None
    # none (default; google when prometheus_url = "managed") | google | bearer | basic
    prometheus_auth: AuthKind | None = None
    # The Secret Manager secret (``name`` or ``name:version``) holding the bearer token or user:password.
    prometheus_secret: str | None = None
    # Which metrics the release gates read (the playbook's per-source queries); None: the playbook's.
    metric_source: MetricSource | None = None
    state_dir: str | None = None
    slack_webhook: str | None = None

    @model_validator(mode="after")
    def _cloudrun_needs_a_project(self) -> EnvironmentTable:
        if self.kind == "cloudrun":
            missing = [f for f in ("project", "region", "prometheus_url") if not getattr(self, f)]
            if missing:
                raise ValueError(f'{missing[0]}: required for kind = "cloudrun"')
        elif self.prometheus_url == "managed":
            raise ValueError('prometheus_url: "managed" needs kind = "cloudrun" and its project')
        if self.prometheus_auth in ("bearer", "basic") and not self.prometheus_secret:
            raise ValueError(
                f'prometheus_secret: required for prometheus_auth = "{self.prometheus_auth}" (a secret id)'
            )
        return self


class ConfigFile(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    default_env: str | None = None
    environments: dict[str, EnvironmentTable] = {}


@dataclass
class Environment:
    name: str
    kind: Literal["local", "cloudrun"]
    project: str
    region: str
    # None for a cloudrun environment means Google's own endpoints.
    run_endpoint: str | None
    secrets_endpoint: str | None
    prometheus_url: str  # empty only for a local platform that is not running
    state_dir: Path
    slack_webhook: str | None = field(default=None, repr=False)
    platform_running: bool = True
    prometheus_auth: AuthKind = "none"
    prometheus_secret: str | None = None  # a secret's name, never its value
    metric_source: MetricSource | None = None

    def __repr__(self) -> str:
        webhook = "'***'" if self.slack_webhook else "None"
        return (
            f"Environment(name={self.name!r}, kind={self.kind!r}, project={self.project!r}, "
            f"region={self.region!r}, run_endpoint={self.run_endpoint!r}, "
            f"secrets_endpoint={self.secrets_endpoint!r}, prometheus_url={self.prometheus_url!r}, "
            f"state_dir={str(self.state_dir)!r}, slack_webhook={webhook}, "
            f"prometheus_auth={self.prometheus_auth!r}, prometheus_secret={self.prometheus_secret!r}, "
            f"metric_source={self.metric_source!r})"
        )

    def require_platform(self) -> Environment:
        if not self.platform_running:
            raise PlatformUnavailable(
                f"the local platform is not running (state dir {self.state_dir})",
                hint="start it with `ethixctl up`",
            )
        return self


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


def _config_error(path: Path, text: str, error: ValidationError) -> PlaybookError:
    first = error.errors()[0]
    loc = [str(part) for part in first["loc"]]
    section = ".".join(loc[:2]) if loc[:1] == ["environments"] and len(loc) >= 2 else None
    key = loc[2] if section and len(loc) > 2 else (loc[0] if not section and loc else None)
    problem = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        known = ", ".join(EnvironmentTable.model_fields if section else ConfigFile.model_fields)
        problem = f"unknown field (known: {known})"
    elif first["type"] == "literal_error":
        problem = f"must be one of {', '.join(_choices(key))}, got {first['input']!r}"
    elif first["type"].endswith("_type"):
        problem = f"must be a {first['type'].removesuffix('_type')}, got {type(first['input']).__name__}"
    where = ".".join(part for part in (section, key) if part) or None
    return PlaybookError(str(path), _line_of(text, section, key), where, problem)


def _choices(key: str | None) -> list[str]:
    """The allowed values of a Literal field of an environment table."""
    field_info = EnvironmentTable.model_fields.get(key or "")
    if field_info is None:
        return []
    stack: list[Any] = [field_info.annotation]
    values: list[str] = []
    while stack:
        annotation = stack.pop(0)
        args = get_args(annotation)
        values.extend(a for a in args if isinstance(a, str))
        stack.extend(a for a in args if not isinstance(a, str))
    return values


def read_config(path: Path | None, environ: Mapping[str, str]) -> tuple[Path, ConfigFile] | None:
    """The config file: ``path``, else ETHIXCTL_CONFIG, else ./ethixctl.toml when it exists."""
    explicit = path or (Path(environ["ETHIXCTL_CONFIG"]) if environ.get("ETHIXCTL_CONFIG") else None)
    chosen = explicit or Path.cwd() / CONFIG_NAME
    if not chosen.is_file():
        if explicit is not None:
            raise UsageError(f"config file {chosen} not found")
        return None
    text = chosen.read_text()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PlaybookError(str(chosen), None, None, f"invalid TOML: {exc}") from None
    try:
        return chosen, ConfigFile.model_validate(data)
    except ValidationError as exc:
        raise _config_error(chosen, text, exc) from None


def resolve_environment(
    name: str | None = None,
    state_dir: Path | None = None,
    config_path: Path | None = None,
    *,
    need_platform: bool = True,
    environ: Mapping[str, str] | None = None,
) -> Environment:
    """Resolve environment ``name`` (default: ETHIXCTL_ENV, the file's default_env, then ``local``).

    With ``need_platform=False`` a local environment whose platform is not running still resolves
    (its state dir and ledger are readable: ``history``, ``down``, ``logs``); its endpoints are None.
    """
    environ = os.environ if environ is None else environ
    found = read_config(config_path, environ)
    config = found[1] if found else ConfigFile()
    chosen = name or environ.get("ETHIXCTL_ENV") or config.default_env or LOCAL
    if chosen not in config.environments and chosen != LOCAL:
        known = ", ".join(sorted({LOCAL, *config.environments}))
        where = f" in {found[0]}" if found else f" (no {CONFIG_NAME} found)"
        raise UsageError(f"unknown environment {chosen!r}{where}", hint=f"known environments: {known}")
    table = config.environments.get(chosen, EnvironmentTable())
    directory = _state_dir(state_dir, environ, table)
    webhook = environ.get("ETHIXCTL_SLACK_WEBHOOK") or table.slack_webhook
    prometheus_override = environ.get("ETHIXCTL_PROMETHEUS_URL")
    if table.kind == "cloudrun":
        prometheus_url = prometheus_override or table.prometheus_url or ""
        managed = prometheus_url == "managed"
        return Environment(
            name=chosen, kind="cloudrun", project=table.project or "", region=table.region or "",
            run_endpoint=table.run_endpoint, secrets_endpoint=table.secrets_endpoint,
            prometheus_url=managed_url(table.project or "") if managed else prometheus_url,
            state_dir=directory, slack_webhook=webhook,
            prometheus_auth=table.prometheus_auth or ("google" if managed else "none"),
            prometheus_secret=table.prometheus_secret, metric_source=table.metric_source,
        )  # fmt: skip
    platform: dict[str, Any] = state.platform_info(directory) or {}
    control_plane = platform.get("control_plane_url")
    environment = Environment(
        name=chosen, kind="local", project=table.project or LOCAL, region=table.region or LOCAL,
        run_endpoint=table.run_endpoint or control_plane,
        secrets_endpoint=table.secrets_endpoint or control_plane,
        prometheus_url=prometheus_override or table.prometheus_url or platform.get("prometheus_url", ""),
        state_dir=directory, slack_webhook=webhook, platform_running=bool(control_plane),
        prometheus_auth=table.prometheus_auth or "none", prometheus_secret=table.prometheus_secret,
        metric_source=table.metric_source,
    )  # fmt: skip
    return environment.require_platform() if need_platform else environment


def _state_dir(flag: Path | None, environ: Mapping[str, str], table: EnvironmentTable) -> Path:
    for candidate in (flag, environ.get("ETHIXCTL_STATE_DIR"), table.state_dir):
        if candidate:
            return Path(candidate).expanduser().resolve()
    return state.default_state_dir()


def local_state_dir(state_dir: Path | None = None) -> Path:
    """The local platform's state dir (``up``, ``down``, ``build``, ``logs``), whatever ``default_env``
    says and whether or not the platform runs."""
    return resolve_environment(LOCAL, state_dir, need_platform=False).state_dir
