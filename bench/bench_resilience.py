"""Resilience benchmark (issue #14): what each part's death costs, and memory over many releases.

* Chaos: on a real platform (`ethixctl up`), a client probes the backend through the router every
  50 ms while each part is killed with SIGKILL in turn (revision, public router, internal router,
  Prometheus, control plane, daemon; the daemon is brought back by `ethixctl up` 2 s later). Per part:
  the recovery time (kill → back with its configuration and traffic flowing) and the failed probes.
  Baseline, same run: the failed probes over an equal window with nothing killed.
* Memory: the platform's total RSS (daemon, parts, revisions) after 1 release and after 50, each
  release being what `ethixctl release` does to the platform (a tagged canary at 0%, traffic 10 → 50 →
  100%, the tag dropped). Revisions left at 0% scale to zero, so the ratio stays flat. The cold-start
  time of a scaled-to-zero revision (a rollback to the previous one) is reported too.

``python -m bench resilience`` prints JSON.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from ethixctl.adapters.cloudrun import CloudRun
from ethixctl.platform import lifecycle, state
from tests.ethixctl.platform.chaos import PARTS, Prober, kill_and_recover

RELEASES = 50
IDLE_TIMEOUT = 5.0


def _rss_mb(state_dir: Path) -> float:
    info = state.read_json(state_dir / state.PLATFORM_FILE) or {}
    runtime = state.read_json(state_dir / state.RUNTIME_FILE) or {}
    pids = {pid for pid in (info.get("pids") or {}).values() if isinstance(pid, int)}
    pids |= {r["pid"] for r in (runtime.get("revisions") or {}).values() if isinstance(r.get("pid"), int)}
    total_kb = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
        except OSError:
            continue
    return round(total_kb / 1024, 1)


def _release(run: CloudRun, image: str, number: int) -> None:
    canary = run.deploy_revision("backend", image, {"BENCH_RELEASE": str(number)}, tag="canary", timeout=150)
    for weight in (10, 50):
        stable = next(r for r, p in run.serving_split("backend").items() if r != canary.name and p)
        run.set_traffic("backend", {canary.name: weight, stable: 100 - weight})
    run.set_traffic("backend", {canary.name: 100}, tags={})


def _settle(seconds: float = IDLE_TIMEOUT + 5) -> None:
    """Let scale-downs and restarts finish before memory is read."""
    time.sleep(seconds)


def _chaos(state_dir: Path) -> dict[str, Any]:
    url = (state.read_json(state_dir / state.PLATFORM_FILE) or {})["services"]["backend"]
    figures: dict[str, Any] = {}
    with Prober(url) as prober:
        time.sleep(1.0)
        quiet_from = time.monotonic()
        time.sleep(5.0)
        figures["baseline_failed_probes_5s"] = prober.failed_since(quiet_from)
        for part in PARTS:
            recovery = kill_and_recover(
                state_dir, part, prober, up_args=("--idle-timeout", f"{IDLE_TIMEOUT:g}")
            )
            figures[part] = {
                "recovery_s": recovery.seconds,
                "failed_probes": recovery.failed_requests,
                "configuration_kept": all(recovery.checks.values()),
            }
            time.sleep(2.0)
        figures["probes"] = len(prober.results)
    return figures


def _memory(state_dir: Path) -> dict[str, Any]:
    info = state.read_json(state_dir / state.PLATFORM_FILE) or {}
    run = CloudRun("local", "local", info["control_plane_url"])
    image = run.get_service("backend").image
    _release(run, image, 1)
    _settle()
    after_one = _rss_mb(state_dir)
    durations = []
    for number in range(2, RELEASES + 1):
        started = time.perf_counter()
        _release(run, image, number)
        durations.append(time.perf_counter() - started)
    _settle()
    after_many = _rss_mb(state_dir)
    # A rollback to the previous release's revision, scaled to zero by now: a cold start.
    split = run.serving_split("backend")
    previous = sorted(r.name for r in run.list_revisions("backend") if r.name not in split)[-1]
    started = time.perf_counter()
    run.set_traffic("backend", {previous: 100})
    rollback = time.perf_counter() - started
    runtime = state.read_json(state_dir / state.RUNTIME_FILE) or {}
    running = sum(1 for r in runtime["revisions"].values() if r["state"] in ("READY", "STARTING"))
    return {
        "rss_after_1_release_mb": after_one,
        "rss_after_50_releases_mb": after_many,
        "rss_ratio_50_vs_1": round(after_many / after_one, 2),
        "revisions": len(runtime["revisions"]),
        "revisions_running": running,
        "release_platform_ops_median_s": round(statistics.median(durations), 2),
        "rollback_to_scaled_to_zero_s": round(rollback, 2),
        "cold_start_s": runtime["revisions"][previous]["last_cold_start_seconds"],
    }


def run() -> dict[str, Any]:
    base = Path(tempfile.mkdtemp(prefix="bench-resilience-"))
    state_dir = base / "state"
    try:
        lifecycle.up(state_dir, free_ports=True, idle_timeout=IDLE_TIMEOUT)
        figures = {"chaos": _chaos(state_dir), "memory": _memory(state_dir)}
    finally:
        lifecycle.down(state_dir)
        shutil.rmtree(base, ignore_errors=True)
    figures["goals"] = {
        "recovery_s": "<= 5 for serving parts (revision, router-edge, router-split)",
        "daemon failed_probes": "0",
        "rss_ratio_50_vs_1": "<= 1.5",
    }
    return figures
