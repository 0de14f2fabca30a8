"""What to do after one analysis: the playbook's decision matrix applied to a verdict.

Pure and deterministic (no I/O), so the runbook's matrix is unit-tested with recorded verdicts.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ethixctl.exitcodes import ExitCode
from ethixctl.release.analysis import Outcome, Verdict
from ethixctl.release.playbook import Action, Playbook, Rule, Situation


class Next(StrEnum):
    PASS = "pass"  # counts toward the step's required passes
    RETRY = "retry"  # hold the step, analyse again next interval
    ROLLBACK = "rollback"  # terminal: on-failure action (rollback or freeze)
    HOLD = "hold"  # terminal: keep the split, page a person


@dataclass
class Counters:
    """Per-step retries and the consecutive-error streak (which spans steps, like Argo's)."""

    retries: int = 0
    consecutive_errors: int = 0


@dataclass(frozen=True)
class Decision:
    next: Next
    situation: Situation | None
    reason: str
    page: bool = False
    exit_code: ExitCode = ExitCode.OK


# A failure situation the playbook has no rule for still fails safe; "wait and see" ones retry.
_FALLBACK = {
    Situation.GATE_FAILED: Action.ROLLBACK,
    Situation.GATE_ABOVE: Action.ROLLBACK,
    Situation.BASELINE_FAILED: Action.ROLLBACK,
    Situation.BASELINE_MARGINAL: Action.RETRY,
    Situation.INCONCLUSIVE: Action.RETRY,
    Situation.ERROR: Action.RETRY,
}


def situations(verdict: Verdict, book: Playbook) -> list[tuple[Situation, str | None]]:
    """Every situation this verdict is in, with the gate concerned."""
    if verdict.outcome is Outcome.ERROR:
        return [(Situation.ERROR, None)]
    if verdict.outcome is Outcome.INCONCLUSIVE:
        # Gate values computed on too little data are shown, never acted on.
        return [(Situation.INCONCLUSIVE, None)]
    found: list[tuple[Situation, str | None]] = []
    for gate in verdict.gates:
        if gate.value is None:
            continue
        for rule in book.decisions:
            if (
                rule.when is Situation.GATE_ABOVE
                and rule.gate == gate.name
                and gate.value >= (rule.value or 0)
            ):
                found.append((Situation.GATE_ABOVE, gate.name))
        if gate.passed is False:
            found.append((Situation.GATE_FAILED, gate.name))
    if verdict.baseline is not None:
        if verdict.baseline.verdict.value == "fail":
            found.append((Situation.BASELINE_FAILED, None))
        elif verdict.baseline.verdict.value == "marginal":
            found.append((Situation.BASELINE_MARGINAL, None))
    return found


def _matches(rule: Rule, situation: Situation, gate: str | None, verdict: Verdict) -> bool:
    if rule.when is not situation or (rule.gate is not None and rule.gate != gate):
        return False
    if situation is Situation.GATE_ABOVE:
        result = verdict.gate(gate or "")
        return result is not None and result.value is not None and result.value >= (rule.value or 0)
    return True


def _exit_for(action: Action, situation: Situation) -> ExitCode:
    if action is Action.HOLD:
        return ExitCode.HELD
    if situation is Situation.ERROR_LIMIT:
        return ExitCode.FAILED
    if situation is Situation.INCONCLUSIVE_LIMIT:
        return ExitCode.HELD
    return ExitCode.ROLLED_BACK


def _terminal(rule: Rule | None, situation: Situation, reason: str) -> Decision:
    action = rule.action if rule else _FALLBACK.get(situation, Action.ROLLBACK)
    if action is Action.RETRY:  # validation forbids this for limits; a fallback never retries a limit
        action = Action.ROLLBACK
    text = f"{reason}; {rule.reason}" if rule and rule.reason else reason
    nxt = Next.HOLD if action is Action.HOLD else Next.ROLLBACK
    return Decision(
        nxt, situation, text, page=bool(rule and rule.page), exit_code=_exit_for(action, situation)
    )


def decide(verdict: Verdict, book: Playbook, counters: Counters, *, grace: bool = False) -> Decision:
    """Apply the first matching rule (file order) and update ``counters``.

    ``grace``: the analysis window has not yet filled since the last traffic change, so thin data is
    expected; inconclusive and marginal results retry without counting toward the limit. Failed gates
    and query errors are acted on as usual.
    """
    found = situations(verdict, book)
    if verdict.outcome is not Outcome.ERROR:
        counters.consecutive_errors = 0
    if not found:
        return Decision(Next.PASS, None, "all gates passed")
    rule: Rule | None = None
    situation = found[0][0]
    for candidate in book.decisions:
        hit = next((s for s, g in found if _matches(candidate, s, g, verdict)), None)
        if hit is not None:
            rule, situation = candidate, hit
            break
    action = rule.action if rule else _FALLBACK[situation]
    why = "; ".join(verdict.reasons) or situation.value
    if action is not Action.RETRY:
        return _terminal(rule, situation, why)
    if situation is Situation.ERROR:
        counters.consecutive_errors += 1
        limit = book.analysis.consecutive_error_limit
        if counters.consecutive_errors >= limit:
            reason = f"{counters.consecutive_errors} consecutive query errors (limit {limit}): {why}"
            return _terminal(book.rule_for(Situation.ERROR_LIMIT), Situation.ERROR_LIMIT, reason)
        reason = f"query error {counters.consecutive_errors}/{limit}: {why}"
    elif grace:
        return Decision(Next.RETRY, situation, f"{situation.value} while the window fills: {why}")
    else:
        counters.retries += 1
        limit = book.analysis.inconclusive_limit
        if counters.retries >= limit:
            reason = f"{situation.value} {counters.retries} times in this step (limit {limit}): {why}"
            return _terminal(
                book.rule_for(Situation.INCONCLUSIVE_LIMIT), Situation.INCONCLUSIVE_LIMIT, reason
            )
        reason = f"{situation.value} {counters.retries}/{limit}: {why}"
    return Decision(Next.RETRY, situation, reason, page=bool(rule and rule.page))
