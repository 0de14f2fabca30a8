"""Mann-Whitney U and Kayenta-style metric classification and scoring.

Pure Python on purpose, measured on these machines (2 cores, 2026-12): ``import scipy.stats`` costs
0.5 s idle and 2.6–3.5 s on a loaded machine, paid by every ``ethixctl release`` and ``--dry-run``,
and one ``scipy.stats.mannwhitneyu`` call on two 15-value series takes 3.4 ms against 0.011 ms here,
with a gate evaluation budget of 50 ms. So scipy is not a runtime dependency of ethixctl; it is the
test oracle (tests/ethixctl/release/test_stats.py, with hypothesis): two-sided, average ranks for
ties, normal approximation with tie and continuity correction, and the exact distribution when a
sample is small and there are no ties, all matching ``scipy.stats.mannwhitneyu``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Any, Literal

# scipy's rule: exact when either sample has at most this many values and nothing is tied.
EXACT_MAX_N = 8


@dataclass(frozen=True)
class MannWhitney:
    u1: float  # U of the first sample (scipy's ``statistic``)
    p_value: float
    method: Literal["exact", "asymptotic"]


def _average_ranks(values: Sequence[float]) -> tuple[list[float], list[int]]:
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    ties: list[int] = []
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        rank = (start + end) / 2 + 1
        for position in range(start, end + 1):
            ranks[order[position]] = rank
        ties.append(end - start + 1)
        start = end + 1
    return ranks, ties


@lru_cache(maxsize=4096)
def _count(n1: int, n2: int, u: int) -> int:
    """Arrangements of n1 + n2 distinct values whose first-sample U equals ``u``."""
    if u < 0 or u > n1 * n2:
        return 0
    if n1 == 0 or n2 == 0:
        return 1 if u == 0 else 0
    # The largest value is either from the first sample (it beats all n2) or from the second.
    return _count(n1 - 1, n2, u - n2) + _count(n1, n2 - 1, u)


def _exact_sf(u: int, n1: int, n2: int) -> float:
    """P(U >= u) under the null hypothesis."""
    total = math.comb(n1 + n2, n1)
    return sum(_count(n1, n2, k) for k in range(u, n1 * n2 + 1)) / total


def mann_whitney_u(x: Sequence[float], y: Sequence[float], method: str = "auto") -> MannWhitney:
    """Two-sided Mann-Whitney U test of ``x`` against ``y``."""
    n1, n2 = len(x), len(y)
    if n1 == 0 or n2 == 0:
        raise ValueError("both samples need at least one value")
    if any(math.isnan(v) for v in (*x, *y)):
        raise ValueError("samples must not contain NaN")
    ranks, ties = _average_ranks([*x, *y])
    u1 = sum(ranks[:n1]) - n1 * (n1 + 1) / 2
    u = max(u1, n1 * n2 - u1)
    tied = any(t > 1 for t in ties)
    if method == "auto":
        method = "exact" if min(n1, n2) <= EXACT_MAX_N and not tied else "asymptotic"
    if method == "exact":
        p = 2 * _exact_sf(round(u), n1, n2)
        chosen: Literal["exact", "asymptotic"] = "exact"
    elif method == "asymptotic":
        n = n1 + n2
        tie_term = sum(t**3 - t for t in ties)
        variance = n1 * n2 / 12 * ((n + 1) - tie_term / (n * (n - 1)))
        if variance <= 0:  # every value is the same: no evidence of any difference
            return MannWhitney(u1, 1.0, "asymptotic")
        z = (u - n1 * n2 / 2 - 0.5) / math.sqrt(variance)
        p = math.erfc(z / math.sqrt(2))  # 2 * normal survival function
        chosen = "asymptotic"
    else:
        raise ValueError(f"unknown method {method!r}")
    return MannWhitney(u1, min(1.0, max(0.0, p)), chosen)


class Classification(StrEnum):
    PASS = "Pass"
    HIGH = "High"
    LOW = "Low"
    NODATA = "NoData"


@dataclass(frozen=True)
class MetricResult:
    name: str
    classification: Classification
    failed: bool
    canary_mean: float | None
    stable_mean: float | None
    effect_size: float | None  # canary mean / stable mean
    p_value: float | None
    canary_samples: int
    stable_samples: int
    weight: float
    reason: str


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def classify(
    name: str,
    canary: Sequence[float],
    stable: Sequence[float],
    *,
    confidence: float,
    min_samples: int,
    effect_size_low: float,
    effect_size_high: float,
    tolerance: float = 0.0,
    direction: Literal["increase", "decrease", "either"] = "increase",
    weight: float = 1.0,
) -> MetricResult:
    """Kayenta's judgement of one metric: Pass, High, Low or NoData, and whether that fails it."""
    canary = [v for v in canary if not math.isnan(v)]
    stable = [v for v in stable if not math.isnan(v)]
    counts: dict[str, Any] = {"canary_samples": len(canary), "stable_samples": len(stable), "weight": weight}
    if len(canary) < min_samples or len(stable) < min_samples:
        return MetricResult(
            name,
            Classification.NODATA,
            False,
            _mean(canary) if canary else None,
            _mean(stable) if stable else None,
            None,
            None,
            **counts,
            reason=f"{len(canary)} canary / {len(stable)} stable samples, need {min_samples} each",
        )
    c_mean, s_mean = _mean(canary), _mean(stable)
    effect = c_mean / s_mean if s_mean else 1.0 if c_mean == 0 else math.inf
    test = mann_whitney_u(canary, stable)
    base: dict[str, Any] = {
        "canary_mean": c_mean,
        "stable_mean": s_mean,
        "effect_size": effect,
        "p_value": test.p_value,
    }

    def result(classification: Classification, reason: str) -> MetricResult:
        failed = (classification is Classification.HIGH and direction in ("increase", "either")) or (
            classification is Classification.LOW and direction in ("decrease", "either")
        )
        return MetricResult(name, classification, failed, **base, **counts, reason=reason)

    if abs(c_mean - s_mean) <= tolerance:
        return result(
            Classification.PASS, f"difference {abs(c_mean - s_mean):.4g} within tolerance {tolerance:g}"
        )
    alpha = 1 - confidence
    if test.p_value >= alpha:
        return result(Classification.PASS, f"no significant difference (p={test.p_value:.3g} >= {alpha:.3g})")
    if effect_size_low <= effect <= effect_size_high:
        return result(
            Classification.PASS,
            f"significant (p={test.p_value:.3g}) but effect {effect:.3g}"
            f" within [{effect_size_low:g}, {effect_size_high:g}]",
        )
    label = Classification.HIGH if effect > effect_size_high else Classification.LOW
    return result(
        label, f"canary {label.value.lower()}er than stable: effect {effect:.3g}, p={test.p_value:.3g}"
    )


class ScoreVerdict(StrEnum):
    PASS = "pass"
    MARGINAL = "marginal"
    FAIL = "fail"
    NODATA = "nodata"


@dataclass(frozen=True)
class Score:
    value: float | None
    verdict: ScoreVerdict
    metrics: list[MetricResult]


def score(metrics: Sequence[MetricResult], *, pass_score: float, marginal_score: float) -> Score:
    """Weighted share of passing metrics, 0–100. Any NoData metric makes the whole comparison NoData:
    a metric we could not judge must not quietly count as passed."""
    if not metrics or any(m.classification is Classification.NODATA for m in metrics):
        return Score(None, ScoreVerdict.NODATA, list(metrics))
    total = sum(m.weight for m in metrics)
    value = 100 * sum(m.weight for m in metrics if not m.failed) / total
    if value >= pass_score:
        verdict = ScoreVerdict.PASS
    elif value >= marginal_score:
        verdict = ScoreVerdict.MARGINAL
    else:
        verdict = ScoreVerdict.FAIL
    return Score(value, verdict, list(metrics))
