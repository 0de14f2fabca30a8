"""The control plane as a process of its own: ``python -m ethixctl.platform.controlplane --state-dir D``.

The platform daemon starts it and restarts it with backoff when it dies. It serves the Cloud Run and
Secret Manager APIs and runs the runtime: revisions, the router's configuration, Prometheus's targets.
Dying, it leaves revisions and the router serving; the next one adopts them. It never outlives the
daemon: when its parent is gone it exits, so traffic never changes while no daemon runs. SIGTERM (the
daemon's ``ethixctl down``) stops its revisions too.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from ethixctl.platform import state
from ethixctl.platform.controlplane import serve
from ethixctl.platform.prometheus import PrometheusServer
from ethixctl.platform.router import Router
from ethixctl.platform.state import SEEDED
from ethixctl.platform.supervisor import IDLE_TIMEOUT, LocalRuntime, RuntimeFile

PARENT_POLL = 0.2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ethixctl.platform.controlplane")
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument(
        "--idle-timeout", type=float, default=IDLE_TIMEOUT, help="scale idle tagged revisions to zero"
    )
    parser.add_argument(
        "--snapshot-every", type=float, default=None, help="seconds between scheduled snapshots"
    )
    args = parser.parse_args(argv)
    state_dir: Path = args.state_dir.resolve()
    ports = state.read_json(state_dir / state.PORTS_FILE)
    if not ports:
        print(
            f"control plane: no {state.PORTS_FILE} in {state_dir}: start it through the daemon",
            file=sys.stderr,
        )
        return 2
    parent = os.getppid()
    terminated = threading.Event()

    def on_term(signum: int, frame: FrameType | None) -> None:
        terminated.set()

    signal.signal(signal.SIGTERM, on_term)
    router = Router(state_dir, ports["router_admin"], ports["router_split_admin"])
    prometheus = PrometheusServer(state_dir, ports["prometheus"])
    runtime_file = RuntimeFile(state_dir)
    runtime = LocalRuntime(
        state_dir,
        router,
        prometheus,
        service_ports={name: ports[name] for name in SEEDED},
        on_change=runtime_file.changed,
        idle_timeout=args.idle_timeout,
        activator_port=ports.get("activator"),
    )
    runtime_file.runtime = runtime
    server = None
    try:
        for name in SEEDED:
            runtime.service_url(name)
        # Before serving: the daemon reads the service ports actually held from runtime.json to give
        # the backend ai-core's URL, and the notifier thread may not have written them yet.
        runtime_file.changed()
        server = serve(
            state_dir / "controlplane",
            runtime,
            "127.0.0.1",
            ports["control_plane"],
            snapshot_every=args.snapshot_every,
        )
        runtime.spec_source = server.plane.cloudrun.reconciler.spec_for
        print(f"control plane serving on {server.url} (pid {os.getpid()})", flush=True)
        while not terminated.wait(PARENT_POLL):
            if os.getppid() != parent:
                print("control plane: the daemon is gone; leaving revisions serving", flush=True)
                break
    finally:
        if server is not None:
            server.shutdown()
        runtime.shutdown(stop_revisions=terminated.is_set())
        runtime_file.changed()
    return 0


if __name__ == "__main__":
    sys.exit(main())
