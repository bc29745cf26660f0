"""Account insights: the marketing results of all contacts of one account over a date range, as outbound marketing's
account insights showed them (email results, web visits, event registrations, form submissions, other
interactions), plus the buying journey's state (leads, opportunities, the best current lead scores).

Counts of events are of events dated inside the range; `other_interactions` counts the interactions of any type
without a KPI of its own. `opportunities_open` is a state: the account's opportunities created before the range ends
that are open now. The best scores are over the account's open leads (a lead of the account, or of one of its
contacts), whatever the range: they are current. There is one per scoring model, since models score on their own
scales and grades, so scores of different models do not compare.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from insights.periods import DateRange
from insights.timeline import (
    LEAD_CREATED,
    MARKETING_QUALIFIED,
    OPPORTUNITY_CREATED,
    OPPORTUNITY_LOST,
    OPPORTUNITY_WON,
    Event,
)
from scoring.records import Account, Contact, Lead, Opportunity, StoredScore

__all__ = ["INTERACTION_KPIS", "OTHER_INTERACTIONS", "AccountKpis", "JourneyEntry", "account_kpis"]

# KPI name -> the interaction type it counts (the types `POST /api/interactions` accepts).
INTERACTION_KPIS = {
    "emails_sent": "EmailSent",
    "emails_delivered": "EmailDelivered",
    "emails_opened": "EmailOpened",
    "emails_clicked": "EmailClicked",
    "website_visits": "WebsiteVisited",
    "form_submissions": "FormSubmitted",
    "event_registrations": "EventRegistered",
}
OTHER_INTERACTIONS = "other_interactions"  # the KPI counting interactions of every other type
_MILESTONE_KPIS = {
    "leads": LEAD_CREATED,
    "leads_sales_ready": MARKETING_QUALIFIED,
    "opportunities_created": OPPORTUNITY_CREATED,
    "opportunities_won": OPPORTUNITY_WON,
    "opportunities_lost": OPPORTUNITY_LOST,
}


@dataclass(frozen=True)
class JourneyEntry:
    """A contact's entry into a journey (from the journeys' saved progress)."""

    journey: str
    contact_id: str
    started_at: datetime


@dataclass(frozen=True)
class AccountKpis:
    """One account's KPIs over a range; `best` is, per scoring model (by name), the best current score of its open
    leads (a model that scored none of them is absent)."""

    account_id: str
    name: str | None
    span: DateRange
    contacts: int
    kpis: dict[str, int]
    journeys: tuple[str, ...]
    best: dict[str, StoredScore]

    def as_dict(self) -> dict[str, Any]:
        return {
            "account": {"id": self.account_id, "name": self.name},
            "range": self.span.as_dict(),
            "contacts": self.contacts,
            "kpis": dict(self.kpis),
            "journeys": list(self.journeys),
            "best_scores": {
                model: {"score": s.score, "grade": s.grade, "lead": s.lead_id} for model, s in self.best.items()
            },
        }


def account_kpis(
    account: Account,
    span: DateRange,
    *,
    contacts: Iterable[Contact],
    leads: Iterable[Lead],
    opportunities: Iterable[Opportunity],
    events: Sequence[Event],
    scores: Iterable[StoredScore],
    entries: Iterable[JourneyEntry],
) -> AccountKpis:
    """The KPIs of `account` over `span`, from records that may include other accounts' (they are filtered here)."""
    members = {c.id for c in contacts if c.account_id == account.id}
    mine = [e for e in events if e.account_id == account.id and e.at in span]
    counted = Counter(e.type for e in mine)
    kpis = {name: counted[kind] for name, kind in INTERACTION_KPIS.items()}
    named = set(INTERACTION_KPIS.values())
    kpis[OTHER_INTERACTIONS] = sum(1 for e in mine if not e.milestone and e.type not in named)
    journeys = sorted({e.journey for e in entries if e.contact_id in members and e.started_at in span})
    kpis["journeys_entered"] = len(journeys)
    kpis |= {name: counted[kind] for name, kind in _MILESTONE_KPIS.items()}
    kpis["opportunities_open"] = sum(
        1
        for o in opportunities
        if o.status == "open"
        and (o.account_id == account.id or (o.account_id is None and o.contact_id in members))
        and (o.created_on is None or o.created_on < span.end)
    )
    open_leads = {
        lead.id
        for lead in leads
        if lead.is_open and (lead.account_id == account.id or (lead.account_id is None and lead.contact_id in members))
    }
    best: dict[str, StoredScore] = {}
    for score in sorted((s for s in scores if s.lead_id in open_leads), key=lambda s: (s.model, -s.score, s.lead_id)):
        best.setdefault(score.model, score)  # per model: the highest score, ties to the smallest lead id
    name = account.attributes.get("name")
    return AccountKpis(account.id, str(name) if name else None, span, len(members), kpis, tuple(journeys), best)
