"""How a URL addresses one row: `(<guid>)`, the primary key by name `(accountid=<guid>)`, or an alternate key's values
`(a='x',b=2)`, as Learn's "Use an alternate key to reference a record" documents them.

A key column that is a lookup is named by its lookup property with the GUID unquoted,
`abm_leadscores(_abm_leadid_value=<guid>,abm_model='fit')`; the column's own name (`abm_leadid=…`) is not a key
property. Strings are quoted (`''` for a quote inside), integers and GUIDs are not. The names must be exactly those of
the primary key or of one declared alternate key, each value of its column's type; anything else answers the
documented "The key in the request URI is not valid for resource …". System users and teams cannot be addressed by a
named primary key (they inherit theirs from `principal`).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, unquote

from devtools.emulator.errors import invalid_key
from devtools.emulator.schema import TableDef

__all__ = ["GUID", "ROW", "RowKey", "key_segment", "parse_key"]

ROW = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\((.*)\)$")
GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")

# A row's id, or an alternate key's stored column values (lookups as their GUID), in the order the URL gave them.
RowKey = str | dict[str, Any]

# Tables whose primary key comes from `principal` (`ownerid`): no named primary key segment (Learn's note).
_PRINCIPALS = frozenset({"systemuser", "team"})
_INTEGER = re.compile(r"^-?[0-9]+$")


def _property(table: TableDef, column: str) -> str:
    """The key property naming a stored column in a URL: `_<name>_value` for a lookup, else the column."""
    return f"_{column}_value" if table.lookup(column) is not None else column


def _split(inner: str) -> list[tuple[str, str]]:
    """`a='x,y',b=2` → [("a", "'x,y'"), ("b", "2")]: commas inside quoted strings do not separate."""
    parts, current, quoted = [], "", False
    for char in inner:
        if char == "'":
            quoted = not quoted
        if char == "," and not quoted:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    pairs = []
    for part in parts:
        name, sep, value = part.partition("=")
        pairs.append((name.strip(), value.strip()) if sep else ("", part))
    return pairs


def _value(table: TableDef, column: str, text: str) -> Any:
    """A key literal in its column's stored form; a literal of another type than the column's is not a valid key."""
    kind = "guid" if table.lookup(column) is not None else table.all_columns.get(column)
    if kind in ("string", "memo") and len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1].replace("''", "'")
    if kind == "guid" and GUID.match(text):
        return str(uuid.UUID(text))
    if kind in ("int", "choice") and _INTEGER.match(text):
        return int(text)
    raise invalid_key(table.logical_name)


def _alternate_key(table: TableDef, pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """The stored values of the one declared alternate key whose properties are exactly the names given."""
    names = [name for name, _ in pairs]
    for columns in table.alternate_keys:
        by_property = {_property(table, column): column for column in columns}
        if len(names) == len(set(names)) and set(names) == set(by_property):
            return {by_property[name]: _value(table, by_property[name], text) for name, text in pairs}
    raise invalid_key(table.logical_name)


def parse_key(table: TableDef, inner: str) -> RowKey:
    """The row a key segment addresses: its id (`<guid>` or `<primary key>=<guid>`), or an alternate key's values."""
    inner = unquote(inner).strip()
    if GUID.match(inner):
        return str(uuid.UUID(inner))
    pairs = _split(inner)
    if len(pairs) == 1 and pairs[0][0] == table.primary_key and table.logical_name not in _PRINCIPALS:
        return str(_value(table, table.primary_key, pairs[0][1]))
    return _alternate_key(table, pairs)


def _literal(table: TableDef, column: str, value: Any) -> str:
    """A stored key value as a URL literal: strings quoted (`''` inside), GUIDs and integers bare."""
    if table.lookup(column) is None and table.all_columns.get(column) in ("string", "memo"):
        return "'" + str(value).replace("'", "''") + "'"
    return str(value)


def key_segment(table: TableDef, key: Mapping[str, Any]) -> str:
    """An alternate key as a URL segment, `_abm_leadid_value=<guid>,abm_model='fit'` (URL-encoded, quotes kept): what
    an upsert by key answers in `OData-EntityId`."""
    text = ",".join(f"{_property(table, column)}={_literal(table, column, value)}" for column, value in key.items())
    return quote(text, safe="=,()'")
