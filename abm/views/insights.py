"""Insights as the HTTP functions, the `abm insights` command and the HTML report ask for them: read the insights'
timeline and the mirror (never Dataverse: both are as current as the last sync or webhook, and hold what that run
wrote), run the pure analyses of `insights/`, and answer JSON-able dicts.

Cohorts, flows and paths read from the timeline only the events they need (a cohort its metrics' types, a path its
steps', a flow over content types the events that have one), in their range; one account's insights read its
events and its partition of the mirror.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from abm.errors import NotFound
from abm.jobs.mirror import load_snapshot, stored_scores
from abm.jobs.pipeline import RunSetup
from abm.views.params import InsightsInputError, check_names, cohort_settings, date_range, flow_settings, path_settings
from insights.cohorts import CohortSettings, Criteria, MetricTest, cohort_table
from insights.flows import FlowSettings, flow
from insights.kpis import INTERACTION_KPIS, JourneyEntry, account_kpis
from insights.paths import journey_path
from insights.periods import DateRange, add, floor
from insights.scores import score_distributions
from insights.timeline import MARKETING_QUALIFIED, MILESTONES, OPPORTUNITY_CREATED, OPPORTUNITY_WON, Event
from journeys.engine import COUNTERS
from scoring.records import Account, Contact, Lead, Opportunity, StoredScore
from statestore.port import InsightsStore, MirrorAndProgress, ProgressStore, Timeline, TimelineQuery, iso

__all__ = [
    "InsightsInputError",
    "InsightsNotFoundError",
    "Records",
    "account_insights",
    "cohorts",
    "flows",
    "journey_insights",
    "paths",
    "report_data",
]

TOP_ACCOUNTS = 10  # accounts the report shows KPIs of (the most engaged in the range)


class InsightsNotFoundError(NotFound):
    """The account or journey asked about is not known (404)."""


@dataclass(frozen=True)
class Records:
    """Some partitions' records of the mirror (what an account's KPIs count besides its events)."""

    accounts: dict[str, Account]
    contacts: list[Contact]
    leads: list[Lead]
    opportunities: list[Opportunity]
    scores: list[StoredScore]

    @classmethod
    def load(cls, store: InsightsStore, setup: RunSetup, partitions: Collection[str]) -> Records:
        snapshot = load_snapshot(store, setup.config, partitions)
        return cls(
            accounts={a.id: a for a in snapshot.accounts},
            contacts=snapshot.contacts,
            leads=snapshot.leads,
            opportunities=snapshot.opportunities,
            scores=[score.as_stored() for score in snapshot.scores.values()],
        )


def _known_types(store: Timeline) -> set[str]:
    """Event types a parameter may name: those in the timeline, the milestones and the standard interactions."""
    return store.timeline_types() | set(MILESTONES) | set(INTERACTION_KPIS.values())


def _in(span: DateRange | None, **query: Any) -> TimelineQuery:
    """A timeline query over a range (None: all time)."""
    return TimelineQuery(start=span.start if span else None, end=span.end if span else None, **query)


def _entries(store: ProgressStore, setup: RunSetup, contacts: Collection[str]) -> list[JourneyEntry]:
    """The journey entries of these contacts, from every journey's saved progress."""
    return [
        JourneyEntry(journey.name, p.contact_id, p.started_at or p.entered_at)
        for journey in setup.journeys
        for p in store.progress(journey.name, contacts)
    ]


def _kpis(
    data: Records, events: list[Event], entries: list[JourneyEntry], account: Account, span: DateRange
) -> dict[str, Any]:
    return account_kpis(
        account,
        span,
        contacts=data.contacts,
        leads=data.leads,
        opportunities=data.opportunities,
        events=events,
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
    data = Records.load(store, setup, [account_id])
    account = data.accounts.get(account_id)
    if account is None:
        raise InsightsNotFoundError(f"account {account_id} is not in the mirror")
    events = store.timeline(_in(span, accounts=frozenset({account_id})))
    return _kpis(data, events, _entries(store, setup, [c.id for c in data.contacts]), account, span)


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


def cohorts(store: InsightsStore, setup: RunSetup, params: Mapping[str, str], now: datetime) -> dict[str, Any]:
    """`GET /api/insights/cohorts`: a cohort table (see `abm.views.params` for the parameters)."""
    settings = cohort_settings(params, now, _known_types(store))
    metrics = frozenset(t.metric for c in (settings.inclusion, settings.returning) for t in c.metrics)
    return cohort_table(store.timeline(_in(settings.span, types=metrics)), settings).as_dict()


def flows(store: InsightsStore, setup: RunSetup, params: Mapping[str, str], now: datetime) -> dict[str, Any]:
    """`GET /api/insights/flows`: a flow anchored on an event type or dimension item. Only the entities that reach
    the anchor have a path, so their events alone are read: the anchor's events first, then those entities'."""
    settings = flow_settings(params, now, _known_types(store))
    anchor = frozenset({settings.anchor})
    by_type = settings.dimension == "type"  # else only the events with a content type are nodes, and the anchor
    anchors = store.timeline(_in(settings.span, types=anchor, content_types=None if by_type else anchor))
    entities = frozenset(e for e in (event.container_id(settings.container) for event in anchors) if e is not None)
    whose = {"accounts" if settings.container == "account" else "contacts": entities}
    kinds = {} if by_type else {"types": anchor, "content_typed": True}
    return flow(store.timeline(_in(settings.span, **kinds, **whose)), settings).as_dict()


def paths(store: InsightsStore, setup: RunSetup, params: Mapping[str, str], now: datetime) -> dict[str, Any]:
    """`GET /api/insights/paths`: conversion between steps with fallout, and one account's own path (all its
    events between its first step and its last)."""
    settings = path_settings(params, now, _known_types(store))
    if settings.account is None:
        query = _in(settings.span, types=frozenset(settings.steps))
    elif not store.mirror_rows("account", [settings.account]):
        raise InsightsNotFoundError(f"account {settings.account} is not in the mirror")
    else:
        query = _in(settings.span, accounts=frozenset({settings.account}))
    return journey_path(store.timeline(query), settings).as_dict()


def report_data(store: InsightsStore, setup: RunSetup, now: datetime) -> dict[str, Any]:
    """What the HTML report shows, over twelve whole months up to the end of `now`'s day: the most engaged accounts'
    KPIs, monthly cohorts of opportunities created returning as won, the content types that lead to marketing
    qualification (to opportunity creation when nothing qualified in the range), the score distribution per model,
    and the journeys' tile counts."""
    span = DateRange(add(floor(now, "month"), "month", -11), add(floor(now, "day"), "day", 1))
    in_span = store.timeline(_in(span))
    engaged = Counter(e.account_id for e in in_span if not e.milestone and e.account_id)
    ranked = [a for a, _ in sorted(engaged.items(), key=lambda i: (-i[1], i[0]))]
    known = store.mirror_rows("account", ranked)  # an event's account may be one the mirror does not hold
    chosen = [a for a in ranked if a in known][:TOP_ACCOUNTS]
    data = Records.load(store, setup, chosen)
    top = [data.accounts[a] for a in chosen]
    entries = _entries(store, setup, [c.id for c in data.contacts])
    created, won = Criteria((MetricTest(OPPORTUNITY_CREATED),)), Criteria((MetricTest(OPPORTUNITY_WON),))
    anchor = MARKETING_QUALIFIED if any(e.type == MARKETING_QUALIFIED for e in in_span) else OPPORTUNITY_CREATED
    targets = {m.name: m.target for m in setup.models}
    return {
        "title": "ABM insights",
        "now": iso(now),
        "range": span.as_dict(),
        "accounts": [_kpis(data, in_span, entries, account, span) for account in top],
        "cohort": cohort_table(in_span, CohortSettings(created, won, "month", span, "opportunity")).as_dict(),
        "flow": flow(in_span, FlowSettings("content_type", ends_with=anchor, span=span)).as_dict(),
        "scores": {
            "models": {
                name: {"target": targets.get(name), **distribution.as_dict()}
                for name, distribution in score_distributions(stored_scores(store)).items()
            }
        },
        "journeys": [journey_insights(store, setup, j.name, {}) for j in setup.journeys],
    }
