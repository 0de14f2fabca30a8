"""Statistics against known values: scipy.stats.mannwhitneyu is the reference implementation."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
from scipy.stats import mannwhitneyu

from ethixctl.release.stats import Classification, ScoreVerdict, classify, mann_whitney_u, score

# (x, y): no ties/small (exact), ties (asymptotic), larger samples, one sample entirely above the other.
SAMPLES = [
    ([19, 22, 16, 29, 24], [20, 11, 17, 12]),
    ([1, 2, 2, 3, 3, 3, 4], [2, 3, 4, 4, 5, 5, 6, 6]),
    (
        [0.12, 0.15, 0.11, 0.19, 0.13, 0.12, 0.18, 0.14, 0.16, 0.15],
        [0.21, 0.25, 0.22, 0.2, 0.27, 0.24, 0.23, 0.26, 0.21, 0.22, 0.3],
    ),
    ([5.0, 6.0, 7.0], [1.0, 2.0, 3.0]),
    ([0.0] * 6 + [0.01, 0.02], [0.0] * 9 + [0.05]),
]


@pytest.mark.parametrize(("x", "y"), SAMPLES)
@pytest.mark.parametrize("method", ["auto", "asymptotic"])
def test_matches_scipy(x: list[float], y: list[float], method: str) -> None:
    ours = mann_whitney_u(x, y, method=method)
    reference = mannwhitneyu(x, y, alternative="two-sided", method=method)
    assert ours.u1 == pytest.approx(float(reference.statistic))
    assert ours.p_value == pytest.approx(float(reference.pvalue), rel=1e-9, abs=1e-12)


def test_exact_distribution_matches_scipy_on_random_small_samples() -> None:
    rng = random.Random(7)
    for _ in range(20):
        x = [rng.random() for _ in range(rng.randint(2, 8))]
        y = [rng.random() for _ in range(rng.randint(2, 12))]
        ours = mann_whitney_u(x, y, method="exact")
        assert ours.method == "exact"
        assert ours.p_value == pytest.approx(float(mannwhitneyu(x, y, method="exact").pvalue), rel=1e-9)


def test_all_values_equal_is_no_evidence() -> None:
    result = mann_whitney_u([0.0] * 10, [0.0] * 12)
    assert result.p_value == 1.0
    assert float(mannwhitneyu([0.0] * 10, [0.0] * 12).pvalue) == 1.0


def test_rejects_empty_and_nan() -> None:
    with pytest.raises(ValueError, match="at least one"):
        mann_whitney_u([], [1.0])
    with pytest.raises(ValueError, match="NaN"):
        mann_whitney_u([math.nan, 1.0], [1.0])


KAYENTA: dict[str, Any] = {
    "confidence": 0.98,
    "min_samples": 5,
    "effect_size_low": 0.8,
    "effect_size_high": 1.2,
}
STABLE = [0.10, 0.11, 0.12, 0.10, 0.09, 0.11, 0.10, 0.12, 0.11, 0.10]


def test_clear_regression_is_high_and_fails() -> None:
    canary = [v * 3 for v in STABLE]
    result = classify("latency", canary, STABLE, **KAYENTA)
    assert result.classification is Classification.HIGH
    assert result.failed
    assert result.effect_size == pytest.approx(3.0)
    assert result.p_value is not None and result.p_value < 0.02


def test_improvement_is_low_and_passes_for_an_increase_metric() -> None:
    result = classify("latency", [v / 3 for v in STABLE], STABLE, **KAYENTA)
    assert result.classification is Classification.LOW
    assert not result.failed
    either = classify("latency", [v / 3 for v in STABLE], STABLE, direction="either", **KAYENTA)
    assert either.failed


def test_significant_but_small_effect_passes() -> None:
    canary = [v * 1.1 for v in STABLE]
    result = classify("latency", canary, STABLE, **KAYENTA)
    assert result.p_value is not None and result.p_value < 0.02
    assert result.classification is Classification.PASS
    assert "within [0.8, 1.2]" in result.reason


def test_not_significant_passes_and_tolerance_applies() -> None:
    shuffled = STABLE[::-1]
    assert classify("latency", shuffled, STABLE, **KAYENTA).classification is Classification.PASS
    tolerant = classify("errors", [0.003] * 6, [0.0] * 6, tolerance=0.005, **KAYENTA)
    assert tolerant.classification is Classification.PASS
    assert "tolerance" in tolerant.reason


def test_too_few_samples_is_nodata_and_nan_is_dropped() -> None:
    result = classify("latency", [0.1, math.nan, 0.2, math.nan], STABLE, **KAYENTA)
    assert result.classification is Classification.NODATA
    assert result.canary_samples == 2
    assert not result.failed


def test_errors_from_zero_baseline_are_high() -> None:
    result = classify("errors", [0.2, 0.3, 0.25, 0.2, 0.3, 0.22], [0.0] * 8, **KAYENTA)
    assert result.classification is Classification.HIGH
    assert result.effect_size == math.inf


def test_score_thresholds() -> None:
    bad = classify("latency", [v * 3 for v in STABLE], STABLE, weight=1, **KAYENTA)
    good = classify("errors", STABLE, STABLE, weight=3, **KAYENTA)
    assert score([good], pass_score=95, marginal_score=75).verdict is ScoreVerdict.PASS
    mixed = score([good, bad], pass_score=95, marginal_score=75)
    assert mixed.value == pytest.approx(75.0)
    assert mixed.verdict is ScoreVerdict.MARGINAL
    assert score([good, bad], pass_score=95, marginal_score=80).verdict is ScoreVerdict.FAIL


def test_any_nodata_makes_the_score_nodata() -> None:
    good = classify("errors", STABLE, STABLE, **KAYENTA)
    missing = classify("latency", [], STABLE, **KAYENTA)
    result = score([good, missing], pass_score=95, marginal_score=75)
    assert result.verdict is ScoreVerdict.NODATA
    assert result.value is None
    assert score([], pass_score=95, marginal_score=75).verdict is ScoreVerdict.NODATA
