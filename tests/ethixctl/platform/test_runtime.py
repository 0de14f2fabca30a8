"""LocalRuntime end to end: real uvicorn revisions of a tiny "echo" service, real Caddy, real Prometheus."""

from __future__ import annotations

import socket
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from ethixctl import procs
from ethixctl.errors import UsageError
from ethixctl.platform.runtime import RevisionSpec, RevisionState
from ethixctl.platform.supervisor import LocalRuntime
from tests.ethixctl.platform.conftest import Parts, changes_under_load, router_errors

pytestmark = pytest.mark.e2e


def wait_ready(parts: Parts, *revisions: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = {rev: parts.runtime.revision_status(rev).state for rev in revisions}
        if all(state is RevisionState.READY for state in states.values()):
            return
        assert RevisionState.FAILED not in states.values(), states
        time.sleep(0.1)
    raise AssertionError(f"not ready after {timeout}s: {states}")


def two_revisions(parts: Parts, env: dict[str, str] | None = None) -> None:
    parts.runtime.start_revision(RevisionSpec("echo", "echo-1", "echo", parts.build_echo("v1"), env or {}))
    parts.runtime.start_revision(RevisionSpec("echo", "echo-2", "echo", parts.build_echo("v2"), {}))
    wait_ready(parts, "echo-1", "echo-2")


def test_revision_runs_its_image_code_with_cloud_run_env_and_secret_only_in_environment(parts: Parts) -> None:
    two_revisions(parts, env={"ECHO_SECRET": "hunter2-top-secret"})
    one = parts.runtime.revision_status("echo-1")
    assert one.url is not None
    body = httpx.get(one.url + "/").json()
    assert body == {"revision": "echo-1", "version": "v1", "secret_seen": "True"}
    assert httpx.get(parts.runtime.revision_status("echo-2").url + "/").json()["version"] == "v2"  # type: ignore[operator]
    pid = parts.runtime.pid_of("echo-1")
    assert pid is not None
    assert b"hunter2" not in Path(f"/proc/{pid}/cmdline").read_bytes()
    log = parts.state_dir / "logs" / "echo" / "echo-1.log"
    assert log.exists() and "hunter2" not in log.read_text()
    assert "hunter2" not in str(parts.runtime.snapshot())


def test_traffic_split_through_caddy_matches_percentages(parts: Parts) -> None:
    two_revisions(parts)
    url = parts.runtime.service_url("echo")
    parts.runtime.apply_traffic("echo", {"echo-1": 80, "echo-2": 20}, {})
    counts: Counter[str] = Counter()
    with httpx.Client(timeout=5) as client:
        for _ in range(1000):
            counts[client.get(url).json()["revision"]] += 1
    assert abs(counts["echo-2"] / 1000 * 100 - 20) <= 3, counts
    assert counts["echo-1"] + counts["echo-2"] == 1000


def test_tagged_zero_percent_revision_is_reachable_on_its_tag_url(parts: Parts) -> None:
    two_revisions(parts)
    tags = parts.runtime.apply_traffic("echo", {"echo-1": 100, "echo-2": 0}, {"canary": "echo-2"})
    service = parts.runtime.service_url("echo")
    with httpx.Client(timeout=5) as client:
        assert {client.get(service).json()["revision"] for _ in range(50)} == {"echo-1"}
        assert {client.get(tags["canary"]).json()["revision"] for _ in range(20)} == {"echo-2"}
    # Dropping the tag closes its listener.
    parts.runtime.apply_traffic("echo", {"echo-1": 100}, {})
    with pytest.raises(httpx.TransportError):
        httpx.get(tags["canary"], timeout=2)


def test_invalid_traffic_is_refused(parts: Parts) -> None:
    two_revisions(parts)
    with pytest.raises(UsageError, match="sum to 100"):
        parts.runtime.apply_traffic("echo", {"echo-1": 50, "echo-2": 20}, {})
    with pytest.raises(UsageError, match="not a revision of echo"):
        parts.runtime.apply_traffic("echo", {"nope-1": 100}, {})


# Both revisions tagged: a revision left with 0% and no tag is scaled to zero, and the flips measure
# the router, not cold starts.
WARM = {"one": "echo-1", "two": "echo-2"}


def flip_under_load(parts: Parts, flips: int = 20, interval: float = 0.1, start: bool = True) -> Counter[str]:
    """Clients hammer the service URL while traffic moves between the two revisions; the outcomes."""
    if start:
        two_revisions(parts)
    url = parts.runtime.service_url("echo")
    parts.runtime.apply_traffic("echo", {"echo-1": 100}, WARM)

    def flip(step: int) -> None:
        parts.runtime.apply_traffic(
            "echo", {"echo-1": 100 - (step % 2) * 100, "echo-2": (step % 2) * 100}, WARM
        )

    def request(client: httpx.Client, _worker: int) -> str:
        response = client.get(url)
        ok = response.status_code == 200 and response.json()["revision"] in ("echo-1", "echo-2")
        return "ok" if ok else f"http {response.status_code}"

    return changes_under_load(flip, request, changes=flips, interval=interval)


def test_traffic_flips_under_load_never_answer_with_an_error(parts: Parts) -> None:
    results = flip_under_load(parts)
    assert results["ok"] >= 200, results
    # Every answer is a 200 from a real revision: no 502/503 while upstreams change.
    assert not [key for key in results if key.startswith("http ")], (results, router_errors(parts.state_dir))
    transport_failures = sum(n for key, n in results.items() if key != "ok")
    assert transport_failures / sum(results.values()) < 0.02, results


def test_zero_failed_requests_while_traffic_flips(parts: Parts) -> None:
    # Traffic moves back and forth every 250 ms (or as soon as enough requests saw the last change) under
    # a steady load: not one request may fail. Before the edge/split router this lost ~0.3-0.7%.
    # The request rate this holds at is measured by bench/bench_platform.py.
    results = flip_under_load(parts, flips=16, interval=0.25)
    assert set(results) == {"ok"}, (results, router_errors(parts.state_dir))
    # The same, flipping as fast as the benchmark does (every 100 ms).
    results = flip_under_load(parts, flips=20, interval=0.1, start=False)
    assert set(results) == {"ok"}, (results, router_errors(parts.state_dir))


def test_crashed_revision_is_restarted_and_serves_again(parts: Parts) -> None:
    parts.runtime.start_revision(RevisionSpec("echo", "echo-1", "echo", parts.build_echo("v1"), {}))
    wait_ready(parts, "echo-1")
    parts.runtime.apply_traffic("echo", {"echo-1": 100}, {})
    first_pid = parts.runtime.pid_of("echo-1")
    with pytest.raises(httpx.HTTPError):
        httpx.post(parts.runtime.revision_status("echo-1").url + "/crash", timeout=2)  # type: ignore[operator]
    deadline = time.monotonic() + 30
    while parts.runtime.revision_status("echo-1").restarts < 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    wait_ready(parts, "echo-1")
    status = parts.runtime.revision_status("echo-1")
    assert status.restarts == 1
    assert parts.runtime.pid_of("echo-1") != first_pid
    assert httpx.get(parts.runtime.service_url("echo"), timeout=5).json()["revision"] == "echo-1"


def test_image_that_does_not_exist_fails_the_revision(parts: Parts) -> None:
    parts.runtime.start_revision(RevisionSpec("echo", "echo-9", "echo", "local/echo@sha256:" + "0" * 64, {}))
    status = parts.runtime.revision_status("echo-9")
    assert status.state is RevisionState.FAILED
    assert "not found" in status.message


def test_stop_revision_frees_its_port_and_refuses_while_serving(parts: Parts) -> None:
    two_revisions(parts)
    port = int(parts.runtime.revision_status("echo-2").url.rsplit(":", 1)[1])  # type: ignore[union-attr]
    parts.runtime.apply_traffic("echo", {"echo-1": 100}, {"canary": "echo-2"})
    with pytest.raises(UsageError, match="still serves"):
        parts.runtime.stop_revision("echo-1")
    parts.runtime.stop_revision("echo-2")
    assert parts.runtime.revision_status("echo-2").state is RevisionState.STOPPED
    assert not procs.port_in_use(port)


def test_prometheus_file_sd_scrapes_ready_revisions(parts_with_prometheus: Parts) -> None:
    parts = parts_with_prometheus
    two_revisions(parts)
    assert parts.prometheus is not None
    deadline = time.monotonic() + 30
    seen: dict[str, str] = {}
    while time.monotonic() < deadline:
        active = httpx.get(parts.prometheus.url + "/api/v1/targets", timeout=2).json()["data"][
            "activeTargets"
        ]
        seen = {t["labels"].get("revision", ""): t["health"] for t in active}
        if seen.get("echo-1") == "up" and seen.get("echo-2") == "up":
            break
        time.sleep(0.5)
    assert seen.get("echo-1") == "up" and seen.get("echo-2") == "up", seen
    # The service's own labels survive (honor_labels): the release gates query them.
    query = 'http_requests_total{service="echo",revision="echo-1"}'
    httpx.get(parts.runtime.revision_status("echo-1").url + "/", timeout=2)  # type: ignore[operator]
    deadline = time.monotonic() + 15
    result: list[object] = []
    while time.monotonic() < deadline and not result:
        result = httpx.get(parts.prometheus.url + "/api/v1/query", params={"query": query}).json()["data"][
            "result"
        ]
        time.sleep(0.5)
    assert result, "no http_requests_total samples for echo-1"
    parts.runtime.apply_traffic("echo", {"echo-1": 100}, {})
    parts.runtime.stop_revision("echo-2")
    targets = (parts.state_dir / "prometheus" / "targets.json").read_text()
    assert "echo-2" not in targets and "echo-1" in targets


def test_a_revision_whose_secrets_cannot_load_says_which_secret_while_it_starts(parts: Parts) -> None:
    """The real backend image, told to load its keys from a Secret Manager nobody answers at."""
    from ethixctl.platform import images

    image = images.build("backend", parts.state_dir / "images").ref
    env = {
        "ETHIX_SECRETS_PROJECT": "local",
        "ETHIX_SECRETS_ENDPOINT": f"http://127.0.0.1:{procs.free_port()}",
        "ETHIX_SECRET_JWT_SIGNING_KEY": "jwt-signing-key",
        "ETHIX_SECRET_SESSION_KEY": "session-key",
    }
    parts.runtime.start_revision(RevisionSpec("backend", "backend-1", "backend", image, env))
    deadline = time.monotonic() + 60
    while "jwt-signing-key" not in (status := parts.runtime.revision_status("backend-1")).message:
        assert time.monotonic() < deadline, status
        time.sleep(0.2)
    assert status.state is RevisionState.STARTING
    assert "HTTP 503" in status.message and "Secret Manager unreachable" in status.message


def test_untagged_zero_percent_revision_is_scaled_to_zero_and_starts_again_on_request(parts: Parts) -> None:
    two_revisions(parts)
    pid = parts.runtime.pid_of("echo-2")
    assert pid is not None
    parts.runtime.apply_traffic("echo", {"echo-1": 100}, {})
    assert parts.runtime.revision_status("echo-2").state is RevisionState.SCALED_TO_ZERO
    deadline = time.monotonic() + 15
    while procs.pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not procs.pid_alive(pid)
    # A tag on it: the first request is held while it starts, then answered by it.
    tag = parts.runtime.apply_traffic("echo", {"echo-1": 100}, {"canary": "echo-2"})["canary"]
    started = time.monotonic()
    answer = httpx.get(tag, timeout=60)
    assert answer.status_code == 200 and answer.json()["revision"] == "echo-2"
    assert parts.runtime.revision_status("echo-2").state is RevisionState.READY
    snapshot = parts.runtime.snapshot()["revisions"]["echo-2"]
    assert (
        snapshot["cold_starts"] == 1 and 0 < snapshot["last_cold_start_seconds"] <= time.monotonic() - started
    )
    # A revision scaled to zero is started again by start_revision (what a rollback to it does).
    parts.runtime.apply_traffic("echo", {"echo-2": 100}, {})
    assert parts.runtime.revision_status("echo-1").state is RevisionState.SCALED_TO_ZERO
    image = parts.runtime.snapshot()["revisions"]["echo-1"]["image"]
    parts.runtime.start_revision(RevisionSpec("echo", "echo-1", "echo", image, {}))
    wait_ready(parts, "echo-1")
    parts.runtime.apply_traffic("echo", {"echo-1": 100}, {})
    assert httpx.get(parts.runtime.service_url("echo"), timeout=5).json()["revision"] == "echo-1"


def test_idle_tagged_revision_scales_to_zero_and_a_request_wakes_it(parts_idle: Parts) -> None:
    parts = parts_idle
    two_revisions(parts)
    tag = parts.runtime.apply_traffic("echo", {"echo-1": 100}, {"canary": "echo-2"})["canary"]
    # Requests keep it up past the idle timeout (2 s)...
    busy_until = time.monotonic() + 5
    while time.monotonic() < busy_until:
        assert httpx.get(tag, timeout=10).json()["revision"] == "echo-2"
        time.sleep(0.5)
    status = parts.runtime.revision_status("echo-2")
    assert status.state is RevisionState.READY
    # ...and without them it goes to zero; the serving revision never does.
    deadline = time.monotonic() + 15
    while parts.runtime.revision_status("echo-2").state is not RevisionState.SCALED_TO_ZERO:
        assert time.monotonic() < deadline, parts.runtime.revision_status("echo-2")
        time.sleep(0.01)
    # At once, while the scaled-down process may still be draining on its port (regression: the cold
    # start then moved to another port, and the request that woke it got an empty 502).
    with httpx.Client(timeout=60) as client:
        answers = [client.get(tag) for _ in range(3)]
    assert [(a.status_code, a.text and a.json()["revision"]) for a in answers] == [(200, "echo-2")] * 3
    assert parts.runtime.revision_status("echo-2").url == status.url  # started again on its port
    assert parts.runtime.revision_status("echo-1").state is RevisionState.READY


def test_an_activator_port_taken_since_the_last_run_is_replaced_not_fatal(parts: Parts) -> None:
    """Regression: the activator bound the port `ports.json` remembered; taken by another program, the
    bind failed and the control plane (which runs the runtime) died at every restart."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        runtime = LocalRuntime(parts.state_dir / "another", parts.router, None, activator_port=port)
        try:
            assert int(runtime.activator_url.rsplit(":", 1)[1]) != port
            answer = httpx.get(f"{runtime.activator_url}/wake/nope", timeout=5)
            assert answer.status_code == 503 and answer.text == "unknown revision nope"
        finally:
            runtime.shutdown()
