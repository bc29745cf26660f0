"""Segments: which contacts (each with its account) a journey or a report is about, defined as data.

As in Dynamics 365 Marketing's ABM segments:
- dynamic (firmographic): criteria on the account reached through the contact's company lookup (`parentcustomerid`)
  and criteria on the contact itself, combined with `all` (AND) or `any` (OR);
- static: explicit contacts, and/or contacts whose company name "is / is in" a list (names OR-ed); further criteria,
  when given, narrow that pick (AND).

One definition, two evaluators: a full run sends it to Dataverse as a server-side query (dataverse/segment_query.py
compiles it), while `members` evaluates it here against records already held (the mirror), for the accounts a
change touches. The operators are the scoring engine's (scoring.model.OPERATORS), so both evaluators, and scoring,
agree on case-insensitive text and on nulls (`ne` matches null, the ordering operators never do).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from scoring.model import OPERATORS, ModelError
from scoring.records import Account, Contact

__all__ = ["Criteria", "Member", "Segment", "SegmentError", "Test", "columns_needed", "members", "parse_segment"]

Mode = Literal["all", "any"]
_NO_VALUE = frozenset({"is_null", "is_not_null"})


class SegmentError(ModelError):
    """A segment definition the schema cannot catch: `path` (a JSON path) and `reason`."""


@dataclass(frozen=True)
class Test:
    """`column op value` on one row (a contact's or its account's column, by logical name)."""

    column: str
    op: str
    value: Any = None

    def matches(self, row: Mapping[str, Any] | None) -> bool:
        actual = None if row is None else row.get(self.column)
        return OPERATORS[self.op](actual, self.value)


@dataclass(frozen=True)
class Criteria:
    """Tests and nested criteria combined with `all` (AND) or `any` (OR)."""

    mode: Mode
    items: tuple[Test | Criteria, ...]

    def matches(self, row: Mapping[str, Any] | None) -> bool:
        results = (item.matches(row) for item in self.items)
        return all(results) if self.mode == "all" else any(results)

    def columns(self) -> set[str]:
        found: set[str] = set()
        for item in self.items:
            found |= item.columns() if isinstance(item, Criteria) else {item.column}
        return found


@dataclass(frozen=True)
class Segment:
    """A parsed segment definition."""

    name: str
    kind: Literal["dynamic", "static"]
    contact: Criteria | None = None
    account: Criteria | None = None
    combine: Mode = "all"
    contact_ids: tuple[str, ...] = ()
    company_names: tuple[str, ...] = ()


@dataclass(frozen=True, order=True)
class Member:
    """A contact in a segment, with its account (None when its company is not an account)."""

    contact_id: str
    account_id: str | None


def _criteria(data: Mapping[str, Any], path: str) -> Criteria:
    mode: Mode = "all" if "all" in data else "any"
    items: list[Test | Criteria] = []
    for index, item in enumerate(data[mode]):
        where = f"{path}.{mode}[{index}]"
        if "all" in item or "any" in item:
            items.append(_criteria(item, where))
            continue
        op, has_value = item["op"], "value" in item
        if op not in OPERATORS:
            raise SegmentError(f"{where}.op", f"unknown operator {op!r}")
        if (op in _NO_VALUE) == has_value:
            reason = "takes no value" if op in _NO_VALUE else "needs a value"
            raise SegmentError(where, f"{op} {reason}")
        if op == "in" and not (isinstance(item["value"], list) and item["value"]):
            raise SegmentError(f"{where}.value", "in needs a non-empty list")
        items.append(Test(item["column"], op, item.get("value")))
    if not items:
        raise SegmentError(f"{path}.{mode}", "needs at least one test")
    return Criteria(mode, tuple(items))


def parse_segment(data: Mapping[str, Any]) -> Segment:
    """A segment from an already schema-valid document; `SegmentError` for what the schema cannot express."""
    contact = _criteria(data["contact"], "$.contact") if "contact" in data else None
    account = _criteria(data["account"], "$.account") if "account" in data else None
    kind = data["type"]
    ids = tuple(str(i).lower() for i in data.get("contacts", ()))
    names = tuple(data.get("company_names", ()))
    if kind == "dynamic" and contact is None and account is None:
        raise SegmentError("$", "a dynamic segment needs contact or account criteria")
    if kind == "dynamic" and (ids or names):
        raise SegmentError("$", "contacts and company_names belong to static segments")
    if kind == "static" and not (ids or names):
        raise SegmentError("$", "a static segment needs contacts or company_names")
    return Segment(data["name"], kind, contact, account, data.get("combine", "all"), ids, names)


def _criteria_match(segment: Segment, contact: Contact, account: Account | None) -> bool:
    """The contact and account criteria combined (the account's tested only when the contact's leave it open)."""
    account_row = account.attributes if account is not None else None
    parts = [
        (c, row) for c, row in ((segment.contact, contact.attributes), (segment.account, account_row)) if c is not None
    ]
    if not parts:
        return True
    results = (criteria.matches(row) for criteria, row in parts)
    return all(results) if segment.combine == "all" else any(results)


def _picked(segment: Segment, contact: Contact, account: Account | None) -> bool:
    if segment.kind == "dynamic":
        return True
    name = account.attributes.get("name") if account is not None else None
    by_name = any(OPERATORS["eq"](name, wanted) for wanted in segment.company_names)
    return contact.id in segment.contact_ids or by_name


def members(segment: Segment, contacts: Iterable[Contact], accounts: Iterable[Account]) -> list[Member]:
    """The segment's members among `contacts`, sorted; each contact's account looked up in `accounts`."""
    by_id = {account.id: account for account in accounts}
    found = []
    for contact in contacts:
        account = by_id.get(contact.account_id) if contact.account_id else None
        if _picked(segment, contact, account) and _criteria_match(segment, contact, account):
            found.append(Member(contact.id, contact.account_id))
    return sorted(found)


def columns_needed(segments: Sequence[Segment]) -> dict[str, set[str]]:
    """The contact and account columns the segments test (to add to the `$select` of the mirror's reads)."""
    needed: dict[str, set[str]] = {"contact": set(), "account": set()}
    for segment in segments:
        if segment.contact is not None:
            needed["contact"] |= segment.contact.columns()
        if segment.account is not None:
            needed["account"] |= segment.account.columns()
        if segment.company_names:
            needed["account"].add("name")
    return needed
