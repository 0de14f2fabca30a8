"""Durations as people write them in playbooks, catalogs and on the command line: 90s, 15m, 12h, 180d, 2w.

One parser and one spelling for every file ethixctl reads (the DR playbook, the secrets catalog) and
for ``history --since 7d``.
"""

from __future__ import annotations

import re

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")


def parse_duration(value: object) -> float:
    """``900``, ``"90s"``, ``"15m"``, ``"1.5h"``, ``"30d"``, ``"2w"`` -> seconds; ValueError otherwise."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    match = _DURATION.match(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise ValueError(
            f"not a duration: {value!r} (use seconds, or a number with s, m, h, d or w: 90s, 15m, 12h, 180d)"
        )
    return float(match.group(1)) * UNITS[match.group(2)]


def format_duration(seconds: float) -> str:
    """The shortest exact spelling: 2700 -> '45m', 14400 -> '4h', 90 -> '90s', 0 -> '0s'."""
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"
