"""Rows between the wire and the store: JSON bodies to typed column values (with `@odata.bind` lookups), and
stored rows back to the JSON Dataverse returns (`_x_value` lookups, `@odata.etag`, and the annotations asked for:
formatted values (labels.py), `lookuplogicalname` and `associatednavigationproperty` on lookups).

Writes check each value against its column: its type, and for strings and memos the column's MaxLength
(StringLengthTooLong, 0x80044331). A lookup is set through `nav@odata.bind` with a row's URL by id, by named primary
key or by alternate key (Learn: "Use an alternate key to reference a record": "use URLs to set values for
single-valued navigation properties using the @odata.bind syntax").
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

from devtools.emulator import odata
from devtools.emulator.errors import EmulatorError, bad_request, too_long
from devtools.emulator.keys import RowKey, parse_key
from devtools.emulator.labels import formatted
from devtools.emulator.schema import TableDef, by_entity_set

__all__ = [
    "ASSOCIATED_NAV",
    "FORMATTED",
    "LOOKUP_NAME",
    "Resolve",
    "from_json",
    "parse_bind",
    "to_json",
    "unknown_property",
]

FORMATTED = "OData.Community.Display.V1.FormattedValue"
LOOKUP_NAME = "Microsoft.Dynamics.CRM.lookuplogicalname"
ASSOCIATED_NAV = "Microsoft.Dynamics.CRM.associatednavigationproperty"
_BIND = re.compile(r"^(?:.*/api/data/v9\.[0-9]/)?/?([A-Za-z_][A-Za-z0-9_]*)\((.*)\)$")
READ_ONLY = frozenset({"versionnumber", "modifiedon", "fullname"})

# The id of the row a key addresses; raises the 404 (or 400 for an unusable key) when there is none.
Resolve = Callable[[TableDef, RowKey], str]


def unknown_property(table: TableDef, name: str) -> EmulatorError:
    """The 400 Dataverse answers for a property that does not exist on the table."""
    error = odata.unknown_property(name, table.logical_name)
    return EmulatorError(400, error.code, error.message)


def parse_bind(value: str) -> tuple[TableDef, RowKey]:
    """`/accounts(<guid>)`, `/accounts(accountid=<guid>)` or an alternate key `/accounts(accountnumber='A1')` (leading
    slash optional, absolute URL allowed) → (table, the key as `parse_key` reads it)."""
    match = _BIND.match(value.strip())
    table = by_entity_set(match.group(1)) if match else None
    if not match or table is None:
        raise bad_request(f"The @odata.bind value '{value}' is not a valid entity reference.")
    return table, parse_key(table, match.group(2))


def _typed(table: TableDef, name: str, kind: str, value: Any) -> Any:
    """A JSON value checked against the column's type (and a string's MaxLength) and put in stored form."""
    if value is None:
        return None
    wrong = bad_request(
        f"Cannot convert the literal '{value}' to the expected type of property '{name}' on "
        f"'Microsoft.Dynamics.CRM.{table.logical_name}'.",
        code="0x80060888",
    )
    if kind in ("string", "memo"):
        if not isinstance(value, str):
            raise wrong
        limit = table.max_length(name)
        # Dataverse (.NET) measures a string in UTF-16 code units: a character outside the BMP counts 2.
        if limit is not None and len(value.encode("utf-16-le")) // 2 > limit:
            raise too_long(table.logical_name, name, limit)
        return value
    if kind == "guid":
        try:
            return str(uuid.UUID(str(value)))
        except ValueError:
            raise wrong from None
    if kind in ("int", "choice"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong
        return value
    if kind in ("decimal", "money"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise wrong
        return float(value)
    if kind == "bool":
        if not isinstance(value, bool):
            raise wrong
        return int(value)
    if kind == "datetime":
        try:
            parsed = datetime.fromisoformat(str(value))
        except ValueError:
            raise wrong from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if kind == "date":
        try:
            return date.fromisoformat(str(value)[:10]).isoformat()
        except ValueError:
            raise wrong from None
    raise wrong  # pragma: no cover


def _bound(table: TableDef, key: str, value: Any, resolve: Resolve) -> dict[str, Any]:
    """The two stored columns a `nav@odata.bind` sets: the lookup's id and its target's logical name (None clears)."""
    nav = key[: -len("@odata.bind")]
    lookup = table.navigation(nav)
    if lookup is None:
        raise bad_request(
            f"An undeclared property '{nav}' which only has property annotations in the payload but no "
            "property value was found in the payload. In OData, only declared navigation properties and "
            "declared named streams can be represented as properties without values."
        )
    if value is None:
        return {lookup.name: None, f"{lookup.name}__type": None}
    if not isinstance(value, str):
        raise bad_request(f"The value of '{key}' must be a string such as '/accounts(<id>)'.")
    target, row_key = parse_bind(value)
    if lookup.target_of(nav, target.logical_name) != target.logical_name:
        raise bad_request(f"'{nav}' cannot refer to a {target.logical_name} row.")
    return {lookup.name: resolve(target, row_key), f"{lookup.name}__type": target.logical_name}


def from_json(table: TableDef, body: Mapping[str, Any], resolve: Resolve) -> dict[str, Any]:
    """Stored column values for a create or update body; lookups through `nav@odata.bind` (None clears them)."""
    if not isinstance(body, Mapping):
        raise bad_request("The request body must be a JSON object.")
    values: dict[str, Any] = {}
    for key, value in body.items():
        if key.startswith("@odata."):
            continue
        if key.endswith("@odata.bind"):
            values.update(_bound(table, key, value, resolve))
            continue
        if "@" in key:
            continue  # instance annotations on properties are ignored, as Dataverse does
        kind = table.all_columns.get(key)
        if kind is None:
            if table.lookup(key) is not None or (key.startswith("_") and key.endswith("_value")):
                raise bad_request(
                    f"'{key}' is a lookup: set it with '<navigation property>@odata.bind'.", code="0x80048d19"
                )
            raise bad_request(
                f"Invalid property '{key}' was found in entity 'Microsoft.Dynamics.CRM.{table.logical_name}'.",
            )
        if key in READ_ONLY:
            continue  # Dataverse ignores values for columns that are not valid for create or update
        values[key] = _typed(table, key, kind, value)
    return values


def _out(kind: str, value: Any) -> Any:
    """A stored value as JSON: booleans from 0/1, money and decimals as numbers."""
    if value is None:
        return None
    if kind == "bool":
        return bool(value)
    if kind in ("decimal", "money"):
        return float(value)
    return value


def _wanted(table: TableDef, select: Sequence[str]) -> list[str]:
    """The properties a row answers with: the selected ones (all readable when none are) and the primary key."""
    wanted = list(select) or [c for c in table.all_columns if c not in table.write_only] + [
        f"_{lk.name}_value" for lk in table.all_lookups
    ]
    if table.primary_key not in wanted:
        wanted.insert(0, table.primary_key)
    return wanted


def _column(table: TableDef, name: str, kind: str, value: Any, annotations: frozenset[str]) -> dict[str, Any]:
    """One column and, when asked for, its formatted value (annotations come before the value, as Dataverse
    orders them)."""
    if name in table.write_only:
        return {name: None}  # selected explicitly: Dataverse answers null for a column it cannot read
    text = formatted(table.logical_name, name, kind, value) if FORMATTED in annotations and value is not None else None
    return ({f"{name}@{FORMATTED}": text} if text is not None else {}) | {name: _out(kind, value)}


def _lookup(
    table: TableDef,
    row: Mapping[str, Any],
    name: str,
    annotations: frozenset[str],
    name_of: Callable[[str, str], str | None],
) -> dict[str, Any]:
    """A `_x_value` lookup property with the annotations asked for: its navigation property, the related table and
    the related row's primary name."""
    lookup = table.lookup(name[1:-6]) if name.startswith("_") and name.endswith("_value") else None
    if lookup is None:
        raise unknown_property(table, name)
    value = row.get(lookup.name)
    result: dict[str, Any] = {}
    if value is not None:
        target = str(row.get(f"{lookup.name}__type"))
        if ASSOCIATED_NAV in annotations:
            result[f"{name}@{ASSOCIATED_NAV}"] = next((n for n, t in lookup.navs if t == target), lookup.name)
        if LOOKUP_NAME in annotations:
            result[f"{name}@{LOOKUP_NAME}"] = target
        primary_name = name_of(target, str(value)) if FORMATTED in annotations else None
        if primary_name is not None:
            result[f"{name}@{FORMATTED}"] = primary_name
    result[name] = value
    return result


def to_json(
    table: TableDef,
    row: Mapping[str, Any],
    select: Sequence[str],
    annotations: frozenset[str],
    name_of: Callable[[str, str], str | None],
) -> dict[str, Any]:
    """The JSON of a stored row: `@odata.etag`, the primary key, and the selected columns (all when none are), with
    the annotations named in `annotations` (FORMATTED, LOOKUP_NAME, ASSOCIATED_NAV)."""
    result: dict[str, Any] = {"@odata.etag": f'W/"{row["versionnumber"]}"'}
    for name in _wanted(table, select):
        kind = table.all_columns.get(name)
        if kind is None:
            result |= _lookup(table, row, name, annotations, name_of)
        else:
            result |= _column(table, name, kind, row.get(name), annotations)
    return result
