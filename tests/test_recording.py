"""The dry run's transport: reads reach Dataverse, every write is recorded as the operation it is and answered as
Dataverse answers a success, so the client's own methods carry on unchanged."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import responses

from abm.bootstrap import build_dry_run
from dataverse.batch import BatchRequest, ChangeSet
from dataverse.client import DataverseClient
from dataverse.recording import RecordingTransport
from dataverse.tables import table
from statestore.sqlite import SqliteStateStore
from tests.conftest import API

LEADS = table("lead")
SCORES = table("abm_leadscore")
LEAD = uuid.UUID("00000000-0000-0000-0000-0000000000aa")


def recording(client: DataverseClient) -> tuple[DataverseClient, RecordingTransport]:
    recorder = RecordingTransport(client.transport)
    return DataverseClient(recorder.config, transport=recorder), recorder


def test_reads_go_to_dataverse_and_are_counted_writes_are_not_sent(
    client: DataverseClient, mocked: responses.RequestsMock
) -> None:
    mocked.get(f"{API}leads({LEAD})", json={"leadid": str(LEAD), "subject": "x"})
    dry, recorder = recording(client)
    assert dry.get(LEADS, LEAD)["subject"] == "x"
    dry.update(LEADS, LEAD, {"subject": "y"})
    dry.delete(LEADS, LEAD)
    assert len(mocked.calls) == 1 and dry.stats.as_dict()["by_method"] == {"GET": 1}
    assert recorder.writes == [
        {"operation": "Update", "target": "leads", "id": str(LEAD), "row": {"subject": "y"}},
        {"operation": "Delete", "target": "leads", "id": str(LEAD)},
    ]


def test_a_create_answers_its_id_given_or_new(client: DataverseClient) -> None:
    dry, recorder = recording(client)
    assert dry.create(LEADS, {"subject": "a"}, id=LEAD) == LEAD
    new = dry.create(LEADS, {"subject": "b"})
    assert [(w["operation"], w["id"], w["row"]) for w in recorder.writes] == [
        ("Create", str(LEAD), {"subject": "a"}),
        ("Create", str(new), {"subject": "b"}),
    ]


def test_bulk_writes_record_the_callers_rows_and_create_multiple_answers_the_ids(client: DataverseClient) -> None:
    dry, recorder = recording(client)
    assert dry.create_multiple(LEADS, [{"leadid": str(LEAD), "subject": "a"}]) == [LEAD]
    moment = datetime(2026, 11, 23, tzinfo=UTC)
    dry.update_multiple(LEADS, [{"leadid": LEAD, "abm_salesreadyon": moment}])
    dry.upsert_multiple(
        SCORES, [{"abm_leadid": str(LEAD), "abm_model": "fit's", "abm_score": 5}], key=SCORES.keys[0].columns
    )
    assert recorder.writes == [
        {"operation": "CreateMultiple", "target": "leads", "rows": [{"leadid": str(LEAD), "subject": "a"}]},
        {
            "operation": "UpdateMultiple",
            "target": "leads",
            "rows": [{"leadid": str(LEAD), "abm_salesreadyon": "2026-11-23T00:00:00Z"}],
        },
        {
            "operation": "UpsertMultiple",
            "target": "abm_leadscores",
            "rows": [{"abm_leadid": str(LEAD), "abm_model": "fit's", "abm_score": 5}],
            "key": ["abm_leadid", "abm_model"],
        },
    ]


def test_an_upsert_by_alternate_key_records_the_keys_values(client: DataverseClient) -> None:
    dry, recorder = recording(client)
    dry.upsert(SCORES, {"abm_leadid": LEAD, "abm_model": "a, b"}, {"abm_score": 1})
    dry.upsert(LEADS, LEAD, {"subject": "s"})
    assert [(w["operation"], w["key"]) for w in recorder.writes] == [
        ("Upsert", {"abm_leadid": str(LEAD), "abm_model": "a, b"}),
        ("Upsert", str(LEAD)),
    ]


def test_a_batch_records_each_request_and_answers_each_with_success(client: DataverseClient) -> None:
    dry, recorder = recording(client)
    workflow = f"workflows({LEAD})/Microsoft.Dynamics.CRM.ExecuteWorkflow"
    items = [
        BatchRequest("POST", workflow, {"EntityId": "e1"}),
        ChangeSet([BatchRequest("PATCH", f"leads({LEAD})", {"subject": "x"}), BatchRequest("DELETE", "tasks(1)")]),
    ]
    outcomes = dry.batch(items, continue_on_error=True)
    assert [o.status for o in outcomes] == ["ok", "ok"] and [len(o.responses) for o in outcomes] == [1, 2]
    assert all(r.status == 204 and r.body is None for o in outcomes for r in o.responses)
    assert recorder.writes == [
        {"operation": "POST", "target": workflow, "body": {"EntityId": "e1"}},
        {"operation": "PATCH", "target": f"leads({LEAD})", "body": {"subject": "x"}},
        {"operation": "DELETE", "target": "tasks(1)", "body": {}},
    ]


def test_actions_are_recorded_with_their_parameters_and_return_nothing(client: DataverseClient) -> None:
    dry, recorder = recording(client)
    assert dry.call_action("SendEmail", {"IssueSend": True}, bound=(table("email"), LEAD)) is None
    assert dry.execute_workflow(LEAD, LEAD) is None
    assert recorder.writes == [
        {"operation": "SendEmail", "target": f"emails({LEAD})", "parameters": {"IssueSend": True}},
        {"operation": "ExecuteWorkflow", "target": f"workflows({LEAD})", "entity_id": str(LEAD)},
    ]


def test_the_composition_root_composes_a_dry_run_over_a_client_and_a_store(
    client: DataverseClient, mocked: responses.RequestsMock
) -> None:
    store = SqliteStateStore()
    dry = build_dry_run(client, store)
    dry.client.delete(LEADS, LEAD)
    dry.store.save_checkpoints({"contact": "link"})
    dry.client.close()  # the real transport belongs to the real client
    assert dry.writes == [{"operation": "Delete", "target": "leads", "id": str(LEAD)}]
    assert store.checkpoint("contact") is None and dry.store.checkpoint("contact") == "link"
    assert not mocked.calls and dry.client.stats is client.stats


def test_a_row_the_dry_run_created_is_read_back_as_created_without_a_request(
    client: DataverseClient, mocked: responses.RequestsMock
) -> None:
    other = uuid.UUID("00000000-0000-0000-0000-0000000000bb")
    mocked.get(f"{API}leads({other})", json={"leadid": str(other), "subject": "real"})
    dry, _ = recording(client)
    dry.create_multiple(LEADS, [{"leadid": str(LEAD), "subject": "new"}])
    # A new row is in its default state (statecode 0), with the columns it was created with.
    assert dry.get(LEADS, LEAD, select=["statecode", "subject", "leadid"]) == {
        "statecode": 0,
        "subject": "new",
        "leadid": str(LEAD),
    }
    assert dry.get(LEADS, other)["subject"] == "real"  # any other row is Dataverse's
    assert len(mocked.calls) == 1
