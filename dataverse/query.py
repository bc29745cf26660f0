"""OData query builder for the Dataverse Web API, with literals that can never change a filter's meaning.

Every value goes through `literal()`: strings are quoted with embedded quotes doubled, GUIDs and datetimes are
written unquoted, `None` is `null`; inside `contains`/`startswith`/`endswith` the LIKE wildcards `% _ [ ]` are
bracket-escaped so they match themselves; `Microsoft.Dynamics.CRM.In` takes its values as a JSON array through a
parameter alias. Column names and paths are checked against a strict pattern, and each option is URL-encoded whole,
so neither a name nor a value can smuggle in a second condition or a second query option.

>>> q = Query("contacts").select("fullname").where(eq("parentcustomerid_account/name", "O'Brien"))
>>> q.to_query_string()
'$select=fullname&$filter=parentcustomerid_account%2Fname%20eq%20%27O%27%27Brien%27'
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any
from urllib.parse import quote

__all__ = [
    "Filter",
    "Query",
    "and_",
    "contains",
    "endswith",
    "eq",
    "ge",
    "gt",
    "in_",
    "is_not_null",
    "is_null",
    "le",
    "literal",
    "lt",
    "ne",
    "not_in",
    "or_",
    "startswith",
]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*$")
_ALIAS_SAFE = "@"
_WILDCARDS = str.maketrans({"[": "[[]", "%": "[%]", "_": "[_]", "]": "[]]"})


def check_name(name: str) -> str:
    """A column, navigation property or lookup path (`parentcustomerid_account/name`); anything else is refused."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"not a valid column or navigation path: {name!r}")
    return name


def literal(value: Any) -> str:
    """The OData literal for a Python value: strings quoted (quotes doubled), GUIDs/datetimes/numbers bare.

    Naive datetimes are refused: Dataverse stores UTC and a naive value would silently shift by the caller's zone.
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        return literal(value.value)
    if isinstance(value, (int, Decimal)):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("NaN and infinity have no OData literal")
        return repr(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime in a filter: pass an aware datetime (UTC)")
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise TypeError(f"no OData literal for {type(value).__name__}")


class _Aliases:
    """Allocates `@p1, @p2, ...` parameter aliases while a filter is rendered."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def add(self, value: str) -> str:
        name = f"@p{len(self.values) + 1}"
        self.values[name] = value
        return name


@dataclass(frozen=True)
class Filter:
    """A `$filter` expression tree; combine with `&`, `|` and `~` (rendered with explicit parentheses)."""

    op: str
    args: tuple[Any, ...]

    def __and__(self, other: Filter) -> Filter:
        return and_(self, other)

    def __or__(self, other: Filter) -> Filter:
        return or_(self, other)

    def __invert__(self) -> Filter:
        return Filter("not", (self,))

    def render(self, aliases: _Aliases) -> str:
        """The expression text; values that need aliases (In/NotIn) are registered in `aliases`."""
        op, args = self.op, self.args
        if op in ("and", "or"):
            return f" {op} ".join(f"({arg.render(aliases)})" for arg in args)
        if op == "not":
            return f"not ({args[0].render(aliases)})"
        if op in ("contains", "startswith", "endswith"):
            return f"{op}({args[0]},{literal(str(args[1]).translate(_WILDCARDS))})"
        if op in ("In", "NotIn"):
            name_alias = aliases.add(literal(args[0]))
            values_alias = aliases.add(json.dumps([_in_value(v) for v in args[1]], ensure_ascii=False))
            return f"Microsoft.Dynamics.CRM.{op}(PropertyName={name_alias},PropertyValues={values_alias})"
        return f"{args[0]} {op} {literal(args[1])}"


def _in_value(value: Any) -> str:
    """`In`/`NotIn` take their values as strings in a JSON array (GUIDs and numbers too)."""
    if value is None:
        raise ValueError("None in an In/NotIn list: use is_null() instead")
    return value if isinstance(value, str) else literal(value)


def _compare(op: str, column: str, value: Any) -> Filter:
    literal(value)  # fail at construction, not when the query is sent
    return Filter(op, (check_name(column), value))


def eq(column: str, value: Any) -> Filter:
    """`column eq value`"""
    return _compare("eq", column, value)


def ne(column: str, value: Any) -> Filter:
    """`column ne value`"""
    return _compare("ne", column, value)


def gt(column: str, value: Any) -> Filter:
    """`column gt value`"""
    return _compare("gt", column, value)


def ge(column: str, value: Any) -> Filter:
    """`column ge value`"""
    return _compare("ge", column, value)


def lt(column: str, value: Any) -> Filter:
    """`column lt value`"""
    return _compare("lt", column, value)


def le(column: str, value: Any) -> Filter:
    """`column le value`"""
    return _compare("le", column, value)


def is_null(column: str) -> Filter:
    """`column eq null`"""
    return Filter("eq", (check_name(column), None))


def is_not_null(column: str) -> Filter:
    """`column ne null`"""
    return Filter("ne", (check_name(column), None))


def _like(op: str, column: str, text: str) -> Filter:
    if not isinstance(text, str):
        raise TypeError(f"{op}() takes a string, not {type(text).__name__}")
    return Filter(op, (check_name(column), text))


def contains(column: str, text: str) -> Filter:
    """`contains(column,'text')`, case-insensitive; `% _ [ ]` in `text` match themselves."""
    return _like("contains", column, text)


def startswith(column: str, text: str) -> Filter:
    """`startswith(column,'text')`, case-insensitive; `% _ [ ]` in `text` match themselves."""
    return _like("startswith", column, text)


def endswith(column: str, text: str) -> Filter:
    """`endswith(column,'text')`, case-insensitive; `% _ [ ]` in `text` match themselves."""
    return _like("endswith", column, text)


def _membership(op: str, column: str, values: Iterable[Any]) -> Filter:
    items = tuple(values)
    if not items:
        raise ValueError(f"{op} needs at least one value")
    for value in items:
        _in_value(value)
    return Filter(op, (check_name(column), items))


def in_(column: str, values: Iterable[Any]) -> Filter:
    """`Microsoft.Dynamics.CRM.In(PropertyName=@p1,PropertyValues=@p2)` with the values as a JSON array."""
    return _membership("In", column, values)


def not_in(column: str, values: Iterable[Any]) -> Filter:
    """`Microsoft.Dynamics.CRM.NotIn(...)`, the negation of `in_`."""
    return _membership("NotIn", column, values)


def and_(*filters: Filter) -> Filter:
    """All of `filters`; a single filter is returned as is."""
    return filters[0] if len(filters) == 1 else Filter("and", tuple(filters))


def or_(*filters: Filter) -> Filter:
    """Any of `filters`; a single filter is returned as is."""
    return filters[0] if len(filters) == 1 else Filter("or", tuple(filters))


@dataclass(frozen=True)
class Expand:
    """`nav($select=...;$expand=...)` for a single-valued navigation property."""

    navigation: str
    select: tuple[str, ...] = ()
    expand: tuple[Expand, ...] = ()

    def render(self) -> str:
        options = []
        if self.select:
            options.append("$select=" + ",".join(self.select))
        if self.expand:
            options.append("$expand=" + ",".join(e.render() for e in self.expand))
        return self.navigation + (f"({';'.join(options)})" if options else "")


@dataclass(frozen=True)
class Query:
    """A read of one entity set: `Query("contacts").select(...).where(...).orderby(...)`; immutable, chainable.

    `to_query_string()` gives the encoded options; the client adds paging (`Prefer: odata.maxpagesize`) itself,
    so `top()` is for small reads only (Dataverse ignores `$top` when a page size is also asked for).
    """

    entity_set: str
    columns: tuple[str, ...] = ()
    filter: Filter | None = None
    expands: tuple[Expand, ...] = ()
    order: tuple[str, ...] = ()
    top_n: int | None = None
    with_count: bool = False
    _extra: tuple[tuple[str, str], ...] = field(default=())

    def __post_init__(self) -> None:
        check_name(self.entity_set)

    def select(self, *columns: str) -> Query:
        return replace(self, columns=self.columns + tuple(check_name(c) for c in columns))

    def where(self, *filters: Filter) -> Query:
        combined = and_(*filters) if self.filter is None else and_(self.filter, *filters)
        return replace(self, filter=combined)

    def expand(self, navigation: str, *, select: Sequence[str] = (), expand: Sequence[Expand] = ()) -> Query:
        item = Expand(check_name(navigation), tuple(check_name(c) for c in select), tuple(expand))
        return replace(self, expands=(*self.expands, item))

    def orderby(self, *columns: str) -> Query:
        """Columns, each optionally followed by ` desc` or ` asc`."""
        checked = []
        for column in columns:
            name, _, direction = column.partition(" ")
            if direction not in ("", "asc", "desc"):
                raise ValueError(f"bad sort direction in {column!r}")
            checked.append(check_name(name) + (f" {direction}" if direction else ""))
        return replace(self, order=self.order + tuple(checked))

    def top(self, n: int) -> Query:
        if n < 1:
            raise ValueError("$top must be at least 1")
        return replace(self, top_n=n)

    def count(self) -> Query:
        return replace(self, with_count=True)

    def options(self) -> list[tuple[str, str]]:
        """The query options as (name, unencoded value) pairs, parameter aliases last."""
        aliases = _Aliases()
        pairs: list[tuple[str, str]] = []
        if self.columns:
            pairs.append(("$select", ",".join(self.columns)))
        if self.filter is not None:
            pairs.append(("$filter", self.filter.render(aliases)))
        if self.expands:
            pairs.append(("$expand", ",".join(e.render() for e in self.expands)))
        if self.order:
            pairs.append(("$orderby", ",".join(self.order)))
        if self.top_n is not None:
            pairs.append(("$top", str(self.top_n)))
        if self.with_count:
            pairs.append(("$count", "true"))
        pairs.extend(self._extra)
        pairs.extend(aliases.values.items())
        return pairs

    def to_query_string(self) -> str:
        return encode_options(self.options())

    def to_path(self) -> str:
        """The resource path relative to the API root, e.g. `contacts?$select=fullname`."""
        qs = self.to_query_string()
        return f"{self.entity_set}?{qs}" if qs else self.entity_set


def encode_options(pairs: Iterable[tuple[str, str]]) -> str:
    """`name=value&...` with every value percent-encoded whole (`&`, `#`, `+`, `'`, `/` included)."""
    return "&".join(f"{quote(name, safe='$' + _ALIAS_SAFE)}={quote(value, safe='')}" for name, value in pairs)
