"""Insights as the HTTP functions, the `abm insights` command and the HTML report ask for them: read the mirror and
the state store (never Dataverse: the mirror is as current as the last sync or webhook), build the event stream,
run the pure analyses of `insights/`, and answer JSON-able dicts.

One account's insights read that account's partition of the mirror only; cohorts, flows and paths read all of it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from abm.errors import NotFound
from abm.jobs.mirror import load_snapshot
from abm.jobs.pipeline import RunSetup
from abm.views.params import InsightsInputError, check_names, cohort_settings, date_range, flow_settings, path_settings
from insights.cohorts import CohortSettings, Criteria, MetricTest, cohort_table
from insights.flows import FlowSettings, flow
from insights.kpis import INTERACTION_KPIS, JourneyEntry, account_kpis
from insights.paths import journey_path
from insights.periods import DateRange, add, floor
from insights.scores import score_distributions
from insights.timeline import (
    MARKETING_QUALIFIED,
    MILESTONES,
    OPPORTUNITY_CREATED,
    OPPORTUNITY_WON,
    Event,
    timeline,
)
from journeys.engine import COUNTERS
from scoring.records import Account, Contact, Lead, Opportunity, StoredScore
from statestore.port import InsightsStore, MirrorAndProgress, MirrorStore, ProgressStore, iso

__all__ = [
    "Dataset",
    "InsightsInputError",
    "InsightsNotFoundError",
    "account_insights",
    "cohorts",
    "flows",
    "journey_insights",
    "load",
    "paths",
    "report_data",
]

TOP_ACCOUNTS = 10  # accounts the report shows KPIs of (the most engaged in the range)


class InsightsNotFoundError(NotFound):
    """The account or journey asked about is not known (404)."""


@dataclass(frozen=True)
class Dataset:
    """The records of a scope of the mirror, their event stream and the stored scores."""

    accounts: dict[str, Account]
    contacts: list[Contact]
    leads: list[Lead]
    opportunities: list[Opportunity]
    scores: list[StoredScore]
    events: list[Event]

    def known_types(self) -> set[str]:
        """Event types a parameter may name: those in the data, the milestones and the standard interactions."""
        return {e.type for e in self.events} | set(MILESTONES) | set(INTERACTION_KPIS.values())


def load(store: MirrorStore, setup: RunSetup, scope: Collection[str] | None = None) -> Dataset:
    snapshot = load_snapshot(store, setup.config, scope)
    return Dataset(
        accounts={a.id: a for a in snapshot.accounts},
        contacts=snapshot.contacts,
        leads=snapshot.leads,
        opportunities=snapshot.opportunities,
        scores=[score.as_stored() for score in snapshot.scores.values()],
        events=timeline(snapshot.contacts, snapshot.leads, snapshot.opportunities, snapshot.interactions),
    )


def _entries(store: ProgressStore, setup: RunSetup) -> list[JourneyEntry]:
    """Every journey entry, from every journey's saved progress (`account_kpis` keeps an account's own)."""
    return [
        JourneyEntry(journey.name, p.contact_id, p.started_at or p.entered_at)
        for journey in setup.journeys
        for p in store.progress(journey.name)
    ]


def _kpis(data: Dataset, entries: list[JourneyEntry], account: Account, span: DateRange) -> dict[str, Any]:
    return account_kpis(
        account,
        span,
        contacts=data.contacts,
        leads=data.leads,
        opportunities=data.opportunities,
        events=data.events,
        scores=data.scores,
        entries=entries,
    ).as_dict()


def account_insights(
    store: InsightsStore, setup: RunSetup, account_id: str, params: Mapping[str, str], now: datetime
) -> dict[str, Any]:
    """`GET /api/insights/accounts/{id}`: one account's KPIs over `from` .. `to`."""
    check_names("account", params)
    span = date_range(params, now)
    account_id = account_id.strip().lower()
    data = load(store, setup, [account_id])
    account = data.accounts.get(account_id)
    if account is None:
        raise InsightsNotFoundError(f"account {account_id} is not in the mirror")
    return _kpis(data, _entries(store, setup), account, span)


def journey_insights(store: MirrorAndProgress, setup: RunSetup, name: str, params: Mapping[str, str]) -> dict[str, Any]:
    """`GET /api/insights/journeys/{name}?account=ID`: the journey's tile counts, for one account or for all."""
    check_names("journey", params)
    journey = next((j for j in setup.journeys if j.name == name), None)
    if journey is None:
        raise InsightsNotFoundError(f"journey {name!r} is not defined")
    account = params.get("account", "").strip().lower() or None
    if account is not None and not store.mirror_rows("account", [account]):
        raise InsightsNotFoundError(f"account {account} is not in the mirror")
    counts = store.tile_counts(journey.name, account)
    return {
        "journey": journey.name,
        "target": journey.target,
        "status": journey.status,
        "account": account,
        "tiles": [
            {
                "id": tile_id,
                "kind": journey.tile(tile_id).type,
                "counts": {c: counts.get(tile_id, {}).get(c, 0) for c in COUNTERS},
            }
            for tile_id in journey.order
        ],
    }


def cohorts(store: MirrorStore, setup: RunSetup, params: Mapping[str, str], now: datetime) -> dict[str, Any]:
    """`GET /api/insights/cohorts`: a cohort table (see `abm.views.params` for the parameters)."""
    data = load(store, setup)
    return cohort_table(data.events, cohort_settings(params, now, data.known_types())).as_dict()


def flows(store: MirrorStore, setup: RunSetup, params: Mapping[str, str], now: datetime) -> dict[str, Any]:
    """`GET /api/insights/flows`: a flow anchored on an event type or dimension item."""
    data = load(store, setup)
    return flow(data.events, flow_settings(params, now, data.known_types())).as_dict()


def paths(store: MirrorStore, setup: RunSetup, params: Mapping[str, str], now: datetime) -> dict[str, Any]:
    """`GET /api/insights/paths`: conversion between steps with fallout, and one account's own path."""
    data = load(store, setup)
    settings = path_settings(params, now, data.known_types())
    if settings.account is not None and settings.account not in data.accounts:
        raise InsightsNotFoundError(f"account {settings.account} is not in the mirror")
    return journey_path(data.events, settings).as_dict()


def report_data(store: InsightsStore, setup: RunSetup, now: datetime) -> dict[str, Any]:
    """What the HTML report shows, over twelve whole months up to the end of `now`'s day: the most engaged accounts'
    KPIs, monthly cohorts of opportunities created returning as won, the content types that lead to marketing
    qualification (to opportunity creation when nothing qualified in the range), the score distribution per model,
    and the journeys' tile counts."""
    data = load(store, setup)
    span = DateRange(add(floor(now, "month"), "month", -11), add(floor(now, "day"), "day", 1))
    in_span = [e for e in data.events if e.at in span]
    engaged = Counter(e.account_id for e in in_span if not e.milestone and e.account_id)
    top = [data.accounts[a] for a, _ in sorted(engaged.items(), key=lambda i: (-i[1], i[0])) if a in data.accounts]
    entries = _entries(store, setup)
    created, won = Criteria((MetricTest(OPPORTUNITY_CREATED),)), Criteria((MetricTest(OPPORTUNITY_WON),))
    anchor = MARKETING_QUALIFIED if any(e.type == MARKETING_QUALIFIED for e in in_span) else OPPORTUNITY_CREATED
    targets = {m.name: m.target for m in setup.models}
    return {
        "title": "ABM insights",
        "now": iso(now),
        "range": span.as_dict(),
        "accounts": [_kpis(data, entries, account, span) for account in top[:TOP_ACCOUNTS]],
        "cohort": cohort_table(data.events, CohortSettings(created, won, "month", span, "opportunity")).as_dict(),
        "flow": flow(data.events, FlowSettings("content_type", ends_with=anchor, span=span)).as_dict(),
        "scores": {
            "models": {
                name: {"target": targets.get(name), **distribution.as_dict()}
                for name, distribution in score_distributions(data.scores).items()
            }
        },
        "journeys": [journey_insights(store, setup, j.name, {}) for j in setup.journeys],
    }
