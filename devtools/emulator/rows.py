"""Rows between the wire and the store: JSON bodies to typed column values (with `@odata.bind` lookups), and
stored rows back to the JSON Dataverse returns (`_x_value` lookups, `@odata.etag`, requested annotations)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

from devtools.emulator import odata
from devtools.emulator.errors import EmulatorError, bad_request, not_found
from devtools.emulator.schema import TableDef, by_entity_set

__all__ = ["FORMATTED", "LOOKUP_NAME", "from_json", "parse_bind", "to_json", "unknown_property"]

FORMATTED = "OData.Community.Display.V1.FormattedValue"
LOOKUP_NAME = "Microsoft.Dynamics.CRM.lookuplogicalname"
_BIND = re.compile(r"^(?:.*/api/data/v9\.[0-9]/)?/?([A-Za-z_][A-Za-z0-9_]*)\(([0-9a-fA-F-]{36})\)$")
READ_ONLY = frozenset({"versionnumber", "modifiedon", "fullname"})


def unknown_property(table: TableDef, name: str) -> EmulatorError:
    """The 400 Dataverse answers for a property that does not exist on the table."""
    error = odata.unknown_property(name, table.logical_name)
    return EmulatorError(400, error.code, error.message)


def parse_bind(value: str) -> tuple[TableDef, str]:
    """`/accounts(<guid>)` (leading slash optional, absolute URL allowed) → (table, lowercase id)."""
    match = _BIND.match(value.strip())
    table = by_entity_set(match.group(1)) if match else None
    if not match or table is None:
        raise bad_request(f"The @odata.bind value '{value}' is not a valid entity reference.")
    try:
        return table, str(uuid.UUID(match.group(2)))
    except ValueError:
        raise bad_request(f"The @odata.bind value '{value}' does not hold a valid GUID.") from None


def _typed(table: TableDef, name: str, kind: str, value: Any) -> Any:
    """A JSON value checked against the column's type and put in stored form."""
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
            parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
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


def from_json(table: TableDef, body: Mapping[str, Any], exists: Callable[[TableDef, str], bool]) -> dict[str, Any]:
    """Stored column values for a create or update body; lookups through `nav@odata.bind` (None clears them)."""
    if not isinstance(body, Mapping):
        raise bad_request("The request body must be a JSON object.")
    values: dict[str, Any] = {}
    for key, value in body.items():
        if key.startswith("@odata."):
            continue
        if key.endswith("@odata.bind"):
            nav = key[: -len("@odata.bind")]
            lookup = table.navigation(nav)
            if lookup is None:
                raise bad_request(
                    f"An undeclared property '{nav}' which only has property annotations in the payload but no "
                    "property value was found in the payload. In OData, only declared navigation properties and "
                    "declared named streams can be represented as properties without values."
                )
            if value is None:
                values[lookup.name] = values[f"{lookup.name}__type"] = None
                continue
            if not isinstance(value, str):
                raise bad_request(f"The value of '{key}' must be a string such as '/accounts(<id>)'.")
            target, id = parse_bind(value)
            if lookup.target_of(nav, target.logical_name) != target.logical_name:
                raise bad_request(f"'{nav}' cannot refer to a {target.logical_name} row.")
            if not exists(target, id):
                raise not_found(target.logical_name, id)
            values[lookup.name], values[f"{lookup.name}__type"] = id, target.logical_name
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
    if value is None:
        return None
    if kind == "bool":
        return bool(value)
    if kind in ("decimal", "money"):
        return float(value)
    return value


def _formatted(kind: str, value: Any) -> str | None:
    if value is None:
        return None
    if kind == "bool":
        return "Yes" if value else "No"
    if kind in ("decimal", "money"):
        return f"{float(value):,.2f}"
    return str(value)


def to_json(
    table: TableDef,
    row: Mapping[str, Any],
    select: Sequence[str],
    annotations: frozenset[str],
    name_of: Callable[[str, str], str | None],
) -> dict[str, Any]:
    """The JSON of a stored row: `@odata.etag`, the primary key, and the selected columns (all when none are)."""
    result: dict[str, Any] = {"@odata.etag": f'W/"{row["versionnumber"]}"'}
    wanted = list(select) or [c for c in table.all_columns if c not in table.write_only] + [
        f"_{lk.name}_value" for lk in table.all_lookups
    ]
    if table.primary_key not in wanted:
        wanted.insert(0, table.primary_key)
    for name in wanted:
        kind = table.all_columns.get(name)
        if kind is not None and name in table.write_only:
            result[name] = None  # selected explicitly: Dataverse answers null for a column it cannot read
            continue
        if kind is not None:
            result[name] = _out(kind, row.get(name))
            if (
                FORMATTED in annotations
                and kind in ("bool", "money", "decimal", "choice")
                and row.get(name) is not None
            ):
                result[f"{name}@{FORMATTED}"] = _formatted(kind, row.get(name))
            continue
        lookup = table.lookup(name[1:-6]) if name.startswith("_") and name.endswith("_value") else None
        if lookup is None:
            raise unknown_property(table, name)
        value = row.get(lookup.name)
        result[name] = value
        if value is not None:
            target = row.get(f"{lookup.name}__type")
            if LOOKUP_NAME in annotations:
                result[f"{name}@{LOOKUP_NAME}"] = target
            if FORMATTED in annotations and target:
                result[f"{name}@{FORMATTED}"] = name_of(str(target), str(value))
    return result
