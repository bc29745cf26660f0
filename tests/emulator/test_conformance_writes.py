"""The emulator's write side in raw HTTP, held to Microsoft's documented Dataverse Web API behaviour: key segments,
duplicate keys, duplicate bulk targets and column lengths (each test cites the Learn page it comes from)."""

from __future__ import annotations

import re
import uuid
from typing import Any
from urllib.parse import quote

import pytest
import requests

from abm.admin.product_schema import ADDED_COLUMNS, PRODUCT_TABLES
from devtools.emulator.schema import TABLES
from devtools.emulator.server import Emulator
from tests.emulator.conftest import CALLER, CONTOSO, FABRIKAM

HEADERS = {"Accept": "application/json", "OData-MaxVersion": "4.0", "OData-Version": "4.0", "If-None-Match": "null"}
SCORE = "Microsoft.Dynamics.CRM.abm_leadscore"


def send(emulator: Emulator, method: str, path: str, body: Any = None, **headers: str) -> requests.Response:
    return requests.request(method, emulator.url + path, json=body, headers={**HEADERS, **headers}, timeout=10)


def error(response: requests.Response) -> tuple[int, str, str]:
    body = response.json()["error"]
    return response.status_code, str(body["code"]), str(body["message"])


def new_lead(emulator: Emulator, **values: Any) -> str:
    lead = str(uuid.uuid4())
    assert send(emulator, "POST", "leads", {"leadid": lead, "subject": "L", **values}).status_code == 204
    return lead


def score_key(lead: str, model: str = "fit") -> str:
    return f"abm_leadscores(_abm_leadid_value={lead},abm_model='{model}')"


def scores(emulator: Emulator, lead: str) -> list[tuple[str, int]]:
    path = f"abm_leadscores?$select=abm_model,abm_score&$filter=_abm_leadid_value eq {lead}&$orderby=abm_model"
    return [(r["abm_model"], r["abm_score"]) for r in send(emulator, "GET", path).json()["value"]]


def subjects(emulator: Emulator, entity_set: str, subject: str) -> list[str]:
    path = f"{entity_set}?$select=subject&$filter=subject eq '{subject}'"
    return [r["subject"] for r in send(emulator, "GET", path).json()["value"]]


def invalid_key_message(resource: str) -> str:
    return (
        f"The key in the request URI is not valid for resource '{resource}'. Ensure that the names and number of key "
        f"properties match the declared or alternate key properties for the resource '{resource}'."
    )


# ---- alternate keys -------------------------------------------------------------------------------------------------
# Learn: https://learn.microsoft.com/power-apps/developer/data-platform/use-alternate-key-reference-record (Web API tab:
# the key forms, the lookup-property rule, the invalid-key message, the note on systemuser/team) and
# https://learn.microsoft.com/power-apps/developer/data-platform/use-upsert-insert-update-record (upsert by key).


def test_the_primary_key_can_be_named_in_the_key_segment(emulator: Emulator) -> None:
    # Learn: https://learn.microsoft.com/power-apps/developer/data-platform/use-alternate-key-reference-record, "With a
    # primary key: accounts(accountid=<guid>)".
    response = send(emulator, "GET", f"accounts(accountid={CONTOSO})?$select=name")
    assert response.status_code == 200 and response.json()["name"] == "Contoso"
    assert send(emulator, "PATCH", f"accounts(accountid={FABRIKAM})", {"telephone1": "1"}, **{"If-Match": "*"}).ok


def test_system_users_and_teams_cannot_be_addressed_by_a_named_primary_key(emulator: Emulator) -> None:
    # Learn: https://learn.microsoft.com/power-apps/developer/data-platform/use-alternate-key-reference-record, note:
    # systemuser and team inherit their key from principal.
    assert send(emulator, "GET", f"systemusers({CALLER})?$select=fullname").status_code == 200
    response = send(emulator, "GET", f"systemusers(systemuserid={CALLER})?$select=fullname")
    assert error(response) == (400, "0x80060888", invalid_key_message("Microsoft.Dynamics.CRM.systemuser"))


def test_a_key_with_a_lookup_column_is_addressed_by_the_lookup_property_with_the_guid_unquoted(
    emulator: Emulator,
) -> None:
    # Learn: https://learn.microsoft.com/power-apps/developer/data-platform/use-alternate-key-reference-record, "With an
    # alternate key that uses a lookup column: /accounts(_primarycontactid_value=<guid>)"; "you must use the name of the
    # corresponding Lookup Property".
    lead = new_lead(emulator)
    assert send(emulator, "PATCH", score_key(lead), {"abm_score": 10}).status_code == 204
    assert send(emulator, "PATCH", score_key(lead), {"abm_score": 20}).status_code == 204
    assert scores(emulator, lead) == [("fit", 20)]
    assert send(emulator, "GET", score_key(lead) + "?$select=abm_score").json()["abm_score"] == 20


@pytest.mark.parametrize(
    "segment",
    [
        "abm_leadid='{lead}',abm_model='fit'",  # the lookup column's own name, GUID quoted (the old form)
        "abm_leadid={lead},abm_model='fit'",  # the lookup column's own name
        "_abm_leadid_value='{lead}',abm_model='fit'",  # the lookup property with a quoted GUID
        "_abm_leadid_value={lead},abm_model=3",  # a number for a string key column
        "abm_model='fit'",  # too few key properties
        "_abm_leadid_value={lead},abm_model='fit',abm_score=1",  # too many
        "_abm_leadid_value={lead},_abm_leadid_value={lead}",  # a name twice
        "abm_grade='A'",  # not a key column
    ],
)
def test_a_segment_that_is_not_a_key_answers_the_documented_error(emulator: Emulator, segment: str) -> None:
    # Learn: https://learn.microsoft.com/power-apps/developer/data-platform/use-alternate-key-reference-record,
    # "Exceptions when using alternate keys with the Web API".
    lead = new_lead(emulator)
    response = send(emulator, "PATCH", f"abm_leadscores({segment.format(lead=lead)})", {"abm_score": 1})
    assert error(response) == (400, "0x80060888", invalid_key_message(SCORE))
    assert scores(emulator, lead) == []


def test_an_upsert_by_key_answers_odata_entity_id_in_the_key_form(emulator: Emulator) -> None:
    # Learn: https://learn.microsoft.com/power-apps/developer/data-platform/use-upsert-insert-update-record, "Create
    # with upsert" / "Update with upsert": both answer 204 with `OData-EntityId: [Organization
    # Uri]/api/data/v9.2/example_records(example_key1=2,example_key2=2)`.
    lead = new_lead(emulator)
    path = score_key(lead, "O''Brien fit")
    expected = f"{emulator.url}abm_leadscores(_abm_leadid_value={lead},abm_model='O''Brien%20fit')"
    for score in (1, 2):
        response = send(emulator, "PATCH", quote(path, safe="=,()'"), {"abm_score": score})
        assert response.status_code == 204 and response.headers["OData-EntityId"] == expected
    assert scores(emulator, lead) == [("O'Brien fit", 2)]


def test_an_upsert_by_key_keeps_the_key_on_update_and_takes_the_bodys_key_values_on_create(
    emulator: Emulator,
) -> None:
    # Learn: https://learn.microsoft.com/power-apps/developer/data-platform/use-upsert-insert-update-record, "Guidance
    # for composing requests" (Web API tab): when the record exists the key values in the body are removed; when it does
    # not, the body's key values are used even if they differ.
    lead = new_lead(emulator)
    assert send(emulator, "PATCH", score_key(lead), {"abm_score": 1}).status_code == 204
    assert send(emulator, "PATCH", score_key(lead), {"abm_model": "other", "abm_score": 2}).status_code == 204
    assert scores(emulator, lead) == [("fit", 2)]
    created = send(emulator, "PATCH", score_key(lead, "absent"), {"abm_model": "from body", "abm_score": 3})
    assert created.status_code == 204
    assert scores(emulator, lead) == [("fit", 2), ("from body", 3)]


def test_upsert_multiple_targets_take_the_same_key_forms(emulator: Emulator) -> None:
    # Learn: https://learn.microsoft.com/power-apps/developer/data-platform/webapi/reference/upsertmultiple: "The
    # @odata.id annotation identifies the record with a relative URL as described in Use an alternate key to reference a
    # record".
    lead = new_lead(emulator)
    url = "abm_leadscores/Microsoft.Dynamics.CRM.UpsertMultiple"

    def target(segment: str, model: str) -> dict[str, Any]:
        return {"@odata.type": SCORE, "@odata.id": f"abm_leadscores({segment})", "abm_score": len(model)}

    good = target(f"_abm_leadid_value={lead},abm_model='fit'", "fit")
    old = target(f"abm_leadid='{lead}',abm_model='old'", "old")
    assert send(emulator, "POST", url, {"Targets": [good]}).status_code == 204
    refused = send(emulator, "POST", url, {"Targets": [{**good, "abm_score": 9}, old]})
    assert error(refused) == (400, "0x80060888", invalid_key_message(SCORE))
    assert scores(emulator, lead) == [("fit", 3)]  # the whole request rolled back


def test_a_lookup_is_bound_by_a_named_primary_key_or_an_alternate_key(emulator: Emulator) -> None:
    # Learn: https://learn.microsoft.com/power-apps/developer/data-platform/use-alternate-key-reference-record: "You
    # also use URLs to set values for single-valued navigation properties using the @odata.bind syntax".
    body = {"subject": "Call", "regardingobjectid_account_task@odata.bind": f"/accounts(accountid={CONTOSO})"}
    created = send(emulator, "POST", "tasks", body, Prefer="return=representation")
    assert created.status_code == 201 and created.json()["_regardingobjectid_value"] == CONTOSO
    missing = send(emulator, "POST", "tasks", {**body, "regardingobjectid_account_task@odata.bind": "/accounts(x=1)"})
    assert error(missing) == (400, "0x80060888", invalid_key_message("Microsoft.Dynamics.CRM.account"))


# ---- duplicate keys -------------------------------------------------------------------------------------------------
# Learn: https://learn.microsoft.com/power-apps/developer/data-platform/reference/web-service-error-codes,
# DuplicateRecordEntityKey 0x80060892: "Entity Key {0} violated. A record with the same value for {1} already exists. A
# duplicate record cannot be created. Select one or more unique values and try again." (no status given there: Dataverse
# answers 412).

DUPLICATE_KEY = (
    "Entity Key abm_leadid_abm_model_key violated. A record with the same value for abm_leadid, abm_model already "
    "exists. A duplicate record cannot be created. Select one or more unique values and try again."
)


def score_body(lead: str, model: str = "fit", score: int = 1) -> dict[str, Any]:
    return {"abm_leadid@odata.bind": f"/leads({lead})", "abm_model": model, "abm_score": score}


def test_creating_a_row_with_taken_alternate_key_values_is_duplicate_record_entity_key(emulator: Emulator) -> None:
    lead = new_lead(emulator)
    assert send(emulator, "POST", "abm_leadscores", score_body(lead)).status_code == 204
    again = send(emulator, "POST", "abm_leadscores", score_body(lead, score=2))
    assert error(again) == (412, "0x80060892", DUPLICATE_KEY)
    by_id = send(emulator, "PATCH", f"abm_leadscores({uuid.uuid4()})", score_body(lead, score=3))  # upsert's insert
    assert error(by_id) == (412, "0x80060892", DUPLICATE_KEY)
    assert scores(emulator, lead) == [("fit", 1)]


def test_create_multiple_with_a_taken_key_rolls_back_with_duplicate_record_entity_key(emulator: Emulator) -> None:
    # Learn: https://learn.microsoft.com/power-apps/developer/data-platform/bulk-operations, "On Error behavior with
    # standard tables": the entire operation rolls back.
    lead = new_lead(emulator)
    targets = [{"@odata.type": SCORE, **score_body(lead, m)} for m in ("a", "b", "a")]
    response = send(emulator, "POST", "abm_leadscores/Microsoft.Dynamics.CRM.CreateMultiple", {"Targets": targets})
    assert error(response)[:2] == (412, "0x80060892")
    assert scores(emulator, lead) == []


def test_an_update_onto_another_rows_key_values_is_duplicate_record_entity_key(emulator: Emulator) -> None:
    lead = new_lead(emulator)
    send(emulator, "POST", "abm_leadscores", score_body(lead, "a"))
    send(emulator, "PATCH", score_key(lead, "b"), {"abm_score": 2})
    row = send(emulator, "GET", score_key(lead, "b") + "?$select=abm_leadscoreid").json()
    moved = send(
        emulator, "PATCH", f"abm_leadscores({row['abm_leadscoreid']})", {"abm_model": "a"}, **{"If-Match": "*"}
    )
    assert error(moved) == (412, "0x80060892", DUPLICATE_KEY)


def test_if_none_match_on_an_existing_row_is_412_with_the_documented_message(emulator: Emulator) -> None:
    # Learn: https://learn.microsoft.com/power-apps/developer/data-platform/webapi/perform-conditional-operations-using-web-api
    # "Limit upsert operations" / "Prevent update in upsert": 412 with {"error":{"code":"","message":"A record with
    # matching key values already exists."}}.
    lead = new_lead(emulator)
    send(emulator, "PATCH", score_key(lead), {"abm_score": 1})
    response = send(emulator, "PATCH", score_key(lead), {"abm_score": 2}, **{"If-None-Match": "*"})
    assert error(response) == (412, "", "A record with matching key values already exists.")
    assert scores(emulator, lead) == [("fit", 1)]


# ---- duplicate bulk targets -----------------------------------------------------------------------------------------
# Learn: https://learn.microsoft.com/power-apps/developer/data-platform/bulk-operations, "Duplicate records in
# UpsertMultiple Targets parameter" ("UpsertMultiple will return an error"; no code given) and "Duplicate records in
# UpdateMultiple Targets parameter" ("the operation is performed on the first record only. Any subsequent records with
# the same key value(s) in the payload are ignored").


def test_upsert_multiple_with_two_targets_for_one_alternate_key_fails_and_rolls_back(emulator: Emulator) -> None:
    lead = new_lead(emulator)
    other = {"@odata.type": SCORE, "@odata.id": score_key(lead, "other"), "abm_score": 1}
    twice = {"@odata.type": SCORE, "@odata.id": score_key(lead), "abm_score": 2}
    url = "abm_leadscores/Microsoft.Dynamics.CRM.UpsertMultiple"
    response = send(emulator, "POST", url, {"Targets": [other, twice, {**twice, "abm_score": 3}]})
    status, _, message = error(response)
    assert status == 400 and "Targets[1] and Targets[2]" in message
    assert scores(emulator, lead) == []


def test_upsert_multiple_with_two_targets_for_one_id_fails(emulator: Emulator) -> None:
    lead = str(uuid.uuid4())
    target = {"@odata.type": "Microsoft.Dynamics.CRM.lead", "leadid": lead, "subject": "a"}
    response = send(emulator, "POST", "leads/Microsoft.Dynamics.CRM.UpsertMultiple", {"Targets": [target, target]})
    assert response.status_code == 400
    assert send(emulator, "GET", f"leads({lead})").status_code == 404


def test_update_multiple_applies_the_first_of_two_targets_for_one_row_and_ignores_the_rest(emulator: Emulator) -> None:
    lead = new_lead(emulator)
    targets = [
        {"@odata.type": "Microsoft.Dynamics.CRM.lead", "leadid": lead, "subject": subject}
        for subject in ("first", "second")
    ]
    response = send(emulator, "POST", "leads/Microsoft.Dynamics.CRM.UpdateMultiple", {"Targets": targets})
    assert response.status_code == 204
    assert send(emulator, "GET", f"leads({lead})?$select=subject").json()["subject"] == "first"


def test_update_multiple_by_alternate_key_applies_the_first_target(emulator: Emulator) -> None:
    lead = new_lead(emulator)
    send(emulator, "PATCH", score_key(lead), {"abm_score": 1})
    targets = [{"@odata.type": SCORE, "@odata.id": score_key(lead), "abm_score": s} for s in (5, 6)]
    response = send(emulator, "POST", "abm_leadscores/Microsoft.Dynamics.CRM.UpdateMultiple", {"Targets": targets})
    assert response.status_code == 204 and scores(emulator, lead) == [("fit", 5)]


# ---- column lengths -------------------------------------------------------------------------------------------------
# Learn: https://learn.microsoft.com/power-apps/developer/data-platform/reference/web-service-error-codes,
# StringLengthTooLong 0x80044331 (listed as "A validation error occurred. A string value provided is too long.";
# Dataverse names the column and the limit, as below). MaxLength per column:
# https://learn.microsoft.com/power-apps/developer/data-platform/reference/entities/task (subject 200, description
# 2000), https://learn.microsoft.com/dynamics365/sales/developer/entities/lead (companyname 100), and the product's
# own columns as abm.admin.product_schema declares them.


def too_long(column: str, table: str, limit: int) -> tuple[int, str, str]:
    message = (
        f"A validation error occurred. The length of the '{column}' attribute of the '{table}' entity exceeded the "
        f"maximum allowed length of '{limit}'."
    )
    return 400, "0x80044331", message


def test_a_string_over_its_max_length_is_refused_and_one_at_it_is_accepted(emulator: Emulator) -> None:
    assert send(emulator, "POST", "tasks", {"subject": "s" * 200}).status_code == 204
    assert error(send(emulator, "POST", "tasks", {"subject": "s" * 201})) == too_long("subject", "task", 200)
    memo = send(emulator, "POST", "tasks", {"subject": "memo", "description": "d" * 2001})
    assert error(memo) == too_long("description", "task", 2000)
    assert subjects(emulator, "tasks", "memo") == []


def test_a_length_counts_utf16_code_units_as_dataverse_does(emulator: Emulator) -> None:
    # MaxLength is a .NET string length: a character outside the Basic Multilingual Plane (an emoji) counts 2.
    assert send(emulator, "POST", "tasks", {"subject": "🚀" * 100}).status_code == 204
    assert error(send(emulator, "POST", "tasks", {"subject": "🚀" * 101})) == too_long("subject", "task", 200)


def test_an_update_over_the_max_length_leaves_the_row_unchanged(emulator: Emulator) -> None:
    lead = new_lead(emulator, companyname="Contoso")
    response = send(emulator, "PATCH", f"leads({lead})", {"companyname": "c" * 101}, **{"If-Match": "*"})
    assert error(response) == too_long("companyname", "lead", 100)
    assert send(emulator, "GET", f"leads({lead})?$select=companyname").json()["companyname"] == "Contoso"


def test_the_products_columns_have_the_max_lengths_the_product_schema_declares() -> None:
    declared = {
        (product.logical_name, column.logical_name): column.max_length
        for product in PRODUCT_TABLES
        for column in (product.table.primary_name, *product.columns)
    }
    declared |= {(name, c.logical_name): c.max_length for name, added in ADDED_COLUMNS.items() for c in added}
    for (table, column), limit in declared.items():
        assert TABLES[table].max_length(column) == limit, (table, column)


@pytest.mark.parametrize("message", ["CreateMultiple", "UpsertMultiple"])
def test_a_bulk_request_with_one_value_too_long_rolls_back_whole(emulator: Emulator, message: str) -> None:
    # Learn: https://learn.microsoft.com/power-apps/developer/data-platform/bulk-operations, "On Error behavior with
    # standard tables".
    targets = [
        {"@odata.type": "Microsoft.Dynamics.CRM.task", "activityid": str(uuid.uuid4()), "subject": subject}
        for subject in ("bulk ok", "s" * 201)
    ]
    response = send(emulator, "POST", f"tasks/Microsoft.Dynamics.CRM.{message}", {"Targets": targets})
    assert error(response) == too_long("subject", "task", 200)
    assert subjects(emulator, "tasks", "bulk ok") == []


# Learn: https://learn.microsoft.com/power-apps/developer/data-platform/webapi/execute-batch-operations-using-web-api: a
# change set is all-or-nothing; outside change sets processing stops at the first error unless `Prefer:
# odata.continue-on-error`.


def part(subject: str, content_id: int | None = None) -> str:
    head = "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
    if content_id is not None:
        head += f"Content-ID: {content_id}\r\n"
    return (
        f"{head}\r\nPOST /api/data/v9.2/tasks HTTP/1.1\r\nContent-Type: application/json; type=entry\r\n\r\n"
        f'{{"subject": "{subject}"}}\r\n'
    )


def post_batch(emulator: Emulator, body: str, **headers: str) -> requests.Response:
    content_type = {"Content-Type": "multipart/mixed; boundary=batch_X"}
    return requests.post(
        emulator.url + "$batch", data=body.encode(), headers={**HEADERS, **content_type, **headers}, timeout=10
    )


def test_a_change_set_with_a_value_too_long_rolls_back(emulator: Emulator) -> None:
    changeset = "".join(f"--changeset_Y\r\n{part(s, i)}" for i, s in enumerate(["cs ok", "s" * 201], 1))
    body = (
        "--batch_X\r\nContent-Type: multipart/mixed; boundary=changeset_Y\r\n\r\n"
        f"{changeset}--changeset_Y--\r\n--batch_X--\r\n"
    )
    response = post_batch(emulator, body)
    assert response.status_code == 400
    assert "HTTP/1.1 400 Bad Request" in response.text and "0x80044331" in response.text
    assert subjects(emulator, "tasks", "cs ok") == []


@pytest.mark.parametrize("continue_on_error", [False, True])
def test_outside_change_sets_a_value_too_long_fails_its_part(emulator: Emulator, continue_on_error: bool) -> None:
    body = "".join(f"--batch_X\r\n{part(s)}" for s in ["before", "s" * 201, "after"]) + "--batch_X--\r\n"
    prefer = {"Prefer": "odata.continue-on-error"} if continue_on_error else {}
    response = post_batch(emulator, body, **prefer)
    assert response.status_code == (200 if continue_on_error else 400)
    assert "0x80044331" in response.text
    assert subjects(emulator, "tasks", "before") == ["before"]
    assert subjects(emulator, "tasks", "after") == (["after"] if continue_on_error else [])


def test_a_columns_definition_says_its_max_length(emulator: Emulator) -> None:
    # Learn: https://learn.microsoft.com/power-apps/developer/data-platform/webapi/query-metadata-web-api and
    # StringAttributeMetadata.MaxLength (…/webapi/reference/stringattributemetadata). MaxLength belongs to the derived
    # String and Memo types, so it is read without a $select (selecting it needs a cast to the derived type).
    path = "EntityDefinitions(LogicalName='task')/Attributes"
    attributes = {a["LogicalName"]: a for a in send(emulator, "GET", path).json()["value"]}
    assert attributes["subject"]["MaxLength"] == 200 and attributes["description"]["MaxLength"] == 2000
    assert "MaxLength" not in attributes["scheduledend"]


def test_a_count_inside_a_batch_answers_its_number_as_text(emulator: Emulator) -> None:
    # Learn: https://learn.microsoft.com/power-apps/developer/data-platform/webapi/execute-batch-operations-using-web-api
    # (GET requests outside change sets) and …/webapi/query/count-rows (`/$count` answers the number as text).
    get_count = (
        "--batch_X\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
        "GET /api/data/v9.2/contacts/$count HTTP/1.1\r\n\r\n\r\n--batch_X--\r\n"
    )
    response = post_batch(emulator, get_count)
    assert response.status_code == 200
    assert "HTTP/1.1 200 OK" in response.text and "Content-Type: text/plain" in response.text
    assert re.search("Content-Type: text/plain\r\n\r\n\ufeff?3\r\n", response.text)  # the three contacts
