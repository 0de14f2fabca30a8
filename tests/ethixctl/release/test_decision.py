"""The runbook's decision matrix (playbooks/release.yaml) applied to recorded verdicts."""

from __future__ import annotations

import pytest

from ethixctl.exitcodes import ExitCode
from ethixctl.release import playbook
from ethixctl.release.analysis import GateResult, Outcome, Verdict
from ethixctl.release.decision import Counters, Next, decide
from ethixctl.release.playbook import Situation
from ethixctl.release.stats import Score, ScoreVerdict

BOOK = playbook.load()


def verdict(
    outcome: Outcome,
    error_rate: float | None = 0.0,
    p95: float | None = 0.1,
    baseline: ScoreVerdict | None = None,
) -> Verdict:
    gates = [
        GateResult(
            "error_rate", error_rate, 0.005, "ratio", None if error_rate is None else error_rate < 0.005, ""
        ),
        GateResult("p95_latency", p95, 2.0, "seconds", None if p95 is None else p95 < 2.0, ""),
    ]
    score = (
        None
        if baseline is None
        else Score({"pass": 100.0, "marginal": 80.0, "fail": 0.0}.get(baseline), baseline, [])
    )
    return Verdict(
        outcome, "backend", "backend-2", "backend-1", 0.0, 15, 100, 20, True, gates, score, ["why"]
    )


def test_all_passing_advances() -> None:
    counters = Counters(consecutive_errors=2)
    decision = decide(verdict(Outcome.PASS, baseline=ScoreVerdict.PASS), BOOK, counters)
    assert decision.next is Next.PASS
    assert counters.consecutive_errors == 0  # a good answer ends an error streak


def test_error_rate_above_half_a_percent_rolls_back() -> None:
    decision = decide(verdict(Outcome.FAIL, error_rate=0.2), BOOK, Counters())
    assert decision.next is Next.ROLLBACK
    assert decision.situation is Situation.GATE_FAILED
    assert decision.exit_code is ExitCode.ROLLED_BACK
    assert "error rate above 0.5% during canary" in decision.reason


def test_p95_above_two_seconds_rolls_back_but_above_five_holds_and_pages() -> None:
    slow = decide(verdict(Outcome.FAIL, p95=2.5), BOOK, Counters())
    assert (slow.next, slow.exit_code) == (Next.ROLLBACK, ExitCode.ROLLED_BACK)
    very_slow = decide(verdict(Outcome.FAIL, p95=6.0), BOOK, Counters())
    assert very_slow.next is Next.HOLD
    assert very_slow.page
    assert very_slow.exit_code is ExitCode.HELD
    assert very_slow.situation is Situation.GATE_ABOVE


def test_baseline_failure_rolls_back_and_marginal_retries() -> None:
    failed = decide(verdict(Outcome.FAIL, baseline=ScoreVerdict.FAIL), BOOK, Counters())
    assert (failed.next, failed.situation) == (Next.ROLLBACK, Situation.BASELINE_FAILED)
    counters = Counters()
    marginal = decide(verdict(Outcome.MARGINAL, baseline=ScoreVerdict.MARGINAL), BOOK, counters)
    assert marginal.next is Next.RETRY and counters.retries == 1


def test_inconclusive_retries_up_to_the_limit_then_fails_safe_never_promotes() -> None:
    counters = Counters()
    no_data = verdict(Outcome.INCONCLUSIVE, error_rate=None, p95=None)
    decisions = [decide(no_data, BOOK, counters) for _ in range(BOOK.analysis.inconclusive_limit)]
    assert [d.next for d in decisions[:-1]] == [Next.RETRY] * (BOOK.analysis.inconclusive_limit - 1)
    last = decisions[-1]
    assert last.next is Next.ROLLBACK
    assert last.situation is Situation.INCONCLUSIVE_LIMIT
    assert last.exit_code is ExitCode.HELD  # exit 4: the analysis stayed inconclusive


def test_gate_values_on_too_little_data_are_not_acted_on() -> None:
    # 30% errors on 3 requests is noise: inconclusive, not a rollback.
    decision = decide(verdict(Outcome.INCONCLUSIVE, error_rate=0.3), BOOK, Counters())
    assert decision.next is Next.RETRY
    assert decision.situation is Situation.INCONCLUSIVE


def test_consecutive_errors_fail_safe_at_the_limit_and_page() -> None:
    counters = Counters()
    error = verdict(Outcome.ERROR, error_rate=None, p95=None)
    limit = BOOK.analysis.consecutive_error_limit
    assert limit == 4
    decisions = [decide(error, BOOK, counters) for _ in range(limit)]
    assert all(d.next is Next.RETRY for d in decisions[:-1])
    assert decisions[-1].next is Next.ROLLBACK
    assert decisions[-1].situation is Situation.ERROR_LIMIT
    assert decisions[-1].exit_code is ExitCode.FAILED
    assert decisions[-1].page


def test_errors_must_be_consecutive() -> None:
    counters = Counters()
    error = verdict(Outcome.ERROR, error_rate=None, p95=None)
    for _ in range(3):
        decide(error, BOOK, counters)
    decide(verdict(Outcome.PASS), BOOK, counters)
    assert decide(error, BOOK, counters).next is Next.RETRY


@pytest.mark.parametrize("outcome", [Outcome.FAIL, Outcome.PASS])
def test_first_matching_rule_in_file_order_wins(outcome: Outcome) -> None:
    # Both error rate and P95 > 5 s: the hold-and-page rule comes first in the playbook.
    decision = decide(verdict(outcome, error_rate=0.5, p95=9.0), BOOK, Counters())
    assert decision.next is Next.HOLD


def test_thin_data_while_the_window_fills_does_not_count_but_failures_do() -> None:
    counters = Counters()
    no_data = verdict(Outcome.INCONCLUSIVE, error_rate=None, p95=None)
    for _ in range(BOOK.analysis.inconclusive_limit + 2):
        assert decide(no_data, BOOK, counters, grace=True).next is Next.RETRY
    assert counters.retries == 0
    assert decide(verdict(Outcome.FAIL, error_rate=0.2), BOOK, counters, grace=True).next is Next.ROLLBACK
