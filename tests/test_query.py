"""The query builder: every literal escaped, so no value can change a filter's meaning."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from urllib.parse import parse_qsl

import pytest

from dataverse.query import (
    Query,
    contains,
    endswith,
    eq,
    ge,
    in_,
    is_not_null,
    is_null,
    literal,
    lt,
    ne,
    not_in,
    startswith,
)


def decoded(query: Query) -> dict[str, str]:
    """The options as the server sees them after URL-decoding."""
    return dict(parse_qsl(query.to_query_string(), keep_blank_values=True))


def test_a_quote_in_a_value_is_doubled_so_the_literal_stays_closed() -> None:
    q = Query("contacts").where(eq("lastname", "O'Brien"))
    assert decoded(q)["$filter"] == "lastname eq 'O''Brien'"


def test_a_value_that_tries_to_close_the_literal_and_add_a_condition_stays_one_literal() -> None:
    q = Query("contacts").where(eq("lastname", "x' or lastname ne 'y"))
    assert decoded(q)["$filter"] == "lastname eq 'x'' or lastname ne ''y'"


def test_ampersand_hash_and_plus_cannot_start_another_query_option() -> None:
    q = Query("accounts").select("name").where(eq("name", "A&B #1 +x&$top=1"))
    qs = q.to_query_string()
    assert qs.count("&") == 1  # only between $select and $filter
    assert "#" not in qs and "+" not in qs
    assert decoded(q)["$filter"] == "name eq 'A&B #1 +x&$top=1'"


def test_guids_and_datetimes_are_unquoted_and_none_is_null() -> None:
    guid = uuid.UUID("78914942-34cb-ed11-b596-0022481d68cd")
    when = datetime(2024, 1, 1, 1, 0, tzinfo=timezone(timedelta(hours=1)))
    q = Query("contacts").where(eq("_parentcustomerid_value", guid), ge("modifiedon", when), ne("emailaddress1", None))
    assert decoded(q)["$filter"] == (
        "(_parentcustomerid_value eq 78914942-34cb-ed11-b596-0022481d68cd) and "
        "(modifiedon ge 2024-01-01T00:00:00Z) and (emailaddress1 ne null)"
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "null"),
        (True, "true"),
        (False, "false"),
        (42, "42"),
        (Decimal("100000.50"), "100000.50"),
        (0.5, "0.5"),
        ("", "''"),
        ("it's", "'it''s'"),
    ],
)
def test_literals(value: object, expected: str) -> None:
    assert literal(value) == expected


def test_a_naive_datetime_is_refused_rather_than_shifted_silently() -> None:
    with pytest.raises(ValueError, match="naive"):
        eq("modifiedon", datetime(2024, 1, 1))


def test_unsupported_values_are_refused_when_the_filter_is_built() -> None:
    with pytest.raises(TypeError):
        eq("name", object())
    with pytest.raises(ValueError, match="NaN"):
        eq("revenue", float("nan"))


@pytest.mark.parametrize("bad", ["name eq 'x'", "name)", "a//b", "", "1abc", "name;drop"])
def test_column_names_that_are_not_plain_paths_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="not a valid column"):
        eq(bad, 1)


def test_wildcards_inside_contains_startswith_endswith_match_themselves() -> None:
    q = Query("accounts").where(contains("name", "50%_off [x]"), startswith("name", "a_"), endswith("name", "%"))
    assert decoded(q)["$filter"] == (
        "(contains(name,'50[%][_]off [[]x[]]')) and (startswith(name,'a[_]')) and (endswith(name,'[%]'))"
    )


def test_contains_escapes_quotes_as_well_as_wildcards() -> None:
    assert decoded(Query("contacts").where(contains("lastname", "O'B%")))["$filter"] == ("contains(lastname,'O''B[%]')")


def test_filters_across_a_single_valued_lookup() -> None:
    q = Query("contacts").select("fullname").where(eq("parentcustomerid_account/address1_city", "Amsterdam"))
    assert decoded(q)["$filter"] == "parentcustomerid_account/address1_city eq 'Amsterdam'"


def test_and_or_not_render_with_explicit_parentheses() -> None:
    f = (eq("a", 1) | eq("b", 2)) & ~is_null("c")
    q = Query("accounts").where(f, is_not_null("d"))
    assert decoded(q)["$filter"] == "(((a eq 1) or (b eq 2)) and (not (c eq null))) and (d ne null)"


def test_in_uses_parameter_aliases_and_a_json_array_of_strings() -> None:
    ids = [uuid.UUID(int=1), uuid.UUID(int=2)]
    q = Query("contacts").where(in_("lastname", ['O"Brian', "O'Brian"]), not_in("_parentcustomerid_value", ids))
    opts = decoded(q)
    assert opts["$filter"] == (
        "(Microsoft.Dynamics.CRM.In(PropertyName=@p1,PropertyValues=@p2)) and "
        "(Microsoft.Dynamics.CRM.NotIn(PropertyName=@p3,PropertyValues=@p4))"
    )
    assert opts["@p1"] == "'lastname'"
    assert opts["@p2"] == '["O\\"Brian", "O\'Brian"]'
    assert opts["@p4"] == f'["{ids[0]}", "{ids[1]}"]'


def test_in_needs_values_and_refuses_none() -> None:
    with pytest.raises(ValueError):
        in_("name", [])
    with pytest.raises(ValueError, match="is_null"):
        in_("name", ["a", None])


def test_select_expand_orderby_top_count() -> None:
    q = (
        Query("contacts")
        .select("fullname", "_parentcustomerid_value")
        .expand("parentcustomerid_account", select=["name", "revenue"])
        .orderby("createdon desc", "contactid")
        .top(10)
        .count()
    )
    assert decoded(q) == {
        "$select": "fullname,_parentcustomerid_value",
        "$expand": "parentcustomerid_account($select=name,revenue)",
        "$orderby": "createdon desc,contactid",
        "$top": "10",
        "$count": "true",
    }
    assert q.to_path().startswith("contacts?$select=fullname%2C_parentcustomerid_value&")


def test_bad_sort_direction_and_top_are_refused() -> None:
    with pytest.raises(ValueError):
        Query("contacts").orderby("createdon sideways")
    with pytest.raises(ValueError):
        Query("contacts").top(0)


def test_a_query_is_immutable() -> None:
    base = Query("contacts").select("fullname")
    base.where(lt("numberofemployees", 5))
    assert base.filter is None
    assert base.to_path() == "contacts?$select=fullname"


def test_a_datetime_in_another_zone_is_converted_to_utc() -> None:
    when = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)
    assert literal(when) == "2026-11-23T00:00:00Z"
