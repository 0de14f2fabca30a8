"""The release as an explicit, persisted state machine (the shape of ``ethixctl.ops.machine``).

    deploying ──▶ smoke ──▶ canary ──▶ promoted
        │           │         ├──▶ rolling_back ──▶ rolled_back
        ▼           ▼         ├──▶ held
      failed    rolled_back   └──▶ frozen

* deploying: the canary revision is created at 0% with its tag (the split is pinned). Resumed
  after a crash, it adopts the revision that already carries the release's tag, or fails safe.
* smoke: the smoke suite against the canary's tag URL. Resumed, it runs again: a release never
  skips its smoke gate.
* canary: the playbook's steps; at each analysis the decision matrix says pass, retry, roll back or
  hold. The step, the passes within it and the retry/error counters are in the ledger, so a resumed
  release continues where it was with the same counts.
* rolling_back: 100% back to the stable revision; the canary keeps its tag at 0% for inspection.

Durability rule: every traffic change is written to the ledger (``intended``) before it is applied and
confirmed (``applied``) after. A manual ``ethixctl rollback`` ends the release in the ledger; every
wait and every traffic change checks that first and stops.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal, Protocol

from ethixctl.errors import EthixError, UsageError
from ethixctl.exitcodes import ExitCode
from ethixctl.ops.ledger import Ledger, Operation
from ethixctl.ops.machine import Machine
from ethixctl.release import analysis, releases
from ethixctl.release.decision import Counters, Decision, Next, decide
from ethixctl.release.notify import Notifier
from ethixctl.release.plan import Plan, StepPlan, make_plan
from ethixctl.release.playbook import Playbook
from ethixctl.release.releases import Release

if TYPE_CHECKING:
    from ethixctl.adapters.cloudrun import RevisionInfo, ServiceInfo
    from ethixctl.adapters.prometheus import Prometheus

# A smoke hook gets the canary's tag URL and answers (passed, summary).
SmokeHook = Callable[[str], tuple[bool, str]]
# One analysis: (canary, stable, weight, window) -> verdict. Defaults to the Prometheus gates.
Analyse = Callable[[str, str, int, float], analysis.Verdict]


class Phase(StrEnum):
    DEPLOYING = "deploying"
    SMOKE = "smoke"
    CANARY = "canary"
    ROLLING_BACK = "rolling_back"
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"
    HELD = "held"
    FROZEN = "frozen"
    FAILED = "failed"


TRANSITIONS: dict[Phase, frozenset[Phase]] = {
    Phase.DEPLOYING: frozenset({Phase.SMOKE, Phase.FAILED}),
    # A failed smoke test ends the release at once: the canary never had traffic.
    Phase.SMOKE: frozenset({Phase.CANARY, Phase.ROLLED_BACK}),
    Phase.CANARY: frozenset({Phase.PROMOTED, Phase.ROLLING_BACK, Phase.HELD, Phase.FROZEN}),
    Phase.ROLLING_BACK: frozenset({Phase.ROLLED_BACK}),
}
FINAL: dict[Phase, str] = {
    phase: phase.value
    for phase in (Phase.PROMOTED, Phase.ROLLED_BACK, Phase.HELD, Phase.FROZEN, Phase.FAILED)
}
# The exit code of a release that ended without saying otherwise (``details.exit_code``).
EXIT_CODES = {
    "promoted": ExitCode.OK,
    "rolled_back": ExitCode.ROLLED_BACK,
    "held": ExitCode.HELD,
    "frozen": ExitCode.HELD,
    "failed": ExitCode.FAILED,
    "aborted": ExitCode.ROLLED_BACK,
}


class Platform(Protocol):
    """The part of ``ethixctl.adapters.cloudrun.CloudRun`` a release uses."""

    def get_service(self, service: str) -> ServiceInfo: ...
    def get_revision(self, service: str, revision: str) -> RevisionInfo: ...
    def deploy_revision(
        self, service: str, image: str, env: dict[str, str], tag: str | None, keep_traffic: bool = True,
        timeout: float = 150, base_revision: str | None = None,
    ) -> RevisionInfo: ...  # fmt: skip
    def set_traffic(
        self, service: str, split: dict[str, int], tags: dict[str, str] | None = None
    ) -> ServiceInfo: ...
    def serving_split(self, service: str) -> dict[str, int]: ...
    def tag_url(self, service: str, tag: str) -> str: ...


class Clock(Protocol):
    """Wall-clock time: a step's start is persisted and compared with it after a resume."""

    def time(self) -> float: ...
    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def time(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


@dataclass
class Options:
    service: str
    image: str
    environment: str
    env: dict[str, str] = field(default_factory=dict)
    hold: float | None = None
    interval: float | None = None
    load_rps: float | None = None
    load_path: str = "/api/v1/users/me"
    skip_canary: bool = False
    on_failure: Literal["rollback", "freeze"] = "rollback"
    # Longer than the platform's own startup timeout (120 s), so a slow revision fails with its reason.
    deploy_timeout: float = 150

    def stored(self) -> dict[str, Any]:
        """What the ledger keeps to resume: never the values of --set-env (they may be secrets)."""
        return {
            "hold": self.hold, "interval": self.interval, "load_rps": self.load_rps,
            "load_path": self.load_path, "skip_canary": self.skip_canary, "on_failure": self.on_failure,
            "env_keys": sorted(self.env),
        }  # fmt: skip

    @classmethod
    def of(cls, release: Release) -> Options:
        stored = release.options
        return cls(
            service=release.service, image=release.image, environment=release.environment,
            hold=stored.get("hold"), interval=stored.get("interval"), load_rps=stored.get("load_rps"),
            load_path=stored.get("load_path", cls.load_path), skip_canary=bool(stored.get("skip_canary")),
            on_failure=stored.get("on_failure", "rollback"),
        )  # fmt: skip


@dataclass
class Result:
    status: str  # promoted | rolled_back | held | frozen | failed | aborted
    exit_code: ExitCode
    reason: str
    release_id: str | None = None
    canary: str | None = None
    stable: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "exit_code": int(self.exit_code)}


def stable_of(split: dict[str, int], service: str) -> str:
    """The one revision serving all traffic; a release never starts from a split it did not record."""
    full = [revision for revision, percent in split.items() if percent == 100]
    if not full:
        shown = ", ".join(f"{r} {p}%" for r, p in split.items()) or "nothing"
        raise UsageError(
            f"{service} is not serving one revision at 100% (now: {shown})",
            hint=f"finish the split first: `ethixctl rollback {service}` or"
            f" `ethixctl release --resume {service}`",
        )
    return full[0]


class Orchestrator:
    def __init__(
        self,
        platform: Platform,
        prometheus: Prometheus | None,
        ledger: Ledger,
        book: Playbook,
        notify: Notifier,
        *,
        smoke: SmokeHook | None = None,
        analyse: Analyse | None = None,
        clock: Clock | None = None,
    ):
        self.platform = platform
        self.prometheus = prometheus
        self.ledger = ledger
        self.book = book
        self.notify = notify
        self.smoke = smoke
        self.analyse = analyse
        self.clock: Clock = clock or SystemClock()
        self.machine = Machine(ledger, Phase, TRANSITIONS, FINAL)

    # entry points ----------------------------------------------------------------------------------

    def plan(self, options: Options) -> Plan:
        """The steps and windows for this service's current request rate; UsageError when a step
        cannot possibly be judged."""
        if options.skip_canary:
            return Plan([], None, [])  # nothing is analysed, so any request rate will do
        timing = self.book.timing(options.environment, options.hold, options.interval)
        window = timing.window or self.book.analysis.window
        rate = (
            analysis.service_rate(self.prometheus, self.book, options.service, window)
            if self.prometheus is not None
            else None
        )
        if rate is not None or options.load_rps:
            rate = (rate or 0.0) + (options.load_rps or 0.0)
        return make_plan(self.book, timing, rate, service=options.service)

    def start(self, options: Options, plan: Plan | None = None) -> Result:
        """A new release; the caller holds the service's release lock."""
        service, environment = options.service, options.environment
        pending = releases.in_progress(self.ledger, service, environment)
        if pending is not None:
            raise UsageError(
                f"release {pending.short_id} of {service} ({pending.image}) is still in progress"
                f" (phase {pending.phase})",
                hint=f"`ethixctl release --resume {service}` continues or rolls it back; "
                f"`ethixctl rollback {service}` ends it",
            )
        stable = stable_of(self.platform.serving_split(service), service)
        plan = plan or self.plan(options)
        release = releases.create(self.ledger, service, environment, options.image, stable, options.stored())
        release = Release.of(self.ledger.update(release.id, details={"plan": plan.to_dict()}))
        self.notify.operation = release
        self.notify(
            "started", f"release {release.short_id}: {options.image} (stable {stable})", image=options.image
        )
        for warning in plan.warnings:
            self.notify("warning", warning)
        return self._run(release, options)

    def resume(
        self, service: str, environment: str, overrides: dict[str, float | None] | None = None
    ) -> Result:
        """Continue the interrupted release; ``overrides`` (hold, interval, load_rps) replace the recorded."""
        release = releases.in_progress(self.ledger, service, environment)
        if release is None:
            raise UsageError(
                f"no release of {service} is in progress in {environment}", hint="see `ethixctl history`"
            )
        self.notify.operation = release
        self.notify(
            "resumed",
            f"resuming release {release.short_id} at phase {release.phase}, step {release.step + 1}",
        )
        options = Options.of(release)
        changed = {name: value for name, value in (overrides or {}).items() if value is not None}
        for name, value in changed.items():
            setattr(options, name, value)
        if changed:
            self.ledger.update(release.id, details={"plan": self.plan(options).to_dict()})
        return self._run(release, options)

    # the machine -----------------------------------------------------------------------------------

    def _run(self, release: Release, options: Options) -> Result:
        handlers: dict[Phase, Callable[[Operation], Phase]] = {
            Phase.DEPLOYING: lambda op: self._deploying(Release.of(op), options),
            Phase.SMOKE: lambda op: self._smoke(Release.of(op)),
            Phase.CANARY: lambda op: self._canary(Release.of(op), options),
            Phase.ROLLING_BACK: lambda op: self._rolling_back(Release.of(op)),
        }
        try:
            final = Release.of(self.machine.run(release, handlers))
        except KeyboardInterrupt:
            self.notify(
                "interrupted", "interrupted; the state is kept: `ethixctl release --resume` continues"
            )
            raise
        if final.status == "aborted":
            self.notify("aborted", f"release ended from outside: {final.status} ({final.reason})")
        code = ExitCode(final.details.get("exit_code", EXIT_CODES.get(final.status, ExitCode.FAILED)))
        return Result(
            final.status, code, final.reason, final.id, final.canary_revision, final.stable_revision
        )

    def _end(self, release: Release, phase: Phase, reason: str, code: ExitCode | None = None) -> Phase:
        """Record why the release is moving to ``phase`` (and the exit code it will end with)."""
        details = {} if code is None else {"exit_code": int(code)}
        self.ledger.update(release.id, reason=reason, details=details)
        if phase is Phase.FAILED:
            self.notify("failed", reason)
        return phase

    def _deploying(self, release: Release, options: Options) -> Phase:
        if release.canary_revision is None and release.details.get("deploy_started"):
            # Killed while deploying: the platform may have made the revision; it carries our tag.
            tagged = [
                t.revision
                for t in self.platform.get_service(options.service).traffic
                if t.tag == release.tag and t.revision
            ]
            if not tagged:
                return self._end(release, Phase.FAILED, "interrupted before the canary was deployed")
            revision = self.platform.get_revision(options.service, tagged[0])
        else:
            self.ledger.update(release.id, details={"deploy_started": True})
            try:
                revision = self.platform.deploy_revision(
                    options.service, options.image, options.env, release.tag, keep_traffic=True,
                    timeout=options.deploy_timeout, base_revision=release.stable_revision,
                )  # fmt: skip
            except EthixError as exc:
                return self._end(release, Phase.FAILED, f"deploy failed: {exc.message}")
        if not revision.ready:
            message = f"{revision.name} never became ready: {revision.message}"
            return self._end(release, Phase.FAILED, message)
        self.ledger.update(release.id, details={"canary_revision": revision.name})
        self.notify("deployed", f"{revision.name} ready at 0% with tag {release.tag}", revision=revision.name)
        return Phase.SMOKE

    def _smoke(self, release: Release) -> Phase:
        if self.smoke is None:
            return Phase.CANARY
        url = self.platform.tag_url(release.service, release.tag)
        passed, summary = self.smoke(url)
        self.notify("smoke", f"smoke against {url}: {summary}", passed=passed, url=url)
        if passed:
            return Phase.CANARY
        # The canary never had traffic: nothing to move, it stays at 0% with its tag.
        return self._end(release, Phase.ROLLED_BACK, f"smoke failed: {summary}")

    def _canary(self, release: Release, options: Options) -> Phase:
        canary_name = release.canary_revision or ""
        canary = self.platform.get_revision(options.service, canary_name)
        if not canary.ready:
            why = f"canary {canary.name} is not ready: {canary.message}"
            return self._end(release, Phase.ROLLING_BACK, why, ExitCode.ROLLED_BACK)
        if options.skip_canary:
            self.notify(
                "warning",
                "SKIPPING THE CANARY (--skip-canary): 100% goes to the new revision without analysis",
            )
            self._set_traffic(release, {canary_name: 100}, "--skip-canary: straight to 100%")
            return self._promoted(release, " (canary skipped)")
        decision = self._steps(release, options)
        if decision is None:
            return self._promoted(release, "")
        return self._failed(release, decision, options)

    def _steps(self, release: Release, options: Options) -> Decision | None:
        canary, stable = release.canary_revision or "", release.stable_revision or ""
        stored = release.details.get("plan")  # a release recorded before plans existed has none
        plan = Plan.from_dict(stored) if stored else self.plan(options)
        counters = Counters(
            retries=int(release.counters.get("retries", 0)),
            consecutive_errors=int(release.counters.get("consecutive_errors", 0)),
        )
        passes = int(release.counters.get("passes", 0))
        with ExitStack() as stack:
            if options.load_rps:
                from ethixctl.release.loadgen import LoadGenerator

                url = self.platform.get_service(options.service).uri.rstrip("/") + options.load_path
                stack.enter_context(LoadGenerator(url, options.load_rps))
                self.notify("load", f"sending {options.load_rps:g} requests/s to {url}", rps=options.load_rps)
            for index in range(release.step, len(plan.steps)):
                step = plan.steps[index]
                if index != release.step or "step_started" not in release.counters:
                    # A new step: its position and fresh counts are recorded before traffic moves,
                    # so a crash in between re-applies this step's split, never the previous one's.
                    if index != release.step:
                        counters.retries, passes = 0, 0
                    release = self._save(release, index, counters, passes, started=self.clock.time())
                label = f"step {index + 1}/{len(plan.steps)}"
                split = (
                    {canary: step.weight, stable: 100 - step.weight} if step.weight < 100 else {canary: 100}
                )
                self._set_traffic(release, split, f"{label}: {step.weight}% to {canary}")
                decision = self._hold_step(release, step, label, counters, passes)
                if decision is not None:
                    return decision
                passes = 0
        return None

    def _hold_step(
        self, release: Release, step: StepPlan, label: str, counters: Counters, passes: int
    ) -> Decision | None:
        needed = max(1, round(step.hold / step.interval))
        self.notify(
            "step", f"{label}: {step.weight}% to the canary, hold {step.hold:g}s, analysis every"
            f" {step.interval:g}s over {step.window:g}s windows",
            step=release.step + 1, steps=len(self.book.steps), weight=step.weight, hold=step.hold,
            interval=step.interval, window=step.window,
        )  # fmt: skip
        # The window fills from the step's traffic change, which a resumed run does not repeat.
        started = float(release.counters["step_started"])
        while passes < needed:
            self._wait(release, step.interval)
            grace = self.clock.time() - started < step.window
            verdict = self._analyse(release, step)
            decision = decide(verdict, self.book, counters, grace=grace)
            if decision.next is Next.PASS:
                passes += 1
            self._save(release, release.step, counters, passes)
            self.notify(
                "gate", f"{label} {step.weight}%: {verdict.summary()} → {decision.next.value}",
                step=release.step + 1, weight=step.weight, passes=passes, needed=needed,
                time_left=(needed - passes) * step.interval, verdict=verdict.to_dict(),
                decision={"next": decision.next.value, "reason": decision.reason},
            )  # fmt: skip
            if decision.page:
                self.notify("page", f"{label}: {decision.reason}")
            if decision.next in (Next.ROLLBACK, Next.HOLD):
                return decision
        return None

    def _analyse(self, release: Release, step: StepPlan) -> analysis.Verdict:
        canary, stable = release.canary_revision or "", release.stable_revision or ""
        if self.analyse is not None:
            return self.analyse(canary, stable, step.weight, step.window)
        if self.prometheus is None:
            raise RuntimeError("an orchestrator without Prometheus needs an analyse function")
        timing = self.book.timing(release.environment).model_copy(update={"window": step.window})
        return analysis.evaluate(
            self.prometheus, self.book, service=release.service, canary=canary, stable=stable,
            timing=timing, compare=step.weight < 100,
            traffic_changed_at=float(release.counters["step_started"]),
        )  # fmt: skip

    def _save(
        self, release: Release, step: int, counters: Counters, passes: int, started: float | None = None
    ) -> Release:
        persisted = {
            "retries": counters.retries,
            "consecutive_errors": counters.consecutive_errors,
            "passes": passes,
            "step_started": release.counters.get("step_started") if started is None else started,
        }
        return Release.of(self.ledger.update(release.id, step=step, counters=persisted))

    def _wait(self, release: Release, seconds: float) -> None:
        deadline = self.clock.time() + seconds
        while True:
            self.machine.check_in_progress(release)
            left = deadline - self.clock.time()
            if left <= 0:
                return
            self.clock.sleep(min(left, 0.5))

    def _set_traffic(self, release: Release, split: dict[str, int], reason: str) -> None:
        """Apply ``split`` unless the ledger says this release already applied it (a resumed run)."""
        self.machine.check_in_progress(release)
        last = self.ledger.last_traffic(release.id)
        if last is not None and last.split == split and last.state == "applied":
            return
        change = (
            last.id
            if last is not None and last.split == split
            else self.ledger.intend_traffic(release.service, release.environment, split, reason, release.id)
        )
        # If this raises or the process dies here, the change stays "intended": resume re-applies it.
        self.platform.set_traffic(release.service, split)
        self.ledger.confirm_traffic(change)
        shown = ", ".join(f"{r} {p}%" for r, p in split.items())
        self.notify("traffic", f"traffic: {shown}", split=split)

    def _promoted(self, release: Release, note: str) -> Phase:
        reason = f"{release.canary_revision} serves 100%{note}"
        self.notify("promoted", f"{release.image} promoted: {reason}", revision=release.canary_revision)
        return self._end(release, Phase.PROMOTED, reason)

    def _failed(self, release: Release, decision: Decision, options: Options) -> Phase:
        if decision.next is Next.HOLD:
            self.notify("held", f"held at the current split; a person decides: {decision.reason}")
            return self._end(release, Phase.HELD, decision.reason, ExitCode.HELD)
        if options.on_failure == "freeze":
            self.notify("held", f"frozen at the current split (--on-failure freeze): {decision.reason}")
            return self._end(release, Phase.FROZEN, decision.reason, ExitCode.HELD)
        return self._end(release, Phase.ROLLING_BACK, decision.reason, decision.exit_code)

    def _rolling_back(self, release: Release) -> Phase:
        stable = release.stable_revision or ""
        before = self.platform.serving_split(release.service)
        # The canary keeps its tag (tags=None keeps them) and 0%: it stays inspectable.
        self._set_traffic(release, {stable: 100}, f"rollback: {release.reason}")
        if not release.details.get("rollback_recorded"):
            self.ledger.record_rollback(
                release.service, release.environment, before, stable, release.reason, automatic=True,
                operation_id=release.id,
            )  # fmt: skip
            self.ledger.update(release.id, details={"rollback_recorded": True})
        self.notify("rolled_back", f"rolled back to {stable}; {release.canary_revision} kept at 0% with tag "
                    f"{release.tag}: {release.reason}", revision=stable)  # fmt: skip
        return Phase.ROLLED_BACK


def describe(book: Playbook, plan: Plan, options: Options, stable: str | None) -> dict[str, Any]:
    """What a release would do, for --dry-run and the start of a live run."""
    return {
        "service": options.service,
        "image": options.image,
        "environment": options.environment,
        "stable": stable,
        "skip_canary": options.skip_canary,
        "on_failure": options.on_failure,
        "rate": plan.rate,
        "steps": [step.to_dict() for step in plan.steps],
        "warnings": plan.warnings,
        "min_requests": book.analysis.min_requests,
        "gates": [{"name": g.name, "max": g.max, "unit": g.unit} for g in book.gates],
        "baseline": {
            "enabled": book.baseline.enabled,
            "confidence": book.baseline.confidence,
            "pass_score": book.baseline.pass_score,
            "marginal_score": book.baseline.marginal_score,
        },
        "limits": {
            "inconclusive": book.analysis.inconclusive_limit,
            "consecutive_errors": book.analysis.consecutive_error_limit,
        },
        "load_rps": options.load_rps,
    }
