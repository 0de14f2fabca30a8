"""Prometheus metrics and fault injection, installed the same way in both services.

Metric names and labels are a contract: the release gates in ``playbooks/release.yaml`` query them.
Labels stay bounded: ``route`` is the route template (``/api/v1/analyses/{analysis_id}``), never a raw path.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
import random
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

from fastapi import FastAPI, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    PROCESS_COLLECTOR,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.process_collector import ProcessCollector

from services.common.settings import ServiceSettings

HTTP_LABELS = ("service", "revision", "method", "route", "status")
REQUESTS = Counter("http_requests_total", "HTTP requests handled", HTTP_LABELS)
LATENCY = Histogram(
    "http_request_duration_seconds",
    "HTTP request latency",
    HTTP_LABELS,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0),
)
ANALYSES = Counter(
    "ethix_analyses_total", "Analyses finished, by outcome", ("service", "revision", "outcome")
)
ANALYSIS_DURATION = Histogram(
    "ethix_analysis_duration_seconds",
    "Time to compute one analysis",
    ("service", "revision"),
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0),
)

# Cloud Run's probes (and anyone else) calling /health/*: the alerting rules in playbooks/alerts.yaml
# (ServiceNotReady, ServiceNotAlive) watch the failing share.
HEALTH_CHECKS = Counter(
    "health_check_total",
    "Health probe answers, by endpoint and HTTP status",
    ("service", "revision", "endpoint", "status"),
)
PROBE_ENDPOINTS = ("startup", "readiness", "liveness")
# Created at zero, so the first failure is an increase Prometheus sees (a series born at 1 is not).
_PROBE_STATUSES = ("200", "503")

# Unlabelled, like the process_* metrics: the scrape target's labels say whose it is, and the CPU gate
# divides rate(process_cpu_seconds_total) by it series by series.
CPU_LIMIT = Gauge("ethix_cpu_limit_cores", "vCPUs this instance may use (the CPU gate's 100%)")


class ProcessTreeCollector(ProcessCollector):
    """The standard process_* metrics, with ``process_cpu_seconds_total`` counting descendant processes.

    ai_core computes analyses in worker processes: a CPU gate on the uvicorn process alone would not
    see them. Live descendants are read from /proc, finished ones from ``os.times()``.
    """

    def collect(self) -> Iterable[Metric]:
        metrics = list(super().collect())
        for metric in metrics:
            if metric.name == "process_cpu_seconds":
                metric.documentation = "User and system CPU time of this process and its descendants."
                metric.samples = [
                    sample._replace(value=sample.value + descendants_cpu_seconds())
                    for sample in metric.samples
                ]
        return metrics


def descendants_cpu_seconds() -> float:
    ticks = os.sysconf("SC_CLK_TCK")
    finished = os.times()
    total = finished.children_user + finished.children_system
    parent_of: dict[int, int] = {}
    cpu_of: dict[int, float] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_bytes()
        except OSError:  # exited while we looked
            continue
        # after "pid (comm)": state ppid ... utime(11) stime(12) cutime(13) cstime(14)
        fields = stat.rsplit(b")", 1)[1].split()
        pid = int(entry.name)
        parent_of[pid] = int(fields[1])
        cpu_of[pid] = sum(int(value) for value in fields[11:15]) / ticks
    ours = {os.getpid()}
    added = True
    while added:
        found = {pid for pid, parent in parent_of.items() if parent in ours} - ours
        added = bool(found)
        ours |= found
    ours.discard(os.getpid())
    return total + sum(cpu_of[pid] for pid in ours)


REGISTRY.unregister(PROCESS_COLLECTOR)
ProcessTreeCollector()


def available_cpu_cores() -> float:
    """The cgroup v2 CPU quota when one is set, else the number of CPUs this process may run on."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            return int(quota) / int(period)
    except (OSError, ValueError):
        pass
    return float(len(os.sched_getaffinity(0)))


class CpuBurner:
    """Fault injection (``ETHIX_FAULT_CPU_CORES``): keeps ``cores`` CPUs busy from background threads.

    Each thread hashes a 64 KiB block at a time, which releases the GIL, so the service still answers:
    the fault is a CPU-hungry revision, not a stuck one. A fractional core is burnt in 100 ms periods.
    """

    PERIOD = 0.1

    def __init__(self, cores: float):
        self.cores = cores
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        full = math.floor(self.cores)
        shares = [1.0] * full + ([self.cores - full] if self.cores > full else [])
        self._threads = [
            threading.Thread(target=self._burn, args=(share,), name="fault-cpu", daemon=True)
            for share in shares
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _burn(self, share: float) -> None:
        block = bytes(64 * 1024)
        while not self._stop.is_set():
            period_start = time.monotonic()
            cpu_start = time.thread_time()
            while time.thread_time() - cpu_start < share * self.PERIOD:
                hashlib.sha256(block).digest()
            rest = self.PERIOD - (time.monotonic() - period_start)
            if rest > 0:
                self._stop.wait(rest)


UNMATCHED_ROUTE = "<unmatched>"
_EXEMPT_FROM_FAULTS = ("/health/", "/metrics")


def install(app: FastAPI, settings: ServiceSettings) -> None:
    """Add request metrics, fault injection and ``GET /metrics`` to ``app``."""
    fault_random = random.Random()
    CPU_LIMIT.set(settings.cpu_limit or available_cpu_cores())
    for endpoint in PROBE_ENDPOINTS:
        for status in _PROBE_STATUSES:
            HEALTH_CHECKS.labels(settings.service_name, settings.revision, endpoint, status)
    if settings.fault_cpu_cores:
        CpuBurner(settings.fault_cpu_cores).start()

    @app.middleware("http")
    async def observe(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        path = request.url.path
        injectable = not path.startswith(_EXEMPT_FROM_FAULTS)
        if injectable and settings.fault_latency_ms:
            await asyncio.sleep(settings.fault_latency_ms / 1000)
        if injectable and settings.fault_error_rate and fault_random.random() < settings.fault_error_rate:
            response: Response = Response(
                content=b'{"detail":"injected fault (ETHIX_FAULT_ERROR_RATE)"}',
                status_code=500,
                media_type="application/json",
            )
        else:
            response = await call_next(request)
        route = request.scope.get("route")
        template = getattr(route, "path", UNMATCHED_ROUTE)
        labels = (
            settings.service_name,
            settings.revision,
            request.method,
            template,
            str(response.status_code),
        )
        REQUESTS.labels(*labels).inc()
        LATENCY.labels(*labels).observe(time.perf_counter() - started)
        if template.startswith("/health/"):  # a matched route: the label values stay bounded
            endpoint = template.removeprefix("/health/")
            HEALTH_CHECKS.labels(settings.service_name, settings.revision, endpoint, labels[4]).inc()
        # Lets `ethixctl rollback` measure when clients see only the target revision through the router.
        response.headers["X-Ethix-Revision"] = settings.revision
        return response

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
