"""The sales-ready hand-off against the emulator: the lead workflow starts once per lead, whatever reruns."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from abm.jobs.scoring import HandoffCheckError, ScoreWrites, handoff_key, write_scores
from abm.jobs.workflows import CLAIM_LEASE, REFUSED, resume_workflows
from dataverse import mapping
from dataverse.auth import NoAuth
from dataverse.client import DataverseClient
from dataverse.query import Query
from dataverse.transport import TransportConfig
from devtools.emulator.schema import TABLES
from devtools.emulator.server import Emulator
from devtools.emulator.store import Store
from scoring.engine import ScoringRun, score_run
from scoring.model import parse_model
from scoring.records import Contact, Lead
from statestore.port import Intent, iso
from statestore.sqlite import SqliteStateStore
from tests.emulator.conftest import CALLER, CONTOSO, FABRIKAM, LONER, MULLER, OBRIEN, STAMP, WORKFLOW, seed
from tests.runtime_support import Clock, handoff_workflow

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
HANDOFF = "d0d0d0d0-0000-4000-8000-00000000000a"  # an on-demand workflow on lead, like outbound's hand-off
PURCHASER = "f0000000-0000-4000-8000-000000000001"
CTO = "f0000000-0000-4000-8000-000000000002"
LONE_PURCHASER = "f0000000-0000-4000-8000-000000000003"
MODEL = parse_model(
    {
        "name": "purchasers",
        "version": 1,
        "status": "live",
        "target": "contact",
        "minimum_consent": 3,
        "sales_ready_score": 20,
        "grades": [{"name": "D", "from": -100, "to": 9}, {"name": "A", "from": 10}],
        "rules": [
            {
                "name": "purchaser",
                "points": 20,
                "when": [[{"attribute": "lead.parentcontactid.jobtitle", "op": "contains", "value": "purchas"}]],
            }
        ],
    }
)
CONTACTS = [
    Contact(OBRIEN, CONTOSO, 3, attributes={"jobtitle": "Purchaser"}),
    Contact(MULLER, FABRIKAM, 3, attributes={"jobtitle": "CTO"}),
    Contact(LONER, None, 4, attributes={"jobtitle": "50% Purchaser"}),
]
LEADS = [Lead(PURCHASER, OBRIEN), Lead(CTO, MULLER), Lead(LONE_PURCHASER, LONER)]


@pytest.fixture
def store() -> Iterator[Store]:
    store = Store()
    seed(store)
    owned = {"createdon": STAMP, "modifiedon": STAMP, "ownerid": CALLER, "ownerid__type": "systemuser"}
    store.insert_many(TABLES["workflow"], [handoff_workflow(HANDOFF, CALLER, STAMP)])
    store.insert_many(
        TABLES["lead"],
        [
            {**owned, "leadid": lead.id, "subject": "lead", "statecode": 0, "statuscode": 1}
            | {"parentcontactid": lead.contact_id, "parentcontactid__type": "contact"}
            for lead in LEADS
        ],
    )
    yield store
    store.close()


def client_of(emulator: Emulator) -> DataverseClient:
    return DataverseClient(TransportConfig(org_url=emulator.org_url, backoff_initial=0.01), NoAuth())


def scored(leads: list[Lead]) -> ScoringRun:
    return score_run([MODEL], leads, CONTACTS, [], [], now=NOW)


def leads_as_read(client: DataverseClient) -> list[Lead]:
    """The leads as the next run reads them (with the sales-ready flags written so far)."""
    query = Query("leads").select("leadid", *mapping.select_for("lead", ()))
    return [mapping.lead(row) for row in client.iter_rows(query)]


def jobs(store: Store) -> list[tuple[Any, Any]]:
    rows = store.select("SELECT workflowactivationid, regardingobjectid FROM asyncoperation ORDER BY regardingobjectid")
    return [(row["workflowactivationid"], row["regardingobjectid"]) for row in rows]


def test_a_lead_crossing_the_threshold_starts_the_handoff_once(store: Store, emulator: Emulator) -> None:
    state = SqliteStateStore()
    client = client_of(emulator)
    first = write_scores(client, scored(LEADS), LEADS, now=NOW, handoff_workflow=HANDOFF, store=state)
    assert (first.leads_flagged, first.handoffs) == (2, 2)
    assert first.as_dict()["handoffs"] == {"started": 2}
    assert jobs(store) == [(HANDOFF, PURCHASER), (HANDOFF, LONE_PURCHASER)]
    intent = state.intent(handoff_key(HANDOFF, PURCHASER))
    assert intent is not None and intent.job_id and intent.entity_id == PURCHASER
    # one check of the workflow, the scores read and upserted, one $batch of ExecuteWorkflow, one UpdateMultiple
    assert client.stats.by_table == {"workflows": 1, "abm_leadscores": 2, "$batch": 1, "leads": 1}

    again = leads_as_read(client)
    second = write_scores(client_of(emulator), scored(again), again, now=NOW, handoff_workflow=HANDOFF, store=state)
    assert (second.leads_flagged, second.handoffs) == (0, 0)
    assert len(jobs(store)) == 2


def test_a_replay_of_the_same_input_starts_nothing_again(store: Store, emulator: Emulator) -> None:
    """The leads as read before the first run (not yet flagged), e.g. a run that crashed before flagging them."""
    state = SqliteStateStore()
    write_scores(client_of(emulator), scored(LEADS), LEADS, now=NOW, handoff_workflow=HANDOFF, store=state)
    replay = write_scores(client_of(emulator), scored(LEADS), LEADS, now=NOW, handoff_workflow=HANDOFF, store=state)
    assert replay.handoffs == 0
    assert len(jobs(store)) == 2


def test_a_start_whose_answer_was_lost_is_found_instead_of_repeated(store: Store, emulator: Emulator) -> None:
    write_scores(client_of(emulator), scored(LEADS), LEADS, now=NOW, handoff_workflow=HANDOFF, store=SqliteStateStore())
    lost = SqliteStateStore()  # ExecuteWorkflow ran, then the run died before recording the job
    for lead in (PURCHASER, LONE_PURCHASER):
        lost.record_intent(Intent(handoff_key(HANDOFF, lead), HANDOFF, lead, None))
    replay = write_scores(client_of(emulator), scored(LEADS), LEADS, now=NOW, handoff_workflow=HANDOFF, store=lost)
    assert replay.handoffs == 0
    assert len(jobs(store)) == 2
    found = lost.intent(handoff_key(HANDOFF, PURCHASER))
    assert found is not None and found.job_id


def test_an_overlapping_run_leaves_a_lead_another_run_claimed_alone(store: Store, emulator: Emulator) -> None:
    state = SqliteStateStore(clock=Clock(NOW))
    claim = Intent(handoff_key(HANDOFF, PURCHASER), HANDOFF, PURCHASER, None, iso(NOW - timedelta(minutes=1)))
    assert state.claim_intent(claim)  # the other run, calling ExecuteWorkflow right now
    writes = write_scores(client_of(emulator), scored(LEADS), LEADS, now=NOW, handoff_workflow=HANDOFF, store=state)
    assert writes.handoffs == 1
    assert jobs(store) == [(HANDOFF, LONE_PURCHASER)]


def test_claims_are_judged_by_the_stores_clock_not_by_the_runs_now(store: Store, emulator: Emulator) -> None:
    """A resent shard evaluates at its run's start, hours ago: its claims must still look fresh to others."""
    clock = Clock(NOW)
    state = SqliteStateStore(clock=clock)
    old_now = NOW - timedelta(hours=3)
    write_scores(client_of(emulator), scored(LEADS), LEADS, now=old_now, handoff_workflow=HANDOFF, store=state)
    intent = state.intent(handoff_key(HANDOFF, PURCHASER))
    assert intent is not None and intent.claimed_at == iso(NOW)


def test_without_a_handoff_workflow_nothing_is_started(store: Store, emulator: Emulator) -> None:
    writes = write_scores(client_of(emulator), scored(LEADS), LEADS, now=NOW)
    assert writes == ScoreWrites(upserted=3, leads_flagged=2)  # the CTO is scored, not sales-ready
    assert "handoffs" not in writes.as_dict()
    assert jobs(store) == []


def test_no_new_sales_ready_lead_costs_no_workflow_request(emulator: Emulator) -> None:
    flagged = [Lead(lead.id, lead.contact_id, sales_ready=True) for lead in LEADS]
    client = client_of(emulator)
    writes = write_scores(client, scored(flagged), flagged, now=NOW, handoff_workflow=HANDOFF, store=SqliteStateStore())
    assert writes.as_dict()["handoffs"] == {"started": 0}
    assert set(client.stats.by_table) == {"abm_leadscores"}


@pytest.mark.parametrize(
    ("workflow", "problem"),
    [
        (WORKFLOW, f"sales-ready hand-off workflow {WORKFLOW} runs on contact, not on lead"),
        ("d0d0d0d0-0000-4000-8000-0000000000ff", "does not exist in the org"),
        (HANDOFF, "is not an activated on-demand workflow"),
    ],
)
def test_a_handoff_workflow_that_cannot_run_stops_the_write_before_anything_is_written(
    store: Store, emulator: Emulator, workflow: str, problem: str
) -> None:
    store.update(TABLES["workflow"], HANDOFF, {"statecode": 0})  # deactivated: only the third case names it
    with pytest.raises(HandoffCheckError, match=problem):
        write_scores(
            client_of(emulator), scored(LEADS), LEADS, now=NOW, handoff_workflow=workflow, store=SqliteStateStore()
        )
    assert store.scalar("SELECT COUNT(*) FROM abm_leadscore") == 0
    assert store.scalar("SELECT COUNT(*) FROM lead WHERE abm_salesready = 1") == 0
    assert jobs(store) == []


def test_a_handoff_workflow_needs_a_state_store(emulator: Emulator) -> None:
    with pytest.raises(ValueError, match="needs a state store"):
        write_scores(client_of(emulator), scored(LEADS), LEADS, now=NOW, handoff_workflow=HANDOFF)


def test_a_claim_left_by_a_dead_run_is_taken_over_once_its_lease_is_over(store: Store, emulator: Emulator) -> None:
    clock = Clock(NOW)
    state = SqliteStateStore(clock=clock)
    claim = Intent(handoff_key(HANDOFF, PURCHASER), HANDOFF, PURCHASER, None, iso(NOW - timedelta(minutes=1)))
    assert state.claim_intent(claim)  # a run that died before calling ExecuteWorkflow
    write_scores(client_of(emulator), scored(LEADS), LEADS, now=NOW, handoff_workflow=HANDOFF, store=state)
    assert resume_workflows(client_of(emulator), state) == ({}, 0)  # the claim may still be at work
    assert jobs(store) == [(HANDOFF, LONE_PURCHASER)]
    clock.advance(CLAIM_LEASE)
    started, newly = resume_workflows(client_of(emulator), state)
    assert newly == 1 and list(started) == [claim.key]
    assert jobs(store) == [(HANDOFF, PURCHASER), (HANDOFF, LONE_PURCHASER)]
    assert state.open_intents() == []
    clock.advance(CLAIM_LEASE)
    assert resume_workflows(client_of(emulator), state) == ({}, 0)
    assert len(jobs(store)) == 2


def test_a_start_dataverse_refuses_is_recorded_and_never_sent_again(store: Store, emulator: Emulator) -> None:
    clock = Clock(NOW)
    state = SqliteStateStore(clock=clock)
    gone = "f0000000-0000-4000-8000-0000000000ff"  # a lead deleted since its claim
    state.claim_intent(Intent(handoff_key(HANDOFF, gone), HANDOFF, gone, None, iso(NOW - CLAIM_LEASE)))
    client = client_of(emulator)
    started, newly = resume_workflows(client, state)
    assert (started, newly) == ({handoff_key(HANDOFF, gone): REFUSED}, 0)
    assert state.open_intents() == [] and jobs(store) == []
    clock.advance(CLAIM_LEASE)
    again = client_of(emulator)
    assert resume_workflows(again, state) == ({}, 0)
    assert again.stats.as_dict()["total"] == 0  # nothing read, nothing sent


def test_runs_left_for_a_workflow_that_cannot_run_any_more_wait_without_a_start(
    store: Store, emulator: Emulator
) -> None:
    state = SqliteStateStore(clock=Clock(NOW))
    missing = "d0d0d0d0-0000-4000-8000-0000000000ff"
    state.claim_intent(Intent(handoff_key(missing, PURCHASER), missing, PURCHASER, None, iso(NOW - CLAIM_LEASE)))
    client = client_of(emulator)
    assert resume_workflows(client, state) == ({}, 0)
    assert client.stats.by_table == {"workflows": 1}  # the check, and no ExecuteWorkflow
    assert [i.workflow_id for i in state.open_intents()] == [missing]
