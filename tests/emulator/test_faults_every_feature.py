"""Faults on every feature end where a fault-free run ends: journeys with SendEmail, the sales-ready hand-off
workflow and the predictive-score mirror all on, two emulators holding the same tenant, one clean and one whose
non-idempotent calls (SendEmail, the ExecuteWorkflow `$batch`es) each meet every fault kind (aimed, so that none is
left to chance: a server error before the call, a reset connection, an answer lost after the call was applied),
with seeded throttling and server errors on top. Dataverse ends in the same state: no email sent twice or left
unsent, no workflow started twice, the same scores, flags and predictive rows."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import pytest

from abm.jobs.pipeline import RunReport
from abm.jobs.sync import sync
from dataverse.client import DataverseClient
from dataverse.query import Query
from dataverse.tables import table
from devtools.demo import load_tenant
from devtools.emulator.limits import AimedFault, Faults, GuardConfig
from devtools.emulator.schema import TABLES
from devtools.emulator.server import Emulator, EmulatorIdentity
from devtools.emulator.store import Store
from devtools.tenant import CALLER_USER_ID
from statestore.sqlite import SqliteStateStore
from tests.runtime_support import NOW, dataverse_state, demo_setup, fresh_client, handoff_workflow
from tests.state_stores import fresh_store

HANDOFF = "d0d0d0d0-0000-4000-8000-00000000000b"  # an on-demand workflow on lead
SETUP = replace(demo_setup(), send_emails=True, handoff_workflow=HANDOFF, predictive_model="account-fit")
KINDS = ("503", "reset", "lost")
CALLS = {"SendEmail": r"^POST \S*emails\(\S*SendEmail", "ExecuteWorkflow": r"^POST \S*\$batch"}
AIMED = tuple(AimedFault(kind, pattern) for pattern in CALLS.values() for kind in KINDS)


@contextmanager
def org(faults: Faults | None = None) -> Iterator[Emulator]:
    store = Store()
    load_tenant(store, "small", seed=1, now=NOW)
    store.insert_many(TABLES["workflow"], [handoff_workflow(HANDOFF, CALLER_USER_ID, "2026-01-01T00:00:00Z")])
    guard = GuardConfig(faults=faults or Faults(), fault_retry_after=0)
    try:
        with Emulator(store, EmulatorIdentity(CALLER_USER_ID), guard=guard) as emulator:
            yield emulator
    finally:
        store.close()


def state_of(client: DataverseClient) -> dict[str, Any]:
    """What the engine wrote, with each email's state and the predictive rows."""
    emails = Query(table("email").entity_set).select("activityid", "statecode")
    predictive = Query(table("msdyn_predictivescore").entity_set).select("msdyn_entityid", "msdyn_score", "msdyn_grade")
    return {
        **dataverse_state(client),
        "email_states": sorted((r["activityid"], r["statecode"]) for r in client.iter_rows(emails)),
        "predictive": sorted(
            (r["msdyn_entityid"], r["msdyn_score"], r["msdyn_grade"]) for r in client.iter_rows(predictive)
        ),
    }


@pytest.fixture(scope="module")
def clean_run() -> tuple[RunReport, dict[str, Any]]:
    """The fault-free run's report and the state it leaves in Dataverse."""
    with org() as clean:
        report = sync(fresh_client(clean), SqliteStateStore(), SETUP, now=NOW)
        return report, state_of(fresh_client(clean))


@pytest.mark.parametrize("kind", ["sqlite", "azure"])
def test_aimed_and_random_faults_on_every_feature_end_as_a_clean_run(
    kind: str, clean_run: tuple[RunReport, dict[str, Any]], request: pytest.FixtureRequest
) -> None:
    report, expected = clean_run
    assert report.writes["emails"]["sent"] > 10 and report.writes["abm_leadscores"]["upserted"] > 0
    assert report.writes["leads"]["updated"] > 0 and expected["predictive"]
    faults = Faults({"429": 0.05, "503": 0.03}, seed=11, aimed=AIMED)
    with org(faults) as faulty:
        store = fresh_store(kind, request)
        first = sync(fresh_client(faulty), store, SETUP, now=NOW)
        assert first.writes == report.writes  # the run went on through every fault
        dealt = {
            (fault, call)
            for fault, line in faulty.guard.aimed_hits
            for call, aim in CALLS.items()
            if re.match(aim, line)
        }
        assert dealt == {(fault, call) for fault in KINDS for call in CALLS}  # each call met each fault kind
        assert state_of(fresh_client(faulty)) == expected


@pytest.mark.parametrize(
    ("call", "pattern"),
    [
        ("scores", r"^POST \S*abm_leadscores/Microsoft\.Dynamics\.CRM\.UpsertMultiple"),
        ("task", r"^POST \S*tasks/Microsoft\.Dynamics\.CRM\.CreateMultiple"),
        ("send", r"^POST \S*emails\(\S*SendEmail"),
    ],
)
def test_a_write_that_fails_for_good_costs_only_its_items_and_the_next_run_completes_them(
    call: str, pattern: str, clean_run: tuple[RunReport, dict[str, Any]]
) -> None:
    """Every attempt at one kind of write fails (a server error past the retries): the run goes on, saves its delta
    links, reports the failure under `failures`, and keeps the partitions of those writes due; once the org is well
    again the next run writes them, and Dataverse ends as after the clean run, nothing twice."""
    _, expected = clean_run
    with org(Faults(aimed=(AimedFault("503", pattern, times=1_000_000),))) as faulty:
        store = SqliteStateStore()
        first = sync(fresh_client(faulty), store, SETUP, now=NOW)
        assert first.failures and {f["channel"] for f in first.failures} == {call}
        assert all(f["error"].startswith("DataverseServerError") for f in first.failures)
        assert store.checkpoint("delta:contact")  # the run's read is kept: only the failed writes wait
        assert state_of(fresh_client(faulty)) != expected
        faulty.guard.heal()
        second = sync(fresh_client(faulty), store, SETUP, now=NOW)
        assert second.sync["mode"] == "incremental" and not second.failures
        assert state_of(fresh_client(faulty)) == expected
