"""Gate evaluation against a REAL Prometheus scraping REAL uvicorn processes.

Each revision is a uvicorn process running the shared observability middleware (tests/.../metric_app.py)
with its own K_REVISION and ETHIX_FAULT_* settings, driven by the real load generator. The playbook
is the shipped one; only the P95 threshold is lowered so a 300 ms latency fault fails it quickly.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ethixctl import procs
from ethixctl.adapters.prometheus import Prometheus
from ethixctl.platform.prometheus import PrometheusServer
from ethixctl.release import analysis, loadgen, playbook
from ethixctl.release.analysis import Outcome
from ethixctl.release.stats import Classification, ScoreVerdict

pytestmark = pytest.mark.e2e

SERVICE = "backend"
REVISIONS = {
    "backend-stable": {},
    "backend-good": {},
    "backend-bad": {"ETHIX_FAULT_ERROR_RATE": "0.3"},
    "backend-slow": {"ETHIX_FAULT_LATENCY_MS": "300"},
    # 0.3 of a core burnt on a 0.1-vCPU instance: ~300 % of its CPU, still well over 80 % when the
    # shared machine gives the burner only a third of what it asks for.
    "backend-burning": {"ETHIX_FAULT_CPU_CORES": "0.3", "ETHIX_CPU_LIMIT": "0.1"},
    "backend-idle": {},
}
LOADED = ("backend-stable", "backend-good", "backend-bad", "backend-slow", "backend-burning")
WINDOW = 10.0
TIMING = playbook.Timing(window=WINDOW, sample_step=1, sample_window=3)


@dataclass
class Lab:
    prometheus: Prometheus
    prometheus_process: procs.Process
    book: playbook.Playbook
    urls: dict[str, str]
    load_end: float  # evaluations look at the window that ends when the load stopped


def _book() -> playbook.Playbook:
    book = playbook.load()
    gates = [g.model_copy(update={"max": 0.2}) if g.name == "p95_latency" else g for g in book.gates]
    return book.model_copy(update={"gates": gates})


def start_prometheus(base: Path, targets: dict[str, str]) -> tuple[procs.Process, Prometheus]:
    """The local platform's Prometheus (1 s scrapes, file-based discovery, honor_labels), scraping
    each target labelled with service and revision like the platform does."""
    server = PrometheusServer(base, procs.free_port())
    server.start(timeout=30)
    assert server.process is not None
    for revision, url in targets.items():
        server.set_target(SERVICE, revision, url.removeprefix("http://"))
    return server.process, Prometheus(server.url)


def start_revision(base: Path, revision: str, env: dict[str, str]) -> tuple[procs.Process, str]:
    port = procs.free_port()
    process = procs.start(
        revision,
        procs.python_module("tests.ethixctl.release.metric_app"),
        env={"PORT": str(port), "K_SERVICE": SERVICE, "K_REVISION": revision, **env},
        log_path=base / f"{revision}.log",
    )
    url = f"http://127.0.0.1:{port}"
    procs.wait_http(url + "/health/startup", timeout=60, process=process)
    return process, url


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    base = tmp_path_factory.mktemp("analysis")
    started: list[procs.Process] = []
    try:
        urls = {}
        for revision, env in REVISIONS.items():
            process, urls[revision] = start_revision(base, revision, env)
            started.append(process)
        prometheus_process, client = start_prometheus(base, urls)
        started.append(prometheus_process)
        generators = [loadgen.LoadGenerator(urls[r] + "/api/v1/ping", 8) for r in LOADED]
        for generator in generators:
            generator.start()
        try:
            time.sleep(WINDOW + 4)  # first scrape after ~5 s, then a full window of data
        finally:
            for generator in generators:
                generator.stop()
            load_end = time.time()
        assert all(g.sent > 50 for g in generators), [g.statuses for g in generators]
        yield Lab(client, prometheus_process, _book(), urls, load_end)
        client.close()
    finally:
        for process in reversed(started):
            process.stop()


def _evaluate(lab: Lab, canary: str, timing: playbook.Timing = TIMING, **kwargs: object) -> analysis.Verdict:
    return analysis.evaluate(
        lab.prometheus,
        lab.book,
        service=SERVICE,
        canary=canary,
        stable="backend-stable",
        timing=timing,
        at=lab.load_end,
        **kwargs,  # type: ignore[arg-type]
    )


def test_healthy_canary_passes_with_values_shown(lab: Lab) -> None:
    verdict = _evaluate(lab, "backend-good")
    assert verdict.outcome is Outcome.PASS, verdict.summary()
    assert verdict.targets_up
    assert verdict.requests is not None and verdict.requests >= lab.book.analysis.min_requests
    error_rate = verdict.gate("error_rate")
    assert error_rate is not None and error_rate.value == 0.0 and error_rate.passed
    assert verdict.baseline is not None and verdict.baseline.verdict is ScoreVerdict.PASS
    assert "error_rate=0.00% (< 0.50%) ok" in verdict.summary()


def test_error_fault_fails_the_error_gate_and_the_baseline(lab: Lab) -> None:
    verdict = _evaluate(lab, "backend-bad")
    assert verdict.outcome is Outcome.FAIL, verdict.summary()
    error_rate = verdict.gate("error_rate")
    assert error_rate is not None and error_rate.passed is False
    assert error_rate.value is not None and 0.1 < error_rate.value < 0.5
    assert verdict.baseline is not None
    errors = next(m for m in verdict.baseline.metrics if m.name == "error_ratio")
    assert errors.classification is Classification.HIGH and errors.failed
    assert "error_rate at or above its threshold" in verdict.reasons


def test_latency_fault_fails_p95_and_the_baseline(lab: Lab) -> None:
    verdict = _evaluate(lab, "backend-slow")
    assert verdict.outcome is Outcome.FAIL, verdict.summary()
    p95 = verdict.gate("p95_latency")
    assert p95 is not None and p95.value is not None and p95.value >= 0.3 and p95.passed is False
    assert verdict.baseline is not None
    latency = next(m for m in verdict.baseline.metrics if m.name == "mean_latency")
    assert latency.classification is Classification.HIGH
    assert latency.canary_mean is not None and latency.canary_mean > 0.25


def test_samples_from_the_warm_up_after_a_traffic_change_are_not_compared(lab: Lab) -> None:
    """Regression: a good canary, cold in its first seconds of traffic on a busy machine, was compared
    with a warm stable and rolled back. Samples whose rate window reaches into the warm-up are left
    out; until enough follow it the comparison has no data, while the threshold gates are judged."""
    timing = TIMING.model_copy(update={"warmup": 2.0})
    # The first sample kept is the one a warm-up (2 s) and a sample window (3 s) after the change.
    recent, settled = lab.load_end - 7, lab.load_end - 9  # keeps the last 2 s / the last 4 s

    good = _evaluate(lab, "backend-good", timing, traffic_changed_at=recent)
    assert good.outcome is Outcome.INCONCLUSIVE, good.summary()
    assert any("since the canary's warm-up ended" in reason for reason in good.reasons), good.reasons

    slow = _evaluate(lab, "backend-slow", timing, traffic_changed_at=recent)
    assert slow.outcome is Outcome.FAIL, slow.summary()  # the P95 gate does not wait for the warm-up
    assert slow.baseline is not None and slow.baseline.verdict is ScoreVerdict.NODATA

    slow = _evaluate(lab, "backend-slow", timing, traffic_changed_at=settled)
    assert slow.baseline is not None and slow.baseline.verdict is ScoreVerdict.FAIL
    latency = next(m for m in slow.baseline.metrics if m.name == "mean_latency")
    assert (latency.canary_samples, latency.stable_samples) == (5, 5)
    whole = _evaluate(lab, "backend-slow", timing)
    assert whole.baseline is not None
    assert min(m.canary_samples for m in whole.baseline.metrics) > 5  # the whole window, no warm-up


@pytest.mark.parametrize("source", playbook.METRIC_SOURCES)
def test_the_same_gates_judge_under_either_metric_source(lab: Lab, source: playbook.MetricSource) -> None:
    """``cloudrun`` reads Cloud Run's metric names, which the local Prometheus records from the app's
    own metrics (latencies in ms, CPU utilization as a distribution's sum and count): the verdicts must
    be the same as under ``app``."""
    timing = TIMING.model_copy(update={"metric_source": source})
    good = _evaluate(lab, "backend-good", timing)
    assert (good.metric_source, good.outcome) == (source, Outcome.PASS), good.summary()
    assert all(query_uses_source(gate.query, source) for gate in good.gates)
    assert good.targets_up is (True if source == "app" else None)  # Cloud Run metrics are not scraped

    bad = _evaluate(lab, "backend-bad", timing)
    error_rate = bad.gate("error_rate")
    assert bad.outcome is Outcome.FAIL, bad.summary()
    assert error_rate is not None and error_rate.value is not None and 0.1 < error_rate.value < 0.5

    slow = _evaluate(lab, "backend-slow", timing)
    p95 = slow.gate("p95_latency")
    assert slow.outcome is Outcome.FAIL, slow.summary()
    assert p95 is not None and p95.value is not None and 0.3 <= p95.value < 2.0, "seconds under either source"

    burning = _evaluate(lab, "backend-burning", timing)
    cpu = burning.gate("cpu")
    assert burning.outcome is Outcome.FAIL, burning.summary()
    assert cpu is not None and cpu.value is not None and cpu.value >= 0.8 and cpu.passed is False
    answers = burning.gate("error_rate")
    assert answers is not None and answers.passed, "it answers correctly: the CPU gate saw the fault"

    idle = _evaluate(lab, "backend-idle", timing)
    assert idle.outcome is Outcome.INCONCLUSIVE, idle.summary()


def query_uses_source(query: str, source: str) -> bool:
    return ("run_googleapis_com:" in query) == (source == "cloudrun")


def test_no_traffic_is_inconclusive_never_a_pass(lab: Lab) -> None:
    verdict = _evaluate(lab, "backend-idle")
    assert verdict.outcome is Outcome.INCONCLUSIVE
    assert verdict.targets_up
    assert any("canary requests" in reason and "need 20" in reason for reason in verdict.reasons)


def test_canary_without_scrape_target_is_inconclusive(lab: Lab) -> None:
    verdict = _evaluate(lab, "backend-never-deployed")
    assert verdict.outcome is Outcome.INCONCLUSIVE
    assert verdict.targets_up is False
    assert "no scrape target" in verdict.reasons[0]


def test_at_full_weight_the_baseline_is_skipped(lab: Lab) -> None:
    verdict = _evaluate(lab, "backend-good", compare=False)
    assert verdict.outcome is Outcome.PASS
    assert verdict.baseline is None


def test_unreachable_prometheus_is_an_error_not_a_verdict(lab: Lab) -> None:
    with Prometheus(f"http://127.0.0.1:{procs.free_port()}", budget=0.5) as dead:
        verdict = analysis.evaluate(
            dead, lab.book, service=SERVICE, canary="backend-good", stable="backend-stable", timing=TIMING
        )
    assert verdict.outcome is Outcome.ERROR
    assert "unreachable" in verdict.reasons[0]
