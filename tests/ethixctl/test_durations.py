"""The one duration syntax of playbooks, catalogs and `history --since`."""

from __future__ import annotations

import pytest

from ethixctl.durations import format_duration, parse_duration


def test_durations_in_every_unit_and_plain_seconds() -> None:
    values = ("90s", "15m", "12h", "180d", "2w", 30, "1.5h", " 45m ", 2.5)
    assert [parse_duration(v) for v in values] == [
        90,
        900,
        43_200,
        15_552_000,
        1_209_600,
        30,
        5400,
        2700,
        2.5,
    ]


@pytest.mark.parametrize("bad", ["soon", "15 minutes", "-1m", "1y", "", True, None, [1]])
def test_what_is_not_a_duration_says_so(bad: object) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(bad)


def test_the_shortest_exact_spelling() -> None:
    assert [format_duration(s) for s in (2700, 14_400, 90, 0, 86_400, 86_400 * 14, 61, 1.5)] == [
        "45m", "4h", "90s", "0s", "1d", "14d", "61s", "1.5s",
    ]  # fmt: skip
