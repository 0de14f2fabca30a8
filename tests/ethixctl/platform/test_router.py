"""The router on its own: edge + split Caddy in front of two static Caddy "revisions" (no uvicorn)."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ethixctl import procs
from ethixctl.platform.router import Listener, Router, find_caddy

pytestmark = pytest.mark.e2e


@pytest.fixture
def upstreams(tmp_path: Path) -> Iterator[list[str]]:
    """Two upstreams answering ``rev-N:<request body>``, served by one plain Caddy."""
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
    try:
        for port in ports:
            procs.wait_http(f"http://127.0.0.1:{port}/", timeout=20, process=process)
        yield [f"127.0.0.1:{port}" for port in ports]
    finally:
        process.stop()


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
    port = procs.free_port()
    router.set_listener("svc", port, {upstreams[0]: 100})
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
    port = procs.free_port()
    url = f"http://127.0.0.1:{port}/"
    router.set_listener("svc", port, {upstreams[0]: 100})
    stop = threading.Event()
    results: Counter[str] = Counter()

    def load(worker: int) -> None:
        with httpx.Client(timeout=5) as client:
            n = 0
            while not stop.is_set():
                n += 1
                body = f"{worker}-{n}-" + "x" * 2000
                try:
                    response = client.post(url, content=body)
                    intact = response.status_code == 200 and response.text.split(":", 1)[1] == body
                    results["ok" if intact else f"bad {response.status_code}"] += 1
                except httpx.HTTPError as exc:
                    results[type(exc).__name__] += 1

    workers = [threading.Thread(target=load, args=(i,)) for i in range(4)]
    for worker in workers:
        worker.start()
    started = time.monotonic()
    try:
        for step in range(1, 21):
            router.set_listener("svc", port, split(step, upstreams))
            time.sleep(0.1)
    finally:
        stop.set()
        for worker in workers:
            worker.join()
    rate = sum(results.values()) / (time.monotonic() - started)
    assert rate >= 50, (rate, results)
    assert set(results) == {"ok"}, results


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
