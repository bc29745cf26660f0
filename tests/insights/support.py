"""Events for the flow and path tests: one per call, on a day of 2026 at 10:00 UTC."""

from __future__ import annotations

from datetime import UTC, datetime

from insights.timeline import MILESTONES, Event


def ev(
    when: str, kind: str, account: str | None = "A", contact: str | None = None, content: str | None = None
) -> Event:
    """An event on 2026-`when` (MM-DD) at 10:00 UTC."""
    month, day = (int(part) for part in when.split("-"))
    at = datetime(2026, month, day, 10, tzinfo=UTC)
    return Event(at, kind, kind in MILESTONES, f"{kind}@{when}/{account}/{contact}", account, contact, None, content)
