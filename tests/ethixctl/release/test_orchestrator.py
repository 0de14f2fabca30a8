"""The release state machine, driven fast: a fake Platform (an in-memory stand-in for the Cloud Run
adapter), an injected clock and scripted verdicts instead of Prometheus.

The end-to-end tests (tests/ethixctl/commands/test_release_e2e.py) run releases on the real local
platform; these interrupt a release at every single action it takes (each platform call, smoke run,
analysis and wait), as SIGKILL would, then resume it with a new orchestrator, and check that nothing
is skipped, repeated wrongly or left unrecorded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest

from ethixctl.adapters.cloudrun import RevisionInfo, ServiceInfo, TrafficTarget
from ethixctl.exitcodes import ExitCode
from ethixctl.ops.ledger import Ledger
from ethixctl.ops.machine import IllegalTransition, Machine
from ethixctl.release import playbook, releases
from ethixctl.release.analysis import GateResult, Outcome, Verdict
from ethixctl.release.notify import Event, Notifier
from ethixctl.release.orchestrator import FINAL, TRANSITIONS, Options, Orchestrator, Phase, Result

STABLE = "backend-00001-aaa"


class Killed(BaseException):
    """What SIGKILL does to the orchestrator: it stops mid-action, no handler runs."""


@dataclass
class World:
    """Everything that outlives an ethixctl process: the platform's state and a count of actions."""

    split: dict[str, int] = field(default_factory=lambda: {STABLE: 100})
    revisions: dict[str, bool] = field(default_factory=lambda: {STABLE: True})
    tags: dict[str, str] = field(default_factory=dict)
    actions: int = 0
    kill_at: int | None = None
    now: float = 1_000.0  # wall-clock time goes on across processes
    log: list[str] = field(default_factory=list)

    def act(self, what: str) -> None:
        self.actions += 1
        self.log.append(what)
        if self.kill_at is not None and self.actions == self.kill_at:
            raise Killed(what)


class FakePlatform:
    """An in-memory stand-in for the Cloud Run adapter (the real one is tested on the local control plane)."""

    def __init__(self, world: World):
        self.world = world

    def get_service(self, service: str) -> ServiceInfo:
        traffic = [TrafficTarget(r, p, None, None) for r, p in self.world.split.items()]
        traffic += [TrafficTarget(r, 0, t, f"http://{t}") for t, r in self.world.tags.items()]
        return ServiceInfo(service, "http://backend", None, None, traffic, "img")

    def get_revision(self, service: str, revision: str) -> RevisionInfo:
        return RevisionInfo(revision, service, "img", {}, self.world.revisions[revision], "", datetime.now())

    def deploy_revision(self, service: str, image: str, env: dict[str, str], tag: str | None,
                        keep_traffic: bool = True, timeout: float = 150,
                        base_revision: str | None = None) -> RevisionInfo:  # fmt: skip
        self.world.act("deploy")
        name = f"backend-{len(self.world.revisions) + 1:05d}-new"
        self.world.revisions[name] = True
        if tag:
            self.world.tags[tag] = name
        self.world.act("deployed")
        return self.get_revision(service, name)

    def set_traffic(
        self, service: str, split: dict[str, int], tags: dict[str, str] | None = None
    ) -> ServiceInfo:
        self.world.act(f"traffic {split}")
        self.world.split = dict(split)
        self.world.act("traffic applied")
        return self.get_service(service)

    def serving_split(self, service: str) -> dict[str, int]:
        return dict(self.world.split)

    def tag_url(self, service: str, tag: str) -> str:
        return f"http://{tag}"


class FakeClock:
    def __init__(self, world: World):
        self.world = world

    def time(self) -> float:
        return self.world.now

    def sleep(self, seconds: float) -> None:
        self.world.act("sleep")
        self.world.now += seconds


@dataclass
class Run:
    orchestrator: Orchestrator
    events: list[Event]
    smoke_passes: list[str]


def verdict(outcome: Outcome, canary: str, stable: str) -> Verdict:
    result = Verdict(outcome, "backend", canary, stable, 0.0, 15.0)
    if outcome is Outcome.FAIL:
        result.gates.append(GateResult("error_rate", 0.2, 0.005, "ratio", False, "q"))
        result.reasons.append("error_rate at or above its threshold")
    return result


def make_run(world: World, ledger: Ledger, judge: Callable[[int], Outcome]) -> Run:
    events: list[Event] = []
    smoke_passes: list[str] = []
    book = playbook.load()
    notify = Notifier(ledger, "backend", "local", events.append, [])

    def smoke(url: str) -> tuple[bool, str]:
        world.act("smoke")
        smoke_passes.append(url)
        return True, "passed"

    def analyse(canary: str, stable: str, weight: int, window: float) -> Verdict:
        world.act(f"analyse {weight}")
        return verdict(judge(weight), canary, stable)

    orchestrator = Orchestrator(
        FakePlatform(world), None, ledger, book, notify, smoke=smoke, analyse=analyse, clock=FakeClock(world)
    )
    return Run(orchestrator, events, smoke_passes)


OPTIONS = Options(
    service="backend", image="local/backend@sha256:" + "a" * 64, environment="local", hold=3, interval=1
)


def always(outcome: Outcome) -> Callable[[int], Outcome]:
    return lambda weight: outcome


def run_to_end(world: World, ledger: Ledger, judge: Callable[[int], Outcome]) -> tuple[Result, Run]:
    """Start a release; if it is killed, resume it (once per kill) until it ends."""
    run = make_run(world, ledger, judge)
    try:
        return run.orchestrator.start(OPTIONS), run
    except Killed:
        world.kill_at = None
        resumed = make_run(world, ledger, judge)
        return resumed.orchestrator.resume("backend", "local"), resumed


def assert_consistent(world: World, ledger: Ledger, result: Result) -> None:
    changes = ledger.traffic("local", "backend")
    assert all(c.state == "applied" for c in changes), [(c.split, c.state) for c in changes]
    # The last recorded split is what is in effect.
    assert (changes[-1].split if changes else {STABLE: 100}) == world.split
    release = releases.get(ledger, result.release_id or "")
    assert not release.in_progress and release.phase == release.status == result.status


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with Ledger(tmp_path) as book:
        yield book


def count_actions(outcome: Outcome, tmp_path: Path) -> int:
    world = World()
    with Ledger(tmp_path / "count") as ledger:
        run_to_end(world, ledger, always(outcome))
    return world.actions


def test_the_transition_table_covers_every_phase_and_refuses_illegal_moves(ledger: Ledger) -> None:
    machine = Machine(ledger, Phase, TRANSITIONS, FINAL)
    assert set(TRANSITIONS) | set(FINAL) == set(Phase)
    assert not machine.allowed(Phase.DEPLOYING, Phase.CANARY)  # never past the smoke gate
    op = ledger.create_operation("release", "backend", "local", Phase.DEPLOYING.value)
    with pytest.raises(IllegalTransition, match="from deploying to canary"):
        machine.run(op, {Phase.DEPLOYING: lambda op: Phase.CANARY})


def test_a_healthy_release_walks_every_step_and_promotes(ledger: Ledger) -> None:
    world = World()
    result, run = run_to_end(world, ledger, always(Outcome.PASS))
    assert (result.status, result.exit_code) == ("promoted", ExitCode.OK)
    assert [e.data["weight"] for e in run.events if e.kind == "step"] == [10, 50, 100]
    # hold 3 s, one analysis a second: three passes per step.
    assert len([e for e in run.events if e.kind == "gate"]) == 9
    assert_consistent(world, ledger, result)


@pytest.mark.parametrize("outcome", [Outcome.PASS, Outcome.FAIL])
def test_killed_at_any_action_then_resumed_ends_consistently(outcome: Outcome, tmp_path: Path) -> None:
    total = count_actions(outcome, tmp_path)
    assert total >= 10  # deploy, smoke, traffic, waits, analyses: every one is a kill point
    for kill_at in range(1, total + 1):
        world = World(kill_at=kill_at)
        with Ledger(tmp_path / f"{outcome}-{kill_at}") as ledger:
            result, _ = run_to_end(world, ledger, always(outcome))
            where = f"killed at action {kill_at} ({world.log[kill_at - 1]})"
            if kill_at == 1:
                # Killed before the platform made the revision: nothing carries the release's tag,
                # so the resume cannot know what happened and fails safe, traffic untouched.
                assert (result.status, world.split) == ("failed", {STABLE: 100}), where
                assert "interrupted before the canary was deployed" in result.reason
            elif outcome is Outcome.PASS:
                assert result.status == "promoted", where
                canary = result.canary or ""
                assert world.split == {canary: 100}, where
                # Every step of the playbook had its full hold of passing analyses, across the kill.
                gates = [line for line in world.log if line.startswith("analyse")]
                assert {10, 50, 100} <= {int(line.split()[1]) for line in gates}, where
            else:
                assert (result.status, result.exit_code) == ("rolled_back", ExitCode.ROLLED_BACK), where
                assert world.split == {STABLE: 100}, where
                assert len(ledger.rollbacks("local", "backend")) == 1, where  # recorded once
            assert_consistent(world, ledger, result)
            # At most one revision was deployed, however the release was interrupted.
            assert len(world.revisions) == (1 if kill_at == 1 else 2), where


def test_resumed_in_the_smoke_phase_runs_the_smoke_gate_again(ledger: Ledger) -> None:
    """Regression: a release resumed after an interruption during smoke promoted without smoke."""
    world = World()
    first = make_run(world, ledger, always(Outcome.PASS))
    world.kill_at = world.actions + 3  # deploy, deployed, then smoke: killed inside the smoke phase
    with pytest.raises(Killed):
        first.orchestrator.start(OPTIONS)
    assert world.log[-1] == "smoke"
    pending = releases.in_progress(ledger, "backend", "local")
    assert pending is not None and pending.phase == "smoke"
    world.kill_at = None
    second = make_run(world, ledger, always(Outcome.PASS))
    result = second.orchestrator.resume("backend", "local")
    assert result.status == "promoted"
    assert len(second.smoke_passes) == 1  # the smoke gate ran again before any traffic moved
    first_traffic = next(i for i, line in enumerate(world.log) if line.startswith("traffic"))
    assert world.log.index("smoke", 3) < first_traffic


def test_counters_and_passes_survive_a_resume(ledger: Ledger) -> None:
    """Regression: the inconclusive/retry and consecutive-error counters restarted from zero on resume."""
    world = World()
    seen: list[int] = []

    def judge(weight: int) -> Outcome:
        seen.append(weight)
        return Outcome.INCONCLUSIVE

    run = make_run(world, ledger, judge)
    limit = playbook.load().analysis.inconclusive_limit  # 3 in the shipped playbook
    # Kill right after the second inconclusive analysis has been recorded.
    original = run.orchestrator._save

    def save_then_maybe_kill(*args, **kwargs):  # type: ignore[no-untyped-def]
        saved = original(*args, **kwargs)
        if saved.counters.get("retries") == 2:
            raise Killed("after two retries")
        return saved

    run.orchestrator._save = save_then_maybe_kill  # type: ignore[method-assign]
    with pytest.raises(Killed):
        run.orchestrator.start(OPTIONS)
    pending = releases.in_progress(ledger, "backend", "local")
    assert pending is not None and pending.counters["retries"] == 2
    before_resume = len(seen)
    resumed = make_run(world, ledger, judge)
    result = resumed.orchestrator.resume("backend", "local")
    # One more inconclusive analysis reaches the limit: 3 in all, not 3 more after the resume (and
    # the window, filled before the kill, gives no new grace period).
    assert result.status == "rolled_back" and f"limit {limit}" in result.reason
    assert len(seen) - before_resume == 1


def test_a_manual_rollback_during_a_wait_ends_the_release_without_further_traffic(ledger: Ledger) -> None:
    world = World()
    run = make_run(world, ledger, always(Outcome.PASS))
    clock = run.orchestrator.clock
    assert isinstance(clock, FakeClock)
    original = clock.sleep

    def sleep(seconds: float) -> None:
        original(seconds)
        pending = releases.in_progress(ledger, "backend", "local")
        if pending is not None and pending.step == 1:
            ledger.finish_if_in_progress(pending.id, "aborted", "ended by a manual rollback")

    clock.sleep = sleep  # type: ignore[method-assign]
    result = run.orchestrator.start(OPTIONS)
    assert (result.status, result.exit_code) == ("aborted", ExitCode.ROLLED_BACK)
    assert [e.data["weight"] for e in run.events if e.kind == "step"] == [10, 50]
    assert not [line for line in world.log if line.startswith("traffic {'backend-00002-new': 100}")]
