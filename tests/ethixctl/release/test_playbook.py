"""The release playbook: the shipped file is valid, and mistakes are reported as file:line: field: problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from ethixctl.errors import PlaybookError
from ethixctl.exitcodes import ExitCode
from ethixctl.release import playbook
from ethixctl.release.playbook import Action, Situation

SHIPPED = playbook.DEFAULT_PATH.read_text()


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "release.yaml"
    path.write_text(text)
    return path


def test_shipped_playbook_matches_the_runbook() -> None:
    book = playbook.load()
    assert [s.weight for s in book.steps] == [10, 50, 100]
    gates = {g.name: g for g in book.gates}
    assert gates["error_rate"].max == 0.005
    assert gates["p95_latency"].max == 2.0
    assert book.analysis.consecutive_error_limit == 4
    assert book.baseline.confidence == 0.98
    assert (book.baseline.pass_score, book.baseline.marginal_score) == (95, 75)
    rule = book.rule_for(Situation.GATE_FAILED, "error_rate")
    assert rule is not None and rule.action is Action.ROLLBACK
    above = book.rule_for(Situation.GATE_ABOVE, "p95_latency")
    assert above is not None and above.action is Action.HOLD and above.page and above.value == 5.0


def test_timing_precedence_flag_over_environment_over_default() -> None:
    book = playbook.load()
    assert (book.timing("production").hold, book.timing("production").interval) == (900, 60)
    local = book.timing("local")
    assert (local.hold, local.interval, local.window) == (30, 5, 15)
    assert (local.sample_step, local.sample_window) == (1, 3)
    assert book.timing("production").sample_step == book.baseline.sample_step
    flagged = book.timing("local", hold=10, interval=2)
    assert (flagged.hold, flagged.interval) == (10, 2)
    # An interval longer than the hold would never analyse within the step.
    assert book.timing("local", hold=3).interval == 3


def test_render_fills_only_our_placeholders() -> None:
    query = 'sum(rate(x{service="{service}",revision="{revision}"}[{window}]))'
    assert playbook.render(query, service="backend", revision="backend-00002-abc", window="15s") == (
        'sum(rate(x{service="backend",revision="backend-00002-abc"}[15s]))'
    )


@pytest.mark.parametrize(
    ("old", "new", "line", "field", "problem"),
    [
        ("  - weight: 50\n", "  - weight: 150\n", 8, "steps.1.weight", "less than or equal to 100"),
        ("  - weight: 100\n", "  - weight: 90\n", 6, "steps", "last step must send 100%"),
        ("    max: 0.005\n", "    max: lots\n", None, "gates.0.max", "valid number"),
        (
            'revision="{revision}",status=~"5..",route!~"/health/.*|/metrics"}[{window}])) or vector(0))',
            'revision="{revison}",status=~"5..",route!~"/health/.*|/metrics"}[{window}])) or vector(0))',
            None,
            "gates.0.query.app",
            "unknown placeholder(s) {revison}",
        ),
        (
            "    gate: error_rate\n",
            "    gate: error_ratio\n",
            None,
            "decisions",
            "rule 1: unknown gate 'error_ratio'",
        ),
        (
            "  consecutive_error_limit: 4\n",
            "  consecutive_error_limit: 4\n  retries: 2\n",
            None,
            "analysis.retries",
            "Extra inputs are not permitted",
        ),
    ],
)
def test_mistakes_report_file_line_and_field(
    tmp_path: Path, old: str, new: str, line: int | None, field: str, problem: str
) -> None:
    assert old in SHIPPED
    path = _write(tmp_path, SHIPPED.replace(old, new, 1))
    with pytest.raises(PlaybookError) as caught:
        playbook.load(path)
    error = caught.value
    assert error.path == str(path)
    assert error.field == field
    assert problem in error.problem
    assert error.line is not None
    if line is not None:
        assert error.line == line
    assert str(error).startswith(f"{path}:{error.line}: {field}: ")
    assert error.exit_code is ExitCode.USAGE


def test_every_query_has_one_version_per_metric_source(tmp_path: Path) -> None:
    book = playbook.load()
    for query in [
        book.analysis.requests_query,
        *(g.query for g in book.gates),
        *(m.query for m in book.baseline.metrics),
    ]:
        assert set(query) == set(playbook.METRIC_SOURCES)
        assert "run_googleapis_com:" in query["cloudrun"] and "run_googleapis_com:" not in query["app"]
    # Cloud Run latencies are milliseconds: the cloudrun versions convert them to the gates' seconds.
    assert book.gates[1].query["cloudrun"].endswith("/ 1000")

    start = SHIPPED.index("      cloudrun: >-\n        histogram_quantile")
    end = SHIPPED.index("\n", SHIPPED.index("/ 1000", start)) + 1
    with pytest.raises(
        PlaybookError, match=r"gates\.1\.query: Value error, no query for metric source cloudrun"
    ):
        playbook.load(_write(tmp_path, SHIPPED[:start] + SHIPPED[end:]))


def test_a_plain_string_query_serves_every_source(tmp_path: Path) -> None:
    start = SHIPPED.index("    query:\n      app: >-\n        histogram_quantile")
    end = SHIPPED.index("\n", SHIPPED.index("/ 1000", start)) + 1
    single = (
        '    query: histogram_quantile(0.95, sum by (le) (rate(x_bucket{revision="{revision}"}[{window}])))\n'
    )
    book = playbook.load(_write(tmp_path, SHIPPED[:start] + single + SHIPPED[end:]))
    assert book.gates[1].query["app"] == book.gates[1].query["cloudrun"]


def test_environment_config_picks_the_metric_source() -> None:
    book = playbook.load()
    assert book.timing("staging").metric_source == "app"
    chosen = book.for_environment("staging", "cloudrun")
    assert chosen.metric_source == chosen.timing("staging").metric_source == "cloudrun"
    assert chosen.timing("staging").hold == book.timing("staging").hold, "the other overrides stay"
    # Without a config value, the playbook's per-environment choice applies.
    staging = book.environments["staging"].model_copy(update={"metric_source": "cloudrun"})
    by_playbook = book.model_copy(update={"environments": {**book.environments, "staging": staging}})
    assert by_playbook.for_environment("staging", None).metric_source == "cloudrun"
    assert by_playbook.for_environment("staging", "app").timing("staging").metric_source == "app"
    assert book.for_environment("production", None).metric_source == "app"


def test_missing_required_decision_is_reported(tmp_path: Path) -> None:
    start = SHIPPED.index("  - when: error_limit")
    end = SHIPPED.index("notifications:")
    path = _write(tmp_path, SHIPPED[:start] + "\n" + SHIPPED[end:])
    with pytest.raises(PlaybookError, match="decisions: Value error, must say what to do for: error_limit"):
        playbook.load(path)


def test_limit_rules_cannot_retry(tmp_path: Path) -> None:
    text = SHIPPED.replace(
        "  - when: inconclusive_limit\n    action: rollback",
        "  - when: inconclusive_limit\n    action: retry",
    )
    with pytest.raises(PlaybookError, match="inconclusive_limit cannot retry") as caught:
        playbook.load(_write(tmp_path, text))
    assert caught.value.field is not None and caught.value.field.startswith("decisions.")


def test_invalid_yaml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PlaybookError, match=r"release.yaml:\d+: invalid YAML"):
        playbook.load(_write(tmp_path, "version: 1\nsteps: [\n"))
    with pytest.raises(PlaybookError, match="cannot read"):
        playbook.load(tmp_path / "missing.yaml")
