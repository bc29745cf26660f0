"""A segment as a server-side Dataverse query: contact columns filtered directly, account columns across the
contact's company lookup (`parentcustomerid_account/<column>`), so a full run never pulls every contact to filter
in Python. The definition is the same one `journeys.segments.members` evaluates against the mirror."""

from __future__ import annotations

from dataverse.query import (
    Filter,
    Query,
    and_,
    contains,
    eq,
    ge,
    gt,
    in_,
    is_not_null,
    is_null,
    le,
    lt,
    ne,
    or_,
    startswith,
)
from journeys.segments import Criteria, Segment, Test

__all__ = ["ACCOUNT_PATH", "segment_query"]

ACCOUNT_PATH = "parentcustomerid_account"
_COMPARE = {"eq": eq, "ne": ne, "gt": gt, "ge": ge, "lt": lt, "le": le, "contains": contains, "startswith": startswith}


def _test(test: Test, prefix: str) -> Filter:
    column = f"{prefix}{test.column}"
    if test.op == "is_null":
        return is_null(column)
    if test.op == "is_not_null":
        return is_not_null(column)
    if test.op == "in":
        # Dataverse's In takes a column of the queried table; across a lookup, OR the comparisons instead.
        return in_(column, test.value) if not prefix else or_(*(eq(column, v) for v in test.value))
    if test.op == "ne" and test.value is not None:
        return ne(column, test.value) | is_null(column)  # as OData: a null column is "not equal"
    return _COMPARE[test.op](column, test.value)


def _criteria(criteria: Criteria, prefix: str) -> Filter:
    parts = [_criteria(i, prefix) if isinstance(i, Criteria) else _test(i, prefix) for i in criteria.items]
    return and_(*parts) if criteria.mode == "all" else or_(*parts)


def segment_query(segment: Segment) -> Query:
    """The contacts query of a segment: each member's id and account id."""
    parts: list[Filter] = []
    if segment.contact is not None:
        parts.append(_criteria(segment.contact, ""))
    if segment.account is not None:
        parts.append(_criteria(segment.account, f"{ACCOUNT_PATH}/"))
    criteria = None
    if parts:
        criteria = and_(*parts) if segment.combine == "all" else or_(*parts)
    query = Query("contacts").select("contactid", "_parentcustomerid_value").orderby("contactid")
    if segment.kind == "static":
        picks: list[Filter] = []
        if segment.contact_ids:
            picks.append(in_("contactid", segment.contact_ids))
        picks += [eq(f"{ACCOUNT_PATH}/name", name) for name in segment.company_names]
        pick = or_(*picks)
        return query.where(pick if criteria is None else and_(pick, criteria))
    assert criteria is not None
    return query.where(criteria)
