"""The main demo (``python3 tasks.py demo``): the release-and-rollback playbook on the local platform.

1. ``ethixctl up`` — control plane, Caddy, Prometheus and one revision of each service.
2. ``ethixctl smoke`` — the post-deploy suite against the backend.
3. A good canary release of a freshly built backend image: 10% → 50% → 100%, promoted.
4. A bad canary (``ETHIX_FAULT_ERROR_RATE=0.2``): the first gate fails, traffic goes back automatically.
5. ``ethixctl history`` — what the ledger recorded.

Holds are compressed (a few seconds per step, with generated load) so the demo takes about two minutes;
production holds come from ``playbooks/release.yaml``.
"""

from __future__ import annotations

import sys

from ethixctl import output
from ethixctl.cli import main as ethixctl
from ethixctl.exitcodes import ExitCode

DEMO_RELEASE_FLAGS = ["--hold", "8", "--interval", "2", "--load", "40", "--yes"]


def _step(title: str, argv: list[str], expect: int = ExitCode.OK) -> None:
    output.info(output.markup("\n[bold]▶ {}[/bold]  [dim]ethixctl {}[/dim]", title, " ".join(argv)))
    code = ethixctl(argv)
    if code != expect:
        output.error(f"demo step failed: `ethixctl {' '.join(argv)}` exited {code}, expected {int(expect)}")
        sys.exit(1)


def run(state_dir: str | None = None, *, free_ports: bool = False) -> None:
    scope = ["--state-dir", state_dir] if state_dir else []
    _step("Start the local platform", ["up", *scope, *(["--free-ports"] if free_ports else [])])
    _step("Smoke-test the backend", ["smoke", "--env", "local", *scope])
    _step(
        "Release a good backend build (canary 10% → 50% → 100%)",
        ["release", "backend", "--image", "build", *DEMO_RELEASE_FLAGS, *scope],
    )
    _step(
        "Release a bad build: 20% of requests fail; the error-rate gate rolls it back at 10%"
        " (smoke skipped so the Prometheus gate is what catches it)",
        [
            "release",
            "backend",
            "--image",
            "build",
            "--set-env",
            "ETHIX_FAULT_ERROR_RATE=0.2",
            "--no-smoke",
            *DEMO_RELEASE_FLAGS,
            *scope,
        ],
        expect=ExitCode.ROLLED_BACK,
    )
    _step("What the ledger recorded", ["history", "backend", *scope])
    _step("Where traffic is now", ["status", *scope])
    output.success("demo finished; the platform is still running — `ethixctl down` stops it")


if __name__ == "__main__":
    arguments = [a for a in sys.argv[1:] if a != "--free-ports"]
    run(arguments[0] if arguments else None, free_ports="--free-ports" in sys.argv)
