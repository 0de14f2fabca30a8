"""The in-process memory of refusals the shared store decided: it only ever refuses, never admits."""

from __future__ import annotations

import time

from services.backend.refusals import Refusals


def test_a_refusal_runs_until_its_end_and_is_only_ever_extended() -> None:
    refused = Refusals()
    assert refused.remaining("client:a") == 0
    refused.refuse("client:a", time.time() + 60)
    assert 59 < refused.remaining("client:a") <= 60
    refused.refuse("client:a", time.time() + 5)  # an older, shorter decision does not shorten it
    assert refused.remaining("client:a") > 59
    refused.refuse("client:b", time.time() - 1)
    assert refused.remaining("client:b") == 0


def test_past_its_capacity_it_forgets_ended_refusals_then_the_soonest_to_end() -> None:
    refused = Refusals(capacity=10)
    for number in range(5):
        refused.refuse(f"ended:{number}", time.time() + 0.05)
    time.sleep(0.1)
    now = time.time()
    for number in range(6):  # the 11th key: the ended go, then all but the 5 latest to end
        refused.refuse(f"long:{number}", now + 100 + number)
    keys = [f"ended:{n}" for n in range(5)] + [f"long:{n}" for n in range(6)]
    assert [key for key in keys if refused.remaining(key) > 0] == [f"long:{n}" for n in range(1, 6)]
