"""Account KPIs over a range (hand-computed), and the score distribution per model."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from insights.kpis import JourneyEntry, account_kpis
from insights.periods import DateRange
from insights.scores import score_distributions
from insights.timeline import timeline
from scoring.records import Account, Contact, Interaction, Lead, Opportunity, StoredScore


def at(day: str) -> datetime:
    return datetime.fromisoformat(f"2026-{day}T10:00:00+00:00")


ACCOUNT = Account("a1", attributes={"name": "Contoso"})
CONTACTS = [Contact("c1", "a1"), Contact("c2", "a1"), Contact("c3", "a2")]
INTERACTIONS = [
    Interaction("i1", "c1", "EmailSent", at("01-05")),
    Interaction("i2", "c2", "EmailSent", at("01-05")),
    Interaction("i3", "c1", "EmailDelivered", at("01-05")),
    Interaction("i4", "c1", "EmailOpened", at("01-06")),
    Interaction("i5", "c2", "EmailClicked", at("02-07")),
    Interaction("i6", "c2", "WebsiteVisited", at("02-08")),
    Interaction("i7", "c1", "FormSubmitted", at("03-01")),  # after the range
    Interaction("i8", "c3", "EventRegistered", at("01-09")),  # another account's
    Interaction("i9", "c1", "WebinarAttended", at("01-14")),  # a type without a KPI of its own: other
    Interaction("i10", "c2", "ChatStarted", at("02-20")),  # other
    Interaction("i11", "c2", "ChatStarted", at("03-02")),  # other, but after the range
    Interaction("i12", "c3", "WebinarAttended", at("01-14")),  # other, but another account's
]
LEADS = [
    Lead("l1", contact_id="c1", created_on=at("01-10"), sales_ready_on=at("02-01")),
    Lead("l2", account_id="a1", is_open=False, created_on=at("01-11"), qualified_on=at("02-02")),
    Lead("l3", contact_id="c3", created_on=at("01-12")),
    Lead("l4", account_id="a1"),  # open, never dated: no event, but its scores count
]
OPPORTUNITIES = [
    Opportunity("o1", "a1", None, None, at("01-20")),  # open
    Opportunity("o2", "a1", None, None, at("01-21"), "won", at("02-10")),
    Opportunity("o3", "a1", None, None, at("03-05")),  # open, but created after the range
    Opportunity("o4", None, "c2", None, at("01-22")),  # open, the account through its contact
]
SPAN = DateRange(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC))


def kpis(scores: list[StoredScore] | None = None, entries: list[JourneyEntry] | None = None) -> dict[str, object]:
    events = timeline(CONTACTS, LEADS, OPPORTUNITIES, INTERACTIONS)
    return account_kpis(
        ACCOUNT,
        SPAN,
        contacts=CONTACTS,
        leads=LEADS,
        opportunities=OPPORTUNITIES,
        events=events,
        scores=scores or [],
        entries=entries or [],
    ).as_dict()


def test_kpis_count_the_accounts_contacts_events_inside_the_range() -> None:
    result = kpis()
    assert result["account"] == {"id": "a1", "name": "Contoso"}
    assert result["contacts"] == 2
    assert result["kpis"] == {
        "emails_sent": 2,
        "emails_delivered": 1,
        "emails_opened": 1,
        "emails_clicked": 1,
        "website_visits": 1,
        "form_submissions": 0,  # March 1 is outside [Jan 1, Mar 1)
        "event_registrations": 0,  # c3 belongs to a2
        "other_interactions": 2,  # i9 and i10; i11 is after the range, i12 another account's; milestones never
        "journeys_entered": 0,
        "leads": 2,  # l1 (through c1) and l2; l3 is a2's
        "leads_sales_ready": 1,
        "opportunities_created": 3,  # o1, o2, o4 (o3 after the range)
        "opportunities_won": 1,
        "opportunities_lost": 0,
        "opportunities_open": 2,  # o1 and o4 (o3 did not exist before the range ended)
    }
    assert result["best_scores"] == {}


def test_the_best_score_per_model_is_over_the_accounts_open_leads_only() -> None:
    scores = [
        StoredScore("l1", "fit", 40, "C", False),
        StoredScore("l4", "fit", 70, "B", False),  # fit's best: the higher of l1's 40 and l4's 70
        StoredScore("l1", "engagement", 55, "B", False),
        StoredScore("l4", "engagement", 12, None, False),
        StoredScore("l2", "fit", 90, "A", True),  # l2 is closed
        StoredScore("l3", "fit", 99, "A", True),  # l3 is another account's
        StoredScore("l3", "intent", 80, "A", True),  # a model that scored none of a1's open leads: absent
    ]
    # Each model on its own scale: engagement's 55 does not outrank fit's 70 or the other way round.
    assert kpis(scores)["best_scores"] == {
        "engagement": {"score": 55, "grade": "B", "lead": "l1"},
        "fit": {"score": 70, "grade": "B", "lead": "l4"},
    }


def test_a_tie_within_a_model_goes_to_the_smallest_lead_id() -> None:
    scores = [StoredScore("l4", "fit", 60, "B", False), StoredScore("l1", "fit", 60, "C", False)]
    assert kpis(scores)["best_scores"] == {"fit": {"score": 60, "grade": "C", "lead": "l1"}}


def test_journeys_entered_counts_distinct_journeys_entered_in_the_range_by_the_accounts_contacts() -> None:
    entries = [
        JourneyEntry("nurture", "c1", at("01-15")),
        JourneyEntry("nurture", "c2", at("01-16")),
        JourneyEntry("welcome", "c2", at("03-02")),  # after the range
        JourneyEntry("upsell", "c3", at("01-15")),  # another account's contact
    ]
    result = kpis(entries=entries)
    assert result["kpis"]["journeys_entered"] == 1  # type: ignore[index]
    assert result["journeys"] == ["nurture"]


def test_score_distribution_bins_and_grades_per_model() -> None:
    scores = [
        StoredScore(f"l{i}", "fit", value, grade, False)
        for i, (value, grade) in enumerate([(0, "D"), (9, "D"), (10, "C"), (25, "B"), (29, "B"), (0, None)])
    ] + [StoredScore("x", "engagement", -5, None, False), StoredScore("y", "engagement", 4, "A", True)]
    result = score_distributions(scores, bins=3)
    # fit: 0..29 in 3 bins of width 10: [0,10) 0, 9, 0; [10,20) 10; [20,30) 25, 29
    assert result["fit"].as_dict() == {
        "scored": 6,
        "bins": [
            {"from": 0, "to": 10, "count": 3},
            {"from": 10, "to": 20, "count": 1},
            {"from": 20, "to": 30, "count": 2},
        ],
        "grades": {"B": 2, "C": 1, "D": 2},
    }
    # engagement: -5..4 in 3 bins of width 4 from -5: [-5,-1) -5; [-1,3) none; [3,7) 4
    assert [b["count"] for b in result["engagement"].as_dict()["bins"]] == [1, 0, 1]
    assert list(result) == ["engagement", "fit"]
    with pytest.raises(ValueError, match="bin"):
        score_distributions(scores, bins=0)
