"""How a URL addresses one row: `(<guid>)`, or an alternate key's values `(a='x',b=2)`."""

from __future__ import annotations

import re
import uuid
from typing import Any
from urllib.parse import unquote

from devtools.emulator.errors import bad_request
from devtools.emulator.schema import TableDef

__all__ = ["GUID", "ROW", "RowKey", "parse_key"]

ROW = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\((.*)\)$")
GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")

# A row's id, or an alternate key's stored column values.
RowKey = str | dict[str, Any]


def _key_literal(text: str) -> Any:
    text = text.strip()
    if text.startswith("'") and text.endswith("'") and len(text) >= 2:
        return text[1:-1].replace("''", "'")
    if GUID.match(text):
        return str(uuid.UUID(text))
    try:
        return int(text)
    except ValueError:
        raise bad_request(f"The key value '{text}' is not a valid literal.") from None


def parse_key(table: TableDef, inner: str) -> RowKey:
    """`(<guid>)` → the id; `(a='x',b=2)` → an alternate key's values (which must be a declared key)."""
    inner = unquote(inner)
    if GUID.match(inner.strip()):
        return str(uuid.UUID(inner.strip()))
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
    key: dict[str, Any] = {}
    for part in parts:
        name, sep, value = part.partition("=")
        if not sep:
            raise bad_request(f"'{inner}' is not a valid key for {table.entity_set}.")
        key[name.strip()] = _key_literal(value)
    if tuple(sorted(key)) not in {tuple(sorted(k)) for k in table.alternate_keys}:
        raise bad_request(f"No alternate key of {table.logical_name} is made of {', '.join(key)}.", code="0x80060891")
    return key
