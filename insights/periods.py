"""Calendar periods in UTC: day, week (starting on Monday), month, quarter, year; and date ranges.

Every analysis buckets time the same way, so a week is always Monday 00:00 UTC to the next Monday, and a range is
half-open: `[start, end)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, get_args

__all__ = ["GRANULARITIES", "DateRange", "Granularity", "add", "floor", "label", "offset", "periods"]

Granularity = Literal["day", "week", "month", "quarter", "year"]
GRANULARITIES: tuple[Granularity, ...] = get_args(Granularity)
_MONTHS = {"month": 1, "quarter": 3, "year": 12}


@dataclass(frozen=True)
class DateRange:
    """A half-open range of time `[start, end)`, both aware datetimes in UTC."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("a date range needs aware datetimes (UTC)")
        if self.end <= self.start:
            raise ValueError(f"a date range must end after it starts ({self.start:%Y-%m-%d} .. {self.end:%Y-%m-%d})")

    def __contains__(self, moment: object) -> bool:
        return isinstance(moment, datetime) and self.start <= moment < self.end

    def as_dict(self) -> dict[str, str]:
        return {"from": _iso(self.start), "to": _iso(self.end)}


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def floor(moment: datetime, granularity: Granularity) -> datetime:
    """The start of the period `moment` falls in (UTC)."""
    day = moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if granularity == "day":
        return day
    if granularity == "week":
        return day - timedelta(days=day.weekday())  # Monday is weekday 0
    months = _MONTHS[granularity]
    return day.replace(month=(day.month - 1) // months * months + 1, day=1)


def add(start: datetime, granularity: Granularity, n: int) -> datetime:
    """The start of the period `n` periods after the one starting at `start` (n may be negative)."""
    if granularity == "day":
        return start + timedelta(days=n)
    if granularity == "week":
        return start + timedelta(weeks=n)
    month = start.year * 12 + start.month - 1 + n * _MONTHS[granularity]
    return start.replace(year=month // 12, month=month % 12 + 1, day=1)


def offset(start: datetime, moment: datetime, granularity: Granularity) -> int:
    """How many periods after the period starting at `start` the period of `moment` is (negative: before)."""
    other = floor(moment, granularity)
    if granularity == "day":
        return (other - start).days
    if granularity == "week":
        return (other - start).days // 7
    return ((other.year - start.year) * 12 + other.month - start.month) // _MONTHS[granularity]


def periods(span: DateRange, granularity: Granularity) -> list[datetime]:
    """The starts of the periods that overlap a range (the first may begin before it, the last end after it)."""
    starts = []
    current = floor(span.start, granularity)
    while current < span.end:
        starts.append(current)
        current = add(current, granularity, 1)
    return starts


def label(start: datetime, granularity: Granularity) -> str:
    """A period's name: 2026-03-02 (day), 2026-W10 (ISO week), 2026-03, 2026-Q1, 2026."""
    if granularity == "day":
        return start.strftime("%Y-%m-%d")
    if granularity == "week":
        year, week, _ = start.isocalendar()
        return f"{year}-W{week:02d}"
    if granularity == "month":
        return start.strftime("%Y-%m")
    if granularity == "quarter":
        return f"{start.year}-Q{(start.month - 1) // 3 + 1}"
    return str(start.year)
