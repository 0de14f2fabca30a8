"""Every long-running operation of the local control plane ends, whatever its runtime does.

Regression: a runtime call that blocked (the LocalRuntime lock-order deadlock) left the reconcile
thread waiting forever: the operation never ended, the client's deploy timed out and every later
change to the service was refused with "still applying an earlier change". The local control plane
is driven directly here, with runtime stand-ins that hang or raise (no processes).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.cloud import run_v2
from google.longrunning import operations_pb2

from ethixctl.platform.controlplane import apierror, operations, reconciler
from ethixctl.platform.controlplane.apierror import ApiError
from ethixctl.platform.controlplane.cloudrun import CloudRun
from ethixctl.platform.controlplane.secretmanager import SecretManager
from ethixctl.platform.runtime import RevisionSpec, RevisionState, RevisionStatus

PARENT = "projects/local/locations/local"
NAME = f"{PARENT}/services/svc"
FAILED = run_v2.Condition.State.CONDITION_FAILED
LATEST = run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST


class StandInRuntime:
    """READY at once; `hang` makes revision_status block, `broken_router` makes apply_traffic raise."""

    def __init__(self) -> None:
        self.hang = threading.Event()
        self.release = threading.Event()
        self.broken_router = False
        self.started: list[str] = []

    def start_revision(self, spec: RevisionSpec) -> None:
        self.started.append(spec.revision)

    def revision_status(self, revision: str) -> RevisionStatus:
        if self.hang.is_set():
            self.release.wait()
        return RevisionStatus(RevisionState.READY, "http://127.0.0.1:1", "ready", 0)

    def apply_traffic(self, service: str, split: dict[str, int], tags: dict[str, str]) -> dict[str, str]:
        if self.broken_router:
            raise RuntimeError("the router refused the config")
        return {}

    def service_url(self, service: str) -> str:
        return f"http://{service}.invalid"

    def stop_revision(self, revision: str) -> None:
        pass


@pytest.fixture
def plane(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[CloudRun, StandInRuntime]]:
    monkeypatch.setattr(reconciler, "OPERATION_GRACE", 0.5)
    runtime = StandInRuntime()
    secrets = SecretManager(tmp_path / "secretmanager.json", tmp_path / "secretmanager.key")
    run = CloudRun(tmp_path / "cloudrun.json", runtime, secrets, startup_timeout=1.0)
    try:
        yield run, runtime
    finally:
        runtime.release.set()
        run.shutdown()


def body(image: str) -> run_v2.Service:
    return run_v2.Service(template=run_v2.RevisionTemplate(containers=[run_v2.Container(image=image)]))


def wait_done(run: CloudRun, op: operations_pb2.Operation, timeout: float = 10) -> operations_pb2.Operation:
    current = run.operations.wait(op.name, timeout)
    if not current.done:
        raise AssertionError(f"operation {op.name} did not end within {timeout}s")
    return current


def test_local_control_plane_operation_ends_when_the_runtime_hangs_then_takes_changes_stand_in_runtime(
    plane: tuple[CloudRun, StandInRuntime], capsys: pytest.CaptureFixture[str]
) -> None:
    run, runtime = plane
    assert not wait_done(run, run.create_service(PARENT, "svc", body("one"))).HasField("error")
    runtime.hang.set()
    stuck = wait_done(run, run.update_service(NAME, body("two"), allow_missing=False))
    # Failed with a clear message after startup timeout + grace, not pending forever.
    assert stuck.error.code == apierror.GRPC_CODES["DEADLINE_EXCEEDED"]
    assert "did not finish within 2s" in stuck.error.message and "svc-00002" in stuck.error.message
    revision = run.get_revision(f"{NAME}/revisions/{runtime.started[-1]}")
    assert not revision.reconciling and revision.conditions[0].state == FAILED
    service = run.get_service(NAME)
    assert not service.reconciling and service.terminal_condition.state == FAILED
    assert "stuck thread" in capsys.readouterr().err  # where it hangs goes to the daemon log
    # The service is not left "still applying an earlier change".
    runtime.hang.clear()
    retry = run.update_service(NAME, body("three"), allow_missing=False)
    # The abandoned thread waking up later changes neither its operation nor the newer change.
    runtime.release.set()
    done = wait_done(run, retry)
    assert not done.HasField("error"), done.error
    assert run.operations.get(stuck.name).error.message == stuck.error.message
    assert run.get_service(NAME).latest_ready_revision == runtime.started[-1]


def test_local_control_plane_background_failure_is_logged_and_in_the_operation_error_stand_in_runtime(
    plane: tuple[CloudRun, StandInRuntime], capsys: pytest.CaptureFixture[str]
) -> None:
    run, runtime = plane
    runtime.broken_router = True
    failed = wait_done(run, run.create_service(PARENT, "svc", body("one")))
    assert failed.error.code == apierror.GRPC_CODES["INTERNAL"]
    assert "RuntimeError: the router refused the config" in failed.error.message
    err = capsys.readouterr().err
    assert "applying a change to svc failed" in err and "Traceback" in err
    runtime.broken_router = False
    try:
        op = run.update_service(NAME, body("two"), allow_missing=False)
    except ApiError as exc:  # pragma: no cover - the regression
        pytest.fail(f"the service stayed busy after a failed change: {exc.message}")
    assert not wait_done(run, op).HasField("error")


def test_local_control_plane_keeps_a_bounded_number_of_operations_and_threads(
    plane: tuple[CloudRun, StandInRuntime],
) -> None:
    """Regression: every change added an operation and a thread that were kept for the platform's life."""
    run, _ = plane
    assert not wait_done(run, run.create_service(PARENT, "svc", body("one"))).HasField("error")
    threads_before = threading.active_count()
    changes = operations.MAX_DONE + 40
    for index in range(changes):
        service = run.get_service(NAME)
        # Traffic-only changes (a tag that moves), so no revisions pile up in the state file.
        service.traffic = [run_v2.TrafficTarget(type_=LATEST, percent=100, tag=f"t{index % 2}")]
        assert not wait_done(run, run.update_service(NAME, service, allow_missing=False)).HasField("error")
    deadline = time.monotonic() + 10
    while run.reconciler.pending() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert run.reconciler.pending() == 0
    assert len(run.operations) <= operations.MAX_DONE
    assert threading.active_count() <= threads_before + reconciler.WORKERS
    latest = run.operations.list(PARENT, "", 1000, "").items
    assert latest[-1].done and len(latest) == len(run.operations)  # the newest are the ones kept


def test_operations_evict_those_done_longer_than_the_retention() -> None:
    clock = [0.0]
    ops = operations.Operations(keep_done=60, max_done=100, clock=lambda: clock[0])
    service = run_v2.Service(name=NAME)
    old = ops.start(PARENT, service)
    ops.finish(old.name, service)
    running = ops.start(PARENT, service)
    clock[0] = 61.0
    recent = ops.start(PARENT, service)
    with pytest.raises(ApiError, match="not found"):
        ops.get(old.name)
    assert [o.name for o in ops.list(PARENT, "", 10, "").items] == [running.name, recent.name]
    clock[0] = 10_000.0
    ops.start(PARENT, service)
    assert ops.get(running.name).done is False  # a running operation is never evicted
