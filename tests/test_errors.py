"""Every error answer maps to one class of the `DataverseError` hierarchy, with code, message and request ids."""

from __future__ import annotations

import pytest
import responses

from dataverse.client import DataverseClient
from dataverse.errors import (
    ChangeTrackingTokenExpired,
    DataverseAuthError,
    DataverseBadRequest,
    DataverseConnectionError,
    DataverseDuplicate,
    DataverseError,
    DataverseNotFound,
    DataversePreconditionFailed,
    DataverseServerError,
    DataverseThrottled,
    error_from_response,
)
from tests.conftest import API


@pytest.mark.parametrize(
    ("status", "code", "message", "expected"),
    [
        (400, "0x80044331", "subject is too long", DataverseBadRequest),
        (401, "", "BadAuthTicket", DataverseAuthError),
        (403, "0x80040220", "Principal user is missing prvReadLead privilege", DataverseAuthError),
        (404, "0x80040217", "lead With Id = 1 Does Not Exist", DataverseNotFound),
        (405, "", "Method not allowed", DataverseBadRequest),
        (
            412,
            "",
            "The version of the existing record doesn't match the RowVersion property provided.",
            DataversePreconditionFailed,
        ),
        (412, "", "A record with matching key values already exists.", DataverseDuplicate),
        (412, "0x80040237", "Cannot insert duplicate key.", DataverseDuplicate),
        (412, "0x80060892", "Entity Key abm_LeadModel violated.", DataverseDuplicate),  # DuplicateRecordEntityKey
        (
            500,
            "0x80040333",
            "A record was not created or updated because a duplicate of the current record already exists.",
            DataverseDuplicate,
        ),
        (400, "0x80044352", "Version stamp associated with the client has expired.", ChangeTrackingTokenExpired),
        (429, "0x80072321", "Combined execution time of incoming requests exceeded limit", DataverseThrottled),
        (500, "0x80040216", "An unexpected error occurred.", DataverseServerError),
        (503, "", "Service Unavailable", DataverseServerError),
    ],
)
def test_status_and_code_map_to_the_right_class(status: int, code: str, message: str, expected: type) -> None:
    error = error_from_response(
        status,
        {"x-ms-service-request-id": "svc-1", "Retry-After": "3"},
        {"error": {"code": code, "message": message}},
        client_request_id="cli-1",
    )
    assert type(error) is expected
    assert isinstance(error, DataverseError)
    assert (error.status, error.code, error.message) == (status, code, message)
    assert (error.request_id, error.client_request_id) == ("svc-1", "cli-1")


def test_throttled_carries_retry_after_in_seconds() -> None:
    error = error_from_response(429, {"Retry-After": "12"}, b'{"error":{"code":"0x80072326","message":"x"}}')
    assert isinstance(error, DataverseThrottled)
    assert error.retry_after == 12


def test_a_body_that_is_not_json_still_gives_a_message() -> None:
    error = error_from_response(502, {}, b"<html>Bad Gateway</html>")
    assert isinstance(error, DataverseServerError)
    assert "Bad Gateway" in error.message


def test_an_empty_body_gives_a_message_naming_the_status() -> None:
    assert error_from_response(404, {}, b"").message == "Dataverse answered HTTP 404"


def test_the_inner_error_message_is_used_when_the_message_is_empty() -> None:
    body = {"error": {"code": "", "message": "", "innererror": {"message": "inner detail"}}}
    assert error_from_response(400, {}, body).message == "inner detail"


def test_str_names_status_code_and_request_ids() -> None:
    error = DataverseNotFound("gone", status=404, code="0x80040217", request_id="r", client_request_id="c")
    assert str(error) == "gone (status=404, code=0x80040217, request_id=r, client_request_id=c)"


def test_an_http_error_from_the_client_carries_the_service_request_id(
    client: DataverseClient, mocked: responses.RequestsMock
) -> None:
    mocked.get(
        f"{API}WhoAmI",
        status=403,
        json={"error": {"code": "0x80040220", "message": "missing privilege"}},
        headers={"x-ms-service-request-id": "abc-123"},
    )
    with pytest.raises(DataverseAuthError) as caught:
        client.who_am_i()
    assert caught.value.request_id == "abc-123"
    assert caught.value.client_request_id == mocked.calls[0].request.headers["x-ms-client-request-id"]


def test_a_summary_keeps_status_code_and_request_ids_and_never_dataverses_message() -> None:
    quoted = DataverseError(
        "A record with Full Name 'Jane Roe' already exists",
        status=412,
        code="0x80040333",
        request_id="req-1",
        client_request_id="client-1",
    )
    assert quoted.summary == "DataverseError: status 412, code 0x80040333, request req-1, client request client-1"
    assert "Jane" not in quoted.summary


def test_a_summary_of_an_error_with_no_answer_keeps_this_clients_own_message() -> None:
    class _Private(DataverseConnectionError):
        pass

    lost = _Private("no answer from Dataverse for GET contacts: ConnectionError", client_request_id="client-2")
    assert lost.summary == (
        "DataverseConnectionError (no answer from Dataverse for GET contacts: ConnectionError): client request client-2"
    )
