"""The release state machine: deploy a canary at 0%, walk the playbook's steps, analyse, decide.

Durability rule: every traffic change is written to the ledger (``intended``) before it is applied
and confirmed (``applied``) after, and the release row always says which step and phase it is in. So
whatever kills ethixctl, ``--resume`` knows the last split anybody asked for and continues or rolls back.
A manual ``ethixctl rollback`` ends the release in the ledger; this loop checks that before every
traffic change and between analyses, and stops.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from ethixctl.errors import EthixError, UsageError
from ethixctl.exitcodes import ExitCode
from ethixctl.release import analysis
from ethixctl.release.decision import Counters, Decision, Next, decide
from ethixctl.release.ledger import IN_PROGRESS, Ledger, Release
from ethixctl.release.notify import Notifier
from ethixctl.release.playbook import Playbook, Timing

if TYPE_CHECKING:
    from ethixctl.adapters.cloudrun import RevisionInfo, ServiceInfo
    from ethixctl.adapters.prometheus import Prometheus

# A smoke hook gets the canary's tag URL and answers (passed, summary).
SmokeHook = Callable[[str], tuple[bool, str]]


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


class Aborted(Exception):
    """The release was ended from outside (``ethixctl rollback``) while it ran."""


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
        prometheus: Prometheus,
        ledger: Ledger,
        book: Playbook,
        notify: Notifier,
        *,
        smoke: SmokeHook | None = None,
    ):
        self.platform = platform
        self.prometheus = prometheus
        self.ledger = ledger
        self.book = book
        self.notify = notify
        self.smoke = smoke

    # entry points ----------------------------------------------------------------------------------

    def start(self, options: Options) -> Result:
        """A new release; the caller holds the service's release lock."""
        service, environment = options.service, options.environment
        pending = self.ledger.in_progress(service, environment)
        if pending is not None:
            raise UsageError(
                f"release {pending.id} of {service} ({pending.image}) is still in progress"
                f" (phase {pending.phase})",
                hint=f"`ethixctl release --resume {service}` continues or rolls it back; "
                f"`ethixctl rollback {service}` ends it",
            )
        stable = stable_of(self.platform.serving_split(service), service)
        stored = {
            "hold": options.hold, "interval": options.interval, "load_rps": options.load_rps,
            "load_path": options.load_path, "skip_canary": options.skip_canary,
            "on_failure": options.on_failure, "env_keys": sorted(options.env),
        }  # fmt: skip
        release = self.ledger.create_release(service, environment, options.image, stable, stored)
        self.notify.release_id = release.id
        self.notify(
            "started", f"release {release.id}: {options.image} (stable {stable})", image=options.image
        )
        return self._guard(release, lambda: self._deploy_and_run(release, options))

    def resume(
        self, service: str, environment: str, overrides: dict[str, float | None] | None = None
    ) -> Result:
        """Continue the interrupted release; ``overrides`` (hold, interval, load_rps) replace the recorded."""
        release = self.ledger.in_progress(service, environment)
        if release is None:
            raise UsageError(
                f"no release of {service} is in progress in {environment}", hint="see `ethixctl history`"
            )
        self.notify.release_id = release.id
        self.notify(
            "resumed", f"resuming release {release.id} at phase {release.phase}, step {release.step + 1}"
        )
        options = self._options_of(release)
        for name, value in (overrides or {}).items():
            if value is not None:
                setattr(options, name, value)
        return self._guard(release, lambda: self._continue(release, options))

    # the machine -----------------------------------------------------------------------------------

    def _guard(self, release: Release, body: Callable[[], Result]) -> Result:
        try:
            return body()
        except Aborted:
            final = self.ledger.release(release.id)
            self.notify("aborted", f"release ended from outside: {final.status} ({final.reason})")
            return Result(final.status, ExitCode.ROLLED_BACK, final.reason, release.id,
                          final.canary_revision, final.stable_revision)  # fmt: skip
        except KeyboardInterrupt:
            self.notify(
                "interrupted", "interrupted; the state is kept: `ethixctl release --resume` continues"
            )
            raise

    def _options_of(self, release: Release) -> Options:
        stored = release.options
        return Options(
            service=release.service, image=release.image, environment=release.environment,
            hold=stored.get("hold"), interval=stored.get("interval"), load_rps=stored.get("load_rps"),
            load_path=stored.get("load_path", Options.load_path),
            skip_canary=bool(stored.get("skip_canary")),
            on_failure=stored.get("on_failure", "rollback"),
        )  # fmt: skip

    def _deploy_and_run(self, release: Release, options: Options) -> Result:
        try:
            revision = self.platform.deploy_revision(
                options.service, options.image, options.env, release.tag, keep_traffic=True,
                timeout=options.deploy_timeout, base_revision=release.stable_revision,
            )  # fmt: skip
        except EthixError as exc:
            return self._end(release, "failed", ExitCode.FAILED, f"deploy failed: {exc.message}")
        if not revision.ready:
            return self._end(
                release, "failed", ExitCode.FAILED, f"{revision.name} never became ready: {revision.message}"
            )
        self.ledger.update(release.id, canary_revision=revision.name, phase="smoke")
        release = self.ledger.release(release.id)
        self.notify("deployed", f"{revision.name} ready at 0% with tag {release.tag}", revision=revision.name)
        if self.smoke is not None:
            url = self.platform.tag_url(options.service, release.tag)
            passed, summary = self.smoke(url)
            self.notify("smoke", f"smoke against {url}: {summary}", passed=passed, url=url)
            if not passed:
                # The canary never had traffic: nothing to move, it stays at 0% with its tag.
                return self._end(release, "rolled_back", ExitCode.ROLLED_BACK, f"smoke failed: {summary}")
        self.ledger.update(release.id, phase="canary")
        return self._continue(self.ledger.release(release.id), options)

    def _continue(self, release: Release, options: Options) -> Result:
        if release.phase == "deploying" or release.canary_revision is None:
            # Interrupted before the canary was recorded: the deploy pins the split, so traffic is
            # where the ledger says; the new revision (if any) has 0%.
            return self._end(release, "failed", ExitCode.FAILED, "interrupted before the canary was ready")
        if release.phase == "rolling_back":
            return self._rollback(release, "resumed an interrupted rollback", ExitCode.ROLLED_BACK, options)
        canary = self.platform.get_revision(options.service, release.canary_revision)
        if not canary.ready:
            return self._rollback(
                release, f"canary {canary.name} is not ready: {canary.message}", ExitCode.ROLLED_BACK, options
            )
        if options.skip_canary:
            self.notify(
                "warning",
                "SKIPPING THE CANARY (--skip-canary): 100% goes to the new revision without analysis",
            )
            self._set_traffic(release, {canary.name: 100}, "--skip-canary: straight to 100%")
            return self._promote(release, skipped=True)
        decision = self._steps(release, options)
        if decision is None:
            return self._promote(release, skipped=False)
        return self._fail(release, decision, options)

    def _steps(self, release: Release, options: Options) -> Decision | None:
        book, canary, stable = self.book, release.canary_revision or "", release.stable_revision or ""
        timing = book.timing(options.environment, options.hold, options.interval)
        hold, interval = timing.hold or book.hold, timing.interval or book.interval
        needed = max(1, round(hold / interval))
        counters = Counters()
        with ExitStack() as stack:
            if options.load_rps:
                from ethixctl.release.loadgen import LoadGenerator

                url = self.platform.get_service(options.service).uri.rstrip("/") + options.load_path
                stack.enter_context(LoadGenerator(url, options.load_rps))
                self.notify("load", f"sending {options.load_rps:g} requests/s to {url}", rps=options.load_rps)
            for index in range(release.step, len(book.steps)):
                weight = book.steps[index].weight
                split = {canary: weight, stable: 100 - weight} if weight < 100 else {canary: 100}
                label = f"step {index + 1}/{len(book.steps)}"
                self._set_traffic(release, split, f"{label}: {weight}% to {canary}")
                self.ledger.update(release.id, step=index)
                self.notify(
                    "step", f"{label}: {weight}% to the canary, hold {hold:g}s, analysis every {interval:g}s",
                    step=index + 1, steps=len(book.steps), weight=weight, hold=hold, interval=interval,
                )  # fmt: skip
                counters.retries = 0
                passes = 0
                step_started = time.monotonic()
                window = timing.window or book.analysis.window
                while passes < needed:
                    self._wait(release.id, interval)
                    grace = time.monotonic() - step_started < window
                    verdict = analysis.evaluate(
                        self.prometheus, book, service=options.service, canary=canary, stable=stable,
                        timing=timing, compare=weight < 100,
                    )  # fmt: skip
                    decision = decide(verdict, book, counters, grace=grace)
                    if decision.next is Next.PASS:
                        passes += 1
                    self.notify(
                        "gate", f"{label} {weight}%: {verdict.summary()} → {decision.next.value}",
                        step=index + 1, weight=weight, passes=passes, needed=needed,
                        time_left=(needed - passes) * interval, verdict=verdict.to_dict(),
                        decision={"next": decision.next.value, "reason": decision.reason},
                    )  # fmt: skip
                    if decision.page:
                        self.notify("page", f"{label}: {decision.reason}")
                    if decision.next in (Next.ROLLBACK, Next.HOLD):
                        return decision
        return None

    def _wait(self, release_id: str, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while True:
            self._check_not_ended(release_id)
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 0.5))

    def _check_not_ended(self, release_id: str) -> None:
        if self.ledger.release(release_id).status != IN_PROGRESS:
            raise Aborted

    def _set_traffic(self, release: Release, split: dict[str, int], reason: str) -> None:
        self._check_not_ended(release.id)
        change = self.ledger.intend_traffic(release.service, release.environment, split, reason, release.id)
        # If this raises or the process dies here, the change stays "intended": resume re-applies it.
        self.platform.set_traffic(release.service, split)
        self.ledger.confirm_traffic(change)
        shown = ", ".join(f"{r} {p}%" for r, p in split.items())
        self.notify("traffic", f"traffic: {shown}", split=split)

    def _promote(self, release: Release, *, skipped: bool) -> Result:
        note = " (canary skipped)" if skipped else ""
        result = self._end(release, "promoted", ExitCode.OK, f"{release.canary_revision} serves 100%{note}")
        if result.status == "promoted":
            self.notify("promoted", f"{release.image} promoted: {release.canary_revision} serves 100%{note}",
                        revision=release.canary_revision)  # fmt: skip
        return result

    def _fail(self, release: Release, decision: Decision, options: Options) -> Result:
        if decision.next is Next.HOLD:
            result = self._end(release, "held", ExitCode.HELD, decision.reason)
            self.notify("held", f"held at the current split; a person decides: {decision.reason}")
            return result
        if options.on_failure == "freeze":
            result = self._end(release, "frozen", ExitCode.HELD, decision.reason)
            self.notify("held", f"frozen at the current split (--on-failure freeze): {decision.reason}")
            return result
        return self._rollback(release, decision.reason, decision.exit_code, options)

    def _rollback(self, release: Release, reason: str, code: ExitCode, options: Options) -> Result:
        stable = release.stable_revision or ""
        self.ledger.update(release.id, phase="rolling_back")
        before = self.platform.serving_split(options.service)
        # The canary keeps its tag (tags=None keeps them) and 0%: it stays inspectable.
        self._set_traffic(release, {stable: 100}, f"rollback: {reason}")
        self.ledger.record_rollback(
            release.service,
            release.environment,
            before,
            stable,
            reason,
            automatic=True,
            release_id=release.id,
        )
        result = self._end(release, "rolled_back", code, reason)
        self.notify("rolled_back", f"rolled back to {stable}; {release.canary_revision} kept at 0% with tag "
                    f"{release.tag}: {reason}", revision=stable)  # fmt: skip
        return result

    def _end(self, release: Release, status: str, code: ExitCode, reason: str) -> Result:
        if not self.ledger.finish_if_in_progress(release.id, status, reason):
            raise Aborted
        final = self.ledger.release(release.id)
        if status == "failed":
            self.notify("failed", reason)
        return Result(status, code, reason, release.id, final.canary_revision, final.stable_revision)


def plan(book: Playbook, timing: Timing, options: Options, stable: str | None) -> dict[str, Any]:
    """What a release would do, for --dry-run and the start of a live run."""
    hold, interval = timing.hold or book.hold, timing.interval or book.interval
    return {
        "service": options.service,
        "image": options.image,
        "environment": options.environment,
        "stable": stable,
        "skip_canary": options.skip_canary,
        "on_failure": options.on_failure,
        "steps": [{"weight": s.weight, "hold": hold, "interval": interval} for s in book.steps],
        "window": timing.window,
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
