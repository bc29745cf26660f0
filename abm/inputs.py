"""Checks every parser of what callers send shares: text that is text, GUIDs as Dataverse writes them, moments
Dataverse can store. Each answers the value or None, so that the caller raises its own kind of error with the path
it knows (a JSON path, a parameter name) and never repeats the value (it may be personal data).
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime

__all__ = ["EARLIEST", "LATEST", "guid", "is_text", "moment"]

EARLIEST = datetime(1753, 1, 1, tzinfo=UTC)  # the earliest date-time Dataverse stores
LATEST = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)  # its latest
_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def is_text(value: str) -> bool:
    """Whether a string is text: no lone surrogate (which no encoding can write) and no control character."""
    return not any(unicodedata.category(c) in ("Cs", "Cc") for c in value)


def guid(value: object) -> str | None:
    """A GUID in its hyphenated form, lower-case; None for anything else (braces, a URN, a trailing newline)."""
    return value.lower() if isinstance(value, str) and _GUID.fullmatch(value) else None


def moment(value: object) -> datetime | None:
    """An ISO 8601 date-time with a time zone, in UTC, within the dates Dataverse stores; None otherwise."""
    if not isinstance(value, str) or not is_text(value):
        return None
    try:
        parsed = datetime.fromisoformat(value)
        found = parsed.astimezone(UTC) if parsed.tzinfo is not None else None
    except (ValueError, OverflowError):  # OverflowError: a moment that leaves the calendar in UTC
        return None
    return found if found is not None and EARLIEST <= found <= LATEST else None
