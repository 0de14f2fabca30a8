"""Property-based: whatever the data, analyze either answers a well-formed result or a field-named error."""

from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.ai_core.analysis import AnalysisError, Limits, analyze
from services.ai_core.schemas import AnalyzeRequest, AnalyzeResponse, Scalar

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["a", "b", "", " ", "1", "1.0", "true", "NaN"]),
)
Label = str | int | float | bool
targets: st.SearchStrategy[tuple[Label, Label]] = st.sampled_from(
    [("a", "b"), (0, 1), (True, False), (1.0, 2.0), ("yes", "no")]
)


@st.composite
def requests(draw: st.DrawFn) -> AnalyzeRequest:
    """Mostly analysable data with messy values, sometimes missing or surplus columns."""
    pair = draw(targets)
    values: dict[str, st.SearchStrategy[Scalar]] = {
        "t": st.one_of(st.sampled_from(pair), st.none()),
        "g": st.one_of(st.sampled_from(["m", "f", "x"]), st.integers(0, 1), st.none()),
        **{
            name: scalars
            for name in draw(st.lists(st.sampled_from(["x", "y", "z"]), max_size=3, unique=True))
        },
    }
    if draw(st.integers(0, 9)) == 0:
        del values[draw(st.sampled_from(["t", "g"]))]
    min_rows = draw(st.sampled_from([0, 8]))
    rows: list[dict[str, Scalar]] = draw(
        st.lists(st.fixed_dictionaries(values), min_size=min_rows, max_size=30)
    )
    label: Label = draw(st.sampled_from([*pair, str(pair[0]), "other"]))
    if draw(st.booleans()):
        return AnalyzeRequest(target="t", protected_attribute="g", positive_label=label, rows=rows)
    columns = list(values)
    lines = [",".join("" if row[c] is None else str(row[c]) for c in columns) for row in rows]
    csv = "\n".join([",".join(columns), *lines])
    return AnalyzeRequest(target="t", protected_attribute="g", positive_label=label, csv=csv)


@given(request=requests())
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_analyze_returns_a_valid_result_or_an_analysis_error(request: AnalyzeRequest) -> None:
    try:
        result = analyze(request, Limits(max_rows=25, max_columns=5))
    except AnalysisError as error:
        assert error.field in {"target", "protected_attribute", "positive_label", "rows", "csv"}
        assert error.message
        return
    AnalyzeResponse.model_validate(result)
    rates = result["fairness"]["selection_rate"]
    assert len(rates) >= 2 and all(0 <= rate <= 1 for rate in rates.values())
    assert all(math.isfinite(value) and value >= 0 for value in result["feature_importance"].values())
