"""The backend's password handling, each figure against a baseline measured in the same run.

1. **Login throughput** against argon2id itself: the baseline is the same verification done in-process
   with the same concurrency (one client per hashing slot, i.e. per core); the ratio shows what HTTP,
   FastAPI, the thread pool, the throttle and the SQLite lookups add (1.0 would be free).
2. **Flood** (issue #15): 16 clients post wrong passwords for one account as fast as they can while
   another user reads ``/api/v1/users/me``. Its p50 against the same user's idle p50 (goal ≤ 3×).
   The attackers run in a process of their own (as threads of the measuring process they held its
   GIL, and each probe waited for it). Control: the same flood aimed at a second backend process, so
   only the machine is shared: what the load generator's CPU alone costs the probe on 2 cores. Idle,
   flooded and control phases alternate in rounds, so all three see the same load from the rest of the
   machine. Also: the p50 time spent in the app (from the access log), how many wrong passwords
   reached the password check, and how many got 429.
3. **Unknown email vs wrong password** at login, and **new vs taken email** at registration: median
   latency of each (goal: indistinguishable, ≈ 1.0).
4. **CPU per request** in-process (best of 5 × 500): a refused login and ``/users/me`` against the
   liveness probe of the same app; what a flood of refused attempts costs the service.
5. **Readiness while the document store hangs** (a real pymongo client on a closed port: it would wait
   3 s for server selection): the probe must answer within its contract, 500 ms (its own timeout is
   0.4 s). Baseline: the same probe with the healthy SQLite store, same app, same run.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import secrets
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from argon2 import PasswordHasher

from ethixctl import procs

CONCURRENCY = len(os.sched_getaffinity(0))  # the backend's default hashing slots
DURATION_S = 8.0
FLOOD_CLIENTS = 16
FLOOD_ROUNDS = 4
FLOOD_WARM_UP_S = 0.5
PROBES = 200
ME = "/api/v1/users/me"
READINESS_RUNS = 10
READINESS_GOAL_MS = 500.0


def _rate(work: Callable[[], object], duration: float = DURATION_S) -> float:
    """Calls per second of ``work()`` from CONCURRENCY threads for ``duration`` seconds."""
    deadline = time.perf_counter() + duration

    def loop() -> int:
        count = 0
        while time.perf_counter() < deadline:
            work()
            count += 1
        return count

    started = time.perf_counter()
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        total = sum(pool.map(lambda _: loop(), range(CONCURRENCY)))
    return total / (time.perf_counter() - started)


def _probe_ms(
    client: httpx.Client, path: str, headers: dict[str, str], count: int, request_ids: set[str]
) -> list[float]:
    """``count`` sequential GETs 10 ms apart; each one's request id is added to ``request_ids``."""
    samples = []
    for _ in range(count):
        request_id = str(uuid.uuid4())
        request_ids.add(request_id)
        started = time.perf_counter()
        client.get(path, headers={**headers, "X-Request-ID": request_id}).raise_for_status()
        samples.append((time.perf_counter() - started) * 1000)
        time.sleep(0.01)
    return samples


def _served_ms(log_path: Path, request_ids: set[str]) -> float:
    """Median time these requests spent in the app, from their access-log lines (``httpRequest.latency``):
    what the service itself took, without the wait to be read off the socket or for a CPU."""
    latencies = [
        float(entry["httpRequest"]["latency"].removesuffix("s")) * 1000
        for line in log_path.read_text().splitlines()
        if (entry := json.loads(line)).get("request_id") in request_ids and "httpRequest" in entry
    ]
    assert len(latencies) == len(request_ids), (len(latencies), len(request_ids))
    return statistics.median(latencies)


def _failed_login_ms(client: httpx.Client, email: str, client_address: str) -> float:
    headers = {"X-Forwarded-For": client_address}  # a fresh client each time: the throttle stays out
    started = time.perf_counter()
    status = client.post(
        "/api/v1/auth/login", json={"email": email, "password": "wrong-pw!"}, headers=headers
    )
    assert status.status_code == 401, status.status_code
    return (time.perf_counter() - started) * 1000


def _register_ms(client: httpx.Client, email: str, password: str, client_address: str, expect: int) -> float:
    started = time.perf_counter()
    answer = client.post(
        "/api/v1/auth/register",
        json={"email": email, "password": password},
        headers={"X-Forwarded-For": client_address},
    )
    assert answer.status_code == expect, answer.status_code
    return (time.perf_counter() - started) * 1000


def _enumeration_timings(client: httpx.Client, password: str, rounds: int = 12) -> dict[str, float]:
    """Median ms of what could tell an existing account from none: a wrong password for an existing
    account vs an unknown email at login, and registering a new email vs a taken one. Interleaved so
    that both sides see the same machine load; a fresh client address per attempt keeps the throttle
    out."""
    new, taken, wrong, unknown = [], [], [], []
    for i in range(rounds):
        email = f"known{i}@example.invalid"
        new.append(_register_ms(client, email, password, f"192.0.2.{i + 1}", 201))
        taken.append(_register_ms(client, email, password, f"192.0.2.{i + 51}", 409))
        wrong.append(_failed_login_ms(client, email, f"192.0.2.{i + 101}"))
        unknown.append(_failed_login_ms(client, f"nobody{i}@example.invalid", f"192.0.2.{i + 151}"))
    return {
        "wrong_password_login_median_ms": round(statistics.median(wrong), 1),
        "unknown_email_login_median_ms": round(statistics.median(unknown), 1),
        "ratio_unknown_vs_wrong": round(statistics.median(unknown) / statistics.median(wrong), 2),
        "new_email_register_median_ms": round(statistics.median(new), 1),
        "taken_email_register_median_ms": round(statistics.median(taken), 1),
        "ratio_taken_vs_new": round(statistics.median(taken) / statistics.median(new), 2),
    }


def _attackers(url: str, flooding: Any, done: Any, results: Any) -> None:
    """FLOOD_CLIENTS clients posting wrong passwords for one account while ``flooding`` is set, each
    under its own address as Cloud Run's front end would write it. Runs in its own process: as 16
    threads of the measuring process they would hold its GIL, and every probe would wait for it."""
    statuses: list[int] = []
    lock = threading.Lock()

    def attacker(number: int) -> None:
        headers = {"X-Forwarded-For": f"198.51.100.{number}"}
        seen: list[int] = []
        with httpx.Client(base_url=url, timeout=30, headers=headers) as client:
            while not done.is_set():
                if not flooding.wait(0.1):
                    continue
                body = {"email": "victim@example.invalid", "password": secrets.token_hex(8)}
                seen.append(client.post("/api/v1/auth/login", json=body).status_code)
        with lock:
            statuses.extend(seen)

    threads = [threading.Thread(target=attacker, args=(n,)) for n in range(1, FLOOD_CLIENTS + 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results.put(statuses)


def _register(url: str, credentials: dict[str, str]) -> None:
    httpx.post(f"{url}/api/v1/auth/register", json=credentials, timeout=30).raise_for_status()


def _flood(service: procs.Service, other: procs.Service, reader: dict[str, str]) -> dict[str, object]:
    """Another user's ``/users/me`` on ``service``: idle, while the flood hits ``service``, and while the
    same flood hits ``other`` (a second backend process: the control, what the load generator's own CPU
    costs the probe on this machine). The three phases alternate in rounds so that all see the same load
    from the rest of the machine."""
    context = multiprocessing.get_context("spawn")
    done = context.Event()
    floods = {target: context.Event() for target in ("service", "other")}
    results = {target: context.Queue() for target in floods}
    attackers = [
        context.Process(target=_attackers, args=(target.url, floods[name], done, results[name]))
        for name, target in (("service", service), ("other", other))
    ]
    for process in attackers:
        process.start()
    samples: dict[str, list[float]] = {"idle": [], "service": [], "other": []}
    request_ids: dict[str, set[str]] = {phase: set() for phase in samples}
    flood_seconds = dict.fromkeys(floods, 0.0)
    per_phase = PROBES // FLOOD_ROUNDS
    try:
        with httpx.Client(base_url=service.url, timeout=30) as client:
            for _ in range(FLOOD_ROUNDS):
                for phase in samples:
                    flooding = floods.get(phase)
                    if flooding is not None:
                        flooding.set()
                        time.sleep(FLOOD_WARM_UP_S)  # the flood is in full swing
                    started = time.perf_counter()
                    samples[phase] += _probe_ms(client, ME, reader, per_phase, request_ids[phase])
                    if flooding is not None:
                        flooding.clear()
                        flood_seconds[phase] += time.perf_counter() - started + FLOOD_WARM_UP_S
                        time.sleep(FLOOD_WARM_UP_S)  # the attempts in flight are answered
        done.set()
        statuses: dict[str, list[int]] = {target: results[target].get(timeout=60) for target in floods}
    finally:
        done.set()
        for process in attackers:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
    p50 = {phase: statistics.median(values) for phase, values in samples.items()}
    assert service.process.log_path is not None
    time.sleep(0.2)  # the last access line is written as the answer leaves
    in_app = {phase: _served_ms(service.process.log_path, ids) for phase, ids in request_ids.items()}
    return {
        "clients": FLOOD_CLIENTS,
        "rounds": FLOOD_ROUNDS,
        "users_me_p50_idle_ms": round(p50["idle"], 2),
        "users_me_p50_flooded_ms": round(p50["service"], 2),
        "ratio_flooded_vs_idle": round(p50["service"] / p50["idle"], 2),
        "goal_ratio": 3.0,
        "users_me_p50_control_ms": round(p50["other"], 2),
        "ratio_control_vs_idle": round(p50["other"] / p50["idle"], 2),
        "users_me_p50_in_the_app_idle_ms": round(in_app["idle"], 2),
        "users_me_p50_in_the_app_flooded_ms": round(in_app["service"], 2),
        "users_me_p50_in_the_app_control_ms": round(in_app["other"], 2),
        "login_attempts_per_s": round(len(statuses["service"]) / flood_seconds["service"]),
        "control_login_attempts_per_s": round(len(statuses["other"]) / flood_seconds["other"]),
        "reached_password_check_401": statuses["service"].count(401),
        "refused_429": statuses["service"].count(429),
    }


def run() -> dict[str, object]:
    password = secrets.token_urlsafe(16)
    with tempfile.TemporaryDirectory() as tmp:
        # As on Cloud Run: the clients below are told apart by the X-Forwarded-For the front end writes.
        hops = {"ETHIX_TRUSTED_PROXY_HOPS": "1"}
        service = procs.start_service("services.backend", Path(tmp), env=hops)
        try:
            credentials = {"email": "bench@example.invalid", "password": password}
            with httpx.Client(base_url=service.url, timeout=30) as client:
                client.post("/api/v1/auth/register", json=credentials).raise_for_status()
                token = client.post("/api/v1/auth/login", json=credentials).json()["access_token"]
                reader = {"Authorization": f"Bearer {token}"}

                def login() -> None:
                    client.post("/api/v1/auth/login", json=credentials).raise_for_status()

                http_rate = _rate(login)
                client.post(
                    "/api/v1/auth/register", json={"email": "victim@example.invalid", "password": password}
                ).raise_for_status()
                enumeration = _enumeration_timings(client, password)
            other = procs.start_service("services.backend", Path(tmp) / "control", env=hops)
            try:
                _register(other.url, {"email": "victim@example.invalid", "password": password})
                flood = _flood(service, other, reader)
            finally:
                other.process.stop()
        finally:
            service.process.stop()
    hasher = PasswordHasher()  # the backend's defaults: argon2id, 64 MiB, 3 passes
    stored = hasher.hash(password)
    baseline_rate = _rate(lambda: hasher.verify(stored, password))
    return {
        "concurrency": CONCURRENCY,
        "login_per_s": round(http_rate, 2),
        "baseline_argon2_verify_per_s": round(baseline_rate, 2),
        "ratio_login_vs_argon2": round(http_rate / baseline_rate, 2),
        **enumeration,
        "flood": flood,
        "cpu_per_request": _cpu_per_request(),
        **_readiness_with_hung_database(),
    }


async def _asgi_call(
    app: Any, method: str, path: str, headers: dict[str, str], body: bytes = b""
) -> tuple[int, bytes]:
    """One request straight into the ASGI app (no socket, no client): the app's own cost. Its status
    and body."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(name.lower().encode(), value.encode()) for name, value in headers.items()],
        "client": ("203.0.113.7", 40000),
        "server": ("127.0.0.1", 8080),
    }
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    status: list[int] = []
    answer: list[bytes] = []

    async def receive() -> dict[str, Any]:
        return messages.pop() if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])
        elif message["type"] == "http.response.body":
            answer.append(message.get("body", b""))

    await app(scope, receive, send)
    return status[0], b"".join(answer)


def _cpu_per_request(calls: int = 500, runs: int = 5) -> dict[str, object]:
    """CPU time (the whole process: worker threads too) per request through the real app in-process,
    JSON logs written to /dev/null as the service writes them. A refused login and another user's
    ``/users/me`` against the liveness probe of the same app, same run (the cheapest route there is)."""
    import asyncio

    from services.backend.app import create_app
    from services.backend.settings import BackendSettings
    from services.common import logs

    async def measure(settings: BackendSettings) -> dict[str, float]:
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            victim = json.dumps({"email": "victim@example.invalid", "password": "wrong-pass"}).encode()
            login = {"content-type": "application/json", "content-length": str(len(victim))}
            while (await _asgi_call(app, "POST", "/api/v1/auth/login", login, victim))[0] != 429:
                pass  # until the account is blocked
            credentials = json.dumps({"email": "reader@example.invalid", "password": secrets.token_hex(12)})
            form = {"content-type": "application/json", "content-length": str(len(credentials))}
            for path, expect in (("/api/v1/auth/register", 201), ("/api/v1/auth/login", 200)):
                status, answer = await _asgi_call(app, "POST", path, form, credentials.encode())
                assert status == expect, (path, status, answer)
            reader = {"authorization": f"Bearer {json.loads(answer)['access_token']}"}
            kinds: dict[str, tuple[str, str, dict[str, str], bytes, int]] = {
                "refused_login": ("POST", "/api/v1/auth/login", login, victim, 429),
                "users_me": ("GET", "/api/v1/users/me", reader, b"", 200),
                "liveness": ("GET", "/health/liveness", {}, b"", 200),
            }
            best: dict[str, float] = {}
            for name, (method, path, headers, body, expect) in kinds.items():
                for _ in range(runs):
                    started = time.process_time()
                    for _ in range(calls):
                        assert (await _asgi_call(app, method, path, headers, body))[0] == expect
                    spent = (time.process_time() - started) / calls * 1e6
                    best[name] = min(best.get(name, spent), spent)
        return best

    with tempfile.TemporaryDirectory() as tmp, open(os.devnull, "w") as devnull:
        settings = BackendSettings(
            data_dir=Path(tmp), login_failures_per_account=1, login_backoff_base_seconds=300
        )
        logs.configure(settings, stream=devnull)
        try:
            best = asyncio.run(measure(settings))
        finally:
            logging.getLogger().handlers.clear()
    return {
        "refused_login_us": round(best["refused_login"]),
        "users_me_us": round(best["users_me"]),
        "baseline_liveness_us": round(best["liveness"]),
        "ratio_refused_login_vs_liveness": round(best["refused_login"] / best["liveness"], 2),
        "ratio_users_me_vs_liveness": round(best["users_me"] / best["liveness"], 2),
    }


def _timed_readiness(client: Any, expect: int) -> float:
    started = time.perf_counter()
    status = client.get("/health/readiness").status_code
    elapsed = time.perf_counter() - started
    if status != expect:
        raise RuntimeError(f"readiness answered {status}, expected {expect}")
    return elapsed


def _readiness_with_hung_database() -> dict[str, object]:
    from fastapi.testclient import TestClient
    from pymongo import MongoClient

    from services.backend.app import create_app
    from services.backend.settings import BackendSettings
    from services.common.docstore import MongoStore

    timeout = BackendSettings.model_fields["readiness_timeout_seconds"].default
    with (
        tempfile.TemporaryDirectory() as tmp,
        TestClient(create_app(BackendSettings(data_dir=Path(tmp)))) as client,
    ):
        backend = client.app.state.backend  # type: ignore[attr-defined]
        healthy_store = backend.store
        healthy = [_timed_readiness(client, 200) for _ in range(READINESS_RUNS)]
        unreachable: MongoClient[dict[str, object]] = MongoClient(
            f"mongodb://127.0.0.1:{procs.free_port()}/x", serverSelectionTimeoutMS=3000
        )
        backend.store = MongoStore(unreachable, "x")
        try:
            hung = [_timed_readiness(client, 503) for _ in range(READINESS_RUNS)]
        finally:
            backend.store = healthy_store
            unreachable.close()
    hung_median = statistics.median(hung)
    return {
        "readiness_hung_database_median_ms": round(hung_median * 1000, 1),
        "readiness_hung_database_max_ms": round(max(hung) * 1000, 1),
        "readiness_baseline_healthy_median_ms": round(statistics.median(healthy) * 1000, 1),
        "readiness_ratio_hung_to_configured_timeout": round(hung_median / timeout, 2),
        "readiness_goal_ms": READINESS_GOAL_MS,
        "readiness_met": max(hung) * 1000 <= READINESS_GOAL_MS,
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
