"""The local platform's state directory: where things are, what runs, and how to tell our processes apart.

``platform.json`` says where the running platform answers; ``runtime.json`` lists revision processes.
A pid is only ever signalled when the process behind it is provably ours (its command line or working
directory names this state dir): after a crash or a reboot the same pid may belong to another program.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
from pathlib import Path
from typing import Any

from ethixctl import procs
from ethixctl.errors import UsageError, from_os_error
from ethixctl.files import write_atomic

PLATFORM_FILE = "platform.json"
RUNTIME_FILE = "runtime.json"
PORTS_FILE = "ports.json"
PID_FILE = "daemon.pid"
LOCK_FILE = "daemon.lock"
DAEMON_MODULE = "ethixctl.platform.daemon"
# The services every local platform runs. Cloud Run service ids allow no "_", so the ai_core package
# runs as service "ai-core"; backend's AI_CORE_URL is ai-core's service URL.
SEEDED = ("ai-core", "backend")


def default_state_dir() -> Path:
    return Path.home() / ".ethixctl" / "local"


def check_state_dir(path: Path) -> None:
    """A usable state dir is a directory we may read, write and enter, or a path not created yet."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return
    except OSError as exc:
        raise from_os_error(exc) from None
    if not stat.S_ISDIR(info.st_mode):
        raise UsageError(f"{path}: not a directory (the state dir must be a directory)")
    if not os.access(path, os.R_OK | os.W_OK | os.X_OK):
        raise UsageError(f"{path}: permission denied (the state dir must be readable and writable)")


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_json(path: Path, data: dict[str, Any]) -> None:
    write_atomic(path, json.dumps(data, indent=2, sort_keys=True))


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _cwd(pid: int) -> Path | None:
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return None


def owned(pid: int, state_dir: Path) -> bool:
    """Alive, and started by this state dir's platform (argv or cwd mentions the state dir)."""
    if pid <= 1 or pid == os.getpid() or not procs.pid_alive(pid):
        return False
    root = str(state_dir.resolve())
    # Match the dir itself or paths inside it, so /x/state does not claim /x/state2's processes.
    if any(arg == root or arg.endswith("=" + root) or root + "/" in arg for arg in _cmdline(pid)):
        return True
    cwd = _cwd(pid)
    return cwd is not None and (cwd == Path(root) or Path(root) in cwd.parents)


def daemon_pid(state_dir: Path) -> int | None:
    """The pid of this state dir's live daemon, or None (no pid file, dead, or pid reused)."""
    try:
        pid = int((state_dir / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None
    if owned(pid, state_dir) and any(DAEMON_MODULE in arg for arg in _cmdline(pid)):
        return pid
    return None


def lock_held(state_dir: Path) -> bool:
    """True while a daemon holds the state dir's lock; the kernel drops it when the daemon dies."""
    path = state_dir / LOCK_FILE
    if not path.exists():
        return False
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def platform_info(state_dir: Path) -> dict[str, Any] | None:
    """``platform.json`` of a running daemon, else None."""
    if daemon_pid(state_dir) is None:
        return None
    return read_json(state_dir / PLATFORM_FILE)


def recorded_pids(state_dir: Path) -> list[int]:
    """Every pid the platform wrote down: parts (Caddy, Prometheus, daemon) and revisions."""
    pids: list[int] = []
    platform = read_json(state_dir / PLATFORM_FILE) or {}
    pids.extend(int(pid) for pid in (platform.get("pids") or {}).values() if isinstance(pid, int))
    runtime = read_json(state_dir / RUNTIME_FILE) or {}
    for revision in (runtime.get("revisions") or {}).values():
        if isinstance(revision.get("pid"), int):
            pids.append(revision["pid"])
    return pids


def recorded_ports(state_dir: Path) -> list[int]:
    platform = read_json(state_dir / PLATFORM_FILE) or {}
    ports = [int(port) for port in (platform.get("ports") or {}).values() if isinstance(port, int)]
    runtime = read_json(state_dir / RUNTIME_FILE) or {}
    ports.extend(
        rev["port"] for rev in (runtime.get("revisions") or {}).values() if isinstance(rev.get("port"), int)
    )
    return ports


def clean_stale(state_dir: Path) -> list[int]:
    """After a crash: stop our leftover processes (only provably ours) and forget the dead daemon."""
    stopped = []
    for pid in recorded_pids(state_dir):
        if owned(pid, state_dir):
            procs.stop_pid(pid, timeout=5)
            stopped.append(pid)
    for name in (PID_FILE, PLATFORM_FILE, RUNTIME_FILE):
        with contextlib.suppress(FileNotFoundError):
            (state_dir / name).unlink()
    return stopped
