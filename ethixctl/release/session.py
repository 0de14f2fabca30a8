"""The parts one release/rollback/history command works with, resolved from an environment."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ethixctl.ops.ledger import Ledger

if TYPE_CHECKING:
    from ethixctl.adapters.cloudrun import CloudRun
    from ethixctl.adapters.prometheus import Prometheus
    from ethixctl.config import Environment
    from ethixctl.release.orchestrator import SmokeHook


@dataclass
class Session:
    environment: Environment
    ledger: Ledger

    def cloud_run(self) -> CloudRun:
        from ethixctl.adapters.cloudrun import CloudRun

        env = self.environment
        return CloudRun(env.project, env.region, endpoint=env.run_endpoint)

    def prometheus(self, budget: float = 10.0) -> Prometheus:
        """The environment's Prometheus, credentials included; one call (retries too) takes at most
        ``budget`` seconds: give the gate interval, so a slow Prometheus cannot stretch a step."""
        from ethixctl.adapters.prometheus import open_prometheus

        return open_prometheus(self.environment, budget=budget)

    def close(self) -> None:
        self.ledger.close()


def open_session(env: str | None, state_dir: Path | None) -> Session:
    from ethixctl.config import resolve_environment

    environment = resolve_environment(env, state_dir)
    return Session(environment, Ledger(environment.state_dir))


def smoke_hook(suite_path: Path | None = None) -> SmokeHook:
    """The smoke suite (ethixctl.smoke) as a release hook: passed or not, and a one-line summary."""
    from ethixctl.smoke.model import load_suite
    from ethixctl.smoke.runner import run_suite

    suite = load_suite(suite_path)

    def run(url: str) -> tuple[bool, str]:
        report = run_suite(url, suite)
        counts = ", ".join(f"{k} {v}" for k, v in report.counts().items() if v)
        return report.passed, f"{report.outcome} ({counts}) in {report.duration:.1f}s"

    return run
