"""Operation ids that cannot collide: ULIDs (48-bit millisecond time + 80 random bits, Crockford base32).

Sortable by creation time, so listings by id are chronological; 80 random bits per millisecond make a
collision practically impossible (the 6-hex-character ids before them collided once in 10,000). Within
one process and one millisecond the random part is incremented (monotonic ULIDs), so ids created by
one process always sort in creation order.
"""

from __future__ import annotations

import os
import threading
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
LENGTH = 26
SHORT = 8  # what tables show; any unambiguous prefix is accepted on the command line


_last = (0, 0)
_last_lock = threading.Lock()


def new_id(now: float | None = None) -> str:
    global _last
    millis = int((time.time() if now is None else now) * 1000)
    with _last_lock:
        random = _last[1] + 1 if millis == _last[0] else int.from_bytes(os.urandom(10), "big")
        _last = (millis, random)
    value = (millis << 80) | (random & ((1 << 80) - 1))
    chars = []
    for _ in range(LENGTH):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def normalise(text: str) -> str:
    """User-typed ids: case-insensitive, and Crockford's look-alikes (O→0, I/L→1) accepted."""
    return text.strip().upper().translate(str.maketrans("OIL", "011"))
