"""LocalRuntime's change notifications and the runtime.json writer (RuntimeFile) must not deadlock.

Regression: the runtime called ``on_change`` (then the daemon's ``_runtime_changed``, now
``RuntimeFile.changed`` in the control plane: the writer's lock,
then ``runtime.snapshot()`` which takes the runtime lock) both while holding the runtime lock (e.g.
from ``apply_traffic`` after reprogramming the router) and without it (the tail of ``_mark_ready`` /
``stop_revision``). The two locks were taken in both orders: one deploy in a few dozen hung for good,
with the revision's uvicorn running, the monitor blocked (never probed it READY), the control plane's
operation waiting in ``revision_status`` forever and every later deploy refused with "still applying
an earlier change". No processes here: a router stand-in and a revision that cannot start.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from ethixctl.platform import state
from ethixctl.platform.router import Listener
from ethixctl.platform.runtime import RevisionSpec, RevisionState
from ethixctl.platform.supervisor import LocalRuntime, RuntimeFile


class SlowRouter:
    """Stands in for Caddy: a reload takes a while (the runtime holds its lock meanwhile)."""

    def __init__(self) -> None:
        self.reloading = threading.Event()
        self._listeners: dict[str, Listener] = {}

    def listeners(self) -> dict[str, Listener]:
        return dict(self._listeners)

    def set_listener(self, name: str, port: int, upstreams: dict[str, int]) -> None:
        self._listeners[name] = Listener(port, dict(upstreams))

    def set_many(self, listeners: dict[str, Listener], remove: list[str]) -> None:
        self.reloading.set()
        time.sleep(0.5)
        for name in remove:
            self._listeners.pop(name, None)
        self._listeners.update(listeners)


def _in_thread(target: Any, *args: Any) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def writer_and_runtime(tmp_path: Path) -> Any:
    writer = RuntimeFile(tmp_path)
    router = SlowRouter()
    runtime = LocalRuntime(tmp_path, router, None, on_change=writer.changed)  # type: ignore[arg-type]
    writer.runtime = runtime
    try:
        yield writer, runtime, router, tmp_path
    finally:
        _in_thread(runtime.shutdown).join(10)  # a deadlocked runtime must fail the test, not hang it


def test_runtime_json_write_during_a_traffic_change_does_not_deadlock_the_runtime(
    writer_and_runtime: Any,
) -> None:
    runtime_file, runtime, router, state_dir = writer_and_runtime
    runtime.service_url("svc")
    # The image does not exist: the revision is FAILED at once, which is all a tag target needs.
    runtime.start_revision(RevisionSpec("svc", "svc-1", "svc", "no-such-image:latest", {}))
    # A traffic change reprograms the (slow) router under the runtime lock, then reports the change...
    traffic = _in_thread(runtime.apply_traffic, "svc", {}, {"canary": "svc-1"})
    assert router.reloading.wait(5)
    # ...while runtime.json is written for another change (as after a probe marked a revision READY).
    writer = _in_thread(runtime_file.changed)
    traffic.join(10)
    writer.join(10)
    assert not traffic.is_alive() and not writer.is_alive(), (
        "runtime lock and runtime.json writer lock deadlocked"
    )
    # The runtime still answers (the control plane polls revision_status; the monitor needs the lock too).
    status = _in_thread(runtime.revision_status, "svc-1")
    status.join(5)
    assert not status.is_alive()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        written = state.read_json(state_dir / state.RUNTIME_FILE) or {}
        if written.get("traffic", {}).get("svc", {}).get("tags") == {"canary": "svc-1"}:
            break
        time.sleep(0.05)
    else:
        raise AssertionError(f"runtime.json does not show the traffic change: {written}")
    assert written["revisions"]["svc-1"]["state"] == RevisionState.FAILED.value


def test_on_change_never_runs_while_the_runtime_lock_is_held(tmp_path: Path) -> None:
    runtime: LocalRuntime
    blocked: list[str] = []
    calls = threading.Event()

    def on_change() -> None:
        # Another thread must get the runtime lock while the callback runs.
        probe = _in_thread(runtime.snapshot)
        probe.join(2)
        if probe.is_alive():
            blocked.append(threading.current_thread().name)
        calls.set()

    runtime = LocalRuntime(tmp_path, SlowRouter(), None, on_change=on_change)  # type: ignore[arg-type]
    try:
        runtime.start_revision(RevisionSpec("svc", "svc-1", "svc", "no-such-image:latest", {}))
        assert calls.wait(10)
        assert runtime.revision_status("svc-1").state is RevisionState.FAILED
    finally:
        runtime.shutdown()
    assert not blocked, f"on_change ran under the runtime lock (threads: {blocked})"


def test_a_failing_on_change_is_logged_and_notifications_go_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[int] = []

    def on_change() -> None:
        seen.append(1)
        if len(seen) == 1:
            raise OSError("disk full")

    runtime = LocalRuntime(tmp_path, SlowRouter(), None, on_change=on_change)  # type: ignore[arg-type]
    try:
        runtime.start_revision(RevisionSpec("svc", "svc-1", "svc", "no-such-image:latest", {}))
        deadline = time.monotonic() + 5
        while not seen and time.monotonic() < deadline:
            time.sleep(0.02)
        runtime.start_revision(RevisionSpec("svc", "svc-2", "svc", "no-such-image:latest", {}))
        while len(seen) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        runtime.shutdown()
    assert len(seen) >= 2
    err = capsys.readouterr().err
    assert "on_change callback failed" in err and "OSError: disk full" in err
