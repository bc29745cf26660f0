"""Journey effects against the emulator: written once, whatever crashes, replays or lost answers happen."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from abm.jobs.journeys import JourneyCheckError, check_workflows, effect_id, write_effects
from dataverse.auth import NoAuth
from dataverse.client import DataverseClient
from dataverse.errors import DataverseConnectionError
from dataverse.transport import TransportConfig
from devtools.emulator.limits import Faults, GuardConfig
from devtools.emulator.schema import TABLES
from devtools.emulator.server import Emulator, EmulatorIdentity
from devtools.emulator.store import Store
from journeys.engine import Effect
from journeys.model import parse_journey
from scoring.records import Account, Contact
from statestore.port import Intent, iso
from statestore.sqlite import SqliteStateStore
from tests.emulator.conftest import CALLER, CONTOSO, LONER, MULLER, OBRIEN, WORKFLOW
from tests.runtime_support import Clock

CONTACTS = {OBRIEN: Contact(OBRIEN, CONTOSO, 3, attributes={"firstname": "Siobhán", "lastname": "O'Brien"})}
ACCOUNTS = {CONTOSO: Account(CONTOSO, attributes={"name": "Contoso"})}


def effect(key: str, kind: Any, **fields: Any) -> Effect:
    """An effect of journey "j" with nothing set but what a test names."""
    tile_id = key.split("/")[1]
    defaults: dict[str, Any] = {
        "contact_id": None,
        "account_id": None,
        "owner_id": None,
        "regarding": None,
        "subject": "",
        "body": None,
        "workflow_id": None,
        "entity": None,
    }
    return Effect(key=key, kind=kind, journey="j", tile_id=tile_id, **(defaults | fields))


def flow(contact: str) -> Effect:
    return effect(
        f"j/flow/contact/{contact}", "workflow", contact_id=contact, workflow_id=WORKFLOW, entity=("contact", contact)
    )


def task(n: int) -> Effect:
    return effect(
        f"j/call/contact/{OBRIEN}/{n}",
        "task",
        contact_id=OBRIEN,
        account_id=CONTOSO,
        owner_id=CALLER,
        regarding=("contact", OBRIEN),
        subject=f"Call {n}",
    )


LEAD = effect(f"j/lead/account/{CONTOSO}", "lead", account_id=CONTOSO, owner_id=CALLER, subject="ABM: Contoso")
FLOW = flow(OBRIEN)


def client_of(emulator: Emulator) -> DataverseClient:
    return DataverseClient(TransportConfig(org_url=emulator.org_url, backoff_initial=0.01), NoAuth())


def test_effects_are_created_with_ids_from_their_keys_and_recorded(store: Store, emulator: Emulator) -> None:
    state = SqliteStateStore()
    created = write_effects(client_of(emulator), state, [task(1), task(2), LEAD], CONTACTS, ACCOUNTS)
    assert created == {"task": 2, "lead": 1}
    row = store.select(
        "SELECT subject, regardingobjectid, abm_idempotencykey FROM task WHERE activityid = ?",
        [str(effect_id(task(1).key))],
    )[0]
    assert (row["subject"], row["regardingobjectid"], row["abm_idempotencykey"]) == ("Call 1", OBRIEN, task(1).key)
    lead = store.select(
        "SELECT parentaccountid, parentcontactid, companyname FROM lead WHERE leadid = ?", [str(effect_id(LEAD.key))]
    )[0]
    assert (lead["parentaccountid"], lead["parentcontactid"], lead["companyname"]) == (CONTOSO, None, "Contoso")
    assert state.effects_done([task(1).key, LEAD.key]) == {
        task(1).key: str(effect_id(task(1).key)),
        LEAD.key: str(effect_id(LEAD.key)),
    }
    assert write_effects(client_of(emulator), state, [task(1), task(2), LEAD], CONTACTS, ACCOUNTS) == {}


def test_a_run_that_lost_its_state_after_writing_creates_nothing_twice(store: Store, emulator: Emulator) -> None:
    write_effects(client_of(emulator), SqliteStateStore(), [task(1)], CONTACTS, ACCOUNTS)
    fresh = SqliteStateStore()  # the crash: rows written, state never saved
    assert write_effects(client_of(emulator), fresh, [task(1), task(2)], CONTACTS, ACCOUNTS) == {"task": 1}
    assert store.scalar("SELECT COUNT(*) FROM task") == 2
    assert set(fresh.effects_done([task(1).key, task(2).key])) == {task(1).key, task(2).key}


RUN_AT = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)  # the state store's clock during a run


def test_an_intent_without_a_job_finds_the_job_instead_of_starting_another(store: Store, emulator: Emulator) -> None:
    state = SqliteStateStore()
    write_effects(client_of(emulator), state, [FLOW], CONTACTS, ACCOUNTS)
    job = state.intent(FLOW.key)
    assert job is not None and job.job_id
    lost = SqliteStateStore(clock=Clock(RUN_AT))
    lost.record_intent(Intent(FLOW.key, WORKFLOW, OBRIEN, None))  # called, then crashed before the answer was saved
    write_effects(client_of(emulator), lost, [FLOW], CONTACTS, ACCOUNTS)
    assert store.scalar("SELECT COUNT(*) FROM asyncoperation") == 1
    assert lost.intent(FLOW.key) == Intent(FLOW.key, WORKFLOW, OBRIEN, job.job_id, iso(RUN_AT))


def test_a_lost_answer_to_execute_workflow_does_not_start_it_twice(store: Store) -> None:
    guard = GuardConfig(faults=Faults.parse("lost=1"))
    state = SqliteStateStore(clock=Clock(RUN_AT))
    with Emulator(store, EmulatorIdentity(CALLER), guard=guard) as faulty, pytest.raises(DataverseConnectionError):
        write_effects(client_of(faulty), state, [FLOW], CONTACTS, ACCOUNTS)  # every answer is lost, lookups too
    assert store.scalar("SELECT COUNT(*) FROM asyncoperation") == 1  # started once, never blindly again
    assert state.intent(FLOW.key) == Intent(FLOW.key, WORKFLOW, OBRIEN, None, iso(RUN_AT))  # the next run resolves it
    with Emulator(store, EmulatorIdentity(CALLER)) as healthy:
        write_effects(client_of(healthy), state, [FLOW], CONTACTS, ACCOUNTS)
    assert store.scalar("SELECT COUNT(*) FROM asyncoperation") == 1
    resolved = state.intent(FLOW.key)
    assert resolved is not None and resolved.job_id


def journey_with_workflow(workflow: str, for_each: str) -> Any:
    document = {
        "name": "check",
        "version": 1,
        "status": "live",
        "target": "account" if for_each == "account" else "contact",
        "minimum_consent": 0,
        "owner": CALLER,
        "segment": "s",
        "start": "flow",
        "tiles": [{"id": "flow", "type": "launch_workflow", "workflow": workflow, "for_each": for_each, "next": None}],
    }
    return parse_journey(document)


@pytest.mark.parametrize(
    ("workflow", "for_each", "problem"),
    [
        (str(uuid.uuid4()), "contact", "does not exist"),
        (WORKFLOW, "account", "runs on contact"),
    ],
)
def test_launch_workflow_tiles_are_checked_against_the_org(
    emulator: Emulator, workflow: str, for_each: str, problem: str
) -> None:
    with pytest.raises(JourneyCheckError, match=problem):
        check_workflows(client_of(emulator), [journey_with_workflow(workflow, for_each)])
    check_workflows(client_of(emulator), [journey_with_workflow(WORKFLOW, "contact")])  # the right one passes


def test_an_inactive_workflow_is_refused(store: Store, emulator: Emulator) -> None:
    store.update(TABLES["workflow"], WORKFLOW, {"statecode": 0})
    with pytest.raises(JourneyCheckError, match="not an activated on-demand workflow"):
        check_workflows(client_of(emulator), [journey_with_workflow(WORKFLOW, "contact")])


def test_an_overlapping_run_leaves_a_claimed_workflow_alone(store: Store, emulator: Emulator) -> None:
    clock = Clock(datetime(2026, 11, 23, 8, 5, tzinfo=UTC))
    state = SqliteStateStore(clock=clock)
    claimed = Intent(FLOW.key, WORKFLOW, OBRIEN, None, "2026-11-23T08:00:00Z")
    assert state.claim_intent(claimed)  # the other run, still calling
    assert not state.claim_intent(claimed)
    assert write_effects(client_of(emulator), state, [FLOW], CONTACTS, ACCOUNTS) == {}
    assert store.scalar("SELECT COUNT(*) FROM asyncoperation") == 0
    clock.advance(timedelta(minutes=55))  # the claimer died: the claim is taken over
    assert write_effects(client_of(emulator), state, [FLOW], CONTACTS, ACCOUNTS) == {"workflow": 1}
    assert store.scalar("SELECT COUNT(*) FROM asyncoperation") == 1


def test_emails_are_sent_once_when_sending_is_on(store: Store, emulator: Emulator) -> None:
    mail = effect(
        f"j/mail/contact/{OBRIEN}",
        "email",
        contact_id=OBRIEN,
        account_id=CONTOSO,
        owner_id=CALLER,
        regarding=("contact", OBRIEN),
        subject="Hello Siobhán",
        body="<p>Hello</p>",
    )
    state = SqliteStateStore()
    client = client_of(emulator)
    assert write_effects(client, state, [mail], CONTACTS, ACCOUNTS, send_emails=True) == {"email": 1, "sent": 1}
    row = store.select("SELECT statecode, statuscode, description FROM email")[0]
    assert (row["statecode"], row["statuscode"], row["description"]) == (1, 3, "<p>Hello</p>")
    assert write_effects(client, state, [mail], CONTACTS, ACCOUNTS, send_emails=True) == {}
    lost_state = SqliteStateStore()  # a rerun that lost its state reads the email's state instead of resending
    assert write_effects(client_of(emulator), lost_state, [mail], CONTACTS, ACCOUNTS, send_emails=True) == {}
    assert client.stats.by_table["emails"] == 3  # one create, one read, one SendEmail


def test_workflows_start_in_one_batch_not_one_request_each(store: Store, emulator: Emulator) -> None:
    flows = [flow(contact) for contact in (OBRIEN, MULLER, LONER)]
    client = client_of(emulator)
    assert write_effects(client, SqliteStateStore(), flows, CONTACTS, ACCOUNTS) == {"workflow": 3}
    assert client.stats.by_table == {"$batch": 1}
    assert store.scalar("SELECT COUNT(DISTINCT regardingobjectid) FROM asyncoperation") == 3
