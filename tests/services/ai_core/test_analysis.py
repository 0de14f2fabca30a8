"""The analysis function itself, in-process: known values on hand-built data, and fairlearn as the oracle."""

from __future__ import annotations

import numpy as np
import pytest
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    demographic_parity_ratio,
    equalized_odds_difference,
    selection_rate,
)

from services.ai_core import analysis
from services.ai_core.analysis import AnalysisError, Limits, analyze
from services.ai_core.schemas import AnalyzeRequest, Scalar

# Approval is exactly "score >= 50", so a depth-3 tree model reproduces it and its predictions are the
# labels: group A approves 4 of 6 (0.667), group B 1 of 6 (0.167) — rates computable by hand.
HAND_ROWS = [
    {"score": 80, "colour": "red", "group": "A", "approved": "yes"},
    {"score": 70, "colour": "blue", "group": "A", "approved": "yes"},
    {"score": 65, "colour": "red", "group": "A", "approved": "yes"},
    {"score": 55, "colour": "blue", "group": "A", "approved": "yes"},
    {"score": 30, "colour": "red", "group": "A", "approved": "no"},
    {"score": 20, "colour": "blue", "group": "A", "approved": "no"},
    {"score": 90, "colour": "red", "group": "B", "approved": "yes"},
    {"score": 45, "colour": "blue", "group": "B", "approved": "no"},
    {"score": 40, "colour": "red", "group": "B", "approved": "no"},
    {"score": 35, "colour": "blue", "group": "B", "approved": "no"},
    {"score": 25, "colour": "red", "group": "B", "approved": "no"},
    {"score": 10, "colour": "blue", "group": "B", "approved": "no"},
]


def hand_request(**overrides: object) -> AnalyzeRequest:
    fields: dict[str, object] = {
        "target": "approved",
        "protected_attribute": "group",
        "positive_label": "yes",
        "rows": HAND_ROWS,
    }
    fields.update(overrides)
    return AnalyzeRequest.model_validate(fields)


def test_hand_built_dataset_gives_hand_computed_fairness() -> None:
    result = analyze(hand_request())

    assert result["n_rows"] == 12 and result["n_columns"] == 4 and result["rows_dropped"] == 0
    assert result["model"]["accuracy"] == 1.0 and result["model"]["accuracy_basis"] == "training"
    fairness = result["fairness"]
    assert fairness["selection_rate"] == {
        "A": pytest.approx(4 / 6, abs=1e-6),
        "B": pytest.approx(1 / 6, abs=1e-6),
    }
    assert fairness["group_sizes"] == {"A": 6, "B": 6}
    assert fairness["demographic_parity_difference"] == pytest.approx(0.5, abs=1e-6)
    assert fairness["disparate_impact_ratio"] == pytest.approx(0.25, abs=1e-6)
    # Perfect predictions: TPR 1 and FPR 0 in both groups.
    assert fairness["equalized_odds_difference"] == 0.0


def test_protected_attribute_is_not_a_feature_and_the_deciding_feature_ranks_first() -> None:
    result = analyze(hand_request())

    assert result["model"]["features"] == ["score", "colour"]
    assert set(result["feature_importance"]) == {"score", "colour"}
    assert next(iter(result["feature_importance"])) == "score"
    assert result["feature_importance"]["score"] > 10 * result["feature_importance"]["colour"]
    assert result["explained_rows"] == 12


def test_csv_and_rows_give_the_same_result() -> None:
    header = "score,colour,group,approved"
    lines = [header] + [",".join(str(row[c]) for c in header.split(",")) for row in HAND_ROWS]
    from_csv = analyze(hand_request(rows=None, csv="\n".join(lines)))
    from_rows = analyze(hand_request())
    for key in ("n_rows", "n_columns", "model", "fairness", "feature_importance"):
        assert from_csv[key] == from_rows[key]


def _biased_rows(n: int, seed: int = 7) -> list[dict[str, Scalar]]:
    rng = np.random.default_rng(seed)
    group = rng.choice(["m", "f", "x"], size=n, p=[0.5, 0.4, 0.1])
    income = rng.normal(50, 15, size=n) + np.where(group == "m", 8, 0)
    postcode = np.where(rng.random(n) < 0.7, np.where(group == "m", "N1", "S2"), "E3")
    noise = rng.normal(size=n)
    label = (income + rng.normal(0, 10, size=n) > 55).astype(int)
    rows: list[dict[str, Scalar]] = [
        {"income": float(i), "postcode": str(p), "noise": float(z), "group": str(g), "label": int(y)}
        for i, p, z, g, y in zip(income, postcode, noise, group, label, strict=True)
    ]
    return rows


def test_fairness_matches_fairlearn_functions() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, size=300)
    predictions = np.where(rng.random(300) < 0.8, y, 1 - y)
    groups = rng.choice(["a", "b", "c"], size=300)

    fairness = analysis._fairness(y, predictions, groups)

    frame = MetricFrame(metrics=selection_rate, y_true=y, y_pred=predictions, sensitive_features=groups)
    assert fairness["selection_rate"] == pytest.approx(frame.by_group.to_dict(), abs=1e-6)
    assert fairness["demographic_parity_difference"] == pytest.approx(
        demographic_parity_difference(y, predictions, sensitive_features=groups), abs=1e-6
    )
    assert fairness["equalized_odds_difference"] == pytest.approx(
        equalized_odds_difference(y, predictions, sensitive_features=groups), abs=1e-6
    )
    assert fairness["disparate_impact_ratio"] == pytest.approx(
        demographic_parity_ratio(y, predictions, sensitive_features=groups), abs=1e-6
    )
    assert sum(fairness["group_sizes"].values()) == 300


def test_equalized_odds_matches_fairlearn_when_a_group_has_no_positive_outcome() -> None:
    y = np.array([0, 0, 0, 1, 0, 1, 1, 0])
    predictions = np.array([0, 1, 0, 1, 0, 0, 1, 1])
    groups = np.array(["a", "a", "a", "b", "b", "b", "b", "b"])

    fairness = analysis._fairness(y, predictions, groups)

    expected = equalized_odds_difference(y, predictions, sensitive_features=groups)
    if np.isfinite(expected):
        assert fairness["equalized_odds_difference"] == pytest.approx(expected, abs=1e-6)
    else:
        assert fairness["equalized_odds_difference"] is None


def test_large_data_is_explained_on_a_bounded_sample_with_holdout_accuracy() -> None:
    rows = _biased_rows(600)
    request = AnalyzeRequest(target="label", protected_attribute="group", positive_label=1, rows=rows)

    result = analyze(request, Limits(explain_rows=100))

    assert result["explained_rows"] == 100
    assert result["model"]["accuracy_basis"] == "holdout"
    assert 0.6 < result["model"]["accuracy"] <= 1.0
    # income drives the label; the pure-noise column must matter far less.
    assert result["feature_importance"]["income"] > 3 * result["feature_importance"]["noise"]
    assert set(result["fairness"]["selection_rate"]) == {"m", "f", "x"}
    # Men have higher incomes by construction, so the model selects them more often.
    rates = result["fairness"]["selection_rate"]
    assert rates["m"] > rates["f"]


def test_mean_abs_shap_equals_shap_computed_directly() -> None:
    import shap

    rng = np.random.default_rng(5)
    x = rng.normal(size=(200, 3))
    y = (x[:, 0] - x[:, 2] > 0).astype(int)
    model, _, _ = analysis._fit(x, y)

    expected = np.abs(shap.TreeExplainer(model).shap_values(x)).mean(axis=0)
    assert analysis._mean_abs_shap(model, x) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("values", "label"),
    [
        ([1, 0, 1, 0], "1"),
        ([1.0, 0.0, 1.0, None], 1),
        ([True, False, True, False], "true"),
        (["Y", "N", "Y", "N"], "y"),
    ],
)
def test_positive_label_matches_across_types(values: list[object], label: object) -> None:
    rows = [{"x": i, "g": "ab"[i % 2], "t": v} for i, v in enumerate(values * 3)]
    result = analyze(
        AnalyzeRequest.model_validate(
            {"target": "t", "protected_attribute": "g", "positive_label": label, "rows": rows}
        )
    )
    assert result["rows_dropped"] == (3 if None in values else 0)
    assert result["n_rows"] == 12


def test_missing_and_infinite_feature_values_are_imputed() -> None:
    rows = [dict(row) for row in HAND_ROWS]
    rows[0]["score"] = None
    rows[1]["score"] = float("inf")
    rows[2]["colour"] = None
    result = analyze(hand_request(rows=rows))
    assert result["n_rows"] == 12
    assert all(np.isfinite(v) for v in result["feature_importance"].values())


@pytest.mark.parametrize(
    ("overrides", "limits", "field", "message"),
    [
        ({"target": "outcome"}, Limits(), "target", "missing column(s): target 'outcome'"),
        ({"target": "score"}, Limits(), "target", "must be binary: found 12 distinct"),
        ({"positive_label": "maybe"}, Limits(), "positive_label", "'maybe' is not one of the values"),
        ({"rows": [{**r, "group": "A"} for r in HAND_ROWS]}, Limits(), "protected_attribute", "one group"),
        ({}, Limits(max_rows=11), "rows", "too many rows: 12 > limit 11"),
        ({}, Limits(max_columns=3), "rows", "too many columns: 4 > limit 3"),
        ({}, Limits(max_groups=1), "protected_attribute", "2 groups, more than the limit 1"),
        ({"rows": []}, Limits(), "rows", "no data"),
        ({"rows": None, "csv": "a,b\n1,2\n3,4,5,6\n"}, Limits(), "csv", "CSV could not be parsed"),
        ({"rows": None, "csv": "score,group,approved\n"}, Limits(), "csv", "header but no rows"),
        (
            {"rows": [{"group": r["group"], "approved": r["approved"]} for r in HAND_ROWS]},
            Limits(),
            "rows",
            "no feature columns",
        ),
    ],
)
def test_bad_input_raises_analysis_error_naming_the_field(
    overrides: dict[str, object], limits: Limits, field: str, message: str
) -> None:
    with pytest.raises(AnalysisError) as caught:
        analyze(hand_request(**overrides), limits)
    assert caught.value.field == field
    assert message in caught.value.message


def test_warm_up_runs_a_real_analysis() -> None:
    assert analysis.warm_up() > 0
