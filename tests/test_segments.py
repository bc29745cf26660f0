"""Segment definitions: parsing and the mirror evaluator, on hand-made records."""

from __future__ import annotations

from typing import Any

import pytest

from journeys.segments import Member, SegmentError, columns_needed, members, parse_segment
from scoring.records import Account, Contact

ACCOUNTS = [
    Account("a1", attributes={"name": "Contoso", "address1_city": "Amsterdam", "revenue": 250000.0}),
    Account("a2", attributes={"name": "Fabrikam", "address1_city": "Berlin", "revenue": 50000.0}),
]
CONTACTS = [
    Contact("c1", "a1", attributes={"jobtitle": "Purchaser"}),
    Contact("c2", "a1", attributes={"jobtitle": "CTO"}),
    Contact("c3", "a2", attributes={"jobtitle": "Head of Purchasing"}),
    Contact("c4", None, attributes={"jobtitle": None}),
]
AMSTERDAM = {"all": [{"column": "address1_city", "op": "eq", "value": "amsterdam"}]}
PURCHASER = {"all": [{"column": "jobtitle", "op": "contains", "value": "purchas"}]}


def ids(document: dict[str, Any]) -> list[str]:
    return [m.contact_id for m in members(parse_segment(document), CONTACTS, ACCOUNTS)]


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"type": "dynamic", "account": AMSTERDAM}, ["c1", "c2"]),
        ({"type": "dynamic", "account": AMSTERDAM, "contact": PURCHASER}, ["c1"]),
        ({"type": "dynamic", "account": AMSTERDAM, "contact": PURCHASER, "combine": "any"}, ["c1", "c2", "c3"]),
        ({"type": "static", "company_names": ["FABRIKAM"]}, ["c3"]),
        ({"type": "static", "company_names": ["Contoso", "Fabrikam"], "contact": PURCHASER}, ["c1", "c3"]),
        ({"type": "static", "contacts": ["C4"], "company_names": ["Fabrikam"]}, ["c3", "c4"]),
        (
            {"type": "dynamic", "contact": {"all": [{"column": "jobtitle", "op": "ne", "value": "CTO"}]}},
            ["c1", "c3", "c4"],
        ),
        ({"type": "dynamic", "account": {"all": [{"column": "revenue", "op": "ge", "value": 100000}]}}, ["c1", "c2"]),
    ],
)
def test_members(document: dict[str, Any], expected: list[str]) -> None:
    assert ids({"name": "s", **document}) == expected


def test_members_carry_their_account() -> None:
    found = members(parse_segment({"name": "s", "type": "dynamic", "contact": PURCHASER}), CONTACTS, ACCOUNTS)
    assert found == [Member("c1", "a1"), Member("c3", "a2")]


@pytest.mark.parametrize(
    ("document", "path"),
    [
        ({"type": "dynamic"}, "$"),
        ({"type": "static"}, "$"),
        ({"type": "dynamic", "account": AMSTERDAM, "company_names": ["x"]}, "$"),
        ({"type": "dynamic", "contact": {"all": [{"column": "x", "op": "is_null", "value": 1}]}}, "$.contact.all[0]"),
        ({"type": "dynamic", "contact": {"all": [{"column": "x", "op": "eq"}]}}, "$.contact.all[0]"),
        ({"type": "dynamic", "contact": {"any": [{"column": "x", "op": "in", "value": []}]}}, "$.contact.any[0].value"),
    ],
)
def test_definitions_the_schema_cannot_catch_are_refused_with_a_path(document: dict[str, Any], path: str) -> None:
    with pytest.raises(SegmentError) as caught:
        parse_segment({"name": "s", **document})
    assert caught.value.path == path


def test_columns_needed_lists_what_the_segments_test() -> None:
    segment = parse_segment({"name": "s", "type": "static", "company_names": ["x"], "contact": PURCHASER})
    assert columns_needed([segment]) == {"contact": {"jobtitle"}, "account": {"name"}}
