"""The `$batch` codec: exact request bytes, validation before encoding, response decoding and per-item alignment."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest

from dataverse.batch import (
    BatchRequest,
    BatchResponse,
    ChangeSet,
    ChangeSetResponse,
    decode_batch,
    encode_batch,
    match,
)
from dataverse.errors import DataverseBadRequest, DataverseDuplicate, DataverseError, DataverseNotFound

ORG = "https://contoso.crm4.dynamics.com"
LEAD_ID = "425195a4-7a75-e911-a97a-000d3a34a1bd"
TASK_ID = "495195a4-7a75-e911-a97a-000d3a34a1bd"


def crlf(text: str) -> bytes:
    """A response written with LF in the test source, sent with CRLF as Dataverse does."""
    return text.replace("\n", "\r\n").encode("utf-8")


def lead_and_task() -> ChangeSet:
    return ChangeSet(
        [
            BatchRequest("POST", "leads", {"lastname": "Müller"}, content_id="1"),
            BatchRequest(
                "POST",
                "tasks",
                {"subject": "Call back", "regardingobjectid_lead_task@odata.bind": "$1"},
                content_id="2",
            ),
        ]
    )


# ---- encoding ------------------------------------------------------------------------------------------------------


def test_a_change_set_and_a_get_encode_to_the_exact_bytes_dataverse_expects() -> None:
    items = [lead_and_task(), BatchRequest("GET", "leads?$select=fullname")]

    content_type, body = encode_batch(items, boundary="b1")

    assert content_type == "multipart/mixed; boundary=batch_b1"
    assert body == (
        b"--batch_b1\r\n"
        b"Content-Type: multipart/mixed; boundary=changeset_b1_1\r\n"
        b"\r\n"
        b"--changeset_b1_1\r\n"
        b"Content-Type: application/http\r\n"
        b"Content-Transfer-Encoding: binary\r\n"
        b"Content-ID: 1\r\n"
        b"\r\n"
        b"POST /api/data/v9.2/leads HTTP/1.1\r\n"
        b"Content-Type: application/json; type=entry\r\n"
        b"\r\n"
        b'{"lastname":"M\xc3\xbcller"}\r\n'
        b"--changeset_b1_1\r\n"
        b"Content-Type: application/http\r\n"
        b"Content-Transfer-Encoding: binary\r\n"
        b"Content-ID: 2\r\n"
        b"\r\n"
        b"POST /api/data/v9.2/tasks HTTP/1.1\r\n"
        b"Content-Type: application/json; type=entry\r\n"
        b"\r\n"
        b'{"subject":"Call back","regardingobjectid_lead_task@odata.bind":"$1"}\r\n'
        b"--changeset_b1_1--\r\n"
        b"\r\n"
        b"--batch_b1\r\n"
        b"Content-Type: application/http\r\n"
        b"Content-Transfer-Encoding: binary\r\n"
        b"\r\n"
        b"GET /api/data/v9.2/leads?$select=fullname HTTP/1.1\r\n"
        b"\r\n"
        b"\r\n"
        b"--batch_b1--\r\n"
    )
    assert body.endswith(b"--batch_b1--\r\n")
    assert re.search(rb"(?<!\r)\n", body) is None  # no bare LF anywhere


def test_content_id_references_in_urls_are_written_as_is_and_headers_are_passed_on() -> None:
    items = [
        ChangeSet(
            [
                BatchRequest("POST", "accounts", {"name": "Contoso"}, content_id="1"),
                BatchRequest("PATCH", "$1", {"revenue": 5}, headers={"If-Match": "*"}, content_id="2"),
                BatchRequest("PUT", "$1/primarycontactid/$ref", {"@odata.id": "$1"}, content_id="3"),
            ]
        )
    ]

    _, body = encode_batch(items, boundary="b2", api_path="/api/data/v9.1/")

    text = body.decode()
    assert "POST /api/data/v9.1/accounts HTTP/1.1\r\n" in text
    assert "PATCH $1 HTTP/1.1\r\nContent-Type: application/json; type=entry\r\nIf-Match: *\r\n\r\n" in text
    assert "PUT $1/primarycontactid/$ref HTTP/1.1\r\n" in text


def test_change_set_requests_without_a_content_id_are_numbered_around_the_explicit_ones() -> None:
    items = [
        ChangeSet(
            [BatchRequest("POST", "leads", {"lastname": "A"}), BatchRequest("POST", "leads", {}, content_id="1")]
        ),
        ChangeSet([BatchRequest("DELETE", f"leads({LEAD_ID})")]),
    ]

    _, body = encode_batch(items, boundary="b3")

    assert re.findall(r"Content-ID: (\S+)", body.decode()) == ["2", "1", "3"]
    assert "DELETE /api/data/v9.2/leads(" + LEAD_ID + ") HTTP/1.1\r\n\r\n\r\n--changeset_b3_2--" in body.decode()


def test_boundaries_are_random_and_the_content_type_names_the_one_in_the_body() -> None:
    items = [ChangeSet([BatchRequest("DELETE", f"leads({LEAD_ID})")]), BatchRequest("GET", "leads")]

    first_type, first_body = encode_batch(items)
    second_type, _ = encode_batch(items)

    assert first_type != second_type
    boundary = first_type.split("boundary=")[1]
    assert re.fullmatch(r"batch_[0-9a-f-]{36}", boundary)
    assert first_body.startswith(f"--{boundary}\r\n".encode())
    assert first_body.endswith(f"--{boundary}--\r\n".encode())
    assert re.search(rb"boundary=changeset_[0-9a-f-]{36}\r\n", first_body)


@pytest.mark.parametrize(
    ("items", "message"),
    [
        pytest.param(
            [BatchRequest("PATCH", f"leads({LEAD_ID})", {"subject": "x"})] * 1001, "at most 1000", id="1001 requests"
        ),
        pytest.param(
            [
                ChangeSet([BatchRequest("DELETE", "leads(1)")] * 500),
                ChangeSet([BatchRequest("DELETE", "leads(1)")] * 501),
            ],
            "at most 1000",
            id="1001 requests in change sets",
        ),
        pytest.param([ChangeSet([BatchRequest("GET", "leads")])], "GET is not allowed", id="GET in a change set"),
        pytest.param([ChangeSet([])], "at least one request", id="empty change set"),
        pytest.param(
            [
                ChangeSet(
                    [
                        BatchRequest("POST", "leads", {}, content_id="1"),
                        BatchRequest("POST", "tasks", {}, content_id="1"),
                    ]
                )
            ],
            "duplicate Content-ID '1'",
            id="duplicate Content-ID",
        ),
        pytest.param(
            [
                ChangeSet(
                    [
                        BatchRequest("POST", "tasks", {"regardingobjectid_lead_task@odata.bind": "$1"}, content_id="2"),
                        BatchRequest("POST", "leads", {}, content_id="1"),
                    ]
                )
            ],
            r"reference \$1 names no Content-ID declared earlier",
            id="bind to a later Content-ID",
        ),
        pytest.param(
            [ChangeSet([BatchRequest("PATCH", "$7", {"subject": "x"}, content_id="1")])],
            r"reference \$7 names no Content-ID",
            id="URL reference to an undeclared Content-ID",
        ),
        pytest.param(
            [
                ChangeSet([BatchRequest("POST", "leads", {}, content_id="1")]),
                ChangeSet([BatchRequest("PATCH", "$1", {"subject": "x"})]),
            ],
            r"reference \$1 names no Content-ID",
            id="reference into another change set",
        ),
        pytest.param(
            [BatchRequest("PATCH", "$1", {"subject": "x"})],
            r"reference \$1 is only allowed inside a change set",
            id="reference outside a change set",
        ),
        pytest.param(
            [BatchRequest("POST", "leads", {}, content_id="1")],
            "only allowed inside a change set",
            id="Content-ID outside a change set",
        ),
        pytest.param([BatchRequest("MERGE", "leads(1)")], "method 'MERGE' is not one of", id="unknown method"),
        pytest.param([], "at least one request", id="empty batch"),
        pytest.param([BatchRequest("GET", "/api/data/v9.2/leads")], "relative to the API root", id="absolute path"),
        pytest.param(
            [BatchRequest("GET", "leads?$filter=lastname eq 'x'")], "percent-encode", id="whitespace in the URL"
        ),
        pytest.param(
            [BatchRequest("PATCH", "leads(1)", {}, headers={"If-Match": "*\r\nX-Evil: 1"})],
            "invalid header",
            id="CRLF in a header value",
        ),
    ],
)
def test_batches_dataverse_would_reject_raise_before_anything_is_encoded(items: list[Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        encode_batch(items, boundary="b")


def test_a_reference_to_an_earlier_content_id_in_a_bind_list_or_odata_id_is_accepted() -> None:
    items = [
        ChangeSet(
            [
                BatchRequest("POST", "contacts", {"lastname": "A"}, content_id="1"),
                BatchRequest("POST", "accounts", {"name": "B", "contact_customer_accounts@odata.bind": ["$1"]}),
                BatchRequest("PUT", "$1/parentcustomerid_account/$ref", {"@odata.id": "$2"}),
            ]
        )
    ]

    _, body = encode_batch(items, boundary="b")

    assert body.count(b"Content-ID: ") == 3


def test_a_chosen_boundary_that_occurs_in_a_body_is_refused() -> None:
    with pytest.raises(ValueError, match="occurs inside a request"):
        encode_batch([BatchRequest("POST", "notes", {"notetext": "see --batch_b1 above"})], boundary="b1")


def test_json_default_serialises_values_json_does_not_know() -> None:
    lead_id = uuid.UUID(LEAD_ID)

    _, body = encode_batch([BatchRequest("POST", "tasks", {"id": lead_id})], boundary="b", json_default=str)

    assert f'{{"id":"{LEAD_ID}"}}\r\n'.encode() in body


# ---- decoding ------------------------------------------------------------------------------------------------------

SUCCESS = f"""--batchresponse_f27e
Content-Type: multipart/mixed; boundary=changesetresponse_64cc

--changesetresponse_64cc
Content-Type: application/http
Content-Transfer-Encoding: binary
Content-ID: 1

HTTP/1.1 204 No Content
OData-Version: 4.0
Location: {ORG}/api/data/v9.2/leads({LEAD_ID})
OData-EntityId: {ORG}/api/data/v9.2/leads({LEAD_ID})


--changesetresponse_64cc
Content-Type: application/http
Content-Transfer-Encoding: binary
Content-ID: 2

HTTP/1.1 204 No Content
OData-Version: 4.0
Location:{ORG}/api/data/v9.2/tasks({TASK_ID})
OData-EntityId:{ORG}/api/data/v9.2/tasks({TASK_ID})


--changesetresponse_64cc--
--batchresponse_f27e
Content-Type: application/http
Content-Transfer-Encoding: binary

HTTP/1.1 200 OK
Content-Type: application/json; odata.metadata=minimal; odata.streaming=true
OData-Version: 4.0

{{
  "@odata.context": "{ORG}/api/data/v9.2/$metadata#leads(fullname)",
  "value": [
    {{"@odata.etag": "W/\\"77181173\\"", "fullname": "Anna Müller", "leadid": "{LEAD_ID}"}}
  ]
}}
--batchresponse_f27e--
"""


def test_a_successful_change_set_and_get_decode_with_entity_ids_and_a_json_body() -> None:
    result = decode_batch("multipart/mixed; boundary=batchresponse_f27e", crlf(SUCCESS))

    changeset, get = result.responses
    assert isinstance(changeset, ChangeSetResponse)
    assert isinstance(get, BatchResponse)
    assert changeset.ok
    assert changeset.error is None
    assert [r.status for r in changeset.responses] == [204, 204]
    assert [r.content_id for r in changeset.responses] == ["1", "2"]
    assert [r.entity_id for r in changeset.responses] == [uuid.UUID(LEAD_ID), uuid.UUID(TASK_ID)]
    assert changeset.responses[1].headers["odata-entityid"] == f"{ORG}/api/data/v9.2/tasks({TASK_ID})"
    assert changeset.responses[0].body is None
    assert get.status == 200
    assert get.ok
    assert get.error is None
    assert get.headers["odata-version"] == "4.0"
    assert get.body["value"][0] == {"@odata.etag": 'W/"77181173"', "fullname": "Anna Müller", "leadid": LEAD_ID}
    assert get.entity_id is None
    assert result.ok
    assert result.errors == ()
    assert [r.status for r in result.flat] == [204, 204, 200]


def test_the_decoded_success_aligns_with_the_submitted_items() -> None:
    items = [lead_and_task(), BatchRequest("GET", "leads?$select=fullname")]
    result = decode_batch("multipart/mixed; boundary=batchresponse_f27e", crlf(SUCCESS))

    outcomes = match(items, result)

    assert [o.status for o in outcomes] == ["ok", "ok"]
    assert all(o.ok and o.error is None for o in outcomes)
    assert outcomes[0].item is items[0]
    assert [r.entity_id for r in outcomes[0].responses] == [uuid.UUID(LEAD_ID), uuid.UUID(TASK_ID)]
    assert outcomes[1].responses[0].body["value"][0]["fullname"] == "Anna Müller"


FAILED_CHANGESET = """--batchresponse_156d
Content-Type: application/http
Content-Transfer-Encoding: binary
Content-ID: 2

HTTP/1.1 412 Precondition Failed
REQ_ID: 5ecd1cb3-1730-4ffc-909c-d44c22270026
Content-Type: application/json; odata.metadata=minimal
OData-Version: 4.0

{"error":{"code":"0x80040237","message":"Cannot insert duplicate key."}}
--batchresponse_156d--
"""


def test_a_failed_change_set_is_one_duplicate_error_and_later_items_were_not_executed() -> None:
    changeset = lead_and_task()
    items = [changeset, BatchRequest("GET", "leads?$select=fullname"), BatchRequest("DELETE", "leads(1)")]

    result = decode_batch('multipart/mixed; boundary="batchresponse_156d"', crlf(FAILED_CHANGESET))
    outcomes = match(items, result)

    (part,) = result.responses
    assert isinstance(part, BatchResponse)
    assert part.status == 412
    assert not part.ok
    assert isinstance(part.error, DataverseDuplicate)
    assert part.error.code == "0x80040237"
    assert part.error.request_id == "5ecd1cb3-1730-4ffc-909c-d44c22270026"
    assert not result.ok
    assert result.errors == (part.error,)
    assert [o.status for o in outcomes] == ["failed", "not_executed", "not_executed"]
    assert outcomes[0].error is part.error
    assert outcomes[0].responses == (part,)
    assert outcomes[0].failed_request is changeset.requests[1]  # Dataverse named it by Content-ID
    assert outcomes[1].responses == ()
    assert outcomes[1].error is None
    assert outcomes[2].item is items[2]


def test_a_failed_change_set_wrapped_in_a_change_set_multipart_is_also_failed() -> None:
    body = """--batchresponse_a
Content-Type: multipart/mixed; boundary=changesetresponse_b

--changesetresponse_b
Content-Type: application/http
Content-Transfer-Encoding: binary
Content-ID: 1

HTTP/1.1 400 Bad Request
Content-Type: application/json; odata.metadata=minimal

{"error":{"code":"0x80044331","message":"A validation error occurred."}}
--changesetresponse_b--
--batchresponse_a--
"""
    changeset = lead_and_task()
    items = [changeset, BatchRequest("GET", "leads")]

    result = decode_batch("multipart/mixed; boundary=batchresponse_a", crlf(body))
    outcomes = match(items, result)

    part = result.responses[0]
    assert isinstance(part, ChangeSetResponse)
    assert not part.ok
    assert isinstance(part.error, DataverseBadRequest)
    assert [o.status for o in outcomes] == ["failed", "not_executed"]
    assert outcomes[0].error is part.error
    assert outcomes[0].failed_request is changeset.requests[0]


def test_a_failing_request_stops_the_batch_with_a_bad_request_and_the_rest_not_executed() -> None:
    body = """--batchresponse_156da4b8-cd2c-4862-a911-4aaab97c001a
Content-Type: application/http
Content-Transfer-Encoding: binary

HTTP/1.1 400 Bad Request
REQ_ID: 5ecd1cb3-1730-4ffc-909c-d44c22270026
Content-Type: application/json; odata.metadata=minimal
OData-Version: 4.0

{"error":{"code":"0x80044331","message":"The length of 'subject' exceeded the maximum allowed length of '200'."}}
--batchresponse_156da4b8-cd2c-4862-a911-4aaab97c001a--
"""
    items = [BatchRequest("POST", "tasks", {"subject": "x" * 201}), BatchRequest("POST", "tasks", {"subject": "2"})]

    outcomes = match(
        items, decode_batch("multipart/mixed; boundary=batchresponse_156da4b8-cd2c-4862-a911-4aaab97c001a", crlf(body))
    )

    assert [o.status for o in outcomes] == ["failed", "not_executed"]
    error = outcomes[0].error
    assert isinstance(error, DataverseBadRequest)
    assert (error.status, error.code) == (400, "0x80044331")
    assert "exceeded the maximum allowed length of '200'" in error.message


CONTINUE_ON_ERROR = f"""--batchresponse_f44b
Content-Type: application/http
Content-Transfer-Encoding: binary

HTTP/1.1 400 Bad Request
REQ_ID: de4c5227-4a28-4ebd-8ced-3392ece1697b
Content-Type: application/json; odata.metadata=minimal
OData-Version: 4.0

{{"error":{{"code":"0x80044331","message":"A validation error occurred."}}}}
--batchresponse_f44b
Content-Type: application/http
Content-Transfer-Encoding: binary

HTTP/1.1 204 No Content
OData-Version: 4.0
OData-EntityId: {ORG}/api/data/v9.2/tasks({TASK_ID})


--batchresponse_f44b
Content-Type: application/http
Content-Transfer-Encoding: binary

HTTP/1.1 404 Not Found
Content-Type: application/json; odata.metadata=minimal

{{"error":{{"code":"0x80040217","message":"lead With Id = {LEAD_ID} Does Not Exist"}}}}
--batchresponse_f44b
Content-Type: multipart/mixed; boundary=changesetresponse_9

--changesetresponse_9
Content-Type: application/http
Content-Transfer-Encoding: binary
Content-ID: 1

HTTP/1.1 204 No Content
OData-EntityId: {ORG}/api/data/v9.2/leads({LEAD_ID})


--changesetresponse_9
Content-Type: application/http
Content-Transfer-Encoding: binary
Content-ID: 2

HTTP/1.1 204 No Content
OData-EntityId: {ORG}/api/data/v9.2/tasks({TASK_ID})


--changesetresponse_9--
--batchresponse_f44b--
"""


def test_continue_on_error_reports_every_item_with_mixed_success_and_failure() -> None:
    items = [
        BatchRequest("POST", "tasks", {"subject": "x" * 201}),
        BatchRequest("POST", "tasks", {"subject": "ok"}),
        BatchRequest("PATCH", f"leads({LEAD_ID})", {"subject": "gone"}),
        lead_and_task(),
    ]

    result = decode_batch("multipart/mixed; boundary=batchresponse_f44b", crlf(CONTINUE_ON_ERROR))
    outcomes = match(items, result)

    assert [o.status for o in outcomes] == ["failed", "ok", "failed", "ok"]
    assert isinstance(outcomes[0].error, DataverseBadRequest)
    assert outcomes[0].error.request_id == "de4c5227-4a28-4ebd-8ced-3392ece1697b"
    assert outcomes[1].responses[0].entity_id == uuid.UUID(TASK_ID)
    assert isinstance(outcomes[2].error, DataverseNotFound)
    assert [r.entity_id for r in outcomes[3].responses] == [uuid.UUID(LEAD_ID), uuid.UUID(TASK_ID)]
    assert [type(e) for e in result.errors] == [DataverseBadRequest, DataverseNotFound]
    assert not result.ok


def test_a_response_with_lf_only_line_endings_decodes_the_same() -> None:
    lf = decode_batch("multipart/mixed; boundary=batchresponse_f27e", SUCCESS.encode("utf-8"))
    crlf_result = decode_batch("multipart/mixed; boundary=batchresponse_f27e", crlf(SUCCESS))

    assert b"\r" not in SUCCESS.encode("utf-8")
    assert [(r.status, r.entity_id, r.body) for r in lf.flat] == [
        (r.status, r.entity_id, r.body) for r in crlf_result.flat
    ]
    assert len(lf.flat) == 3


def test_a_quoted_boundary_parameter_is_unquoted() -> None:
    result = decode_batch('multipart/mixed;boundary="batchresponse_f27e"', crlf(SUCCESS))

    assert len(result.responses) == 2
    assert isinstance(result.responses[0], ChangeSetResponse)


def test_a_text_body_stays_text() -> None:
    body = """--r
Content-Type: application/http

HTTP/1.1 200 OK
Content-Type: text/plain

42
--r--
"""

    (response,) = decode_batch("multipart/mixed; boundary=r", crlf(body)).flat

    assert response.body == "42"


@pytest.mark.parametrize(
    ("content_type", "body", "message"),
    [
        ("application/json", b'{"error":{}}', "not a multipart"),
        ("multipart/mixed", b"--x--\r\n", "without a boundary"),
        (
            "multipart/mixed; boundary=x",
            b"--x\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 204 No Content\r\n",
            "truncated",
        ),
        (
            "multipart/mixed; boundary=x",
            b"--x\r\nContent-Type: application/http\r\n\r\nhello\r\n--x--\r\n",
            "status line",
        ),
    ],
)
def test_a_malformed_batch_response_raises_a_dataverse_error(content_type: str, body: bytes, message: str) -> None:
    with pytest.raises(DataverseError, match=message):
        decode_batch(content_type, body)


def test_a_response_that_does_not_fit_the_items_raises_instead_of_guessing() -> None:
    two_successes = decode_batch("multipart/mixed; boundary=batchresponse_f27e", crlf(SUCCESS))

    with pytest.raises(DataverseError, match="2 parts for 1 submitted items"):
        match([lead_and_task()], two_successes)
    with pytest.raises(DataverseError, match="no failure stopped it"):
        match([lead_and_task(), BatchRequest("GET", "leads"), BatchRequest("GET", "leads")], two_successes)
    with pytest.raises(DataverseError, match="single request but its response is a change set"):
        match([BatchRequest("DELETE", "leads(1)"), BatchRequest("GET", "leads")], two_successes)


def test_change_set_responses_are_put_back_in_request_order_by_content_id() -> None:
    reordered = SUCCESS.replace("Content-ID: 1\n", "Content-ID: X\n").replace("Content-ID: 2\n", "Content-ID: 1\n")
    reordered = reordered.replace("Content-ID: X\n", "Content-ID: 2\n")  # lead answered as 2, task as 1
    items = [lead_and_task(), BatchRequest("GET", "leads")]

    outcomes = match(items, decode_batch("multipart/mixed; boundary=batchresponse_f27e", crlf(reordered)))

    assert [r.content_id for r in outcomes[0].responses] == ["1", "2"]
    assert [r.entity_id for r in outcomes[0].responses] == [uuid.UUID(TASK_ID), uuid.UUID(LEAD_ID)]
