"""What the shared document store has already refused, remembered in the process until it ends.

The failed-login blocks and the rate-limit windows are decided by counters every revision shares; this
only lets a process refuse a key again without asking the store while a refusal the store already
decided still runs. Both kinds only ever end at the time recorded here or later (a block is lifted by a
successful login, which the block itself prevents; a fixed window never reopens early), so nothing is
ever admitted from memory, and a flood of refused requests costs no store round trip and no worker
thread. Bounded: past ``capacity`` keys the ended ones are dropped, then the soonest to end.
"""

from __future__ import annotations

import time

DEFAULT_CAPACITY = 10_000


class Refusals:
    def __init__(self, capacity: int = DEFAULT_CAPACITY):
        self.capacity = capacity
        self._until: dict[str, float] = {}  # key -> epoch seconds the refusal ends

    def remaining(self, key: str) -> float:
        """Seconds the known refusal of ``key`` still runs; 0 when none is known."""
        until = self._until.get(key)
        return max(0.0, until - time.time()) if until is not None else 0.0

    def refuse(self, key: str, until: float) -> None:
        """The store refused ``key`` until ``until`` (epoch seconds)."""
        if until <= self._until.get(key, 0.0):
            return
        self._until[key] = until
        if len(self._until) > self.capacity:
            self._prune()

    def _prune(self) -> None:
        now = time.time()
        entries = sorted((until, key) for key, until in list(self._until.items()) if until > now)
        keep = entries[len(entries) - self.capacity // 2 :] if len(entries) > self.capacity // 2 else entries
        self._until = {key: until for until, key in keep}
