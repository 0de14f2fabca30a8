"""CLI start-up: ``ethixctl --help`` against ``python -c "import typer, rich"`` (goal: ratio ≤ 1.3).

The two commands are run interleaved, so both see the same machine load; we compare medians.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time

RUNS = 15
GOAL_RATIO = 1.3


def _time(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def run() -> dict[str, object]:
    baseline_cmd = [sys.executable, "-c", "import typer, rich"]
    commands = {
        "help": [sys.executable, "-m", "ethixctl", "--help"],
        "version": [sys.executable, "-m", "ethixctl", "--version"],
    }
    _time(baseline_cmd)  # warm the page cache for both
    for argv in commands.values():
        _time(argv)
    baseline: list[float] = []
    timings: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(RUNS):
        baseline.append(_time(baseline_cmd))
        for name, argv in commands.items():
            timings[name].append(_time(argv))
    base = statistics.median(baseline)
    result: dict[str, object] = {
        "baseline_import_typer_rich_ms": round(base * 1000, 1),
        "goal_ratio": GOAL_RATIO,
    }
    for name, values in timings.items():
        median = statistics.median(values)
        result[f"{name}_ms"] = round(median * 1000, 1)
        result[f"{name}_ratio"] = round(median / base, 2)
    result["meets_goal"] = result["help_ratio"] <= GOAL_RATIO  # type: ignore[operator]
    return result


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
