"""The insights read only the events they need from the timeline (a cohort its metrics' types, a path its steps', a
flow its anchor's entities): on random timelines, in both state stores, each answer equals the same analysis over
every event of the timeline."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from abm.jobs.pipeline import RunSetup
from abm.views.insights import cohorts, flows, paths
from abm.views.params import cohort_settings, flow_settings, path_settings
from insights.cohorts import cohort_table
from insights.flows import flow
from insights.paths import journey_path
from insights.timeline import MILESTONES, Event
from statestore.port import MirrorRow, StateStore

NOW = datetime(2026, 6, 1, tzinfo=UTC)
TYPES = ("EmailOpened", "WebsiteVisited", "FormSubmitted", "EventRegistered")
CONTENT = ("webinar", "ebook", "pricing page", "FormSubmitted", None)  # a content type may read as a type name
SETUP = RunSetup()


def random_timeline(rng: random.Random) -> dict[str, list[Event]]:
    """Partitions of events over 14 months: interactions with content types, milestones, events whose account is
    not their partition (a lead of an orphan contact naming an account), events of no account."""
    partitions: dict[str, list[Event]] = {}
    for a in range(12):
        account = f"a{a}"
        events = partitions.setdefault(account, [])
        for n in range(rng.randint(0, 60)):
            at = NOW - timedelta(days=rng.uniform(0, 420))
            contact = f"c{a}-{rng.randint(0, 3)}"
            if rng.random() < 0.2:
                kind = rng.choice(MILESTONES)
                opportunity = f"o{a}-{n}" if kind.startswith("Opportunity") else None
                events.append(Event(at, kind, True, f"m{a}-{n}", account, contact, opportunity))
            else:
                events.append(
                    Event(at, rng.choice(TYPES), False, f"i{a}-{n}", account, contact, None, rng.choice(CONTENT))
                )
    orphans = partitions.setdefault("contact:x", [])
    for n in range(15):
        at = NOW - timedelta(days=rng.uniform(0, 300))
        account = rng.choice([None, "a1", "a2"])
        orphans.append(Event(at, rng.choice((*TYPES, "LeadCreated")), False, f"x{n}", account, "x", None, "ebook"))
    return partitions


@pytest.fixture
def store(both_stores: StateStore) -> StateStore:
    return both_stores


def test_every_analysis_reads_what_it_needs_and_answers_as_over_every_event(store: StateStore) -> None:
    rng = random.Random(15)
    store.save_timeline(random_timeline(rng))
    store.put_mirror(MirrorRow("account", f"a{a}", f"a{a}", {"accountid": f"a{a}"}) for a in range(12))
    every = store.timeline()
    known = {e.type for e in every} | set(MILESTONES)
    span = {"from": "2025-06-01", "to": "2026-05-31"}
    answered = 0  # analyses with something in them (not an empty table, flow or path)
    for _ in range(40):
        kind = rng.choice(("cohorts", "flows", "paths"))
        params: dict[str, Any]
        if kind == "cohorts":
            include, back = rng.sample([*TYPES, "OpportunityCreated", "MarketingQualified"], 2)
            params = {**span, "include": include, "return": back, "container": rng.choice(("account", "contact"))}
            params["granularity"] = rng.choice(("month", "quarter"))
            expected = cohort_table(every, cohort_settings(params, NOW, known)).as_dict()
            assert cohorts(store, SETUP, params, NOW) == expected
            answered += any(c["included"] for c in expected["cohorts"])
        elif kind == "flows":
            dimension = rng.choice(("type", "content_type"))
            anchor = rng.choice([*TYPES, "LeadCreated"] if dimension == "type" else [*TYPES, *CONTENT[:4]])
            params = {**span, "dimension": dimension, rng.choice(("starts_with", "ends_with")): anchor}
            params |= {"container": rng.choice(("account", "contact")), "occurrence": rng.choice(("first", "last"))}
            params["repeats"] = rng.choice(("true", "false"))
            expected = flow(every, flow_settings(params, NOW, known)).as_dict()
            assert flows(store, SETUP, params, NOW) == expected
            answered += expected["paths"] > 0
        else:
            steps = ",".join(rng.sample([*TYPES, "LeadCreated", "OpportunityCreated"], rng.randint(2, 4)))
            params = {**span, "steps": steps, "container": rng.choice(("account", "contact"))}
            if rng.random() < 0.4:
                params["account"] = rng.choice(("a1", "a2", "a5"))
            expected = journey_path(every, path_settings(params, NOW, known)).as_dict()
            assert paths(store, SETUP, params, NOW) == expected
            answered += expected["nodes"][0]["reached"] > 0
    assert answered >= 30
