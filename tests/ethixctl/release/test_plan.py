"""Can the canary be judged at the service's request rate? Decided before a release starts."""

from __future__ import annotations

import pytest

from ethixctl.errors import UsageError
from ethixctl.release import playbook
from ethixctl.release.plan import HEADROOM, make_plan


def test_enough_traffic_keeps_the_playbook_window() -> None:
    book = playbook.load()
    timing = book.timing("local")  # hold 30, window 15, min 20 requests
    plan = make_plan(book, timing, 40.0, service="backend")
    assert [s.window for s in plan.steps] == [15, 15, 15]
    assert plan.steps[0].expected_requests == pytest.approx(4.0 * 15)
    assert not plan.warnings


def test_low_traffic_grows_the_window_up_to_the_hold() -> None:
    """Regression: at --load 10 the 10% step saw 1 request/s, never 20 in a 15 s window, and failed safe
    every time; now its window grows to hold the minimum with headroom."""
    book = playbook.load()
    plan = make_plan(book, book.timing("local"), 10.0, service="backend")
    first = plan.steps[0]
    assert first.window == pytest.approx(HEADROOM * 20 / 1.0)
    assert first.window <= first.hold
    assert first.expected_requests == pytest.approx(HEADROOM * 20)
    assert plan.steps[1].window == 15  # 5 requests/s at 50%: the playbook's window is enough


def test_a_release_that_cannot_conclude_is_refused_with_what_it_needs() -> None:
    book = playbook.load()
    with pytest.raises(UsageError) as caught:
        make_plan(book, book.timing("local"), 4.0, service="backend")
    assert "backend cannot be judged at 4.00 requests/s" in caught.value.message
    assert "the 10% step would send 0.40/s" in caught.value.message
    assert "--load 10" in (caught.value.hint or "") and "--hold 75" in (caught.value.hint or "")
    with pytest.raises(UsageError, match=r"at 0\.00 requests/s") as idle:
        make_plan(book, book.timing("local"), 0.0, service="backend")
    assert "--hold" not in (idle.value.hint or "")


def test_unknown_rate_is_a_warning_not_a_guess() -> None:
    book = playbook.load()
    plan = make_plan(book, book.timing("local"), None, service="backend")
    assert plan.rate is None and "unknown" in plan.warnings[0]
    assert all(s.expected_requests is None for s in plan.steps)
