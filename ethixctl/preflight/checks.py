"""The automated preflight checks. Each takes the run's context and its parameters from the playbook
(a pydantic model, so a mistake is reported as ``file:line: field: problem``) and returns a Finding.

A check never acts on missing data: what it cannot read is a failure with the reason, or, when the
platform does not answer, ``unavailable`` (preflight then exits 5).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ethixctl.errors import EthixError, PlatformUnavailable

if TYPE_CHECKING:
    from ethixctl.adapters.cloudrun import CloudRun, EnvEntry, ServiceSpec
    from ethixctl.adapters.prometheus import MetricSource, Prometheus
    from ethixctl.config import Environment
    from ethixctl.ops.ledger import Ledger, Operation

Status = Literal["pass", "fail", "unavailable"]
DAY = 86_400.0
# Final statuses of a rotation or a drill that count as done (the others: failed, aborted, ...).
SUCCEEDED = ["completed", "rotated", "passed", "succeeded", "done", "verified"]
_SECRET_WORDS = ("SECRET", "PASSWORD", "TOKEN", "PRIVATE_KEY", "API_KEY", "DATABASE_URL", "WEBHOOK")


@dataclass
class Finding:
    status: Status
    detail: str


def _passed(detail: str) -> Finding:
    return Finding("pass", detail)


def _failed(problems: list[str]) -> Finding:
    return Finding("fail", "; ".join(problems))


@dataclass
class Context:
    """What the checks read, each client opened once per run and only when a check needs it."""

    environment: Environment
    ledger: Ledger
    services: list[str]
    metric_source: MetricSource
    _cloud_run: CloudRun | None = None
    _prometheus: Prometheus | None = None
    _specs: dict[str, ServiceSpec] = field(default_factory=dict)

    def cloud_run(self) -> CloudRun:
        if self._cloud_run is None:
            from ethixctl.adapters.cloudrun import CloudRun

            env = self.environment
            self._cloud_run = CloudRun(env.project, env.region, endpoint=env.run_endpoint)
        return self._cloud_run

    def prometheus(self) -> Prometheus:
        if self._prometheus is None:
            from ethixctl.adapters.prometheus import open_prometheus

            self._prometheus = open_prometheus(self.environment, budget=10.0)
        return self._prometheus

    def spec(self, service: str) -> ServiceSpec:
        if service not in self._specs:
            self._specs[service] = self.cloud_run().service_spec(service)
        return self._specs[service]

    def close(self) -> None:
        if self._prometheus is not None:
            self._prometheus.close()


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class Check:
    params: type[Params]
    run: Callable[[Context, Any], Finding]


REGISTRY: dict[str, Check] = {}


def check(name: str, params: type[Params] = Params) -> Callable[[Callable[[Context, Any], Finding]], Any]:
    def register(fn: Callable[[Context, Any], Finding]) -> Callable[[Context, Any], Finding]:
        REGISTRY[name] = Check(params, fn)
        return fn

    return register


def run_check(name: str, context: Context, params: dict[str, Any]) -> Finding:
    spec = REGISTRY[name]
    try:
        return spec.run(context, spec.params.model_validate(params))
    except PlatformUnavailable as exc:
        return Finding("unavailable", exc.message)
    except EthixError as exc:
        return Finding("fail", exc.message)


def _per_service(context: Context, judge: Callable[[ServiceSpec], list[str]], ok: str) -> Finding:
    problems = [f"{service}: {p}" for service in context.services for p in judge(context.spec(service))]
    return _failed(problems) if problems else _passed(f"{ok} ({', '.join(context.services)})")


# the ledger -------------------------------------------------------------------------------------


@check("no_release_in_progress")
def _no_release_in_progress(context: Context, params: Params) -> Finding:
    running = [op for op in context.ledger.all_in_progress(context.environment.name) if op.kind == "release"]
    if running:
        return _failed([f"release {op.short_id} of {op.subject} is in phase {op.phase}" for op in running])
    return _passed("no release in progress")


def _age(op: Operation) -> str:
    days = (time.time() - (op.finished_at or op.started_at)) / DAY
    return f"{days:.1f} days ago" if days >= 1 else f"{days * 24:.1f} hours ago"


class SmokeParams(Params):
    max_age_hours: float = Field(default=168, gt=0)


@check("last_smoke_green", SmokeParams)
def _last_smoke_green(context: Context, params: SmokeParams) -> Finding:
    from ethixctl.smoke.ledger import last_run

    problems = []
    for service in context.services:
        run = last_run(context.ledger, context.environment.name, service)
        if run is None:
            problems.append(
                f"{service}: no smoke run recorded (`ethixctl smoke --env {context.environment.name}`)"
            )
        elif run.status != "passed":
            problems.append(f"{service}: the last smoke run {run.status} ({_age(run)}: {run.reason})")
        elif time.time() - (run.finished_at or run.started_at) > params.max_age_hours * 3600:
            problems.append(
                f"{service}: the last smoke run is older than {params.max_age_hours:g} h ({_age(run)})"
            )
    return _failed(problems) if problems else _passed("the last smoke run of each service passed")


class RotationParams(Params):
    # Secret id -> longest time between rotations; other secrets the services reference get the default.
    max_age_days: dict[str, float] = Field(default_factory=dict)
    default_max_age_days: float = Field(default=90, gt=0)
    succeeded: list[str] = Field(default_factory=lambda: list(SUCCEEDED))


def _last_success(context: Context, kind: str, subject: str | None, succeeded: list[str]) -> Operation | None:
    return next(
        (
            op
            for op in context.ledger.iter_operations(
                context.environment.name, kind, subject, newest_first=True
            )
            if op.status in succeeded
        ),
        None,
    )


@check("secrets_rotated", RotationParams)
def _secrets_rotated(context: Context, params: RotationParams) -> Finding:
    referenced = {e.secret for s in context.services for e in context.spec(s).env if e.secret}
    periods = {name: params.default_max_age_days for name in referenced} | params.max_age_days
    problems = []
    for secret, days in sorted(periods.items()):
        done = _last_success(context, "rotation", secret, params.succeeded)
        if done is None:
            problems.append(f"{secret}: no rotation recorded in the ledger (due every {days:g} days)")
        elif time.time() - (done.finished_at or done.started_at) > days * DAY:
            problems.append(f"{secret}: overdue, last rotated {_age(done)} (due every {days:g} days)")
    return _failed(problems) if problems else _passed(f"{len(periods)} secret(s) rotated on schedule")


class DrillParams(Params):
    max_age_days: float = Field(default=7, gt=0)
    succeeded: list[str] = Field(default_factory=lambda: list(SUCCEEDED))


@check("last_drill", DrillParams)
def _last_drill(context: Context, params: DrillParams) -> Finding:
    done = _last_success(context, "drill", None, params.succeeded)
    if done is None:
        return _failed(["no successful DR drill recorded in the ledger (`ethixctl dr-drill`)"])
    if time.time() - (done.finished_at or done.started_at) > params.max_age_days * DAY:
        when = _age(done)
        return _failed(
            [f"the last good DR drill ({done.subject}) was {when}; due every {params.max_age_days:g} days"]
        )
    return _passed(f"DR drill {done.subject} passed {_age(done)}")


# Prometheus -------------------------------------------------------------------------------------


@check("metrics_ready")
def _metrics_ready(context: Context, params: Params) -> Finding:
    """Gates need data: under the app source every service has an up scrape target (where Prometheus
    lists targets) or at least request series; under cloudrun Cloud Run's request series exist."""
    from ethixctl.adapters.prometheus import NotOffered

    prometheus = context.prometheus()
    problems = []
    targets = None
    if context.metric_source == "app":
        try:
            targets = prometheus.targets()
        except NotOffered:
            targets = None  # Managed Prometheus: its collector scrapes; look for the series instead
    for service in context.services:
        if targets is not None:
            mine = [t for t in targets if t.labels.get("service") == service]
            if not mine:
                problems.append(f"{service}: no scrape target")
            problems.extend(
                f"{service}: target {t.scrape_url} is {t.health}" for t in mine if t.health != "up"
            )
            continue
        metric, label = (
            ("http_requests_total", "service")
            if context.metric_source == "app"
            else ("run_googleapis_com:request_count", "service_name")
        )
        if not prometheus.query(f'count({metric}{{{label}="{service}"}})'):
            problems.append(f"{service}: no {metric} series")
    return (
        _failed(problems)
        if problems
        else _passed(f"{context.metric_source} metrics present for every service")
    )


# the services' Cloud Run specs ------------------------------------------------------------------


class RequiredParams(Params):
    # Service -> variables production needs ("*": every service); each must be a setting the service reads.
    required: dict[str, list[str]]


def _entry(spec: ServiceSpec, name: str) -> EnvEntry | None:
    """The spec's entry for the setting ``name``, under any name the service reads it from."""
    from ethixctl.preflight.catalog import catalog

    variable = (catalog(spec.name) or {}).get(name)
    names = variable.names if variable is not None else (name,)
    return next((entry for n in names if (entry := spec.variable(n)) is not None), None)


@check("required_variables", RequiredParams)
def _required_variables(context: Context, params: RequiredParams) -> Finding:
    from ethixctl.preflight.catalog import catalog

    def judge(spec: ServiceSpec) -> list[str]:
        variables = catalog(spec.name)
        if variables is None:
            return ["not a bundled service: no settings class to build its catalog from"]
        wanted = [*params.required.get("*", []), *params.required.get(spec.name, [])]
        unknown = [name for name in wanted if name not in variables]
        if unknown:
            return [f"{', '.join(unknown)}: not read by its settings (the checklist is out of date)"]
        missing = [name for name in wanted if _entry(spec, name) is None]
        return [f"missing {', '.join(missing)}"] if missing else []

    return _per_service(context, judge, "every required variable is set")


@check("no_inline_secrets")
def _no_inline_secrets(context: Context, params: Params) -> Finding:
    from ethixctl.preflight.catalog import catalog

    def judge(spec: ServiceSpec) -> list[str]:
        secrets = {v.name for v in (catalog(spec.name) or {}).values() if v.secret}
        inline = [
            e.name
            for e in spec.env
            if e.secret is None and (e.name in secrets or any(w in e.name for w in _SECRET_WORDS))
        ]
        return [f"{name} is set inline: reference a Secret Manager secret instead" for name in inline]

    return _per_service(context, judge, "no secret value inline")


@check("secrets_by_alias")
def _secrets_by_alias(context: Context, params: Params) -> Finding:
    def judge(spec: ServiceSpec) -> list[str]:
        return [
            f"{e.name} reads {e.secret} version {e.version or 'latest'}: use an alias (e.g. current)"
            for e in spec.env
            if e.secret and (e.version is None or e.version == "latest" or e.version.isdigit())
        ]

    return _per_service(context, judge, "every secret is referenced by alias")


@check("probes")
def _probes(context: Context, params: Params) -> Finding:
    def judge(spec: ServiceSpec) -> list[str]:
        missing = [
            kind
            for kind, present in (("startup", spec.startup_probe), ("liveness", spec.liveness_probe))
            if not present
        ]
        return [f"no {' or '.join(missing)} probe"] if missing else []

    return _per_service(context, judge, "startup and liveness probes set")


class EqualsParams(Params):
    variable: str
    values: list[str] = Field(min_length=1)  # any of these (case-insensitive)
    unset_ok: bool = False  # unset is fine when the service's production default is what we want
    services: list[str] | None = None  # only these services (default: every checked service)


@check("env_equals", EqualsParams)
def _env_equals(context: Context, params: EqualsParams) -> Finding:
    wanted = " or ".join(params.values)

    def judge(spec: ServiceSpec) -> list[str]:
        if params.services is not None and spec.name not in params.services:
            return []
        entry = _entry(spec, params.variable)
        if entry is None:
            return [] if params.unset_ok else [f"{params.variable} is not set (want {wanted})"]
        if entry.secret is not None or (entry.value or "").strip().lower() not in [
            v.lower() for v in params.values
        ]:
            return [f"{params.variable} is not {wanted}"]  # the value itself is never shown
        return []

    return _per_service(context, judge, f"{params.variable}={wanted}{' or unset' if params.unset_ok else ''}")


class UnsetParams(Params):
    variables: list[str] = Field(min_length=1)


@check("env_off", UnsetParams)
def _env_off(context: Context, params: UnsetParams) -> Finding:
    def judge(spec: ServiceSpec) -> list[str]:
        on = [
            name
            for name in params.variables
            if (entry := spec.variable(name)) is not None
            and (entry.value or "0").strip() not in ("", "0", "0.0")
        ]
        return [f"{', '.join(on)} set"] if on else []

    return _per_service(context, judge, f"{', '.join(params.variables)} off")


class MinInstancesParams(Params):
    min: int = Field(default=1, ge=1)


@check("min_instances", MinInstancesParams)
def _min_instances(context: Context, params: MinInstancesParams) -> Finding:
    def judge(spec: ServiceSpec) -> list[str]:
        if spec.min_instances < params.min:
            return [f"minimum instances {spec.min_instances}, need {params.min} (cold starts)"]
        return []

    return _per_service(context, judge, f"at least {params.min} instance(s) kept warm")


@check("cors_restricted")
def _cors_restricted(context: Context, params: Params) -> Finding:
    """Browsers may call the API only from listed https origins; unset allows none (restricted too)."""

    def judge(spec: ServiceSpec) -> list[str]:
        entry = _entry(spec, "ETHIX_CORS_ORIGINS")
        if entry is None:
            return []
        origins = [o.strip().strip('[]"') for o in (entry.value or "").split(",") if o.strip()]
        loose = [o for o in origins if o == "*" or not o.startswith("https://")]
        return [f"ETHIX_CORS_ORIGINS allows {', '.join(loose)}"] if loose else []

    return _per_service(context, judge, "CORS limited to https origins (or none)")


@check("rollback_target")
def _rollback_target(context: Context, params: Params) -> Finding:
    """A release can only be rolled back to a ready revision that serves all traffic now."""
    run = context.cloud_run()
    problems = []
    for service in context.services:
        split = run.serving_split(service)
        if len(split) != 1:
            problems.append(f"{service}: traffic is split {split}; finish or roll back that first")
            continue
        [revision] = split
        if not run.get_revision(service, revision).ready:
            problems.append(f"{service}: the serving revision {revision} is not ready")
    return _failed(problems) if problems else _passed("one ready revision serves each service")
