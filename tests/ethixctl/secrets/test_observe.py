"""Waiting on what revisions report: every instance of every serving revision, never a sleep-and-hope."""

from __future__ import annotations

import pytest

from ethixctl.errors import EthixError
from ethixctl.secrets.observe import Report, wait_until_reported


def test_lagging_needs_every_instance_and_absent_means_no_series() -> None:
    assert Report("5", {"a": ["5"], "b": ["5", "5"]}).lagging() == []
    assert Report("5", {"a": ["5"], "b": ["4", "5"], "c": []}).lagging() == ["b", "c"]
    assert Report(None, {"a": [], "b": ["4"]}).lagging() == ["b"]
    assert Report("5", {"a": ["4"], "b": []}).describe() == "a: 4, b: none"


def test_wait_follows_the_serving_set_and_times_out_naming_the_laggards() -> None:
    reports = iter(
        [
            Report("2", {"r1": ["1"]}),
            Report("2", {"r1": ["2"], "r2": ["1"]}),
            Report("2", {"r1": ["2"], "r2": ["2"]}),
        ]
    )
    slept: list[float] = []
    waited = wait_until_reported(
        lambda: ["r1"], lambda revs: next(reports), timeout=60, what="x", sleep=slept.append
    )
    assert waited.report.lagging() == [] and len(slept) == 2

    with pytest.raises(EthixError, match=r"within 0s \(r1: 1\)") as raised:
        wait_until_reported(
            lambda: ["r1"],
            lambda revs: Report("2", {"r1": ["1"]}),
            timeout=0,
            what="alias next",
            sleep=slept.append,
        )
    assert raised.value.hint is not None and "--resume" in raised.value.hint
