"""Run the benchmarks: ``python -m bench [NAME ...]`` (names: cli, ai_core, dr, platform, release, smoke).

Every benchmark measures its own baseline in the same run (the machines are shared and noisy) and
reports ratios against it. The summary is printed as JSON and written to ``bench/results/latest.json``;
``bench/README.md`` keeps the figures of the last run we wrote down.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import platform
import sys
import time
from pathlib import Path

import bench

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
    summary: dict[str, object] = {
        "machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version()},
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    for name in names:
        print(f"[bench] {name} …", file=sys.stderr, flush=True)
        module = importlib.import_module(f"bench.bench_{name}")
        started = time.perf_counter()
        result = module.run()
        result["bench_seconds"] = round(time.perf_counter() - started, 1)
        summary[name] = result
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
