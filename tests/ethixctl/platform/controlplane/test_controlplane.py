"""The local control plane driven by the real google-cloud-run / secret-manager REST clients.

Over REST the client maps every HTTP 400 to `BadRequest` (INVALID_ARGUMENT and FAILED_PRECONDITION
alike; the google.rpc status is in the body), while a failed long-running operation keeps its gRPC
code (`FailedPrecondition`), exactly as against Google.

Each test starts the real control plane (ThreadingHTTPServer) on a free port with the test runtime
(real envserver processes per revision, see testruntime.py).
"""

from __future__ import annotations

import base64
import json
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from google.api_core import exceptions as gexc
from google.api_core import operation
from google.cloud import run_v2
from google.cloud import secretmanager_v1 as sm
from google.protobuf import duration_pb2

from ethixctl.adapters import _google
from ethixctl.platform.controlplane import ControlPlaneServer
from tests.ethixctl.platform.controlplane.testruntime import TestRuntime, local_control_plane

PARENT = "projects/local/locations/local"
LATEST = run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST
REVISION = run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION
SUCCEEDED = run_v2.Condition.State.CONDITION_SUCCEEDED
FAILED = run_v2.Condition.State.CONDITION_FAILED


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[tuple[ControlPlaneServer, TestRuntime]]:
    with local_control_plane(tmp_path) as running:
        yield running


def clients(url: str) -> tuple[run_v2.ServicesClient, run_v2.RevisionsClient, sm.SecretManagerServiceClient]:
    options = _google.client_kwargs(url)
    return (
        run_v2.ServicesClient(**options),
        run_v2.RevisionsClient(**options),
        sm.SecretManagerServiceClient(**options),
    )


def create(
    services: run_v2.ServicesClient, name: str, image: str = "envserver", **env: str
) -> run_v2.Service:
    body = run_v2.Service(
        template=run_v2.RevisionTemplate(
            containers=[
                run_v2.Container(image=image, env=[run_v2.EnvVar(name=k, value=v) for k, v in env.items()])
            ]
        )
    )
    return services.create_service(parent=PARENT, service=body, service_id=name).result(timeout=30)


def new_revision(
    services: run_v2.ServicesClient, name: str, image: str, traffic: list[run_v2.TrafficTarget]
) -> operation.Operation:
    service = services.get_service(name=f"{PARENT}/services/{name}")
    service.template.containers[0].image = image
    service.template.containers[0].env = [
        run_v2.EnvVar(name="APP_GENERATION", value=str(service.generation + 1))
    ]
    service.traffic = traffic
    return services.update_service(service=service)


def test_local_control_plane_service_and_revision_shapes_stand_in_runtime(
    plane: tuple[ControlPlaneServer, TestRuntime],
) -> None:
    server, runtime = plane
    services, revisions, _ = clients(server.url)
    created = create(services, "backend", APP_COLOR="blue")

    assert created.name == f"{PARENT}/services/backend"
    assert created.generation == 1 and created.observed_generation == 1
    assert created.reconciling is False
    assert created.terminal_condition.state == SUCCEEDED
    first = created.latest_ready_revision
    assert first.startswith("backend-00001-") and created.latest_created_revision == first
    assert [(s.type_, s.revision, s.percent) for s in created.traffic_statuses] == [(LATEST, first, 100)]
    assert created.uri == runtime.service_url("backend")

    revision = revisions.get_revision(name=f"{PARENT}/services/backend/revisions/{first}")
    assert revision.service == created.name
    assert revision.containers[0].image == "envserver"
    assert [(c.type_, c.state) for c in revision.conditions] == [("Ready", SUCCEEDED)]
    assert runtime.get(first) == {
        "APP_COLOR": "blue",
        "K_SERVICE": "backend",
        "K_REVISION": first,
        "K_CONFIGURATION": "backend",
    }
    listed = services.list_services(parent=PARENT)
    assert [s.name for s in listed] == [created.name]


def test_local_control_plane_new_revision_with_pinned_traffic_and_tag_stand_in_runtime(
    plane: tuple[ControlPlaneServer, TestRuntime],
) -> None:
    server, runtime = plane
    services, revisions, _ = clients(server.url)
    first = create(services, "backend").latest_ready_revision
    pinned = [
        run_v2.TrafficTarget(type_=REVISION, revision=first, percent=100),
        run_v2.TrafficTarget(type_=REVISION, revision="backend-00002-can", percent=0, tag="canary-ab12cd"),
    ]
    service = services.get_service(name=f"{PARENT}/services/backend")
    service.template.containers[0].image = "envserver"
    service.template.revision = "backend-00002-can"
    service.traffic = pinned
    updated = services.update_service(service=service).result(timeout=30)

    assert updated.generation == 2 and updated.observed_generation == 2
    assert updated.latest_created_revision == updated.latest_ready_revision == "backend-00002-can"
    statuses = {(s.revision, s.percent, s.tag) for s in updated.traffic_statuses}
    assert statuses == {(first, 100, ""), ("backend-00002-can", 0, "canary-ab12cd")}
    tag_uri = next(s.uri for s in updated.traffic_statuses if s.tag)
    assert httpx.get(tag_uri).json()["K_REVISION"] == "backend-00002-can"
    assert runtime.traffic["backend"] == ({first: 100}, {"canary-ab12cd": "backend-00002-can"})
    names = [r.name.rsplit("/", 1)[-1] for r in revisions.list_revisions(parent=f"{PARENT}/services/backend")]
    assert names == ["backend-00002-can", first]


def test_local_control_plane_generated_revision_names_increase_stand_in_runtime(
    plane: tuple[ControlPlaneServer, TestRuntime],
) -> None:
    server, _ = plane
    services, _, _ = clients(server.url)
    create(services, "backend")
    second = new_revision(services, "backend", "envserver", [run_v2.TrafficTarget(type_=LATEST, percent=100)])
    result = second.result(timeout=30)
    assert result.latest_ready_revision.startswith("backend-00002-")
    assert len(result.latest_ready_revision.rsplit("-", 1)[-1]) == 3
    # A traffic-only change makes a new generation but no new revision.
    result.traffic = [
        run_v2.TrafficTarget(type_=REVISION, revision=result.latest_ready_revision, percent=100)
    ]
    again = services.update_service(service=result).result(timeout=30)
    assert again.generation == 3 and again.latest_created_revision == result.latest_created_revision


def test_local_control_plane_operation_pending_until_revision_ready_stand_in_runtime(
    plane: tuple[ControlPlaneServer, TestRuntime],
) -> None:
    server, _ = plane
    services, _, _ = clients(server.url)
    create(services, "backend")
    operation = new_revision(services, "backend", "slow", [run_v2.TrafficTarget(type_=LATEST, percent=100)])
    assert operation.done() is False
    pending = services.get_service(name=f"{PARENT}/services/backend")
    assert pending.reconciling is True and pending.latest_ready_revision != pending.latest_created_revision
    result = operation.result(timeout=30)
    assert result.reconciling is False
    assert result.latest_ready_revision == pending.latest_created_revision
    assert result.traffic_statuses[0].revision == result.latest_ready_revision


@pytest.mark.parametrize(
    ("traffic", "message"),
    [
        ([(REVISION, "FIRST", 90, "")], "must sum to 100, got 90"),
        ([(REVISION, "backend-00009-zzz", 100, "")], "'backend-00009-zzz' does not exist"),
        ([(REVISION, "FIRST", 100, "same"), (LATEST, "", 0, "same")], "tag 'same' is used more than once"),
        ([(REVISION, "FIRST", 100, "Not_A_Label")], "tag 'Not_A_Label' must be lowercase"),
        ([(REVISION, "FIRST", 100, ""), (REVISION, "FIRST", 0, "")], "a 0% entry needs a tag"),
        ([(REVISION, "FIRST", 150, "")], "percent must be between 0 and 100"),
    ],
)
def test_local_control_plane_rejects_bad_traffic_stand_in_runtime(
    plane: tuple[ControlPlaneServer, TestRuntime], traffic: list[tuple[int, str, int, str]], message: str
) -> None:
    server, _ = plane
    services, _, _ = clients(server.url)
    first = create(services, "backend").latest_ready_revision
    service = services.get_service(name=f"{PARENT}/services/backend")
    service.traffic = [
        run_v2.TrafficTarget(type_=t, revision=r.replace("FIRST", first), percent=p, tag=g)
        for t, r, p, g in traffic
    ]
    with pytest.raises(gexc.BadRequest, match=message):
        services.update_service(service=service)
    unchanged = services.get_service(name=f"{PARENT}/services/backend")
    assert unchanged.generation == 1


def test_local_control_plane_rejects_revision_of_another_service_stand_in_runtime(
    plane: tuple[ControlPlaneServer, TestRuntime],
) -> None:
    server, _ = plane
    services, _, _ = clients(server.url)
    create(services, "backend")
    other = create(services, "ai-core").latest_ready_revision
    service = services.get_service(name=f"{PARENT}/services/backend")
    service.traffic = [run_v2.TrafficTarget(type_=REVISION, revision=other, percent=100)]
    with pytest.raises(gexc.BadRequest, match="does not belong to service 'backend'"):
        services.update_service(service=service)


def test_local_control_plane_unknown_names_are_not_found_stand_in_runtime(
    plane: tuple[ControlPlaneServer, TestRuntime],
) -> None:
    server, _ = plane
    services, revisions, _ = clients(server.url)
    with pytest.raises(gexc.NotFound, match="'nope'"):
        services.get_service(name=f"{PARENT}/services/nope")
    create(services, "backend")
    with pytest.raises(gexc.NotFound):
        revisions.get_revision(name=f"{PARENT}/services/backend/revisions/backend-00042-abc")
    assert httpx.get(server.url + "/v2/projects/local/locations/local/jobs").status_code == 404


def test_local_control_plane_failed_revision_fails_operation_and_keeps_traffic_stand_in_runtime(
    plane: tuple[ControlPlaneServer, TestRuntime],
) -> None:
    server, runtime = plane
    services, revisions, _ = clients(server.url)
    first = create(services, "backend").latest_ready_revision
    operation = new_revision(services, "backend", "crash", [run_v2.TrafficTarget(type_=LATEST, percent=100)])
    with pytest.raises(gexc.FailedPrecondition, match="crash image: exiting on purpose"):
        operation.result(timeout=30)
    service = services.get_service(name=f"{PARENT}/services/backend")
    assert service.terminal_condition.state == FAILED
    assert service.latest_ready_revision == first != service.latest_created_revision
    assert [(s.revision, s.percent) for s in service.traffic_statuses] == [(first, 100)]
    failed = revisions.get_revision(
        name=f"{PARENT}/services/backend/revisions/{service.latest_created_revision}"
    )
    assert failed.conditions[0].state == FAILED and "crash image" in failed.conditions[0].message
    assert runtime.traffic["backend"] == ({first: 100}, {})


def test_local_control_plane_delete_revision_refused_while_serving_stand_in_runtime(
    plane: tuple[ControlPlaneServer, TestRuntime],
) -> None:
    server, runtime = plane
    services, revisions, _ = clients(server.url)
    first = create(services, "backend").latest_ready_revision
    second = new_revision(services, "backend", "envserver", [run_v2.TrafficTarget(type_=LATEST, percent=100)])
    second_name = second.result(timeout=30).latest_ready_revision
    with pytest.raises(gexc.BadRequest, match="serves traffic"):
        revisions.delete_revision(name=f"{PARENT}/services/backend/revisions/{second_name}")
    deleted = revisions.delete_revision(name=f"{PARENT}/services/backend/revisions/{first}").result(
        timeout=10
    )
    assert deleted.name.endswith(first)
    assert first not in runtime.processes
    with pytest.raises(gexc.NotFound):
        revisions.get_revision(name=f"{PARENT}/services/backend/revisions/{first}")


def test_local_control_plane_state_survives_restart_stand_in_runtime(tmp_path: Path) -> None:
    with local_control_plane(tmp_path) as (server, _):
        services, _, _ = clients(server.url)
        first = create(services, "backend").latest_ready_revision
    with local_control_plane(tmp_path) as (server, runtime):
        services, _, _ = clients(server.url)
        name = f"{PARENT}/services/backend"
        restored = services.get_service(name=name)
        assert restored.latest_ready_revision == first
        for _ in range(100):
            if not services.get_service(name=name).reconciling:
                break
            time.sleep(0.1)
        assert runtime.traffic["backend"] == ({first: 100}, {})
        assert runtime.get(first)["K_REVISION"] == first


def test_local_control_plane_resolves_secret_env_and_keeps_it_out_of_state_stand_in_runtime(
    plane: tuple[ControlPlaneServer, TestRuntime], tmp_path: Path
) -> None:
    server, runtime = plane
    services, _, secrets = clients(server.url)
    secrets.create_secret(parent="projects/local", secret_id="jwt-key", secret=sm.Secret())
    secrets.add_secret_version(
        parent="projects/local/secrets/jwt-key", payload=sm.SecretPayload(data=b"s3cr3t-v4lue")
    )
    ref = run_v2.EnvVarSource(secret_key_ref=run_v2.SecretKeySelector(secret="jwt-key", version="latest"))
    body = run_v2.Service(
        template=run_v2.RevisionTemplate(
            containers=[
                run_v2.Container(image="envserver", env=[run_v2.EnvVar(name="APP_JWT", value_source=ref)])
            ]
        )
    )
    created = services.create_service(parent=PARENT, service=body, service_id="backend").result(timeout=30)
    assert runtime.get(created.latest_ready_revision)["APP_JWT"] == "s3cr3t-v4lue"
    for path in (tmp_path / "state").iterdir():
        assert b"s3cr3t-v4lue" not in path.read_bytes(), path

    missing = run_v2.EnvVarSource(secret_key_ref=run_v2.SecretKeySelector(secret="nope", version="latest"))
    created.template.containers[0].env = [run_v2.EnvVar(name="APP_X", value_source=missing)]
    with pytest.raises(gexc.BadRequest, match="secret 'nope' does not exist"):
        services.update_service(service=created)


def test_local_control_plane_secret_versions_lifecycle(plane: tuple[ControlPlaneServer, TestRuntime]) -> None:
    server, _ = plane
    _, _, secrets = clients(server.url)
    secret = secrets.create_secret(parent="projects/local", secret_id="db-url", secret=sm.Secret())
    assert secret.name == "projects/local/secrets/db-url"
    with pytest.raises(gexc.Conflict):
        secrets.create_secret(parent="projects/local", secret_id="db-url", secret=sm.Secret())
    v1 = secrets.add_secret_version(parent=secret.name, payload=sm.SecretPayload(data=b"one"))
    v2 = secrets.add_secret_version(parent=secret.name, payload=sm.SecretPayload(data=b"two"))
    assert (v1.name, v2.name) == (f"{secret.name}/versions/1", f"{secret.name}/versions/2")
    latest = secrets.access_secret_version(name=f"{secret.name}/versions/latest")
    assert latest.name == v2.name and latest.payload.data == b"two"
    assert latest.payload.data_crc32c > 0

    secret.version_aliases = {"stable": 1}
    secrets.update_secret(secret=secret, update_mask={"paths": ["version_aliases"]})
    assert secrets.access_secret_version(name=f"{secret.name}/versions/stable").payload.data == b"one"

    disabled = secrets.disable_secret_version(name=v2.name)
    assert disabled.state == sm.SecretVersion.State.DISABLED
    with pytest.raises(gexc.BadRequest, match="DISABLED state"):
        secrets.access_secret_version(name=f"{secret.name}/versions/latest")
    secrets.enable_secret_version(name=v2.name)
    destroyed = secrets.destroy_secret_version(name=v1.name)
    assert destroyed.state == sm.SecretVersion.State.DESTROYED and destroyed.destroy_time
    with pytest.raises(gexc.BadRequest, match="DESTROYED state"):
        secrets.access_secret_version(name=f"{secret.name}/versions/stable")
    with pytest.raises(gexc.BadRequest, match="destroyed"):
        secrets.enable_secret_version(name=v1.name)
    states = [(v.name[-1], v.state) for v in secrets.list_secret_versions(parent=secret.name)]
    assert states == [("2", sm.SecretVersion.State.ENABLED), ("1", sm.SecretVersion.State.DESTROYED)]


def test_local_control_plane_secret_checks_crc32c_and_aliases(
    plane: tuple[ControlPlaneServer, TestRuntime],
) -> None:
    server, _ = plane
    _, _, secrets = clients(server.url)
    secret = secrets.create_secret(parent="projects/local", secret_id="k", secret=sm.Secret())
    with pytest.raises(gexc.BadRequest, match="data_crc32c does not match"):
        secrets.add_secret_version(parent=secret.name, payload=sm.SecretPayload(data=b"x", data_crc32c=1))
    secret.version_aliases = {"stable": 7}
    with pytest.raises(gexc.BadRequest, match=r"version 7 .* does not exist"):
        secrets.update_secret(secret=secret, update_mask={"paths": ["version_aliases"]})
    with pytest.raises(gexc.NotFound):
        secrets.access_secret_version(name=f"{secret.name}/versions/latest")


def test_local_control_plane_secrets_encrypted_at_rest(
    plane: tuple[ControlPlaneServer, TestRuntime], tmp_path: Path
) -> None:
    server, _ = plane
    _, _, secrets = clients(server.url)
    value = b"plaintext-that-must-not-hit-disk"
    secrets.create_secret(parent="projects/local", secret_id="k", secret=sm.Secret())
    secrets.add_secret_version(parent="projects/local/secrets/k", payload=sm.SecretPayload(data=value))
    state = tmp_path / "state" / "secretmanager.json"
    key = tmp_path / "state" / "secretmanager.key"
    raw = state.read_bytes()
    assert value not in raw
    assert base64.b64encode(value) not in raw
    stored = json.loads(raw)["secrets"]["projects/local/secrets/k"]["versions"]["1"]["data"]
    assert stored.startswith("gAAAA")  # a Fernet token
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(state.stat().st_mode) == 0o600


def test_local_control_plane_refuses_stale_and_overlapping_updates_stand_in_runtime(
    plane: tuple[ControlPlaneServer, TestRuntime],
) -> None:
    server, _ = plane
    services, _, _ = clients(server.url)
    stale = create(services, "backend")
    operation = new_revision(services, "backend", "slow", [run_v2.TrafficTarget(type_=LATEST, percent=100)])
    current = services.get_service(name=stale.name)
    with pytest.raises(gexc.Conflict, match="still applying an earlier change"):
        services.update_service(service=current)
    operation.result(timeout=30)
    with pytest.raises(gexc.Conflict, match="etag mismatch"):
        services.update_service(service=stale)


def test_local_control_plane_validate_only_changes_nothing(
    plane: tuple[ControlPlaneServer, TestRuntime],
) -> None:
    """Regression: `validate_only=True` moved traffic. It must validate, answer, and change nothing."""
    server, runtime = plane
    services, revisions, _ = clients(server.url)
    name = f"{PARENT}/services/backend"
    first = create(services, "backend").latest_ready_revision
    second = new_revision(
        services, "backend", "envserver", [run_v2.TrafficTarget(type_=REVISION, revision=first, percent=100)]
    ).result(timeout=30)
    canary = second.latest_created_revision
    before = services.get_service(name=name)
    running = set(runtime.processes)

    move = services.get_service(name=name)
    move.traffic = [run_v2.TrafficTarget(type_=REVISION, revision=canary, percent=100)]
    preview = services.update_service(request={"service": move, "validate_only": True}).result(timeout=5)
    assert [(t.revision, t.percent) for t in preview.traffic] == [(canary, 100)]  # what it would do
    deploy = services.get_service(name=name)
    deploy.template.containers[0].env = [run_v2.EnvVar(name="APP_NEW", value="1")]
    would_create = services.update_service(request={"service": deploy, "validate_only": True}).result(5)
    assert would_create.latest_created_revision.startswith("backend-00003-")
    with pytest.raises(gexc.BadRequest, match="must sum to 100"):
        move.traffic = [run_v2.TrafficTarget(type_=REVISION, revision=canary, percent=50)]
        services.update_service(request={"service": move, "validate_only": True})
    services.create_service(
        request={
            "parent": PARENT,
            "service_id": "other",
            "service": run_v2.Service(template=_template("envserver")),
            "validate_only": True,
        }
    ).result(timeout=5)
    revisions.delete_revision(request={"name": f"{name}/revisions/{canary}", "validate_only": True}).result(
        timeout=5
    )

    after = services.get_service(name=name)
    assert (after.generation, after.etag) == (before.generation, before.etag)
    assert [(s.revision, s.percent) for s in after.traffic_statuses] == [(first, 100)]
    assert runtime.traffic["backend"] == ({first: 100}, {})
    assert set(runtime.processes) == running
    assert [s.name for s in services.list_services(parent=PARENT)] == [name]
    listed = [r.name.rsplit("/", 1)[-1] for r in revisions.list_revisions(parent=name)]
    assert listed == [canary, first]
    assert services.list_operations(request={"name": PARENT, "filter": "done=false"}).operations == []


def test_local_control_plane_lists_services_and_revisions_in_pages(
    plane: tuple[ControlPlaneServer, TestRuntime],
) -> None:
    server, _ = plane
    services, revisions, _ = clients(server.url)
    for service_id in ("svc-c", "svc-a", "svc-b"):
        create(services, service_id)
    pager = services.list_services(request={"parent": PARENT, "page_size": 2})
    pages = [[s.name.rsplit("/", 1)[-1] for s in page.services] for page in pager.pages]
    assert pages == [["svc-a", "svc-b"], ["svc-c"]]

    name = f"{PARENT}/services/svc-a"
    for _ in range(2):
        new_revision(
            services, "svc-a", "envserver", [run_v2.TrafficTarget(type_=LATEST, percent=100)]
        ).result(timeout=30)
    revision_pages = revisions.list_revisions(request={"parent": name, "page_size": 1}).pages
    numbers = [[r.name.rsplit("/", 1)[-1][6:11] for r in page.revisions] for page in revision_pages]
    assert numbers == [["00003"], ["00002"], ["00001"]]  # newest first, one per page
    with pytest.raises(gexc.BadRequest, match="invalid page_token"):
        list(revisions.list_revisions(request={"parent": name, "page_token": "not-a-token"}))
    with pytest.raises(gexc.BadRequest, match="invalid page_token"):
        first_page = services.list_services(request={"parent": PARENT, "page_size": 1})
        list(revisions.list_revisions(request={"parent": name, "page_token": first_page.next_page_token}))


def test_local_control_plane_operations_list_wait_and_delete(
    plane: tuple[ControlPlaneServer, TestRuntime],
) -> None:
    server, _ = plane
    services, _, _ = clients(server.url)
    created = services.create_service(
        parent=PARENT, service_id="backend", service=run_v2.Service(template=_template("envserver"))
    )
    created.result(timeout=30)
    pending = new_revision(services, "backend", "slow", [run_v2.TrafficTarget(type_=LATEST, percent=100)])
    name = pending.operation.name

    early = services.wait_operation(
        request={"name": name, "timeout": duration_pb2.Duration(nanos=100_000_000)}
    )
    assert early.name == name and not early.done
    running = services.list_operations(request={"name": PARENT, "filter": "done=false"})
    assert [o.name for o in running.operations] == [name]
    waited = services.wait_operation(request={"name": name, "timeout": duration_pb2.Duration(seconds=30)})
    assert waited.done and not waited.HasField("error")
    assert run_v2.Service.deserialize(waited.response.value).latest_ready_revision.startswith(
        "backend-00002-"
    )

    first = services.list_operations(request={"name": PARENT, "page_size": 1})
    second = services.list_operations(
        request={"name": PARENT, "page_size": 1, "page_token": first.next_page_token}
    )
    assert [o.name for o in [*first.operations, *second.operations]] == [created.operation.name, name]
    assert second.next_page_token == ""
    # The google.longrunning operations mixin the client polls with pages through them by itself.
    mixin = services._transport.operations_client.list_operations(PARENT, "", page_size=1)
    assert [o.name for o in mixin] == [created.operation.name, name]
    with pytest.raises(gexc.BadRequest, match="unsupported filter"):
        services.list_operations(request={"name": PARENT, "filter": "metadata.target=x"})

    services.delete_operation(request={"name": name})
    with pytest.raises(gexc.NotFound):
        services.get_operation(request={"name": name})
    remaining = services.list_operations(request={"name": PARENT}).operations
    assert [o.name for o in remaining] == [created.operation.name]


def _template(image: str) -> run_v2.RevisionTemplate:
    return run_v2.RevisionTemplate(containers=[run_v2.Container(image=image)])
