"""Webhook events against the emulator: deduplicated, processed once, out of order; deletions forgotten; dead
letters; replay with and without a dry run."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from abm.bootstrap import build_dry_run
from abm.errors import InvalidInput
from abm.jobs.events import (
    dead_letter_event,
    process_event,
    receive_interactions,
    receive_webhook,
    replay,
)
from abm.jobs.mirror import Mirror
from abm.jobs.sync import sync
from dataverse.client import DataverseClient
from dataverse.errors import DataverseServerError
from dataverse.query import Query, eq
from dataverse.tables import table
from devtools.emulator.server import Emulator
from function_app.responses import status_of
from statestore.sqlite import SqliteStateStore
from tests.runtime_support import (
    NOW,
    dataverse_state,
    demo_setup,
    fresh_client,
    outsider_contact,
    tenant,
    webhook_body,
)

CONTACTS = table("contact")


@pytest.fixture
def synced() -> Iterator[tuple[Emulator, DataverseClient, SqliteStateStore]]:
    with tenant() as (emulator, client):
        store = SqliteStateStore()
        sync(fresh_client(emulator), store, demo_setup(), now=NOW)
        yield emulator, client, store


def welcome_tasks(client: DataverseClient, contact_id: str) -> list[dict[str, Any]]:
    query = (
        Query(table("task").entity_set).select("subject").where(eq("_regardingobjectid_value", uuid.UUID(contact_id)))
    )
    return list(client.iter_rows(query))


def test_a_webhook_delivered_three_times_and_out_of_order_has_exactly_one_effect(synced: Any) -> None:
    emulator, client, store = synced
    setup = demo_setup()
    first = outsider_contact(client)
    before = welcome_tasks(client, first)
    client.update(CONTACTS, uuid.UUID(first), {"jobtitle": "CEO"})
    update = webhook_body("Update", "contact", first, str(uuid.uuid4()), jobtitle="CEO")
    create = webhook_body("Create", "contact", first, str(uuid.uuid4()))  # an older delivery, arriving late
    deliveries = [update, create, update, update, create]
    random.Random(7).shuffle(deliveries)
    receipts = [receive_webhook(store, body, {}, now=NOW) for body in deliveries]
    assert sorted(r.status for r in receipts) == ["accepted", "accepted", "requeued", "requeued", "requeued"]
    assert len({r.event_id for r in receipts}) == 2
    for receipt in receipts:  # the queue delivers each stored id (and, at least once, some twice)
        if receipt.event_id:
            process_event(fresh_client(emulator), store, setup, receipt.event_id, now=NOW)
    assert len(welcome_tasks(client, first)) == len(before) + 1
    assert all(store.event(r.event_id).status == "done" for r in receipts if r.event_id)  # type: ignore[union-attr]


def test_processing_evaluates_only_the_accounts_the_change_touches(synced: Any) -> None:
    emulator, client, store = synced
    contact = outsider_contact(client)
    client.update(CONTACTS, uuid.UUID(contact), {"jobtitle": "CFO"})
    receipt = receive_webhook(store, webhook_body("Update", "contact", contact, str(uuid.uuid4())), {}, now=NOW)
    assert receipt.event_id is not None
    run = fresh_client(emulator)
    report = process_event(run, store, demo_setup(), receipt.event_id, now=NOW)
    assert report is not None
    assert report.tenant["contacts"] < 30  # one account's contacts, not the tenant's
    assert report.requests["total"] < 15  # one re-read, the workflow check, the writes


def test_a_trimmed_delivery_is_processed_from_the_row_itself(synced: Any) -> None:
    emulator, client, store = synced
    contact = outsider_contact(client)
    client.update(CONTACTS, uuid.UUID(contact), {"jobtitle": "CTO"})
    trimmed = webhook_body("Update", "contact", contact, str(uuid.uuid4()))
    receipt = receive_webhook(store, trimmed, {"x-ms-dynamics-msg-size-exceeded": "true"}, now=NOW)
    assert receipt.event_id is not None
    process_event(fresh_client(emulator), store, demo_setup(), receipt.event_id, now=NOW)
    assert store.mirror_rows("contact", [contact])[contact].data["jobtitle"] == "CTO"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"x" * (1024 * 1024 + 1), 413),
        (b"{not json", 400),
        (b'{"MessageName": "Update"}', 400),
        (b"[1, 2]", 400),
    ],
)
def test_bad_deliveries_are_refused_naming_the_problem_and_store_nothing(body: bytes, status: int) -> None:
    store = SqliteStateStore()
    with pytest.raises(InvalidInput) as caught:
        receive_webhook(store, body, {}, now=NOW)
    assert status_of(caught.value) == status and str(caught.value)
    assert store.events() == []


def test_an_unwatched_table_or_message_is_accepted_and_ignored() -> None:
    store = SqliteStateStore()
    body = webhook_body("Assign", "contact", str(uuid.uuid4()), str(uuid.uuid4()))
    assert receive_webhook(store, body, {}, now=NOW).status == "ignored"
    body = webhook_body("Create", "invoice", str(uuid.uuid4()), str(uuid.uuid4()))
    assert receive_webhook(store, body, {}, now=NOW).status == "ignored"
    assert store.events() == []


def test_without_an_operation_id_the_body_hash_deduplicates_and_never_merges_two_changes() -> None:
    store = SqliteStateStore()
    contact = str(uuid.uuid4())
    one = receive_webhook(store, webhook_body("Update", "contact", contact, jobtitle="CEO"), {}, now=NOW)
    again = receive_webhook(store, webhook_body("Update", "contact", contact, jobtitle="CEO"), {}, now=NOW)
    other = receive_webhook(store, webhook_body("Update", "contact", contact, jobtitle="CFO"), {}, now=NOW)
    assert (one.status, again.status, other.status) == ("accepted", "requeued", "accepted")
    assert one.event_id != other.event_id


def test_deleting_a_contact_forgets_its_events_progress_and_interactions(synced: Any) -> None:
    emulator, client, store = synced
    setup = demo_setup()
    mirror = Mirror(store)
    in_journey = next(
        p.contact_id for j in setup.journeys for p in store.progress(j.name) if mirror.interactions_of(p.contact_id)
    )
    update = receive_webhook(store, webhook_body("Update", "contact", in_journey, str(uuid.uuid4())), {}, now=NOW)
    assert update.event_id is not None and store.events(record_id=in_journey)
    client.delete(CONTACTS, uuid.UUID(in_journey))
    delete = receive_webhook(store, webhook_body("Delete", "contact", in_journey, str(uuid.uuid4())), {}, now=NOW)
    assert delete.event_id is not None
    process_event(fresh_client(emulator), store, setup, delete.event_id, now=NOW)
    assert all(p.contact_id != in_journey for j in setup.journeys for p in store.progress(j.name))
    assert store.events(record_id=in_journey) == []
    assert store.mirror_rows("contact", [in_journey]) == {}
    assert mirror.interactions_of(in_journey) == []


class Failing(DataverseClient):
    def iter_rows(self, *args: Any, **kwargs: Any) -> Any:
        raise DataverseServerError("unavailable", status=503)


def test_a_failing_event_becomes_a_dead_letter_and_a_replay_runs_it(synced: Any) -> None:
    emulator, client, store = synced
    setup = demo_setup()
    contact = outsider_contact(client)
    client.update(CONTACTS, uuid.UUID(contact), {"jobtitle": "CEO"})
    receipt = receive_webhook(store, webhook_body("Update", "contact", contact, str(uuid.uuid4())), {}, now=NOW)
    assert receipt.event_id is not None
    broken = Failing(fresh_client(emulator).transport.config)
    for _ in range(2):
        with pytest.raises(DataverseServerError):
            process_event(broken, store, setup, receipt.event_id, now=NOW)
    dead_letter_event(store, receipt.event_id, now=NOW)
    [letter] = store.dead_letters()
    assert letter.id == receipt.event_id and letter.attempts == 2 and "503" in letter.error
    assert letter.payload == webhook_body("Update", "contact", contact, receipt.event_id)
    before = welcome_tasks(client, contact)
    result = replay(fresh_client(emulator), store, setup, {"event": letter.id}, now=NOW)
    assert result.records == [{"table": "contact", "id": contact, "message": "Update"}]
    assert len(welcome_tasks(client, contact)) == len(before) + 1
    assert store.dead_letters() == []


def test_a_dry_run_replay_lists_the_exact_writes_and_writes_nothing(synced: Any) -> None:
    emulator, client, store = synced
    setup = demo_setup()
    contact = outsider_contact(client)
    client.update(CONTACTS, uuid.UUID(contact), {"jobtitle": "CEO"})  # no webhook: support replays the record
    dataverse_before = dataverse_state(client)
    mirror_before = store.mirror_rows("contact", [contact])
    progress_before = {j.name: store.progress(j.name) for j in setup.journeys}
    run = fresh_client(emulator)
    dry = replay(run, store, setup, {"table": "contact", "id": contact}, now=NOW, dry_run=build_dry_run(run, store))
    assert run.stats.as_dict()["by_method"].keys() == {"GET"}
    assert dataverse_state(client) == dataverse_before
    assert store.mirror_rows("contact", [contact]) == mirror_before
    assert {j.name: store.progress(j.name) for j in setup.journeys} == progress_before
    operations = [(w["operation"], w["target"]) for w in dry.writes]
    assert ("CreateMultiple", "tasks") in operations
    task_rows = next(w["rows"] for w in dry.writes if w["operation"] == "CreateMultiple" and w["target"] == "tasks")
    real = replay(fresh_client(emulator), store, setup, {"table": "contact", "id": contact}, now=NOW)
    assert not real.dry_run
    created = dataverse_state(client)["task"] - dataverse_before["task"]
    assert created == {row["activityid"] for row in task_rows}  # the dry run named the very rows written


def test_a_dry_run_that_sends_emails_reads_back_only_what_dataverse_holds(synced: Any) -> None:
    """With SendEmail on, a run reads a created email's state before sending it; in a dry run the email was only
    recorded, and the read is answered from the recording (a new row is open), so the dry run lists SendEmail."""
    emulator, client, store = synced
    setup = replace(demo_setup(), send_emails=True)
    contact = outsider_contact(client)
    client.update(CONTACTS, uuid.UUID(contact), {"jobtitle": "CEO"})
    before = dataverse_state(client)
    run = fresh_client(emulator)
    dry = replay(run, store, setup, {"table": "contact", "id": contact}, now=NOW, dry_run=build_dry_run(run, store))
    assert dataverse_state(client) == before and run.stats.as_dict()["by_method"].keys() == {"GET"}
    emails = [row["activityid"] for w in dry.writes if w["target"] == "emails" for row in w.get("rows", [])]
    sends = [w["target"] for w in dry.writes if w["operation"] == "SendEmail"]
    assert emails and sends == [f"emails({email})" for email in emails]
    assert "emails" not in run.stats.as_dict()["by_table"]  # the email's state was never asked of Dataverse


def test_a_window_replay_runs_each_record_of_the_events_received_in_it_once(synced: Any) -> None:
    emulator, client, store = synced
    contact = outsider_contact(client)
    for _ in range(2):
        receive_webhook(store, webhook_body("Update", "contact", contact, str(uuid.uuid4())), {}, now=NOW)
    window = {"since": NOW - timedelta(hours=1), "until": NOW + timedelta(hours=1)}
    run = fresh_client(emulator)
    result = replay(run, store, demo_setup(), window, now=NOW, dry_run=build_dry_run(run, store))
    assert result.records == [{"table": "contact", "id": contact, "message": "Update"}]
    later = {"since": NOW + timedelta(hours=1), "until": NOW + timedelta(hours=2)}
    assert replay(run, store, demo_setup(), later, now=NOW, dry_run=build_dry_run(run, store)).records == []


def engagement_scores(client: DataverseClient) -> dict[str, tuple[int, str]]:
    """Each lead's contact-engagement score and grade, as written to Dataverse."""
    query = Query(table("abm_leadscore").entity_set).select("_abm_leadid_value", "abm_score", "abm_grade")
    query = query.where(eq("abm_model", "contact-engagement"))
    return {str(r["_abm_leadid_value"]).lower(): (r["abm_score"], r["abm_grade"]) for r in client.iter_rows(query)}


def scored_lead(client: DataverseClient, store: SqliteStateStore, *, below: int) -> tuple[str, str]:
    """A lead scored below `below` by contact-engagement, not rated hot, whose contact consents: (lead, contact)."""
    scores = engagement_scores(client)
    consenting = {
        r.id for r in store.mirror("contact") if r.data.get("msgdpr_gdprconsent") == 587030005 and r.partition
    }
    for row in store.mirror("lead"):
        contact = str(row.data.get("_parentcontactid_value") or "").lower()
        hot = row.data.get("leadqualitycode") == 1
        if row.id in scores and scores[row.id][0] < below and contact in consenting and not hot:
            return row.id, contact
    raise AssertionError("the tenant has no such lead")


def test_a_webhook_on_a_lead_rewrites_its_score(synced: Any) -> None:
    emulator, client, store = synced
    lead, _ = scored_lead(client, store, below=40)
    before = engagement_scores(client)
    client.update(table("lead"), uuid.UUID(lead), {"leadqualitycode": 1})  # sales rates it hot: +10 (hot-lead)
    receipt = receive_webhook(store, webhook_body("Update", "lead", lead, str(uuid.uuid4())), {}, now=NOW)
    assert receipt.event_id is not None
    process_event(fresh_client(emulator), store, demo_setup(), receipt.event_id, now=NOW)
    after = engagement_scores(client)
    assert after[lead][0] == before[lead][0] + 10
    assert {k: v for k, v in after.items() if k != lead} == {k: v for k, v in before.items() if k != lead}


def clicks(contact: str, count: int, *, source: str = "mailer") -> bytes:
    """A batch of `count` e-mail clicks of one contact, an hour before NOW."""
    events = [
        {
            "id": f"click-{n}",
            "source": source,
            "type": "EmailClicked",
            "contact_id": contact,
            "occurred_on": (NOW - timedelta(hours=1)).isoformat(),
        }
        for n in range(count)
    ]
    return json.dumps({"events": events}).encode()


def test_a_batch_of_interactions_rescores_the_lead_of_its_contact(synced: Any) -> None:
    emulator, client, store = synced
    setup = demo_setup()
    lead, contact = scored_lead(client, store, below=40)
    before = engagement_scores(client)
    result, receipt = receive_interactions(client, store, clicks(contact, 3), now=NOW, config=setup.config)
    assert (result.created, receipt.status) == (3, "accepted")
    assert receipt.event_id is not None
    process_event(fresh_client(emulator), store, setup, receipt.event_id, now=NOW)
    assert engagement_scores(client)[lead][0] == before[lead][0] + 15  # three clicks, 5 points each


def test_a_stored_batch_keeps_the_row_ids_only_and_a_window_replay_rereads_them(synced: Any) -> None:
    emulator, client, store = synced
    setup = demo_setup()
    _, contact = scored_lead(client, store, below=40)
    result, receipt = receive_interactions(client, store, clicks(contact, 2), now=NOW, config=setup.config)
    assert receipt.event_id is not None
    stored = store.event(receipt.event_id)
    assert stored is not None
    assert contact not in stored.payload.decode() and b"EmailClicked" not in stored.payload
    rows = json.loads(stored.payload)["interactions"]
    assert len(rows) == result.created == 2
    receive_webhook(store, webhook_body("Update", "contact", contact, str(uuid.uuid4())), {}, now=NOW)
    window = {"since": NOW - timedelta(hours=1), "until": NOW + timedelta(hours=1)}
    run = fresh_client(emulator)
    dry = replay(run, store, setup, window, now=NOW, dry_run=build_dry_run(run, store))
    assert sorted((r["table"], r["id"]) for r in dry.records) == sorted(
        [("contact", contact)] + [("abm_interaction", row) for row in rows]
    )
    assert dry.writes  # the clicks were never processed: the replay would score them


def test_a_redelivery_of_an_event_still_pending_is_queued_again_and_processed_once(synced: Any) -> None:
    emulator, client, store = synced
    contact = outsider_contact(client)
    body = webhook_body("Update", "contact", contact, str(uuid.uuid4()))
    first = receive_webhook(store, body, {}, now=NOW)
    again = receive_webhook(store, body, {}, now=NOW)  # the first queue message was lost: Dataverse redelivers
    assert (first.queued, again.queued, again.status, again.event_id) == (True, True, "requeued", first.event_id)
    assert first.event_id is not None
    run = fresh_client(emulator)
    assert process_event(run, store, demo_setup(), first.event_id, now=NOW) is not None
    assert process_event(run, store, demo_setup(), first.event_id, now=NOW) is None  # the second message: done
    late = receive_webhook(store, body, {}, now=NOW)
    assert (late.status, late.queued) == ("duplicate", False)


def test_a_batch_stored_whole_by_an_earlier_version_is_still_replayed_by_its_rows(synced: Any) -> None:
    emulator, client, store = synced
    _, contact = scored_lead(client, store, below=40)
    body = clicks(contact, 2, source="older")
    result, receipt = receive_interactions(client, store, body, now=NOW, config=demo_setup().config)
    assert receipt.event_id is not None and result.created == 2
    stored = store.event(receipt.event_id)
    assert stored is not None
    rows = json.loads(stored.payload)["interactions"]
    store.conn.execute("UPDATE events SET payload = ? WHERE id = ?", (body, receipt.event_id))  # the old format
    run = fresh_client(emulator)
    dry = replay(run, store, demo_setup(), {"event": receipt.event_id}, now=NOW, dry_run=build_dry_run(run, store))
    assert sorted(r["id"] for r in dry.records) == sorted(rows)
