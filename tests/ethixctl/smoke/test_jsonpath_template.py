from __future__ import annotations

import pytest

from ethixctl.smoke import jsonpath, template

DOC = {"status": "ok", "items": [{"id": 7}, {"id": 8}], "odd": {"a key": None}, "n": 0}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("$", DOC),
        ("$.status", "ok"),
        ("$.items[1].id", 8),
        ("$.items[-1].id", 8),
        ('$.odd["a key"]', None),
        ("$.n", 0),
        ("$.items[5]", jsonpath.MISSING),
        ("$.status.deeper", jsonpath.MISSING),
        ("$.absent", jsonpath.MISSING),
    ],
)
def test_resolve_subset(path: str, expected: object) -> None:
    actual = jsonpath.resolve(DOC, path)
    if expected is jsonpath.MISSING:
        assert actual is jsonpath.MISSING
    else:
        assert actual == expected


@pytest.mark.parametrize("path", ["status", "$..status", "$.items[*]", "$.a[?(@.b)]", "$.items["])
def test_unsupported_syntax_is_rejected_with_the_offending_part(path: str) -> None:
    with pytest.raises(jsonpath.JsonPathError, match=r"path starts with|unsupported syntax"):
        jsonpath.parse(path)


def test_last_key_finds_the_field_name() -> None:
    assert jsonpath.last_key("$.data.access_token") == "access_token"
    assert jsonpath.last_key("$.items[0]") == "items"
    assert jsonpath.last_key("$") is None


def test_render_keeps_the_type_of_a_whole_placeholder_and_interpolates_inside_text() -> None:
    values = {"id": 42, "token": "abc", "flag": True}
    rendered = template.render(
        {"dataset_id": "{{ id }}", "auth": "Bearer {{token}}", "list": ["{{ flag }}", "x-{{ id }}"], "n": 3},
        values,
    )
    assert rendered == {"dataset_id": 42, "auth": "Bearer abc", "list": [True, "x-42"], "n": 3}


def test_render_reports_an_undefined_variable_by_name() -> None:
    with pytest.raises(template.UndefinedVariable) as info:
        template.render("/api/{{ missing }}", {})
    assert str(info.value) == "undefined variable {{ missing }}"


def test_names_in_walks_nested_structures() -> None:
    assert template.names_in({"a": ["{{ x }}", {"{{ y }}": "z {{ w }}"}], "b": 1}) == {"x", "y", "w"}
