"""Cohort tables (CJA B2B): membership by first inclusion period, fixed and rolling retention, churn, containers,
thresholds, span and period boundaries, validation. Every expected figure is worked out by hand in the comments."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

import pytest

from insights.cohorts import Cohort, CohortSettings, CohortTable, Criteria, MetricTest, cohort_table, members
from insights.periods import DateRange, Granularity
from insights.timeline import MILESTONES, Container, Event

JAN_TO_APR = DateRange(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 5, 1, tzinfo=UTC))


def ev(
    moment: str, type_: str, account: str | None = None, contact: str | None = None, opportunity: str | None = None
) -> Event:
    """An event at `moment` (ISO date or date-time, UTC) for the given containers."""
    at = datetime.fromisoformat(moment).replace(tzinfo=UTC)
    return Event(
        at, type_, type_ in MILESTONES, opportunity or contact or account or "?", account, contact, opportunity
    )


def crit(*tests: tuple[str, int], match: str = "all") -> Criteria:
    return Criteria(tuple(MetricTest(metric, at_least) for metric, at_least in tests), cast(Any, match))


def table(
    events: list[Event],
    inclusion: Criteria,
    returning: Criteria,
    granularity: Granularity = "month",
    span: DateRange = JAN_TO_APR,
    container: Container = "account",
    churn: bool = False,
    rolling: bool = False,
) -> CohortTable:
    settings = CohortSettings(inclusion, returning, granularity, span, container, churn, rolling)
    return cohort_table(sorted(events, key=lambda e: e.at), settings)


def cells(cohort: Cohort) -> list[tuple[int, int, int, float | None]]:
    """A row's cells as (offset, count, base, percent)."""
    return [(c.offset, c.count, c.base, c.percent) for c in cohort.cells]


def row(result: CohortTable, period_label: str) -> Cohort:
    return next(c for c in result.cohorts if c.label == period_label)


# --- the CJA B2B example: opportunity container, created -> won --------------------------------------------------

OPPORTUNITIES = [
    # January cohort o1, o2, o3: o1 won in Feb (offset 1), o2 in Mar (offset 2), o3 never.
    ev("2026-01-05", "OpportunityCreated", "A", opportunity="o1"),
    ev("2026-01-12", "OpportunityCreated", "A", opportunity="o2"),
    ev("2026-01-30", "OpportunityCreated", "B", opportunity="o3"),
    ev("2026-02-10", "OpportunityWon", "A", opportunity="o1"),
    ev("2026-03-03", "OpportunityWon", "A", opportunity="o2"),
    # February cohort o4, o5: o4 won in Mar (offset 1), o5 in Apr (offset 2).
    ev("2026-02-01", "OpportunityCreated", "B", opportunity="o4"),
    ev("2026-02-20", "OpportunityCreated", "C", opportunity="o5"),
    ev("2026-03-15", "OpportunityWon", "B", opportunity="o4"),
    ev("2026-04-30T23:59:59", "OpportunityWon", "C", opportunity="o5"),
    # March cohort o6: never won. April: nobody.
    ev("2026-03-31", "OpportunityCreated", "C", opportunity="o6"),
]


def test_opportunity_cohorts_count_won_opportunities_per_later_month_in_the_exact_json_shape() -> None:
    result = table(OPPORTUNITIES, crit(("OpportunityCreated", 1)), crit(("OpportunityWon", 1)), container="opportunity")

    # Jan: 1/3 = 33.3, 1/3 = 33.3, 0/3 = 0.0; Feb: 1/2 = 50.0, 1/2 = 50.0; Mar: 0/1 = 0.0; Apr: no cells.
    # Average offset 1: (33.33 + 50 + 0) / 3 = 27.78; offset 2: (33.33 + 50) / 2 = 41.67; offset 3: 0.
    # Totals offset 1: counts 1 + 1 + 0, bases 3 + 2 + 1; offset 2: 1 + 1 of 3 + 2; offset 3: 0 of 3.
    assert result.as_dict() == {
        "container": "opportunity",
        "granularity": "month",
        "type": "retention",
        "rolling": False,
        "range": {"from": "2026-01-01T00:00:00Z", "to": "2026-05-01T00:00:00Z"},
        "inclusion": {"match": "all", "metrics": [{"metric": "OpportunityCreated", "at_least": 1}]},
        "return": {"match": "all", "metrics": [{"metric": "OpportunityWon", "at_least": 1}]},
        "cohorts": [
            {
                "period": "2026-01-01",
                "label": "2026-01",
                "included": 3,
                "cells": [
                    {"offset": 1, "period": "2026-02-01", "count": 1, "base": 3, "percent": 33.3},
                    {"offset": 2, "period": "2026-03-01", "count": 1, "base": 3, "percent": 33.3},
                    {"offset": 3, "period": "2026-04-01", "count": 0, "base": 3, "percent": 0.0},
                ],
            },
            {
                "period": "2026-02-01",
                "label": "2026-02",
                "included": 2,
                "cells": [
                    {"offset": 1, "period": "2026-03-01", "count": 1, "base": 2, "percent": 50.0},
                    {"offset": 2, "period": "2026-04-01", "count": 1, "base": 2, "percent": 50.0},
                ],
            },
            {
                "period": "2026-03-01",
                "label": "2026-03",
                "included": 1,
                "cells": [{"offset": 1, "period": "2026-04-01", "count": 0, "base": 1, "percent": 0.0}],
            },
            {"period": "2026-04-01", "label": "2026-04", "included": 0, "cells": []},
        ],
        "average": [
            {"offset": 1, "percent": 27.8, "count": 2, "base": 6},
            {"offset": 2, "percent": 41.7, "count": 2, "base": 5},
            {"offset": 3, "percent": 0.0, "count": 0, "base": 3},
        ],
    }
    assert members(result, "2026-01") == ["o1", "o2", "o3"]
    assert members(result, "2026-02") == ["o4", "o5"]
    assert members(result, "2026-04") == []


def test_an_unknown_cohort_label_is_reported_by_name() -> None:
    result = table(OPPORTUNITIES, crit(("OpportunityCreated", 1)), crit(("OpportunityWon", 1)), container="opportunity")
    with pytest.raises(ValueError, match="2026-07"):
        members(result, "2026-07")


# --- account container over the contacts' interactions ------------------------------------------------------------

CONTACT_FORMS = [
    # Account A: two contacts submit one form each in Jan -> A has 2 in Jan; a2 clicks in Feb.
    ev("2026-01-05", "FormSubmitted", "A", "a1"),
    ev("2026-01-20", "FormSubmitted", "A", "a2"),
    ev("2026-02-02", "EmailClicked", "A", "a2"),
    # Account B: one form on Jan 31 and one on Feb 1 (never 2 in a month), a second in Feb -> B in Feb; clicks Mar.
    ev("2026-01-31T23:59:59", "FormSubmitted", "B", "b1"),
    ev("2026-02-01", "FormSubmitted", "B", "b1"),
    ev("2026-02-10", "FormSubmitted", "B", "b1"),
    ev("2026-03-05", "EmailClicked", "B", "b1"),
    # Account C: a single form -> never included, its click does not matter.
    ev("2026-01-10", "FormSubmitted", "C", "c1"),
    ev("2026-02-10", "EmailClicked", "C", "c1"),
]


def test_an_account_meets_the_criteria_with_the_interactions_of_all_its_contacts() -> None:
    result = table(CONTACT_FORMS, crit(("FormSubmitted", 2)), crit(("EmailClicked", 1)))

    assert [(c.label, list(c.members)) for c in result.cohorts] == [
        ("2026-01", ["A"]),
        ("2026-02", ["B"]),
        ("2026-03", []),
        ("2026-04", []),
    ]
    assert cells(row(result, "2026-01")) == [(1, 1, 1, 100.0), (2, 0, 1, 0.0), (3, 0, 1, 0.0)]
    assert cells(row(result, "2026-02")) == [(1, 1, 1, 100.0), (2, 0, 1, 0.0)]
    assert cells(row(result, "2026-03")) == [(1, 0, 0, None)]  # empty cohort: base 0, no percent
    # Average offset 1: Jan 100, Feb 100, Mar has none -> 100; offset 2: 0 and 0; offset 3: 0.
    assert [(a.offset, a.percent) for a in result.average] == [(1, 100.0), (2, 0.0), (3, 0.0)]


def test_a_contact_container_counts_each_contacts_own_interactions() -> None:
    # a1 and a2 have one form each in Jan (not 2); b1 has 2 in Feb; b1 clicks in Mar.
    result = table(CONTACT_FORMS, crit(("FormSubmitted", 2)), crit(("EmailClicked", 1)), container="contact")

    assert [(c.label, list(c.members)) for c in result.cohorts if c.members] == [("2026-02", ["b1"])]
    assert cells(row(result, "2026-02")) == [(1, 1, 1, 100.0), (2, 0, 1, 0.0)]


THRESHOLDS = [
    # Jan: A 3 forms, B 2, C 1; Feb: C 2. Feb clicks: A once, B twice.
    *[ev("2026-01-03", "FormSubmitted", "A", "a1")] * 3,
    *[ev("2026-01-04", "FormSubmitted", "B", "b1")] * 2,
    ev("2026-01-05", "FormSubmitted", "C", "c1"),
    *[ev("2026-02-05", "FormSubmitted", "C", "c1")] * 2,
    ev("2026-02-06", "EmailClicked", "A", "a1"),
    *[ev("2026-02-07", "EmailClicked", "B", "b1")] * 2,
]


@pytest.mark.parametrize(
    ("at_least", "january", "february"),
    [(1, ["A", "B", "C"], []), (2, ["A", "B"], ["C"]), (3, ["A"], []), (4, [], [])],
)
def test_the_inclusion_threshold_decides_who_joins_and_when(
    at_least: int, january: list[str], february: list[str]
) -> None:
    result = table(THRESHOLDS, crit(("FormSubmitted", at_least)), crit(("EmailClicked", 1)))

    assert members(result, "2026-01") == january
    assert members(result, "2026-02") == february


def test_the_return_threshold_counts_only_members_with_enough_events_in_the_period() -> None:
    # Jan cohort A, B, C (at least 1 form). Feb: A clicked once, B twice -> >= 1: A, B (2/3); >= 2: B (1/3).
    once = table(THRESHOLDS, crit(("FormSubmitted", 1)), crit(("EmailClicked", 1)))
    twice = table(THRESHOLDS, crit(("FormSubmitted", 1)), crit(("EmailClicked", 2)))

    assert cells(row(once, "2026-01"))[0] == (1, 2, 3, 66.7)
    assert cells(row(twice, "2026-01"))[0] == (1, 1, 3, 33.3)


MIXED = [
    # A: form and webinar in Jan. B: form Jan, webinar Feb, both in Mar. C: webinar Feb only.
    ev("2026-01-02", "FormSubmitted", "A", "a1"),
    ev("2026-01-03", "WebinarAttended", "A", "a1"),
    ev("2026-01-04", "FormSubmitted", "B", "b1"),
    ev("2026-02-04", "WebinarAttended", "B", "b1"),
    ev("2026-03-04", "FormSubmitted", "B", "b1"),
    ev("2026-03-05", "WebinarAttended", "B", "b1"),
    ev("2026-02-06", "WebinarAttended", "C", "c1"),
]


def test_match_all_needs_every_metric_in_the_same_period_and_match_any_one_of_them() -> None:
    tests = (("FormSubmitted", 1), ("WebinarAttended", 1))
    every = table(MIXED, crit(*tests), crit(("EmailOpened", 1)))
    either = table(MIXED, crit(*tests, match="any"), crit(("EmailOpened", 1)))

    assert [list(c.members) for c in every.cohorts] == [["A"], [], ["B"], []]
    assert [list(c.members) for c in either.cohorts] == [["A", "B"], ["C"], [], []]
    assert every.as_dict()["inclusion"]["match"] == "all"
    assert either.as_dict()["inclusion"]["match"] == "any"


# --- fixed vs rolling retention, churn ---------------------------------------------------------------------------

RETURNS = [
    # Jan cohort A..E (a form each). Opens: A Feb, Mar, Apr; B Feb and Apr (not Mar); C Mar; D never; E Feb.
    *[ev("2026-01-10", "FormSubmitted", account) for account in "ABCDE"],
    ev("2026-03-11", "FormSubmitted", "A"),  # meets inclusion again: A stays in the Jan cohort only
    *[ev(day, "EmailOpened", "A") for day in ("2026-02-01", "2026-03-01", "2026-04-01")],
    *[ev(day, "EmailOpened", "B") for day in ("2026-02-02", "2026-04-02")],
    ev("2026-03-03", "EmailOpened", "C"),
    ev("2026-02-04", "EmailOpened", "E"),
]


def returns(churn: bool = False, rolling: bool = False) -> CohortTable:
    return table(RETURNS, crit(("FormSubmitted", 1)), crit(("EmailOpened", 1)), churn=churn, rolling=rolling)


def test_fixed_retention_divides_each_period_by_the_included_count() -> None:
    result = returns()

    # Feb: A, B, E = 3/5; Mar: A, C = 2/5; Apr: A, B = 2/5.
    assert cells(row(result, "2026-01")) == [(1, 3, 5, 60.0), (2, 2, 5, 40.0), (3, 2, 5, 40.0)]
    assert members(result, "2026-01") == ["A", "B", "C", "D", "E"]
    assert members(result, "2026-03") == []  # cohorts are disjoint: A joined in Jan


def test_rolling_retention_keeps_only_members_that_returned_every_period_and_divides_by_the_previous_column() -> None:
    result = returns(rolling=True)

    # Feb: A, B, E = 3/5; Mar: of those only A returned = 1/3 (C returns but missed Feb); Apr: A = 1/1.
    assert cells(row(result, "2026-01")) == [(1, 3, 5, 60.0), (2, 1, 3, 33.3), (3, 1, 1, 100.0)]
    assert result.as_dict()["rolling"] is True


def test_churn_is_the_base_minus_the_retained_members() -> None:
    fixed, rolling = returns(churn=True), returns(churn=True, rolling=True)

    # Fixed: 5 - 3 = 2 (40%), 5 - 2 = 3 (60%), 5 - 2 = 3 (60%). Rolling: 5 - 3 = 2 (40%), 3 - 1 = 2 (66.7%), 1 - 1 = 0.
    assert cells(row(fixed, "2026-01")) == [(1, 2, 5, 40.0), (2, 3, 5, 60.0), (3, 3, 5, 60.0)]
    assert cells(row(rolling, "2026-01")) == [(1, 2, 5, 40.0), (2, 2, 3, 66.7), (3, 0, 1, 0.0)]
    assert fixed.as_dict()["type"] == "churn"
    assert returns().as_dict()["type"] == "retention"


@pytest.mark.parametrize("rolling", [False, True])
def test_churn_and_retention_cells_add_up_to_the_base_and_to_100_percent(rolling: bool) -> None:
    kept, lost = returns(rolling=rolling), returns(churn=True, rolling=rolling)

    pairs = [
        (k, c)
        for kr, cr in zip(kept.cohorts, lost.cohorts, strict=True)
        for k, c in zip(kr.cells, cr.cells, strict=True)
    ]
    assert len(pairs) == 6  # 3 + 2 + 1 cells over the four monthly cohorts
    for k, c in pairs:
        assert (c.count + k.count, c.base) == (k.base, k.base)
        assert c.percent is None if k.percent is None else c.percent == round(100 - k.percent, 1)


def test_the_average_row_skips_cohorts_without_a_base() -> None:
    # Only the Jan cohort has members: Feb and Mar cohorts have base 0 at offset 1 and are left out of the mean.
    result = returns()

    assert [(a.offset, a.percent, a.count, a.base) for a in result.average] == [
        (1, 60.0, 3, 5),
        (2, 40.0, 2, 5),
        (3, 40.0, 2, 5),
    ]


def test_no_events_give_empty_cohorts_and_no_average() -> None:
    result = table([], crit(("FormSubmitted", 1)), crit(("EmailOpened", 1)))

    assert [len(c.cells) for c in result.cohorts] == [3, 2, 1, 0]
    assert all(cell.percent is None and cell.base == 0 for c in result.cohorts for cell in c.cells)
    assert [a.percent for a in result.average] == [None, None, None]


# --- what is left out ----------------------------------------------------------------------------------------------

NO_ACCOUNT = [
    ev("2026-01-05", "FormSubmitted", "A", "a1"),
    ev("2026-01-06", "FormSubmitted", None, "x1"),  # a contact without an account
    ev("2026-02-03", "EmailOpened", None, "a1"),  # an event whose account id is missing
]


def test_events_without_the_containers_id_are_left_out() -> None:
    by_account = table(NO_ACCOUNT, crit(("FormSubmitted", 1)), crit(("EmailOpened", 1)))
    by_contact = table(NO_ACCOUNT, crit(("FormSubmitted", 1)), crit(("EmailOpened", 1)), container="contact")
    by_opportunity = table(NO_ACCOUNT, crit(("FormSubmitted", 1)), crit(("EmailOpened", 1)), container="opportunity")

    # Account: only A joins, and the Feb open (no account) does not count for it: 0/1.
    assert members(by_account, "2026-01") == ["A"]
    assert cells(row(by_account, "2026-01"))[0] == (1, 0, 1, 0.0)
    # Contact: the same events all have a contact: a1 and x1 join, a1 opens in Feb: 1/2.
    assert members(by_contact, "2026-01") == ["a1", "x1"]
    assert cells(row(by_contact, "2026-01"))[0] == (1, 1, 2, 50.0)
    # Opportunity: none of them has one.
    assert all(not c.members for c in by_opportunity.cohorts)


def test_events_outside_the_span_are_ignored_even_inside_a_computed_period() -> None:
    span = DateRange(datetime(2026, 1, 15, tzinfo=UTC), datetime(2026, 3, 15, tzinfo=UTC))  # periods Jan, Feb, Mar
    events = [
        ev("2026-01-10", "FormSubmitted", "A"),  # before the span: A does not join in Jan ...
        ev("2026-02-02", "FormSubmitted", "A"),  # ... but in Feb
        ev("2026-01-20", "FormSubmitted", "B"),
        ev("2026-03-20", "EmailOpened", "B"),  # after the span: not a return in Mar
        ev("2026-01-16", "FormSubmitted", "C"),
        ev("2026-03-14", "EmailOpened", "C"),
    ]
    result = table(events, crit(("FormSubmitted", 1)), crit(("EmailOpened", 1)), span=span)

    assert [(c.label, list(c.members)) for c in result.cohorts] == [
        ("2026-01", ["B", "C"]),
        ("2026-02", ["A"]),
        ("2026-03", []),
    ]
    assert cells(row(result, "2026-01")) == [(1, 0, 2, 0.0), (2, 1, 2, 50.0)]
    assert cells(row(result, "2026-02")) == [(1, 0, 1, 0.0)]
    assert result.as_dict()["range"] == {"from": "2026-01-15T00:00:00Z", "to": "2026-03-15T00:00:00Z"}


# --- period boundaries ---------------------------------------------------------------------------------------------


def test_weeks_start_on_monday_so_a_sunday_and_the_next_monday_are_different_cohorts() -> None:
    span = DateRange(datetime(2025, 12, 29, tzinfo=UTC), datetime(2026, 1, 19, tzinfo=UTC))  # three Monday weeks
    events = [
        ev("2026-01-04T23:59:59", "FormSubmitted", "A"),  # Sunday: week of Mon 2025-12-29 (ISO 2026-W01)
        ev("2026-01-05T00:00:00", "FormSubmitted", "B"),  # Monday: week of 2026-01-05 (2026-W02)
        ev("2026-01-05T08:00:00", "EmailOpened", "A"),  # A returns one week later
        ev("2026-01-11T23:00:00", "EmailOpened", "B"),  # B's own week (Sunday): no return
        ev("2026-01-12T00:00:00", "EmailOpened", "B"),  # B returns one week later
    ]
    result = table(events, crit(("FormSubmitted", 1)), crit(("EmailOpened", 1)), granularity="week", span=span)

    rows = result.as_dict()["cohorts"]
    assert [(r["period"], r["label"], r["included"]) for r in rows] == [
        ("2025-12-29", "2026-W01", 1),
        ("2026-01-05", "2026-W02", 1),
        ("2026-01-12", "2026-W03", 0),
    ]
    assert [(c["period"], c["count"], c["base"]) for c in rows[0]["cells"]] == [
        ("2026-01-05", 1, 1),
        ("2026-01-12", 0, 1),
    ]
    assert [(c["period"], c["count"], c["base"]) for c in rows[1]["cells"]] == [("2026-01-12", 1, 1)]


DAYS = DateRange(datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 5, tzinfo=UTC))  # Mar 1, 2, 3 and 4
BY_DAY = [
    ev("2026-03-01T10:00:00", "FormSubmitted", "A"),  # A joins Mar 1 ...
    ev("2026-03-02T09:00:00", "EmailOpened", "A"),  # ... returns one day later
    ev("2026-03-04T09:00:00", "EmailOpened", "A"),  # ... and three days later
    ev("2026-03-01T23:59:59", "FormSubmitted", "B"),  # B joins Mar 1 too (its last second) ...
    ev("2026-03-03T00:00:00", "EmailOpened", "B"),  # ... returns two days later
    ev("2026-03-02T00:00:00", "FormSubmitted", "C"),  # C joins Mar 2 ...
    ev("2026-03-02T12:00:00", "EmailOpened", "C"),  # ... its own day: not a return
    ev("2026-03-03T08:00:00", "EmailOpened", "C"),  # ... returns one day later
    ev("2026-03-01T08:00:00", "EmailOpened", "D"),  # D opens before it joins: no matter
    ev("2026-03-04T08:00:00", "FormSubmitted", "D"),  # D joins Mar 4, the last day: no cells
    ev("2026-03-05T00:00:00", "FormSubmitted", "E"),  # the span's end (excluded): E never joins
]


def test_day_cohorts_split_at_midnight_utc_with_fixed_and_rolling_retention() -> None:
    fixed = table(BY_DAY, crit(("FormSubmitted", 1)), crit(("EmailOpened", 1)), granularity="day", span=DAYS)

    assert [(c.label, list(c.members)) for c in fixed.cohorts] == [
        ("2026-03-01", ["A", "B"]),
        ("2026-03-02", ["C"]),
        ("2026-03-03", []),
        ("2026-03-04", ["D"]),
    ]
    # Mar 1 (A, B): +1 Mar 2 A 1/2; +2 Mar 3 B 1/2; +3 Mar 4 A 1/2. Mar 2 (C): +1 Mar 3 C 1/1; +2 Mar 4 0/1.
    assert cells(row(fixed, "2026-03-01")) == [(1, 1, 2, 50.0), (2, 1, 2, 50.0), (3, 1, 2, 50.0)]
    assert cells(row(fixed, "2026-03-02")) == [(1, 1, 1, 100.0), (2, 0, 1, 0.0)]
    assert cells(row(fixed, "2026-03-03")) == [(1, 0, 0, None)]
    assert cells(row(fixed, "2026-03-04")) == []
    assert [c["period"] for c in fixed.as_dict()["cohorts"][0]["cells"]] == ["2026-03-02", "2026-03-03", "2026-03-04"]
    # Average: +1 (50 + 100) / 2 = 75.0 (Mar 3 has no base), 2 of 3; +2 (50 + 0) / 2 = 25.0, 1 of 3; +3 50.0, 1 of 2.
    assert [(a.offset, a.percent, a.count, a.base) for a in fixed.average] == [
        (1, 75.0, 2, 3),
        (2, 25.0, 1, 3),
        (3, 50.0, 1, 2),
    ]
    # Rolling Mar 1: +1 A (1/2); +2 only B returned, and B missed day 1: 0/1; +3 nobody is left: 0/0.
    rolling = table(
        BY_DAY, crit(("FormSubmitted", 1)), crit(("EmailOpened", 1)), granularity="day", span=DAYS, rolling=True
    )
    assert cells(row(rolling, "2026-03-01")) == [(1, 1, 2, 50.0), (2, 0, 1, 0.0), (3, 0, 0, None)]
    assert cells(row(rolling, "2026-03-02")) == [(1, 1, 1, 100.0), (2, 0, 1, 0.0)]


def test_quarters_split_on_the_first_day_of_january_april_july_and_october() -> None:
    span = DateRange(datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
    events = [
        ev("2026-03-31T23:59:59", "FormSubmitted", "A"),  # Q1
        ev("2026-04-01T00:00:00", "FormSubmitted", "B"),  # Q2
        ev("2026-04-01T00:00:00", "EmailOpened", "A"),  # A returns in Q2 (offset 1)
        ev("2026-06-30T23:59:59", "EmailOpened", "B"),  # B's own quarter: no return
        ev("2026-07-01T00:00:00", "EmailOpened", "B"),  # B returns in Q3 (offset 1)
    ]
    result = table(events, crit(("FormSubmitted", 1)), crit(("EmailOpened", 1)), granularity="quarter", span=span)

    assert [(c.label, list(c.members)) for c in result.cohorts] == [
        ("2026-Q1", ["A"]),
        ("2026-Q2", ["B"]),
        ("2026-Q3", []),
        ("2026-Q4", []),
    ]
    assert cells(row(result, "2026-Q1")) == [(1, 1, 1, 100.0), (2, 0, 1, 0.0), (3, 0, 1, 0.0)]
    assert cells(row(result, "2026-Q2")) == [(1, 1, 1, 100.0), (2, 0, 1, 0.0)]
    assert [c["period"] for c in result.as_dict()["cohorts"][0]["cells"]] == ["2026-04-01", "2026-07-01", "2026-10-01"]


def test_years_split_at_new_year() -> None:
    span = DateRange(datetime(2025, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
    events = [
        ev("2025-12-31T23:59:59", "FormSubmitted", "A"),
        ev("2026-01-01T00:00:00", "FormSubmitted", "B"),
        ev("2026-01-01T00:00:00", "EmailOpened", "A"),
    ]
    result = table(events, crit(("FormSubmitted", 1)), crit(("EmailOpened", 1)), granularity="year", span=span)

    assert [(c.label, list(c.members), cells(c)) for c in result.cohorts] == [
        ("2025", ["A"], [(1, 1, 1, 100.0)]),
        ("2026", ["B"], []),
    ]


# --- validation ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Criteria(()), "1 to 3 metrics"),
        (lambda: Criteria(tuple(MetricTest(f"M{i}") for i in range(4))), r"1 to 3 metrics \(got 4\)"),
        (lambda: Criteria((MetricTest("FormSubmitted"),), cast(Any, "some")), "match"),
        (lambda: MetricTest("FormSubmitted", 0), "at_least"),
        (lambda: MetricTest("  "), "event type"),
        (
            lambda: CohortSettings(crit(("A", 1)), crit(("B", 1)), cast(Any, "hour"), JAN_TO_APR),
            "granularity",
        ),
        (
            lambda: CohortSettings(crit(("A", 1)), crit(("B", 1)), "month", JAN_TO_APR, cast(Any, "buying_group")),
            "container",
        ),
    ],
)
def test_invalid_settings_are_rejected_with_a_message_naming_the_problem(build: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()


def test_three_metrics_are_allowed() -> None:
    criteria = Criteria(tuple(MetricTest(f"M{i}", 2) for i in range(3)), "any")

    assert criteria.met_by({"M2": 2}) and not criteria.met_by({"M0": 1, "M1": 1})
