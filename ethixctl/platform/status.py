"""What ``ethixctl status`` reports, as data: gathered through the Cloud Run and Prometheus adapters."""

from __future__ import annotations

from typing import Any

from ethixctl.config import Environment
from ethixctl.platform import state
from ethixctl.platform.images import service_id


def collect(environment: Environment, only: str | None = None) -> dict[str, Any]:
    from ethixctl.adapters.cloudrun import CloudRun
    from ethixctl.adapters.prometheus import PrometheusUnavailable, QueryError, open_prometheus

    cloudrun = CloudRun(environment.project, environment.region, environment.run_endpoint)
    services = [cloudrun.get_service(service_id(only))] if only else cloudrun.list_services()

    targets: dict[str, str] = {}
    alerts: list[dict[str, Any]] | None = []
    prometheus_up = True
    try:
        with open_prometheus(environment, budget=2.5) as prometheus:
            for target in prometheus.targets():
                if "revision" in target.labels:
                    targets[target.labels["revision"]] = target.health
            alerts = [
                {
                    "name": alert.name,
                    "service": alert.labels.get("service"),
                    "revision": alert.labels.get("revision"),
                    "severity": alert.labels.get("severity"),
                    "summary": alert.annotations.get("summary", ""),
                    "runbook": alert.annotations.get("runbook"),
                    "since": alert.active_at,
                }
                for alert in prometheus.alerts()
                if alert.state == "firing"
                and (only is None or alert.labels.get("service") == service_id(only))
            ]
    # Managed Prometheus has no targets or alerts API (QueryError): status then shows no scrape health
    # and no alerts (Cloud Monitoring alerting has those).
    except (PrometheusUnavailable, QueryError):
        prometheus_up = False
        alerts = None  # unknown, which is not the same as none firing

    runtime: dict[str, Any] = {}
    platform: dict[str, str] | None = None
    parts: dict[str, dict[str, Any]] | None = None
    if environment.kind == "local":
        from ethixctl.platform.lifecycle import part_health

        info = state.platform_info(environment.state_dir) or {}
        runtime = (state.read_json(environment.state_dir / state.RUNTIME_FILE) or {}).get("revisions", {})
        if info:
            platform = {
                name: "up" if ok else "down" for name, ok in part_health(info, environment.state_dir).items()
            }
            parts = {
                name: {key: record.get(key) for key in ("state", "restarts", "last_exit", "pid")}
                for name, record in (info.get("parts") or {}).items()
            }

    out = []
    releases = _releases_in_progress(environment, [svc.name for svc in services])
    for svc in sorted(services, key=lambda s: s.name):
        percent: dict[str, int] = {}
        tags: dict[str, list[dict[str, str | None]]] = {}
        for entry in svc.traffic:
            if entry.revision is None:
                continue
            percent[entry.revision] = percent.get(entry.revision, 0) + entry.percent
            if entry.tag:
                tags.setdefault(entry.revision, []).append({"tag": entry.tag, "url": entry.uri})
        revisions = []
        for rev in sorted(cloudrun.list_revisions(svc.name), key=lambda r: r.create_time, reverse=True):
            local = runtime.get(rev.name, {})
            health = targets.get(rev.name)
            revisions.append(
                {
                    "name": rev.name,
                    "percent": percent.get(rev.name, 0),
                    "tags": tags.get(rev.name, []),
                    "ready": rev.ready,
                    "state": local.get("state"),
                    "restarts": local.get("restarts"),
                    "cold_starts": local.get("cold_starts"),
                    "last_cold_start_seconds": local.get("last_cold_start_seconds"),
                    # local platform: False while its readiness probe fails (no traffic reaches it)
                    "serving": local.get("serving"),
                    "probes": local.get("probes"),
                    "message": rev.message,
                    "image": rev.image,
                    "created": rev.create_time.isoformat() if rev.create_time else None,
                    "prometheus": health
                    if health
                    else ("unreachable" if not prometheus_up else "not scraped"),
                }
            )
        out.append(
            {
                "name": svc.name,
                "url": svc.uri,
                "latest_ready_revision": svc.latest_ready_revision,
                "traffic": {name: pct for name, pct in percent.items() if pct},
                "release_in_progress": releases.get(svc.name),
                "revisions": revisions,
            }
        )
    return {
        "environment": environment.name,
        "kind": environment.kind,
        "platform": platform,
        "parts": parts,
        "prometheus_url": environment.prometheus_url,
        "alerts": alerts,
        "services": out,
    }


def _releases_in_progress(environment: Environment, services: list[str]) -> dict[str, dict[str, Any]]:
    """Releases the ledger records as unfinished: a running canary, or one interrupted mid-way."""
    if not (environment.state_dir / "ledger.db").exists():
        return {}
    from ethixctl.ops.ledger import Ledger
    from ethixctl.release import releases

    ledger = Ledger(environment.state_dir)
    try:
        found = {}
        for service in services:
            release = releases.in_progress(ledger, service, environment.name)
            if release is not None:
                found[service] = {
                    "id": release.id,
                    "image": release.image,
                    "phase": release.phase,
                    "step": release.step,
                    "canary_revision": release.canary_revision,
                    "stable_revision": release.stable_revision,
                    "user": release.user,
                    "started_at": release.started_at,
                }
        return found
    finally:
        ledger.close()


def data_plane(environment: Environment) -> dict[str, Any] | None:
    """What still serves of a local platform whose daemon is gone, else None (nothing runs).

    The data plane outlives the daemon: the router, Prometheus and the revisions keep serving while the
    control plane, which exits with its daemon, is down; ``platform.json`` and ``runtime.json`` still
    say where they are, and each recorded process is checked by pid and start time.
    """
    import httpx

    from ethixctl import procs
    from ethixctl.platform.lifecycle import part_running

    info = state.read_json(environment.state_dir / state.PLATFORM_FILE) or {}
    runtime = state.read_json(environment.state_dir / state.RUNTIME_FILE) or {}
    running = {
        name: part_running(info, name, environment.state_dir)
        for name in ("router-edge", "router-split", "prometheus", "control-plane")
    }
    revisions = {
        name: {"service": record.get("service"), "pid": record["pid"]}
        for name, record in (runtime.get("revisions") or {}).items()
        if isinstance(record.get("pid"), int)
        and procs.adopt(name, record["pid"], record.get("started")) is not None
    }
    if not any(running.values()) and not revisions:
        return None
    services = {}
    for name, url in (info.get("services") or {}).items():
        try:
            serving = httpx.get(f"{url}/health/liveness", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            serving = False
        services[name] = {
            "url": url,
            "serving": serving,
            "revisions": sorted(rev for rev, record in revisions.items() if record["service"] == name),
        }
    return {
        "environment": environment.name,
        "kind": environment.kind,
        "daemon": "down",
        "platform": {
            "router": "up" if running["router-edge"] and running["router-split"] else "down",
            "prometheus": "up" if running["prometheus"] else "down",
            "control_plane": "up" if running["control-plane"] else "down",
        },
        "services": services,
    }
