"""Writes: create (ids, idempotent retries), update, upsert by key, delete, bulk messages in chunks, actions."""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import unquote

import pytest
import requests
import responses

from dataverse.batch import BatchRequest, ChangeSet
from dataverse.client import DataverseClient
from dataverse.errors import DataverseDuplicate, DataversePreconditionFailed, DataverseServerError
from dataverse.tables import table
from tests.conftest import API, FakeSleep, make_client

LEADS = table("lead")
SCORES = table("abm_leadscore")
ENTITY_KEY_VIOLATED = {
    "error": {
        "code": "0x80060892",
        "message": "Entity Key abm_LeadModel violated. A record with the same value for Lead, Model already exists.",
    }
}
DUPLICATE = {"error": {"code": "0x80040237", "message": "Cannot insert duplicate key."}}


def body(call: Any) -> Any:
    return json.loads(call.request.body)


def test_create_returns_the_id_from_odata_entity_id(client: DataverseClient, mocked: responses.RequestsMock) -> None:
    new_id = uuid.UUID("00000000-0000-0000-0000-0000000000aa")
    mocked.post(f"{API}leads", status=204, headers={"OData-EntityId": f"{API}leads({new_id})"})
    assert client.create(LEADS, {"subject": "Web enquiry"}) == new_id


def test_create_with_a_client_assigned_id_sends_it_as_the_primary_key(
    client: DataverseClient, mocked: responses.RequestsMock
) -> None:
    task_id = uuid.UUID(int=42)
    mocked.post(f"{API}tasks", status=204, headers={"OData-EntityId": f"{API}tasks({task_id})"})
    assert client.create(table("task"), {"subject": "Call"}, id=task_id) == task_id
    assert body(mocked.calls[0]) == {"subject": "Call", "activityid": str(task_id)}


def test_an_idempotent_create_whose_answer_was_lost_succeeds_on_the_duplicate_answer_to_its_retry(
    client: DataverseClient, mocked: responses.RequestsMock
) -> None:
    lead_id = uuid.UUID(int=43)
    mocked.post(f"{API}leads", status=504)  # the create ran, but the gateway lost the answer
    mocked.post(f"{API}leads", status=412, json=DUPLICATE)
    assert client.create(LEADS, {"subject": "x"}, id=lead_id) == lead_id
    assert len(mocked.calls) == 2


def test_a_duplicate_on_the_first_attempt_is_a_real_error(
    client: DataverseClient, mocked: responses.RequestsMock
) -> None:
    mocked.post(f"{API}leads", status=412, json=DUPLICATE)
    with pytest.raises(DataverseDuplicate):
        client.create(LEADS, {"subject": "x"}, id=uuid.UUID(int=44))


def test_update_is_update_only_with_if_match_star(client: DataverseClient, mocked: responses.RequestsMock) -> None:
    lead_id = uuid.UUID(int=1)
    mocked.patch(f"{API}leads({lead_id})", status=204)
    client.update(LEADS, lead_id, {"subject": "new"})
    assert mocked.calls[0].request.headers["If-Match"] == "*"
    assert body(mocked.calls[0]) == {"subject": "new"}


def test_update_with_an_etag_raises_precondition_failed_when_the_row_changed(
    client: DataverseClient, mocked: responses.RequestsMock
) -> None:
    lead_id = uuid.UUID(int=1)
    mocked.patch(
        f"{API}leads({lead_id})",
        status=412,
        json={"error": {"code": "", "message": "The version of the existing record doesn't match"}},
    )
    with pytest.raises(DataversePreconditionFailed):
        client.update(LEADS, lead_id, {"subject": "new"}, etag='W/"470867"')
    assert mocked.calls[0].request.headers["If-Match"] == 'W/"470867"'


def test_upsert_by_alternate_key_escapes_the_key_values(
    client: DataverseClient, mocked: responses.RequestsMock
) -> None:
    lead_id = uuid.UUID(int=3)
    # Learn, "Use an alternate key to reference a record": a lookup in a key is addressed by its lookup property,
    # `_<name>_value`, with the GUID unquoted.
    path = "abm_leadscores(_abm_leadid_value=00000000-0000-0000-0000-000000000003,abm_model='O''Brien%20%26%20co')"
    mocked.patch(f"{API}{path}", status=204)
    client.upsert(SCORES, {"abm_leadid": lead_id, "abm_model": "O'Brien & co"}, {"abm_score": 40})
    request = mocked.calls[0].request
    assert unquote(request.url) == unquote(f"{API}{path}")
    assert "If-Match" not in request.headers and "If-None-Match" in request.headers  # only the `null` default
    assert request.headers["If-None-Match"] == "null"


def test_a_lookup_key_column_takes_its_guid_in_whichever_form_the_caller_holds_it(
    client: DataverseClient, mocked: responses.RequestsMock
) -> None:
    lead_id = uuid.UUID(int=3)
    path = f"abm_leadscores(_abm_leadid_value={lead_id},abm_model='fit')"
    mocked.patch(f"{API}{path}", status=204)
    client.upsert(SCORES, {"abm_model": "fit", "abm_leadid": str(lead_id).upper()}, {"abm_score": 1})
    assert unquote(mocked.calls[0].request.url) == f"{API}{path}"


def test_a_plain_key_column_is_a_quoted_literal(client: DataverseClient, mocked: responses.RequestsMock) -> None:
    lead_id = uuid.UUID(int=3)
    path = f"msdyn_predictivescores(msdyn_entityid='{lead_id}',msdyn_entitytype='lead')"
    mocked.patch(f"{API}{path}", status=204)
    client.upsert(table("msdyn_predictivescore"), {"msdyn_entityid": str(lead_id), "msdyn_entitytype": "lead"}, {})
    assert unquote(mocked.calls[0].request.url) == f"{API}{path}"


def test_keys_that_are_not_declared_or_not_guids_are_refused_before_sending(
    client: DataverseClient, mocked: responses.RequestsMock
) -> None:
    with pytest.raises(ValueError, match="no declared alternate key made of abm_model"):
        client.upsert(SCORES, {"abm_model": "fit"}, {})
    with pytest.raises(ValueError, match="lookup key column abm_leadid needs a GUID"):
        client.upsert(SCORES, {"abm_leadid": "not-a-guid", "abm_model": "fit"}, {})
    assert not mocked.calls


def test_an_upsert_that_meets_a_row_created_concurrently_is_sent_once_more(
    client: DataverseClient, mocked: responses.RequestsMock
) -> None:
    path = f"abm_leadscores(_abm_leadid_value={uuid.UUID(int=3)},abm_model='fit')"
    mocked.patch(f"{API}{path}", status=412, json=ENTITY_KEY_VIOLATED)
    mocked.patch(f"{API}{path}", status=204)
    client.upsert(SCORES, {"abm_leadid": uuid.UUID(int=3), "abm_model": "fit"}, {"abm_score": 1})
    assert len(mocked.calls) == 2


def test_upsert_by_id(client: DataverseClient, mocked: responses.RequestsMock) -> None:
    lead_id = uuid.UUID(int=4)
    mocked.patch(f"{API}leads({lead_id})", status=204)
    client.upsert(LEADS, lead_id, {"subject": "x"})
    assert len(mocked.calls) == 1


def test_delete_whose_answer_was_lost_succeeds_on_the_404_answer_to_its_retry(
    client: DataverseClient, mocked: responses.RequestsMock
) -> None:
    task_id = uuid.UUID(int=5)
    mocked.delete(f"{API}tasks({task_id})", status=503)
    mocked.delete(f"{API}tasks({task_id})", status=404, json={"error": {"code": "0x80040217", "message": "gone"}})
    client.delete(table("task"), task_id)
    assert len(mocked.calls) == 2


def test_create_multiple_sends_chunks_with_odata_type_and_returns_the_ids_in_order(
    mocked: responses.RequestsMock, sleeps: FakeSleep
) -> None:
    client = make_client(sleeps, bulk_chunk_size=2, max_parallel=1)
    ids = [uuid.UUID(int=i) for i in range(5)]

    def answer(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        targets = json.loads(request.body or b"{}")["Targets"]
        start = int(targets[0]["subject"])
        return 200, {}, json.dumps({"Ids": [str(ids[start + i]) for i in range(len(targets))]})

    mocked.add_callback(responses.POST, f"{API}leads/Microsoft.Dynamics.CRM.CreateMultiple", callback=answer)
    got = client.create_multiple(LEADS, ({"subject": str(i)} for i in range(5)))
    assert got == ids
    sizes = [len(body(c)["Targets"]) for c in mocked.calls]
    assert sizes == [2, 2, 1]
    assert all(t["@odata.type"] == "Microsoft.Dynamics.CRM.lead" for c in mocked.calls for t in body(c)["Targets"])


def test_create_multiple_without_ids_is_not_retried_after_an_ambiguous_failure(
    client: DataverseClient, mocked: responses.RequestsMock
) -> None:
    mocked.post(f"{API}leads/Microsoft.Dynamics.CRM.CreateMultiple", status=503)
    with pytest.raises(DataverseServerError):
        client.create_multiple(LEADS, [{"subject": "a"}])
    assert len(mocked.calls) == 1


def test_create_multiple_with_ids_is_retried_and_a_duplicate_answer_means_done(
    client: DataverseClient, mocked: responses.RequestsMock
) -> None:
    ids = [uuid.UUID(int=20), uuid.UUID(int=21)]
    mocked.post(f"{API}leads/Microsoft.Dynamics.CRM.CreateMultiple", status=502)
    mocked.post(f"{API}leads/Microsoft.Dynamics.CRM.CreateMultiple", status=400, json=DUPLICATE)
    got = client.create_multiple(LEADS, [{"leadid": str(i), "subject": "a"} for i in ids])
    assert got == ids


def test_upsert_multiple_by_alternate_key_addresses_each_row_with_odata_id(
    client: DataverseClient, mocked: responses.RequestsMock
) -> None:
    mocked.post(f"{API}abm_leadscores/Microsoft.Dynamics.CRM.UpsertMultiple", status=204)
    lead = uuid.UUID(int=6)
    sent = client.upsert_multiple(
        SCORES, [{"abm_leadid": lead, "abm_model": "fit", "abm_score": 10}], key=("abm_leadid", "abm_model")
    )
    assert sent == 1
    target = body(mocked.calls[0])["Targets"][0]
    assert target["@odata.type"] == "Microsoft.Dynamics.CRM.abm_leadscore"
    assert "abm_leadid" not in target and "abm_model" not in target and target["abm_score"] == 10
    assert unquote(target["@odata.id"]) == f"abm_leadscores(_abm_leadid_value={lead},abm_model='fit')"


def test_upsert_multiple_meeting_rows_created_concurrently_is_sent_once_more(
    client: DataverseClient, mocked: responses.RequestsMock
) -> None:
    url = f"{API}abm_leadscores/Microsoft.Dynamics.CRM.UpsertMultiple"
    mocked.post(url, status=412, json=ENTITY_KEY_VIOLATED)
    mocked.post(url, status=204)
    rows = [{"abm_leadid": uuid.UUID(int=7), "abm_model": "fit", "abm_score": 3}]
    assert client.upsert_multiple(SCORES, rows, key=("abm_leadid", "abm_model")) == 1
    assert len(mocked.calls) == 2 and body(mocked.calls[0]) == body(mocked.calls[1])


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (
            lambda c: c.upsert_multiple(
                SCORES,
                [
                    {"abm_leadid": uuid.UUID(int=8), "abm_model": "fit", "abm_score": 1},
                    {"abm_leadid": uuid.UUID(int=9), "abm_model": "fit", "abm_score": 2},
                    {"abm_leadid": str(uuid.UUID(int=8)).upper(), "abm_model": "fit", "abm_score": 3},
                ],
                key=("abm_leadid", "abm_model"),
                chunk_size=1,
            ),
            f"records 0 and 2 address the same row (abm_leadscores(_abm_leadid_value={uuid.UUID(int=8)},"
            "abm_model='fit'))",
        ),
        (
            lambda c: c.upsert_multiple(
                LEADS, [{"leadid": str(uuid.UUID(int=1)).upper()}, {"leadid": str(uuid.UUID(int=1))}]
            ),
            f"records 0 and 1 address the same row (leadid={uuid.UUID(int=1)})",
        ),
        (
            lambda c: c.update_multiple(LEADS, [{"leadid": uuid.UUID(int=2)}, {"leadid": str(uuid.UUID(int=2))}]),
            f"records 0 and 1 address the same row (leadid={uuid.UUID(int=2)})",
        ),
    ],
)
def test_two_records_for_one_row_in_a_bulk_write_are_refused_naming_the_key_before_sending(
    client: DataverseClient, mocked: responses.RequestsMock, call: Any, needle: str
) -> None:
    # Learn, "Use bulk operation messages": duplicate records in Targets fail UpsertMultiple and are ignored after the
    # first by UpdateMultiple; either way the caller meant something else.
    with pytest.raises(ValueError) as raised:
        call(client)
    assert needle in str(raised.value)
    assert not mocked.calls


def test_upsert_multiple_is_retried_because_it_is_idempotent(
    client: DataverseClient, mocked: responses.RequestsMock, sleeps: FakeSleep
) -> None:
    mocked.post(f"{API}leads/Microsoft.Dynamics.CRM.UpsertMultiple", status=503)
    mocked.post(f"{API}leads/Microsoft.Dynamics.CRM.UpsertMultiple", status=204)
    client.upsert_multiple(LEADS, [{"leadid": str(uuid.UUID(int=1)), "subject": "a"}])
    assert len(mocked.calls) == 2 and len(sleeps.calls) == 1


def test_bulk_rows_without_their_key_are_refused_before_anything_is_sent(
    client: DataverseClient, mocked: responses.RequestsMock
) -> None:
    with pytest.raises(ValueError, match="record 1 has no leadid"):
        client.update_multiple(LEADS, [{"leadid": str(uuid.UUID(int=1))}, {"subject": "x"}], chunk_size=1)
    with pytest.raises(ValueError, match="lacks key column"):
        client.upsert_multiple(
            SCORES,
            [{"abm_leadid": uuid.UUID(int=1), "abm_model": "fit"}, {"abm_model": "fit"}],
            key=("abm_leadid", "abm_model"),
            chunk_size=1,
        )
    assert not mocked.calls


def test_update_multiple_chunks_run_in_parallel_and_all_arrive(
    mocked: responses.RequestsMock, sleeps: FakeSleep
) -> None:
    client = make_client(sleeps, bulk_chunk_size=10, max_parallel=4)
    mocked.post(f"{API}leads/Microsoft.Dynamics.CRM.UpdateMultiple", status=204)
    records = [{"leadid": str(uuid.UUID(int=i)), "subject": "s"} for i in range(95)]
    assert client.update_multiple(LEADS, records) == 95
    assert len(mocked.calls) == 10
    sent = sorted(t["leadid"] for c in mocked.calls for t in body(c)["Targets"])
    assert sent == sorted(r["leadid"] for r in records)


WHOAMI = {
    "UserId": str(uuid.UUID(int=1)),
    "BusinessUnitId": str(uuid.UUID(int=2)),
    "OrganizationId": str(uuid.UUID(int=3)),
}


def test_who_am_i_returns_the_three_ids(client: DataverseClient, mocked: responses.RequestsMock) -> None:
    mocked.get(f"{API}WhoAmI", json=WHOAMI)
    who = client.who_am_i()
    assert (who.user_id, who.business_unit_id, who.organization_id) == tuple(uuid.UUID(int=i) for i in (1, 2, 3))


def test_execute_workflow_posts_the_entity_id_and_is_never_retried_after_it_may_have_run(
    client: DataverseClient, mocked: responses.RequestsMock
) -> None:
    workflow = uuid.UUID(int=77)
    url = f"{API}workflows({workflow})/Microsoft.Dynamics.CRM.ExecuteWorkflow"
    mocked.post(url, status=504)
    with pytest.raises(DataverseServerError):
        client.execute_workflow(workflow, uuid.UUID(int=5))
    assert len(mocked.calls) == 1
    job = uuid.UUID(int=99)
    mocked.replace(responses.POST, url, json={"asyncoperationid": str(job)})
    assert client.execute_workflow(workflow, uuid.UUID(int=5)) == job
    assert body(mocked.calls[1]) == {"EntityId": str(uuid.UUID(int=5))}


def test_a_function_call_passes_parameters_as_escaped_aliases(
    client: DataverseClient, mocked: responses.RequestsMock
) -> None:
    mocked.get(f"{API}RetrieveTotalRecordCount(EntityNames=@EntityNames)", json={"EntityRecordCountCollection": {}})
    client.call_function("RetrieveTotalRecordCount", {"EntityNames": "it's"})
    assert mocked.calls[0].request.url.endswith("?@EntityNames=%27it%27%27s%27")


def test_a_bound_action_gets_the_namespace_prefix(client: DataverseClient, mocked: responses.RequestsMock) -> None:
    email = uuid.UUID(int=8)
    mocked.post(f"{API}emails({email})/Microsoft.Dynamics.CRM.SendEmail", json={"Subject": "x"})
    result = client.call_action("SendEmail", {"IssueSend": True}, bound=(table("email"), email))
    assert result == {"Subject": "x"}


BATCH_RESPONSE = (
    "--batchresponse_1\r\n"
    "Content-Type: application/http\r\n"
    "Content-Transfer-Encoding: binary\r\n"
    "\r\n"
    "HTTP/1.1 400 Bad Request\r\n"
    "Content-Type: application/json; odata.metadata=minimal\r\n"
    "REQ_ID: 5ecd1cb3-1730-4ffc-909c-d44c22270026\r\n"
    "\r\n"
    '{"error":{"code":"0x80040237","message":"Cannot insert duplicate key."}}\r\n'
    "--batchresponse_1--\r\n"
)


def test_a_batch_with_a_failed_change_set_reports_it_failed_and_the_rest_not_executed(
    client: DataverseClient, mocked: responses.RequestsMock
) -> None:
    lead = uuid.UUID(int=11)
    mocked.post(
        f"{API}$batch",
        status=400,
        body=BATCH_RESPONSE,
        content_type="multipart/mixed; boundary=batchresponse_1",
    )
    items = [
        ChangeSet(
            [
                BatchRequest("POST", "leads", {"leadid": lead, "subject": "a"}, content_id="1"),
                BatchRequest("POST", "tasks", {"subject": "b", "regardingobjectid_lead_task@odata.bind": "$1"}),
            ]
        ),
        BatchRequest("PATCH", f"leads({lead})", {"subject": "c"}),
    ]
    outcomes = client.batch(items)
    assert [o.status for o in outcomes] == ["failed", "not_executed"]
    assert isinstance(outcomes[0].error, DataverseDuplicate)
    request = mocked.calls[0].request
    assert request.headers["Content-Type"].startswith("multipart/mixed; boundary=batch_")
    sent = request.body if isinstance(request.body, bytes) else request.body.encode()
    assert b"\r\n" in sent and b"\n" not in sent.replace(b"\r\n", b"")  # CRLF everywhere
    assert f'"leadid":"{lead}"'.encode() in sent  # GUIDs serialised like single requests
    assert b"POST /api/data/v9.2/leads HTTP/1.1" in sent
    assert len(mocked.calls) == 1  # not idempotent: never resent


def test_a_batch_with_continue_on_error_sends_the_preference(
    client: DataverseClient, mocked: responses.RequestsMock
) -> None:
    ok = (
        "--batchresponse_2\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
        "HTTP/1.1 204 No Content\r\nOData-Version: 4.0\r\n\r\n\r\n--batchresponse_2--\r\n"
    )
    mocked.post(f"{API}$batch", body=ok, content_type="multipart/mixed; boundary=batchresponse_2")
    outcomes = client.batch([BatchRequest("DELETE", f"tasks({uuid.UUID(int=1)})")], continue_on_error=True)
    assert [o.status for o in outcomes] == ["ok"]
    assert mocked.calls[0].request.headers["Prefer"] == "odata.continue-on-error"
