"""The router on its own: edge + split Caddy in front of two static Caddy "revisions" (no uvicorn)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import httpx
import pytest

from ethixctl import procs
from ethixctl.platform.router import CaddyPart, Listener, Router, find_caddy
from tests.ethixctl.platform.conftest import changes_under_load
from tests.httpserver import serve

pytestmark = pytest.mark.e2e


def _static_revisions(tmp_path: Path) -> tuple[procs.Process, list[int]]:
    """One plain Caddy serving two upstreams that answer ``rev-N:<request body>``, on ports it alone
    holds: Caddy binds with SO_REUSEPORT, so a test running in parallel that picked the same free port
    would share it silently (and answer some of these requests with its own 502s)."""
    for _ in range(5):
        ports = [procs.free_port(), procs.free_port()]
        servers = {
            f"rev{i}": {
                "listen": [f"127.0.0.1:{port}"],
                "automatic_https": {"disable": True},
                "routes": [
                    {
                        "handle": [
                            {"handler": "static_response", "body": f"rev-{i}:{{http.request.body}}"},
                        ]
                    }
                ],
            }
            for i, port in enumerate(ports, start=1)
        }
        admin = procs.free_port()
        config = tmp_path / "upstreams.json"
        config.write_text(
            json.dumps({"admin": {"listen": f"127.0.0.1:{admin}"}, "apps": {"http": {"servers": servers}}})
        )
        process = procs.start(
            "upstreams",
            [str(find_caddy()), "run", "--config", str(config)],
            env={"HOME": str(tmp_path)},
            log_path=tmp_path / "upstreams.log",
        )
        for port in ports:
            procs.wait_http(f"http://127.0.0.1:{port}/", timeout=20, process=process)
        holding = procs.port_holding(process.pid, [*ports, admin])
        if holding is None or holding.exclusive:
            return process, ports
        process.stop()
    raise AssertionError("no free ports for the static revisions after 5 tries")


@pytest.fixture
def upstreams(tmp_path: Path) -> Iterator[list[str]]:
    process, ports = _static_revisions(tmp_path)
    try:
        yield [f"127.0.0.1:{port}" for port in ports]
    finally:
        process.stop()


class _ForwardedEcho(BaseHTTPRequestHandler):
    """Answers with the X-Forwarded-For lines it received, one per line."""

    def do_GET(self) -> None:
        body = "\n".join(self.headers.get_all("X-Forwarded-For") or []).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_revisions_see_x_forwarded_for_as_behind_cloud_runs_front_end(router: Router) -> None:
    """What the client wrote, then the address it connected from, and nothing for the hop between the two
    Caddys: the client is the last entry, as on Cloud Run (ETHIX_TRUSTED_PROXY_HOPS=1)."""
    with serve(_ForwardedEcho) as upstream:
        router.set_listener("svc", procs.free_port(), {upstream.removeprefix("http://"): 1})
        url = f"http://127.0.0.1:{router.listeners()['svc'].port}/"
        seen = {}
        for source, sent in (("127.0.0.2", None), ("127.0.0.3", "198.51.100.1, 198.51.100.2")):
            transport = httpx.HTTPTransport(local_address=source)  # another client, by its real address
            with httpx.Client(transport=transport, timeout=5) as client:
                headers = {"X-Forwarded-For": sent} if sent else {}
                seen[source] = client.get(url, headers=headers).text
    assert seen == {"127.0.0.2": "127.0.0.2", "127.0.0.3": "198.51.100.1, 198.51.100.2, 127.0.0.3"}


@pytest.fixture
def router(tmp_path: Path) -> Iterator[Router]:
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    router = Router(state_dir, procs.free_port(), procs.free_port())
    try:
        router.start()
        yield router
    finally:
        router.stop()


def split(step: int, upstreams: list[str]) -> dict[str, int]:
    return {upstreams[0]: 100 - (step % 2) * 100, upstreams[1]: (step % 2) * 100}


def test_weight_changes_never_touch_the_public_listener(router: Router, upstreams: list[str]) -> None:
    router.set_listener("svc", procs.free_port(), {upstreams[0]: 100})
    port = router.listeners()["svc"].port  # the router moves a port it finds shared
    edge = httpx.get(router.admin_url + "/config/", timeout=5).json()
    seen = set()
    # One keep-alive connection: a reload of the public side would close it.
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock, sock.makefile("rb") as reader:
        for step in range(1, 7):
            router.set_listener("svc", port, split(step, upstreams))
            sock.sendall(b"GET / HTTP/1.1\r\nHost: svc\r\n\r\n")
            assert reader.readline().startswith(b"HTTP/1.1 200"), step
            length = 0
            while (line := reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            seen.add(reader.read(length).split(b":")[0])
    assert seen == {b"rev-1", b"rev-2"}
    assert httpx.get(router.admin_url + "/config/", timeout=5).json() == edge


def test_post_bodies_survive_traffic_flips_with_zero_failures(router: Router, upstreams: list[str]) -> None:
    router.set_listener("svc", procs.free_port(), {upstreams[0]: 100})
    port = router.listeners()["svc"].port  # the router moves a port it finds shared
    url = f"http://127.0.0.1:{port}/"
    sent: Counter[int] = Counter()

    def request(client: httpx.Client, worker: int) -> str:
        sent[worker] += 1
        body = f"{worker}-{sent[worker]}-" + "x" * 2000
        response = client.post(url, content=body)
        intact = response.status_code == 200 and response.text.split(":", 1)[1] == body
        return "ok" if intact else f"bad {response.status_code}"

    def flip(step: int) -> None:
        router.set_listener("svc", port, split(step, upstreams))

    # The request rate this holds at is measured by bench/bench_platform.py.
    results = changes_under_load(flip, request, changes=20, interval=0.1)
    assert set(results) == {"ok"}, results
    assert results["ok"] >= 20 * 10, results


def test_a_change_waits_for_a_part_still_starting_instead_of_restarting_it(
    router: Router, upstreams: list[str], tmp_path: Path
) -> None:
    """Regression: a change made while the split Caddy was being started by another thread found its
    admin port not bound yet, took that for a port shared with another Caddy and restarted it, so the
    start in progress failed ("router-split exited with code -15"). Here the split binds after 1 s."""
    router.split.stop()
    slow_start = procs.start(
        "router-split",
        [
            "sh",
            "-c",
            'sleep 1; exec "$0" run --config "$1"',
            str(find_caddy()),
            str(router.split.config_path),
        ],
        env={"HOME": str(tmp_path)},
        log_path=tmp_path / "slow-split.log",
    )
    router.split.process = slow_start
    router.set_listener("svc", procs.free_port(), {upstreams[0]: 100})
    assert router.split.process is slow_start and slow_start.alive()
    assert _answers(router.listeners()["svc"].port) == {"rev-1"}


def test_removed_listener_closes_and_a_dead_half_restarts_alone_with_its_config(
    router: Router, upstreams: list[str]
) -> None:
    keep, drop = procs.free_port(), procs.free_port()
    router.set_many({"svc": Listener(keep, {upstreams[0]: 1}), "tag": Listener(drop, {upstreams[1]: 1})}, [])
    assert httpx.get(f"http://127.0.0.1:{drop}/", timeout=5).text.startswith("rev-2")
    router.set_many({}, remove=["tag"])
    assert not procs.port_in_use(drop)
    assert httpx.get(f"http://127.0.0.1:{keep}/", timeout=5).text.startswith("rev-1")

    for part in router.parts:
        assert part.process is not None
        old, other = part.process.pid, next(p for p in router.parts if p is not part)
        other_pid = other.process.pid if other.process else None
        os.kill(old, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while part.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not router.alive()
        router.start()  # what the daemon's supervision does
        assert router.alive() and part.process.pid != old
        assert other.process is not None and other.process.pid == other_pid  # the other half kept serving
        # Restarted on its last configuration: the listener and its split are back without reprogramming.
        assert httpx.get(f"http://127.0.0.1:{keep}/", timeout=5).text.startswith("rev-1")
        assert not procs.port_in_use(drop)

    # A change while one half is down is written for it and loaded once it answers again.
    router.split.stop()
    changed = threading.Thread(target=router.set_listener, args=("svc", keep, {upstreams[1]: 1}))
    changed.start()
    time.sleep(0.5)
    router.start()
    changed.join(20)
    assert httpx.get(f"http://127.0.0.1:{keep}/", timeout=5).text.startswith("rev-2")

    pids = [part.process.pid for part in router.parts if part.process is not None]
    router.stop()
    assert len(pids) == 2 and not any(procs.pid_alive(pid) for pid in pids)


def test_a_request_arriving_while_the_split_restarts_waits_for_it(
    router: Router, upstreams: list[str]
) -> None:
    """The edge replays a request whose split hop fails for its whole try duration, so a split Caddy
    restarted by its supervisor (here after 1 s) answers it. Regression: the edge gave up after 20 quick
    tries (about 0.4 s), and the four requests in flight when a split was restarted got 502s."""
    router.set_listener("svc", procs.free_port(), {upstreams[0]: 100})
    port = router.listeners()["svc"].port  # the router moves a port it finds shared
    router.split.stop()
    restart = threading.Timer(1.0, router.split.start)
    restart.start()
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/", timeout=10)
    finally:
        restart.join()
    assert response.status_code == 200 and response.text.startswith("rev-1")


@contextlib.contextmanager
def caddy_squatting(port: int, home: Path) -> Iterator[int]:
    """Another Caddy (another platform's, say) listening on ``port``, with SO_REUSEPORT as every Caddy."""
    admin = procs.free_port()
    server = {
        "listen": [f"127.0.0.1:{port}"],
        "routes": [{"handle": [{"handler": "static_response", "body": "squatter"}]}],
    }
    config = home / f"squatter-{port}.json"
    config.write_text(
        json.dumps({"admin": {"listen": f"127.0.0.1:{admin}"}, "apps": {"http": {"servers": {"s": server}}}})
    )
    process = procs.start(
        "squatter", [str(find_caddy()), "run", "--config", str(config)], env={"HOME": str(home)},
        log_path=home / f"squatter-{port}.log",
    )  # fmt: skip
    try:
        procs.wait_http(f"http://127.0.0.1:{port}/", timeout=20, process=process)
        yield port
    finally:
        process.stop()


@pytest.fixture
def squatter(tmp_path: Path) -> Iterator[int]:
    with caddy_squatting(procs.free_port(), tmp_path) as port:
        yield port


def _answers(port: int, n: int = 40) -> set[str]:
    with httpx.Client(
        timeout=5
    ) as client:  # a fresh connection each time: the kernel picks a listener per connection
        return {
            client.get(f"http://127.0.0.1:{port}/", headers={"Connection": "close"}).text.split(":")[0]
            for _ in range(n)
        }


def test_a_listener_port_another_caddy_holds_is_moved_not_shared(
    router: Router, upstreams: list[str], squatter: int
) -> None:
    """Regression: the edge bound the squatter's port too (SO_REUSEPORT) and the kernel split the
    connections between the two Caddys, so some requests to this platform reached the other one."""
    router.set_listener("svc", squatter, {upstreams[0]: 100})
    held = router.listeners()["svc"].port
    assert held != squatter
    holding = procs.port_holding(router.pid, [held])
    assert holding is not None and holding.exclusive
    assert _answers(held) == {"rev-1"}
    assert _answers(squatter) == {"squatter"}  # the other Caddy keeps its port to itself


def test_an_admin_port_another_caddy_holds_is_moved_not_shared(
    tmp_path: Path, upstreams: list[str], squatter: int
) -> None:
    """Regression: with a shared admin port, this router's /load could program the other Caddy."""
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    router = Router(state_dir, squatter)
    try:
        router.start()
        assert router.admin_port != squatter
        holding = procs.port_holding(router.pid, [router.admin_port])
        assert holding is not None and holding.exclusive
        port = procs.free_port()
        router.set_listener("svc", port, {upstreams[1]: 100})
        assert _answers(router.listeners()["svc"].port) == {"rev-2"}
        assert _answers(squatter) == {"squatter"}
    finally:
        router.stop()


def _kill(part: CaddyPart) -> None:
    assert part.process is not None
    os.kill(part.process.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while part.alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not part.alive()


def test_a_restarted_part_whose_admin_port_was_taken_comes_back_on_one_it_holds_alone(
    router: Router, upstreams: list[str], tmp_path: Path
) -> None:
    """The daemon restarts a dead part on its file; another Caddy bound its admin port meanwhile. Sharing
    it would let this platform's /load program the other Caddy: the part moves to a fresh admin port."""
    router.set_listener("svc", procs.free_port(), {upstreams[0]: 100})
    port = router.listeners()["svc"].port  # the router moves a port it finds shared
    old_admin = router.admin_port
    _kill(router.edge)
    with caddy_squatting(old_admin, tmp_path) as squatted:
        router.start()  # what the daemon's supervision does
        assert router.admin_port != squatted
        holding = procs.port_holding(router.pid, [router.admin_port])
        assert holding is not None and holding.exclusive
        # The holder record is how the control plane (another process) finds the part and its port.
        record = json.loads(router.edge.holder_path.read_text())
        assert record["pid"] == router.pid and record["admin_port"] == router.admin_port
        # Back with its listener (from its file), and programmable on its new admin port.
        assert _answers(port) == {"rev-1"}
        router.set_listener("svc", port, {upstreams[1]: 100})
        assert _answers(port) == {"rev-2"}
        assert _answers(squatted) == {"squatter"}


def test_a_listener_port_taken_while_its_part_was_down_is_moved_once_it_restarts(
    router: Router, upstreams: list[str]
) -> None:
    """A plain socket (no SO_REUSEPORT) took a public port while the edge was down: Caddy cannot start
    on a config holding it. The edge comes back with its other listeners; `confirm` moves that one."""
    taken, kept = procs.free_port(), procs.free_port()
    router.set_many(
        {"svc": Listener(taken, {upstreams[0]: 1}), "other": Listener(kept, {upstreams[1]: 1})}, []
    )
    _kill(router.edge)
    with socket.socket() as squatting:
        squatting.bind(("127.0.0.1", taken))
        squatting.listen()
        router.start()
        assert _answers(kept) == {"rev-2"}  # back at once, without the control plane
        assert router.confirm()  # what the runtime's monitor runs every second
        moved = router.listeners()["svc"].port
        assert moved != taken and router.listeners()["other"].port == kept
        holding = procs.port_holding(router.pid, [moved, kept])
        assert holding is not None and holding.exclusive
        assert _answers(moved) == {"rev-1"}
        assert not router.confirm()  # nothing left to move
