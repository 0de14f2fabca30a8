"""Release engine on the real local platform (`ethixctl up` in a temp state dir, free ports).

* gate evaluation: all queries of one interval (targets, request count, two gates, baseline
  comparison = four range queries); baseline: one plain instant query, the floor per round trip.
  Goal ≤ 50 ms.
* compressed release: 3 steps × 10 s holds, analysis every 2 s, 40 RPS of load. ethixctl's overhead
  is the wall time beyond deploy, the holds and the analysis warm-up (the first window after a
  traffic change, when data is too thin to judge). Goal ≤ 10 % of the holds.
* rollback: until 20 consecutive probes through the router come from the target revision.
  Baseline: the bare control-plane traffic update. Goal ≤ 2 s (the runbook's target is 5 min).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

HOLD = 10.0
INTERVAL = 2.0
GOAL_GATE_MS = 50.0
GOAL_ROLLBACK_S = 2.0
GOAL_OVERHEAD = 0.10


def run() -> dict[str, object]:
    from ethixctl.platform import lifecycle

    with tempfile.TemporaryDirectory(prefix="bench-release-") as tmp:
        state_dir = Path(tmp)
        info = lifecycle.up(state_dir, free_ports=True, timeout=240).info
        try:
            return _measure(state_dir, info)
        finally:
            lifecycle.down(state_dir)


def _measure(state_dir: Path, info: dict[str, Any]) -> dict[str, object]:
    from ethixctl.adapters.cloudrun import CloudRun
    from ethixctl.adapters.prometheus import Prometheus
    from ethixctl.ops.ledger import Ledger
    from ethixctl.release import analysis, playbook
    from ethixctl.release.notify import Event, Notifier
    from ethixctl.release.orchestrator import Options, Orchestrator
    from ethixctl.release.rollback import plan_rollback, rollback

    run = CloudRun("local", "local", endpoint=info["control_plane_url"])
    book = playbook.load()
    events: list[Event] = []
    with Ledger(state_dir) as ledger, Prometheus(info["prometheus_url"]) as prometheus:
        notify = Notifier(ledger, "backend", "local", events.append, [])
        options = Options(
            service="backend", image=run.get_service("backend").image, environment="local",
            hold=HOLD, interval=INTERVAL, load_rps=40,
        )  # fmt: skip
        started = time.monotonic()
        result = Orchestrator(run, prometheus, ledger, book, notify).start(options)
        total = time.monotonic() - started
        assert result.status == "promoted", result
        release = _release_breakdown(events, total)

        timing = book.timing("local")
        gate_ms = []
        floor_ms = []
        for _ in range(20):
            verdict = analysis.evaluate(
                prometheus, book, service="backend", canary=result.canary or "", stable=result.stable,
                timing=timing, compare=True,
            )  # fmt: skip
            gate_ms.append(verdict.duration * 1000)
            t0 = time.perf_counter()
            prometheus.query("up")
            floor_ms.append((time.perf_counter() - t0) * 1000)

        rollbacks = []
        bare = []
        for _ in range(3):
            planned = plan_rollback(run, ledger, "backend", "local", None)
            outcome = rollback(run, ledger, notify, planned)
            rollbacks.append(outcome.only_target_seconds)
            t0 = time.monotonic()
            run.set_traffic("backend", run.serving_split("backend"))
            bare.append(time.monotonic() - t0)
    measured = [r for r in rollbacks if r is not None]
    gate_median = statistics.median(gate_ms)
    return {
        "gate_evaluation_ms": {
            "median": round(gate_median, 1),
            "max": round(max(gate_ms), 1),
            "one_query_floor_ms": round(statistics.median(floor_ms), 1),
            "goal_ms": GOAL_GATE_MS,
            "met": gate_median <= GOAL_GATE_MS,
        },
        "compressed_release": release,
        "rollback_seconds": {
            "runs": [None if r is None else round(r, 3) for r in rollbacks],
            "median": round(statistics.median(measured), 3) if measured else None,
            "bare_traffic_update_median": round(statistics.median(bare), 3),
            "goal": GOAL_ROLLBACK_S,
            "met": bool(measured) and len(measured) == len(rollbacks) and max(measured) <= GOAL_ROLLBACK_S,
        },
    }


def _release_breakdown(events: list[Any], total: float) -> dict[str, object]:
    """Split the wall time into deploy, holds, warm-up and ethixctl's own overhead, from the event times."""
    first = events[0].at
    deployed = next(e.at for e in events if e.kind == "deployed")
    step_starts = [e.at for e in events if e.kind == "step"]
    end = events[-1].at
    gates = [e for e in events if e.kind == "gate"]
    warmup = INTERVAL * sum(1 for e in gates if e.data["decision"]["next"] == "retry")
    holds = HOLD * len(step_starts)
    overhead = (end - deployed) - holds - warmup
    return {
        "total_seconds": round(total, 1),
        "deploy_seconds": round(deployed - first, 1),
        "holds_seconds": holds,
        "warmup_retries_seconds": warmup,
        "steps_seconds": round(end - step_starts[0], 1) if step_starts else None,
        "overhead_seconds": round(overhead, 2),
        "overhead_ratio": round(overhead / holds, 3),
        "goal_ratio": GOAL_OVERHEAD,
        "met": overhead / holds <= GOAL_OVERHEAD,
    }
