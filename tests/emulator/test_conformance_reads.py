"""The emulator's read side in raw HTTP, held to Microsoft Learn's documented Dataverse Web API behaviour.

Each test cites the Learn page it follows (https://learn.microsoft.com/power-apps/developer/data-platform/...).
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import requests

from devtools.emulator.schema import TABLES
from devtools.emulator.server import Emulator
from devtools.emulator.store import Store
from tests.emulator.conftest import CONTOSO, FABRIKAM, LONER, MULLER, OBRIEN, REP, STAMP
from tests.emulator.test_conformance import HEADERS, error_code, get, send

BOM = b"\xef\xbb\xbf"
CRM = "Microsoft.Dynamics.CRM."
FORMATTED = "OData.Community.Display.V1.FormattedValue"
TOTAL = f"@{CRM}totalrecordcount"
EXCEEDED = f"@{CRM}totalrecordcountlimitexceeded"


def include(*names: str) -> dict[str, str]:
    return {"Prefer": f'odata.include-annotations="{",".join(names)}"'}


def many_accounts(store: Store, count: int) -> None:
    """`count` more accounts, loaded straight into the store (no request per row)."""
    rows = [
        {"accountid": str(uuid.uuid4()), "name": f"Bulk {i}", "createdon": STAMP, "modifiedon": STAMP}
        for i in range(count)
    ]
    store.insert_many(TABLES["account"], rows)


def delta_link(emulator: Emulator) -> str:
    link = get(emulator, "contacts?$select=lastname", Prefer="odata.track-changes").json()["@odata.deltaLink"]
    return str(link)


def token_of(link: str) -> str:
    return link.split("$deltatoken=")[1]


# ---- 1. $count as a path segment ------------------------------------------------------------------------------------


def test_count_segment_answers_the_number_alone_as_text_plain(emulator: Emulator) -> None:
    # webapi/query/count-rows: `GET accounts/$count` → `Content-Type: text/plain`, body `10`; the count "includes the
    # UTF-8 byte order mark (BOM)" (webapi/retrieve-entity-using-web-api, "Retrieve navigation property values").
    response = get(emulator, "accounts/$count")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/plain"
    assert response.content == BOM + b"2"
    assert int(response.content.decode("utf-8-sig")) == 2
    assert get(emulator, "contacts/$count?$filter=_parentcustomerid_value eq null").content == BOM + b"1"


def test_count_segment_counts_at_most_5000(emulator: Emulator, store: Store) -> None:
    # webapi/query/count-rows: counts go "up to 5,000" (beyond: the RetrieveTotalRecordCount function)
    many_accounts(store, 5000)
    assert get(emulator, "accounts/$count").content == BOM + b"5000"


def test_count_segment_on_a_delta_link_counts_the_changes(emulator: Emulator) -> None:
    # use-change-tracking-synchronize-data-external-systems, "Retrieve count of the changes made in tables":
    # `GET accounts/$count?$deltatoken=<token>`
    token = token_of(delta_link(emulator))
    assert get(emulator, f"contacts/$count?$deltatoken={token}").content == BOM + b"0"
    send(emulator, "PATCH", f"contacts({MULLER})", {"jobtitle": "CEO"}, **{"If-Match": "*"})
    send(emulator, "DELETE", f"contacts({LONER})")
    send(emulator, "POST", "contacts", {"lastname": "New"})
    assert get(emulator, f"contacts/$count?$deltatoken={token}").content == BOM + b"3"


def test_count_segment_only_exists_on_an_entity_set(emulator: Emulator) -> None:
    response = get(emulator, f"accounts({CONTOSO})/$count")
    assert response.status_code == 404 and error_code(response) == "0x8006088a"


# ---- 2. $count=true and the total record count annotations -----------------------------------------------------------


def test_count_true_gives_odata_count_and_no_annotation_unasked(emulator: Emulator, store: Store) -> None:
    # webapi/query/count-rows: the totalrecordcount annotations come through `Prefer: odata.include-annotations`
    many_accounts(store, 5001)
    body = get(emulator, "accounts?$select=name&$count=true", Prefer="odata.maxpagesize=3").json()
    assert body["@odata.count"] == 5000
    assert TOTAL not in body and EXCEEDED not in body


def test_total_record_count_annotations_below_the_limit(emulator: Emulator) -> None:
    # webapi/query/count-rows: fewer than 5,000 → the actual count, totalrecordcount the same, limitexceeded false
    prefer = include(f"{CRM}totalrecordcount", f"{CRM}totalrecordcountlimitexceeded")
    body = get(emulator, "contacts?$select=fullname&$count=true", **prefer).json()
    assert (body["@odata.count"], body[TOTAL], body[EXCEEDED]) == (3, 3, False)


def test_total_record_count_annotations_beyond_the_limit(emulator: Emulator, store: Store) -> None:
    # webapi/query/count-rows: more than 5,000 → 5000, 5000, true
    many_accounts(store, 5001)
    response = get(emulator, "accounts?$select=name&$count=true", **include(f"{CRM}*"))
    body = response.json()
    assert (body["@odata.count"], body[TOTAL], body[EXCEEDED]) == (5000, 5000, True)
    assert response.headers["Preference-Applied"] == f'odata.include-annotations="{CRM}*"'


def test_total_record_count_is_minus_one_without_count_true(emulator: Emulator) -> None:
    # webapi/query/count-rows: "If you don't include the $count=true query option, the total
    # @Microsoft.Dynamics.CRM.totalrecordcount value is -1." (limitexceeded: false; the page does not say)
    body = get(emulator, "accounts?$select=name", **include("*")).json()
    assert "@odata.count" not in body
    assert (body[TOTAL], body[EXCEEDED]) == (-1, False)


# ---- 3. Conditional retrieval ----------------------------------------------------------------------------------------


def test_if_none_match_with_the_current_etag_answers_304_without_a_body(emulator: Emulator) -> None:
    # webapi/perform-conditional-operations-using-web-api, "Conditional retrievals"
    etag = get(emulator, f"accounts({CONTOSO})?$select=name").json()["@odata.etag"]
    response = get(emulator, f"accounts({CONTOSO})?$select=name", **{"If-None-Match": etag})
    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["ETag"] == etag


def test_if_none_match_with_another_etag_or_null_answers_200(emulator: Emulator) -> None:
    # webapi/perform-conditional-operations-using-web-api: "If the data has changed, the request returns 200 OK";
    # webapi/compose-http-requests-handle-errors: every request should send `If-None-Match: null`
    etag = get(emulator, f"accounts({CONTOSO})?$select=name").json()["@odata.etag"]
    send(emulator, "PATCH", f"accounts({CONTOSO})", {"name": "Contoso Ltd"}, **{"If-Match": "*"})
    changed = get(emulator, f"accounts({CONTOSO})?$select=name", **{"If-None-Match": etag})
    assert changed.status_code == 200 and changed.json()["name"] == "Contoso Ltd"
    assert get(emulator, f"accounts({CONTOSO})?$select=name").status_code == 200  # HEADERS send `null`


def test_no_304_with_expand_or_annotations(emulator: Emulator) -> None:
    # webapi/perform-conditional-operations-using-web-api: "Query must not include $expand", "Query must not include
    # annotations"
    path = f"contacts({OBRIEN})?$select=fullname"
    etag = get(emulator, path).json()["@odata.etag"]
    expanded = get(emulator, f"{path}&$expand=parentcustomerid_account($select=name)", **{"If-None-Match": etag})
    assert expanded.status_code == 200
    annotated = get(emulator, path, **{"If-None-Match": etag}, **include(FORMATTED))
    assert annotated.status_code == 200


# ---- 4. Prefer: return=representation --------------------------------------------------------------------------------


def test_create_with_data_returned_honours_select_and_expand(emulator: Emulator) -> None:
    # webapi/create-entity-web-api, "Create with data returned" and "Associate table rows on create": 201,
    # `$select` and `$expand`, no OData-EntityId header
    response = send(
        emulator,
        "POST",
        "contacts?$select=lastname&$expand=parentcustomerid_account($select=name)",
        {"lastname": "Lovelace", "parentcustomerid_account@odata.bind": f"/accounts({CONTOSO})"},
        Prefer="return=representation",
    )
    assert response.status_code == 201
    assert "OData-EntityId" not in response.headers
    assert response.headers["Preference-Applied"] == "return=representation"
    body = response.json()
    assert body["@odata.context"].endswith("$metadata#contacts(lastname,parentcustomerid_account(name))/$entity")
    assert body["lastname"] == "Lovelace" and "firstname" not in body
    assert body["parentcustomerid_account"]["name"] == "Contoso"


def test_update_with_data_returned_honours_select_and_ignores_expand(emulator: Emulator) -> None:
    # webapi/update-delete-entities-using-web-api, "Update with data returned": 200, `$select`; "The $expand query
    # option will be ignored if used."
    response = send(
        emulator,
        "PATCH",
        f"contacts({OBRIEN})?$select=jobtitle&$expand=parentcustomerid_account($select=name)",
        {"jobtitle": "Buyer"},
        Prefer="return=representation",
        **{"If-Match": "*"},
    )
    assert response.status_code == 200
    body = response.json()
    assert body["jobtitle"] == "Buyer" and body["contactid"] == OBRIEN
    assert "parentcustomerid_account" not in body and "lastname" not in body


def test_a_write_with_an_unknown_selected_column_is_refused_before_it_happens(emulator: Emulator) -> None:
    # web-api-client-errors (troubleshooting): "Could not find a property named …", 400, code 0x0
    response = send(emulator, "POST", "leads?$select=nmae", {"subject": "Ghost"}, Prefer="return=representation")
    assert response.status_code == 400 and error_code(response) == "0x0"
    assert get(emulator, "leads?$filter=subject eq 'Ghost'").json()["value"] == []


# ---- 5. A row's single-valued navigation property (and property) as a path -------------------------------------------


def test_a_single_valued_navigation_property_returns_the_related_row(emulator: Emulator) -> None:
    # webapi/retrieve-entity-using-web-api, "Retrieve navigation property values":
    # `GET accounts(<id>)/primarycontactid?$select=fullname` → the contact, `…$metadata#contacts(fullname)/$entity`
    send(emulator, "PATCH", f"accounts({CONTOSO})", {"primarycontactid@odata.bind": f"/contacts({OBRIEN})"})
    response = get(emulator, f"accounts({CONTOSO})/primarycontactid?$select=fullname")
    assert response.status_code == 200
    body = response.json()
    assert body["@odata.context"].endswith("$metadata#contacts(fullname)/$entity")
    assert set(body) == {"@odata.context", "@odata.etag", "fullname", "contactid"}
    assert (body["fullname"], body["contactid"]) == ("Siobhán O'Brien", OBRIEN)
    assert response.headers["ETag"] == body["@odata.etag"]
    account = get(emulator, f"contacts({OBRIEN})/parentcustomerid_account?$select=name").json()
    assert (account["accountid"], account["name"]) == (CONTOSO, "Contoso")


def test_an_empty_lookup_as_a_path_answers_204(emulator: Emulator) -> None:
    # Learn does not say; OData 4.0 Protocol 11.2.6: "If no entity is related, the service returns 204 No Content."
    assert get(emulator, f"contacts({LONER})/parentcustomerid_account").status_code == 204
    assert get(emulator, f"contacts({OBRIEN})/parentcustomerid_contact").status_code == 204  # it is an account


def test_a_navigation_path_checks_its_select_against_the_related_table(emulator: Emulator) -> None:
    # web-api-client-errors (troubleshooting): an unknown property is a 400 with code 0x0
    response = get(emulator, f"contacts({OBRIEN})/parentcustomerid_account?$select=fullname")
    assert response.status_code == 400 and error_code(response) == "0x0"
    assert "'Microsoft.Dynamics.CRM.account'" in response.json()["error"]["message"]


def test_an_unknown_segment_or_row_below_a_row_is_not_found(emulator: Emulator) -> None:
    # web-api-client-errors (troubleshooting): "Resource not found for the segment", 404, 0x8006088a
    response = get(emulator, f"accounts({CONTOSO})/nosuchthing")
    assert response.status_code == 404 and error_code(response) == "0x8006088a"
    missing = get(emulator, f"accounts({uuid.uuid4()})/primarycontactid")
    assert missing.status_code == 404 and error_code(missing) == "0x80040217"


def test_a_single_property_value_as_a_path(emulator: Emulator) -> None:
    # webapi/retrieve-entity-using-web-api, "Retrieve a single property value": `{"@odata.context": …, "value": …}`
    body = get(emulator, f"accounts({CONTOSO})/name").json()
    assert body == {"@odata.context": f"{emulator.url}$metadata#accounts({CONTOSO})/name", "value": "Contoso"}


# ---- 6. $expand with /$ref ----------------------------------------------------------------------------------------


def test_expand_ref_returns_references_to_the_related_rows(emulator: Emulator) -> None:
    # webapi/query/join-tables, "Return references": `$expand=primarycontactid/$ref` → `{"@odata.id": <url>}`, and the
    # lookup's `_x_value` comes with it
    rows = get(emulator, "contacts?$select=lastname&$expand=parentcustomerid_account/$ref&$orderby=lastname").json()
    by_name: dict[str, Any] = {row["lastname"]: row for row in rows["value"]}
    assert by_name["O'Brien"]["parentcustomerid_account"] == {"@odata.id": f"{emulator.url}accounts({CONTOSO})"}
    assert by_name["O'Brien"]["_parentcustomerid_value"] == CONTOSO
    assert by_name["Müller"]["parentcustomerid_account"] == {"@odata.id": f"{emulator.url}accounts({FABRIKAM})"}
    assert by_name["Loner"]["parentcustomerid_account"] is None


def test_expand_ref_on_a_collection_valued_navigation_property_is_refused(emulator: Emulator) -> None:
    # webapi/query/join-tables: "You can only use the /$ref option with single-valued navigation properties."
    response = get(emulator, "accounts?$select=name&$expand=Account_Tasks/$ref")
    assert response.status_code == 400 and error_code(response) == "0x80060888"
    assert (
        response.json()["error"]["message"] == "Expand with $ref is only supported on lookup type navigation property."
    )


# ---- 7. Annotations ---------------------------------------------------------------------------------------------


def test_lookups_carry_their_associated_navigation_property(emulator: Emulator) -> None:
    # webapi/query/select-columns, "Lookup property data"
    prefer = include(f"{CRM}associatednavigationproperty", f"{CRM}lookuplogicalname")
    row = get(emulator, f"contacts({OBRIEN})?$select=_parentcustomerid_value,_ownerid_value", **prefer).json()
    assert row[f"_parentcustomerid_value@{CRM}associatednavigationproperty"] == "parentcustomerid_account"
    assert row[f"_parentcustomerid_value@{CRM}lookuplogicalname"] == "account"
    assert row[f"_ownerid_value@{CRM}associatednavigationproperty"] == "ownerid"
    assert row[f"_ownerid_value@{CRM}lookuplogicalname"] == "systemuser"
    assert f"_parentcustomerid_value@{FORMATTED}" not in row


def test_a_wildcard_asks_for_every_annotation_it_matches(emulator: Emulator) -> None:
    # webapi/compose-http-requests-handle-errors, "Request annotations": "You can also use the '*' character as a
    # wildcard"
    path = f"contacts({OBRIEN})?$select=_parentcustomerid_value,statecode"
    crm = get(emulator, path, **include(f"{CRM}*")).json()
    assert crm[f"_parentcustomerid_value@{CRM}associatednavigationproperty"] == "parentcustomerid_account"
    assert crm[f"_parentcustomerid_value@{CRM}lookuplogicalname"] == "account"
    assert not [k for k in crm if k.endswith(FORMATTED)]
    everything = get(emulator, path, **include("*")).json()
    assert everything[f"_parentcustomerid_value@{FORMATTED}"] == "Contoso"
    assert everything[f"statecode@{FORMATTED}"] == "Active"
    assert everything[f"_parentcustomerid_value@{CRM}lookuplogicalname"] == "account"


def test_state_and_status_have_their_labels(emulator: Emulator) -> None:
    # webapi/query/overview, "Retrieve Data": account statecode 0 "Active", statuscode 1 "Active";
    # reference/entities/lead: statecode 0 "Open", statuscode 1 "New"
    account = get(emulator, f"accounts({CONTOSO})?$select=statecode,statuscode", **include(FORMATTED)).json()
    assert (account[f"statecode@{FORMATTED}"], account[f"statuscode@{FORMATTED}"]) == ("Active", "Active")
    lead = send(emulator, "POST", "leads", {"subject": "Web"}).headers["OData-EntityId"].rsplit("(", 1)[1][:-1]
    row = get(emulator, f"leads({lead})?$select=statecode,statuscode", **include(FORMATTED)).json()
    assert (row[f"statecode@{FORMATTED}"], row[f"statuscode@{FORMATTED}"]) == ("Open", "New")


def test_dates_numbers_money_choices_and_yes_no_are_formatted(emulator: Emulator) -> None:
    # webapi/query/select-columns, "Formatted values": `$20,000.00`, `4/7/2023 2:59 PM` (the user's time zone: UTC
    # here); webapi/query-data-web-api: `9,500`; reference/entities/account industrycode 7 "Consulting";
    # reference/entities/contact donotbulkemail "Do Not Allow" / "Allow"
    send(emulator, "PATCH", f"accounts({CONTOSO})", {"numberofemployees": 9500, "revenue": 20000})
    columns = "createdon,numberofemployees,revenue,industrycode,name"
    account = get(emulator, f"accounts({CONTOSO})?$select={columns}", **include(FORMATTED)).json()
    assert account[f"createdon@{FORMATTED}"] == "1/1/2026 12:00 AM"
    assert account[f"numberofemployees@{FORMATTED}"] == "9,500"
    assert account[f"revenue@{FORMATTED}"] == "$20,000.00"
    assert account[f"industrycode@{FORMATTED}"] == "Consulting"
    assert f"name@{FORMATTED}" not in account  # strings have none
    lead = str(uuid.uuid4())
    send(emulator, "PATCH", f"leads({lead})", {"subject": "x", "abm_salesreadyon": "2023-04-07T21:59:01Z"})
    row = get(emulator, f"leads({lead})?$select=abm_salesreadyon", **include(FORMATTED)).json()
    assert row[f"abm_salesreadyon@{FORMATTED}"] == "4/7/2023 9:59 PM"
    contacts = get(emulator, "contacts?$select=donotbulkemail&$orderby=lastname", **include(FORMATTED)).json()
    labels = [r.get(f"donotbulkemail@{FORMATTED}") for r in contacts["value"]]
    assert labels == [None, "Do Not Allow", "Allow"]  # Loner has no value; Müller opted out; O'Brien did not


def test_a_date_only_column_is_formatted_as_a_date(emulator: Emulator) -> None:
    # webapi/query/select-columns, "Formatted values": "Formatted date values"
    opportunity = str(uuid.uuid4())
    send(emulator, "PATCH", f"opportunities({opportunity})", {"name": "Deal", "actualclosedate": "2023-01-30"})
    row = get(emulator, f"opportunities({opportunity})?$select=actualclosedate", **include(FORMATTED)).json()
    assert row[f"actualclosedate@{FORMATTED}"] == "1/30/2023"


# ---- 8. Error shapes -------------------------------------------------------------------------------------------------


def test_an_expired_delta_token_is_expired_version_stamp(emulator: Emulator) -> None:
    # reference/web-service-error-codes: ExpiredVersionStamp 0x80044352 "Version stamp associated with the client has
    # expired. Please perform a full sync."
    for path in ("contacts?$select=lastname&$deltatoken=999999999", "contacts/$count?$deltatoken=999999999"):
        response = get(emulator, path)
        assert response.status_code == 400 and error_code(response) == "0x80044352"
        assert response.json()["error"]["message"] == (
            "Version stamp associated with the client has expired. Please perform a full sync."
        )


@pytest.mark.parametrize(
    "path",
    [
        "accounts?$select=Name&$filter=name eq 'nobody'",
        f"accounts({uuid.uuid4()})?$select=Name",
        "accounts/$count?$select=Name",
        "contacts?$select=fullname&$expand=parentcustomerid_account($select=Name)",
    ],
)
def test_an_unknown_selected_property_is_refused_even_when_no_row_matches(emulator: Emulator, path: str) -> None:
    # Troubleshoot Dataverse Web API client errors (learn.microsoft.com/troubleshoot/power-platform/dataverse/
    # dataverse-web-api-and-sdk/web-api-client-errors): `$select=Name` → 400, code 0x0,
    # "Could not find a property named 'Name' on type 'Microsoft.Dynamics.CRM.account'."
    response = get(emulator, path)
    assert response.status_code == 400 and error_code(response) == "0x0"
    message = response.json()["error"]["message"]
    assert message == "Could not find a property named 'Name' on type 'Microsoft.Dynamics.CRM.account'."


# ---- 9. Query functions the emulator does not implement --------------------------------------------------------------


@pytest.mark.parametrize(
    "function",
    [
        'Microsoft.Dynamics.CRM.Between(PropertyName=\'numberofemployees\',PropertyValues=["5","2000"])',
        "Microsoft.Dynamics.CRM.LastXDays(PropertyName='createdon',PropertyValue=7)",
        "Microsoft.Dynamics.CRM.EqualUserId(PropertyName='ownerid')",
    ],
)
def test_documented_query_functions_the_emulator_lacks_are_refused_by_name(emulator: Emulator, function: str) -> None:
    # webapi/query/filter-rows, "Dataverse query functions": the emulator implements In and NotIn only
    response = get(emulator, f"accounts?$select=name&$filter={function}")
    assert response.status_code == 400
    name = function.split("(", maxsplit=1)[0]
    assert f"'{name}'" in response.json()["error"]["message"]
    assert "not supported by the emulator" in response.json()["error"]["message"]


def test_an_undocumented_function_is_unknown(emulator: Emulator) -> None:
    response = get(emulator, "accounts?$select=name&$filter=Microsoft.Dynamics.CRM.Nope(PropertyName='name')")
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith(f"An unknown function with name '{CRM}Nope' was found.")


def test_an_alias_without_a_value_is_null(emulator: Emulator) -> None:
    # webapi/query/overview, "Use parameter aliases with query options": "If the alias isn't assigned a value, it's
    # assumed to be null." (its example: `$filter=@p1 ne @p3&@p1=revenue`)
    response = get(emulator, "accounts?$select=name&$orderby=@p2 desc&$filter=@p1 ne @p3&@p1=revenue&@p2=name")
    assert [row["name"] for row in response.json()["value"]] == ["Fabrikam & Co", "Contoso"]


def test_reads_keep_working_for_the_owner_lookup(emulator: Emulator) -> None:
    # webapi/query/join-tables, "Expand single-valued navigation properties" (createdby, ownerid on principal)
    row = get(emulator, f"accounts({CONTOSO})?$select=name&$expand=ownerid($select=fullname)").json()
    assert row["ownerid"]["systemuserid"] == REP
    assert requests.get(emulator.url + "accounts", headers=HEADERS, timeout=10).status_code == 200
