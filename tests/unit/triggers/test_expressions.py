"""Event templates: path lookup only, with errors that name the path."""

import pytest

from sluice.triggers.expressions import MappingError, check_template, render

EVENT = {
    "Records": [{"s3": {"bucket": {"name": "landing"}, "object": {"key": "a/b.csv", "size": 42}}}],
    "tags": ["x", "y"],
    "ok": True,
    "none": None,
    "unicode": "Zürich ✓",
    "with-dash_and_underscore": "fine",
}
HEADERS = {"x-request-id": "r-1"}


def test_paths_fields_indexes_and_headers_are_looked_up_and_literal_text_kept() -> None:
    template = "s3://$(body.Records[0].s3.bucket.name)/$(body.Records[0].s3.object.key)"
    assert render(template, EVENT, HEADERS) == "s3://landing/a/b.csv"
    assert render("$(header.X-Request-Id)", EVENT, HEADERS) == "r-1"
    assert render("$(body.with-dash_and_underscore) $(body.unicode)", EVENT, HEADERS) == "fine Zürich ✓"


def test_non_strings_become_compact_json() -> None:
    assert render("$(body.Records[0].s3.object.size)", EVENT, HEADERS) == "42"
    assert render("$(body.ok)/$(body.none)/$(body.tags)", EVENT, HEADERS) == 'true/null/["x","y"]'
    assert render("$(body.Records[0].s3.bucket)", EVENT, HEADERS) == '{"name":"landing"}'


def test_values_are_data_a_reference_inside_a_value_is_not_expanded_again() -> None:
    event = {"a": "$(body.b)", "b": "secret"}
    assert render("$(body.a)", event, {}) == "$(body.b)"


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("$(body.Records[1].s3)", "body.Records is a list of 1, it has no [1]"),
        ("$(body.Records[0].s3.nope)", "body.Records[0].s3 has no field 'nope'"),
        ("$(body.tags.x)", "body.tags has no field 'x' (a list of 2)"),
        ("$(body.ok[0])", "body.ok is a bool, it has no [0]"),
        ("$(header.X-Missing)", "the request has no x-missing header"),
    ],
)
def test_what_an_event_lacks_is_an_error_naming_the_path(template: str, message: str) -> None:
    with pytest.raises(MappingError) as raised:
        render(template, EVENT, HEADERS)
    assert message in str(raised.value)


@pytest.mark.parametrize(
    "template", ["$(body..a)", "$(body.a[x])", "$(params.x)", "$(body.a b)", "$(header.)"]
)
def test_malformed_references_are_refused(template: str) -> None:
    with pytest.raises(MappingError):
        check_template(template)


def test_deep_nesting_and_huge_values_are_bounded() -> None:
    nested: object = "leaf"
    for _ in range(500):
        nested = {"a": nested}
    assert render("$(body" + ".a" * 500 + ")", nested, {}) == "leaf"
    with pytest.raises(MappingError, match="bytes"):
        render("$(body.big)", {"big": "x" * 5000}, {})
