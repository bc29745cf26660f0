"""Cohort tables as in Customer Journey Analytics (B2B): who meets the inclusion criteria first in which period,
and how many of them meet the return criteria in each later period.

An entity of the chosen container (account, contact or opportunity) joins the cohort of the first period of the span
in which its events of that period meet the inclusion criteria, so cohorts are disjoint. The cell at offset k of a
cohort counts its members that meet the return criteria k periods later (retention), or those that do not (churn).
With a rolling calculation a member counts at offset k only if it returned in every period 1..k, and the base is the
previous column rather than the included count. Only events inside the span count; events without an id for the
container are left out, as CJA skips rows without the container's id.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from insights.periods import GRANULARITIES, DateRange, Granularity, add, label, offset, periods
from insights.timeline import CONTAINERS, Container, Event

__all__ = [
    "AverageCell",
    "Cell",
    "Cohort",
    "CohortSettings",
    "CohortTable",
    "Criteria",
    "MetricTest",
    "cohort_table",
    "members",
]

MAX_METRICS = 3  # CJA allows up to 3 inclusion and 3 return metrics


@dataclass(frozen=True)
class MetricTest:
    """A numeric filter: at least `at_least` events of type `metric` (an interaction type or a milestone)."""

    metric: str
    at_least: int = 1

    def __post_init__(self) -> None:
        if not self.metric.strip():
            raise ValueError("a cohort metric needs an event type name")
        if self.at_least < 1:
            raise ValueError(f"metric {self.metric!r}: at_least must be 1 or more (got {self.at_least})")

    def as_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "at_least": self.at_least}


@dataclass(frozen=True)
class Criteria:
    """1 to 3 metric tests, all of which (match "all", the CJA default) or any of which must hold in a period."""

    metrics: tuple[MetricTest, ...]
    match: Literal["all", "any"] = "all"

    def __post_init__(self) -> None:
        if not 1 <= len(self.metrics) <= MAX_METRICS:
            raise ValueError(f"cohort criteria need 1 to {MAX_METRICS} metrics (got {len(self.metrics)})")
        if self.match not in ("all", "any"):
            raise ValueError(f"cohort criteria match must be 'all' or 'any' (got {self.match!r})")

    def met_by(self, counts: Mapping[str, int]) -> bool:
        """Whether one period's event counts by type meet these criteria."""
        tests = (counts.get(test.metric, 0) >= test.at_least for test in self.metrics)
        return all(tests) if self.match == "all" else any(tests)

    def as_dict(self) -> dict[str, Any]:
        return {"match": self.match, "metrics": [test.as_dict() for test in self.metrics]}


@dataclass(frozen=True)
class CohortSettings:
    """What a cohort table is built from: criteria, period size, span, container and calculation type."""

    inclusion: Criteria
    returning: Criteria
    granularity: Granularity
    span: DateRange
    container: Container = "account"
    churn: bool = False
    rolling: bool = False

    def __post_init__(self) -> None:
        if self.granularity not in GRANULARITIES:
            raise ValueError(f"granularity must be one of {', '.join(GRANULARITIES)} (got {self.granularity!r})")
        if self.container not in CONTAINERS:
            raise ValueError(f"container must be one of {', '.join(CONTAINERS)} (got {self.container!r})")


@dataclass(frozen=True)
class Cell:
    """One cohort's figure `offset` periods after its own: count (retained or churned) out of base."""

    offset: int
    period: datetime
    count: int
    base: int
    percent: float | None

    def as_dict(self) -> dict[str, Any]:
        day = f"{self.period:%Y-%m-%d}"
        return {"offset": self.offset, "period": day, "count": self.count, "base": self.base, "percent": self.percent}


@dataclass(frozen=True)
class Cohort:
    """The entities that first met the inclusion criteria in one period (`members`, to check a cell), and its cells."""

    period: datetime
    label: str
    members: tuple[str, ...]
    cells: tuple[Cell, ...]

    def as_dict(self) -> dict[str, Any]:
        cells = [cell.as_dict() for cell in self.cells]
        return {"period": f"{self.period:%Y-%m-%d}", "label": self.label, "included": len(self.members), "cells": cells}


@dataclass(frozen=True)
class AverageCell:
    """Per offset: the mean percent of the cohorts that have one there, and the summed counts and bases."""

    offset: int
    percent: float | None
    count: int
    base: int

    def as_dict(self) -> dict[str, Any]:
        return {"offset": self.offset, "percent": self.percent, "count": self.count, "base": self.base}


@dataclass(frozen=True)
class CohortTable:
    """A cohort table: one row per period of the span (empty cohorts included) and the average row."""

    settings: CohortSettings
    cohorts: tuple[Cohort, ...]
    average: tuple[AverageCell, ...]

    def as_dict(self) -> dict[str, Any]:
        s = self.settings
        return {
            "container": s.container,
            "granularity": s.granularity,
            "type": "churn" if s.churn else "retention",
            "rolling": s.rolling,
            "range": s.span.as_dict(),
            "inclusion": s.inclusion.as_dict(),
            "return": s.returning.as_dict(),
            "cohorts": [cohort.as_dict() for cohort in self.cohorts],
            "average": [cell.as_dict() for cell in self.average],
        }


def cohort_table(events: Sequence[Event], settings: CohortSettings) -> CohortTable:
    """Build the cohort table of `events` (sorted by time or not) under `settings`."""
    starts = periods(settings.span, settings.granularity)
    counts: defaultdict[str, defaultdict[int, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))
    for event in events:
        entity = event.container_id(settings.container)
        if entity is not None and event.at in settings.span:
            counts[entity][offset(starts[0], event.at, settings.granularity)][event.type] += 1
    rows: list[list[str]] = [[] for _ in starts]
    for entity, by_period in counts.items():
        first = min((i for i, period in by_period.items() if settings.inclusion.met_by(period)), default=None)
        if first is not None:
            rows[first].append(entity)
    cohorts = tuple(_cohort(i, starts, sorted(row), counts, settings) for i, row in enumerate(rows))
    return CohortTable(settings, cohorts, _average(cohorts, len(starts) - 1))


def _cohort(
    index: int,
    starts: Sequence[datetime],
    included: list[str],
    counts: Mapping[str, Mapping[int, Counter[str]]],
    settings: CohortSettings,
) -> Cohort:
    """One cohort row: its cells for every later period that starts before the span ends."""
    cells = []
    kept, base = set(included), len(included)  # rolling: members that returned in every period so far
    for k in range(1, len(starts) - index):
        returned = {m for m in included if settings.returning.met_by(counts[m].get(index + k, Counter()))}
        retained = returned & kept if settings.rolling else returned
        count = base - len(retained) if settings.churn else len(retained)
        cells.append(Cell(k, add(starts[index], settings.granularity, k), count, base, _percent(count, base)))
        if settings.rolling:
            kept, base = retained, len(retained)
    return Cohort(starts[index], label(starts[index], settings.granularity), tuple(included), tuple(cells))


def _percent(count: int, base: int) -> float | None:
    return round(count * 100 / base, 1) if base else None


def _average(cohorts: Sequence[Cohort], last: int) -> tuple[AverageCell, ...]:
    """Per offset, the mean of the cohorts' unrounded percents (those with a base) and the totals."""
    average = []
    for k in range(1, last + 1):
        cells = [cohort.cells[k - 1] for cohort in cohorts if len(cohort.cells) >= k]
        exact = [cell.count * 100 / cell.base for cell in cells if cell.base]
        percent = round(sum(exact) / len(exact), 1) if exact else None
        average.append(AverageCell(k, percent, sum(c.count for c in cells), sum(c.base for c in cells)))
    return tuple(average)


def members(table: CohortTable, period_label: str) -> list[str]:
    """The ids of the members of the cohort labelled `period_label` (e.g. "2026-01"), to check its cells."""
    for cohort in table.cohorts:
        if cohort.label == period_label:
            return list(cohort.members)
    raise ValueError(f"no cohort labelled {period_label!r} in this table")
