"""Release engine on the real local platform (`ethixctl up` in a temp state dir, free ports).

* gate evaluation: all queries of one interval (targets, request count, every threshold gate, baseline
  comparison = four range queries) through the adapter (prometheus-api-client, with its retry
  adapter and timeouts). Baseline: one plain instant query over a bare ``requests`` session, the floor
  per round trip; ratio evaluation / one query. Goal ≤ 50 ms.
* compressed release: 3 steps, hold 10 s and analysis every 2 s (configuration), 40 RPS of load. The
  orchestrator sleeps one interval before each analysis by design; the baseline is that scheduled
  waiting (configured interval × the number of analyses it measurably ran, warm-up retries included).
  ethixctl's overhead is the measured wall time of the steps beyond it. Goal ≤ 10 % of the waiting.
* rollback: until 20 consecutive probes through the router come from the target revision. Baseline:
  the same traffic move as a bare ``set_traffic`` through the Cloud Run adapter (no ledger, no
  probing), timed until the control plane confirms it. Goal ≤ 2 s (the runbook's target is 5 min).
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
    import requests

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
    timing = book.timing("local")
    plain = requests.Session()
    with (
        Ledger(state_dir) as ledger,
        Prometheus(info["prometheus_url"], budget=INTERVAL) as prometheus,
    ):
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

        gate_ms = []
        cloudrun_ms = []
        floor_ms = []
        # The cloudrun metric source reads the recording rules' run_googleapis_com:* series.
        cloudrun = timing.model_copy(update={"metric_source": "cloudrun"})
        for _ in range(20):
            for source_timing, durations in ((timing, gate_ms), (cloudrun, cloudrun_ms)):
                verdict = analysis.evaluate(
                    prometheus, book, service="backend", canary=result.canary or "", stable=result.stable,
                    timing=source_timing, compare=True,
                )  # fmt: skip
                durations.append(verdict.duration * 1000)
            t0 = time.perf_counter()
            plain.get(f"{info['prometheus_url']}/api/v1/query", params={"query": "up"}, timeout=5).json()
            floor_ms.append((time.perf_counter() - t0) * 1000)

        rollbacks: list[float | None] = []
        bare: list[float] = []
        for _ in range(3):
            promoted = run.serving_split("backend")
            planned = plan_rollback(run, ledger, "backend", "local", None)
            outcome = rollback(run, ledger, notify, planned)
            rollbacks.append(outcome.only_target_seconds)
            # The same move back, bare; recorded in the ledger outside the timed part.
            change = ledger.intend_traffic("backend", "local", promoted, "benchmark: bare move back", None)
            t0 = time.perf_counter()
            run.set_traffic("backend", promoted)
            bare.append(time.perf_counter() - t0)
            ledger.confirm_traffic(change)
    measured = [r for r in rollbacks if r is not None]
    plain.close()
    gate_median = statistics.median(gate_ms)
    cloudrun_median = statistics.median(cloudrun_ms)
    floor_median = statistics.median(floor_ms)
    rollback_median = statistics.median(measured) if measured else None
    bare_median = statistics.median(bare)
    return {
        "gate_evaluation_ms": {
            "median": round(gate_median, 1),
            "max": round(max(gate_ms), 1),
            "baseline_one_query_ms": round(floor_median, 1),
            "ratio_to_one_query": round(gate_median / floor_median, 1),
            "median_cloudrun_source": round(cloudrun_median, 1),
            "cloudrun_ratio_to_one_query": round(cloudrun_median / floor_median, 1),
            "goal_ms": GOAL_GATE_MS,
            "met": max(gate_median, cloudrun_median) <= GOAL_GATE_MS,
        },
        "compressed_release": release,
        "rollback_seconds": {
            "runs": [None if r is None else round(r, 3) for r in rollbacks],
            "median": None if rollback_median is None else round(rollback_median, 3),
            "baseline_bare_set_traffic_median": round(bare_median, 3),
            "ratio_to_bare_set_traffic": None
            if rollback_median is None
            else round(rollback_median / bare_median, 2),
            "goal": GOAL_ROLLBACK_S,
            "met": bool(measured) and len(measured) == len(rollbacks) and max(measured) <= GOAL_ROLLBACK_S,
        },
    }


def _release_breakdown(events: list[Any], total: float) -> dict[str, object]:
    """Split the wall time of the steps into the scheduled waiting (configured interval × analyses run)
    and ethixctl's own overhead, from the event times."""
    first = events[0].at
    deployed = next(e.at for e in events if e.kind == "deployed")
    step_starts = [e.at for e in events if e.kind == "step"]
    end = events[-1].at
    gates = [e for e in events if e.kind == "gate"]
    retries = sum(1 for e in gates if e.data["decision"]["next"] == "retry")
    steps_wall = end - step_starts[0]
    scheduled = INTERVAL * len(gates)
    overhead = steps_wall - scheduled
    return {
        "config_steps": len(step_starts),
        "config_hold_s": HOLD,
        "config_interval_s": INTERVAL,
        "total_s": round(total, 1),
        "deploy_s": round(deployed - first, 1),
        "steps_wall_s": round(steps_wall, 2),
        "analyses_run": len(gates),
        "analyses_retried_warmup": retries,
        "baseline_scheduled_wait_s": scheduled,
        "overhead_s": round(overhead, 2),
        "ratio_overhead_to_scheduled_wait": round(overhead / scheduled, 3),
        "goal_ratio": GOAL_OVERHEAD,
        "met": overhead / scheduled <= GOAL_OVERHEAD,
    }
