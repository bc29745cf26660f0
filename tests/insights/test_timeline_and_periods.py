"""The event stream (interactions and dated milestones, each with its containers) and the UTC calendar periods."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from insights.periods import DateRange, add, floor, label, offset, periods
from insights.timeline import timeline
from scoring.records import Contact, Interaction, Lead, Opportunity


def at(day: str, hour: int = 0) -> datetime:
    return datetime.fromisoformat(f"2026-{day}T{hour:02d}:00:00+00:00")


CONTACTS = [Contact("c1", "a1"), Contact("c2", None)]


def test_milestones_are_dated_from_the_records_and_carry_their_containers() -> None:
    leads = [
        Lead("l1", contact_id="c1", created_on=at("01-02"), sales_ready_on=at("01-20"), qualified_on=at("02-01")),
        Lead("l2", account_id="a9", contact_id="c2", created_on=at("01-03")),
        Lead("l3", created_on=None),  # no date: no milestone
    ]
    opportunities = [
        Opportunity("o1", "a1", None, "l1", at("02-05"), "won", at("03-01")),
        Opportunity("o2", None, "c1", None, at("02-06"), "lost", at("02-20")),
        Opportunity("o3", "a2", None, None, at("02-07")),
    ]
    events = timeline(CONTACTS, leads, opportunities, [])
    assert [(e.at.strftime("%m-%d"), e.type, e.account_id, e.contact_id, e.opportunity_id) for e in events] == [
        ("01-02", "LeadCreated", "a1", "c1", None),  # the lead's account is its contact's
        ("01-03", "LeadCreated", "a9", "c2", None),  # its own parent account wins
        ("01-20", "MarketingQualified", "a1", "c1", None),
        ("02-01", "LeadQualified", "a1", "c1", None),
        ("02-05", "OpportunityCreated", "a1", None, "o1"),
        ("02-06", "OpportunityCreated", "a1", "c1", "o2"),  # account through its contact
        ("02-07", "OpportunityCreated", "a2", None, "o3"),
        ("02-20", "OpportunityLost", "a1", "c1", "o2"),
        ("03-01", "OpportunityWon", "a1", None, "o1"),
    ]
    assert all(e.milestone for e in events)


def test_interactions_take_their_contacts_account_and_content_type() -> None:
    interactions = [
        Interaction("i1", "c1", "FormSubmitted", at("01-05"), {"content_type": "whitepaper"}),
        Interaction("i2", "c2", "WebsiteVisited", at("01-04"), {"content_type": ""}),
        Interaction("i3", None, "EmailOpened", at("01-06")),
    ]
    events = timeline(CONTACTS, [], [], interactions)
    assert [(e.source, e.account_id, e.contact_id, e.content_type, e.milestone) for e in events] == [
        ("i2", None, "c2", None, False),
        ("i1", "a1", "c1", "whitepaper", False),
        ("i3", None, None, None, False),
    ]
    assert events[1].container_id("account") == "a1" and events[0].container_id("account") is None


def test_at_the_same_moment_interactions_come_first_then_milestones_in_buying_order() -> None:
    moment = at("03-03", 12)
    lead = Lead("l1", contact_id="c1", created_on=moment, sales_ready_on=moment, qualified_on=moment)
    opportunity = Opportunity("o1", "a1", None, None, moment, "won", moment)
    form = Interaction("zz", "c1", "FormSubmitted", moment)
    types = [e.type for e in timeline(CONTACTS, [lead], [opportunity], [form])]
    assert types == [
        "FormSubmitted",
        "LeadCreated",
        "MarketingQualified",
        "LeadQualified",
        "OpportunityCreated",
        "OpportunityWon",
    ]


@pytest.mark.parametrize(
    ("moment", "granularity", "start"),
    [
        (datetime(2026, 3, 8, 23, 59, tzinfo=UTC), "week", "2026-03-02"),  # Sunday -> the Monday before
        (datetime(2026, 3, 9, 0, 0, tzinfo=UTC), "week", "2026-03-09"),  # Monday starts its own week
        (datetime(2026, 6, 30, 23, tzinfo=UTC), "quarter", "2026-04-01"),
        (datetime(2026, 7, 1, tzinfo=UTC), "quarter", "2026-07-01"),
        (datetime(2026, 12, 31, 23, tzinfo=UTC), "year", "2026-01-01"),
        (datetime(2026, 2, 28, 13, tzinfo=UTC), "month", "2026-02-01"),
        (datetime(2026, 2, 28, 13, tzinfo=UTC), "day", "2026-02-28"),
    ],
)
def test_periods_start_in_utc_with_weeks_on_monday(moment: datetime, granularity: str, start: str) -> None:
    assert floor(moment, granularity).strftime("%Y-%m-%d") == start  # type: ignore[arg-type]


def test_a_moment_in_another_time_zone_is_bucketed_by_its_utc_day() -> None:
    sunday_evening_in_new_york = datetime(2026, 3, 8, 21, tzinfo=ZoneInfo("America/New_York"))  # Mon 01:00 UTC
    assert floor(sunday_evening_in_new_york, "day") == datetime(2026, 3, 9, tzinfo=UTC)
    assert floor(sunday_evening_in_new_york, "week") == datetime(2026, 3, 9, tzinfo=UTC)


def test_adding_periods_and_counting_the_offset_between_them() -> None:
    jan = datetime(2026, 1, 1, tzinfo=UTC)
    assert add(jan, "month", 13) == datetime(2027, 2, 1, tzinfo=UTC)
    assert add(jan, "quarter", -1) == datetime(2025, 10, 1, tzinfo=UTC)
    assert add(jan, "week", 2) == datetime(2026, 1, 15, tzinfo=UTC)
    assert offset(jan, datetime(2026, 12, 31, tzinfo=UTC), "month") == 11
    assert offset(jan, datetime(2026, 4, 1, tzinfo=UTC), "quarter") == 1
    assert offset(floor(jan, "week"), datetime(2026, 1, 12, tzinfo=UTC), "week") == 2  # Dec 29 .. Jan 12


def test_the_periods_of_a_range_and_their_names() -> None:
    span = DateRange(datetime(2026, 1, 15, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC))
    starts = periods(span, "month")
    assert [label(s, "month") for s in starts] == ["2026-01", "2026-02", "2026-03"]  # April starts at the end
    assert label(datetime(2026, 1, 1, tzinfo=UTC), "week") == "2026-W01"  # a Thursday: ISO week 1
    assert label(datetime(2026, 5, 1, tzinfo=UTC), "quarter") == "2026-Q2"
    assert label(datetime(2026, 5, 1, tzinfo=UTC), "year") == "2026"


def test_a_range_is_half_open_and_must_end_after_it_starts() -> None:
    span = DateRange(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC))
    assert datetime(2026, 1, 1, tzinfo=UTC) in span and datetime(2026, 2, 1, tzinfo=UTC) not in span
    with pytest.raises(ValueError, match="end after it starts"):
        DateRange(span.end, span.start)
    with pytest.raises(ValueError, match="aware"):
        DateRange(datetime(2026, 1, 1), datetime(2026, 2, 1))
