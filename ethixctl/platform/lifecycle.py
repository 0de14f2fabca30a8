"""Bringing the local platform up and down, and checking its parts; the commands are thin wrappers."""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from ethixctl import procs
from ethixctl.errors import EthixError, PlatformUnavailable, UsageError
from ethixctl.platform import state
from ethixctl.platform.prometheus import find_prometheus
from ethixctl.platform.router import find_caddy

UP_TIMEOUT = 300.0
STOP_TIMEOUT = 60.0


@dataclass
class UpResult:
    info: dict[str, Any]
    already_running: bool
    repaired: list[str] = field(default_factory=list)
    # Parts a previous daemon left serving, taken over instead of started again.
    adopted: list[str] = field(default_factory=list)


def part_running(info: dict[str, Any], name: str, state_dir: Path) -> bool:
    """The process ``platform.json`` records for part ``name`` is still that process, and ours."""
    record = (info.get("parts") or {}).get(name) or {}
    pid = record.get("pid")
    return (
        isinstance(pid, int)
        and state.owned(pid, state_dir)
        and procs.adopt(name, pid, record.get("started")) is not None
    )


def part_health(info: dict[str, Any], state_dir: Path) -> dict[str, bool]:
    """Is each part alive (the process recorded for it is still that process, and ours) and answering?"""

    def answers(url: str) -> bool:
        try:
            return httpx.get(url, timeout=1.0).status_code < 500
        except httpx.HTTPError:
            return False

    def running(name: str) -> bool:
        return part_running(info, name, state_dir)

    return {
        "router": running("router-edge")
        and running("router-split")
        and answers(f"{info['router_admin_url']}/config/"),
        "prometheus": running("prometheus") and answers(f"{info['prometheus_url']}/-/ready"),
        "control_plane": running("control-plane") and answers(f"{info['control_plane_url']}/healthz"),
    }


def up(
    state_dir: Path,
    *,
    free_ports: bool = False,
    idle_timeout: float | None = None,
    timeout: float = UP_TIMEOUT,
    on_phase: Callable[[str], None] | None = None,
) -> UpResult:
    """Start the platform, or repair and report the running one."""
    find_prometheus()
    find_caddy()
    state_dir.mkdir(parents=True, exist_ok=True)
    pid = state.daemon_pid(state_dir)
    if pid is not None:
        info = _wait_ready(state_dir, pid, timeout, on_phase)
        health = part_health(info, state_dir)
        dead = [part for part, healthy in health.items() if not healthy]
        if dead:
            if on_phase:
                on_phase(f"repairing {', '.join(dead)}")
            os.kill(pid, signal.SIGUSR1)
            info = _wait_healthy(state_dir, pid, min(timeout, 90.0))
        return UpResult(info, already_running=True, repaired=dead)
    if state.lock_held(state_dir):
        raise EthixError(
            f"a platform daemon holds {state_dir / state.LOCK_FILE} but left no valid pid file",
            hint="stop it, or use another --state-dir",
        )
    # A daemon that died left the data plane serving: the new one adopts it (never stop it here).
    (state_dir / state.PID_FILE).unlink(missing_ok=True)
    argv = [sys.executable, "-m", state.DAEMON_MODULE, "--state-dir", str(state_dir)]
    if free_ports:
        argv.append("--free-ports")
    if idle_timeout is not None:
        argv.extend(["--idle-timeout", f"{idle_timeout:g}"])
    process = procs.start("platform daemon", argv, log_path=state_dir / "logs" / "daemon.log")
    info = _wait_ready(state_dir, process.pid, timeout, on_phase, process=process)
    return UpResult(info, already_running=False, adopted=list(info.get("adopted") or []))


def _wait_ready(
    state_dir: Path,
    pid: int,
    timeout: float,
    on_phase: Callable[[str], None] | None,
    process: procs.Process | None = None,
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last_phase = ""
    while True:
        info = state.read_json(state_dir / state.PLATFORM_FILE) or {}
        if info.get("pids", {}).get("daemon") == pid:
            if info.get("status") == "ready":
                return info
            if info.get("status") == "failed":
                _wait_exit(pid, 30)
                raise EthixError(f"the platform failed to start: {info.get('error')}", hint=info.get("hint"))
            if on_phase and info.get("phase") and info["phase"] != last_phase:
                last_phase = info["phase"]
                on_phase(last_phase)
        alive = process.alive() if process is not None else procs.pid_alive(pid)
        if not alive:
            log = state_dir / "logs" / "daemon.log"
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:]) if log.exists() else ""
            raise EthixError("the platform daemon exited during start-up", hint=tail or None)
        if time.monotonic() > deadline:
            raise EthixError(
                f"the platform was not ready after {timeout:.0f}s (last step: {last_phase or 'none'})",
                hint=f"see {state_dir / 'logs'}; `ethixctl down` stops what was started",
            )
        time.sleep(0.2)


def _wait_healthy(state_dir: Path, pid: int, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = state.read_json(state_dir / state.PLATFORM_FILE) or {}
        if info and all(part_health(info, state_dir).values()):
            return info
        if not procs.pid_alive(pid):
            break
        time.sleep(0.3)
    raise EthixError(
        "the platform could not repair its parts", hint=f"see {state_dir / 'logs' / 'daemon.log'}"
    )


def _wait_exit(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while procs.pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@dataclass
class DownResult:
    was_running: bool
    stopped_pids: list[int]
    ports_still_bound: list[int]
    purged: bool


def down(state_dir: Path, *, purge: bool = False) -> DownResult:
    """Stop the daemon (it stops its children), then anything of ours it left behind."""
    ports = state.recorded_ports(state_dir)
    stopped: list[int] = []
    pid = state.daemon_pid(state_dir)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        if not _wait_exit(pid, STOP_TIMEOUT):
            procs.stop_pid(pid, timeout=5)
        stopped.append(pid)
    leftovers = [p for p in state.recorded_pids(state_dir) if p != pid]
    stopped.extend(p for p in state.clean_stale(state_dir) if p in leftovers)
    deadline = time.monotonic() + 10
    bound = [port for port in ports if procs.port_in_use(port)]
    while bound and time.monotonic() < deadline:
        time.sleep(0.2)
        bound = [port for port in bound if procs.port_in_use(port)]
    purged = False
    if purge and state_dir.exists():
        if not (state_dir / state.LOCK_FILE).exists() and not (state_dir / state.PORTS_FILE).exists():
            raise UsageError(f"{state_dir} does not look like a platform state dir; not deleting it")
        shutil.rmtree(state_dir)
        purged = True
    return DownResult(pid is not None, stopped, bound, purged)


def require_running(state_dir: Path) -> dict[str, Any]:
    info = state.platform_info(state_dir)
    if info is None or info.get("status") != "ready":
        raise PlatformUnavailable(
            f"the local platform is not running (state dir {state_dir})", hint="start it with `ethixctl up`"
        )
    return info
