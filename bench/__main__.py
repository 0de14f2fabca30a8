"""Run the benchmarks: ``python -m bench [NAME ...]`` (``python -m bench --help`` lists the names).

Every benchmark measures its own baseline in the same run (the machines are shared and noisy) and
reports ratios against it, or labels a figure absolute. The results are printed as JSON and merged into
``bench/results/latest.json`` on every run: each benchmark keeps its newest result with the time and
machine it ran on, so running them one at a time still leaves one file that holds them all. That file
is committed: the figures in ``bench/README.md`` and the README come from it.
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import platform
import sys
import time
from pathlib import Path

import bench
from ethixctl.files import write_atomic

RESULTS = Path(__file__).resolve().parent / "results"


def available() -> list[str]:
    return sorted(
        m.name.removeprefix("bench_")
        for m in pkgutil.iter_modules(bench.__path__)
        if m.name.startswith("bench_")
    )


def main(argv: list[str]) -> int:
    names = argv or available()
    unknown = sorted(set(names) - set(available()))
    if unknown:
        print(
            f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(available())}",
            file=sys.stderr,
        )
        return 2
    machine = {"cpus": os.cpu_count(), "python": platform.python_version()}
    latest = RESULTS / "latest.json"
    recorded: dict[str, object] = json.loads(latest.read_text()) if latest.exists() else {}
    summary: dict[str, object] = {}
    for name in names:
        print(f"[bench] {name} …", file=sys.stderr, flush=True)
        module = importlib.import_module(f"bench.bench_{name}")
        started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        started = time.perf_counter()
        result = module.run()
        result["bench_seconds"] = round(time.perf_counter() - started, 1)
        summary[name] = {"started_at": started_at, "machine": machine, **result}
        # Written after each benchmark, so an interrupted run still records the ones that finished.
        recorded[name] = summary[name]
        write_atomic(latest, json.dumps(dict(sorted(recorded.items())), indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
