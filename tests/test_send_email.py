"""SendEmail, which is not idempotent, sent at most once and at least once: the email's state decides, before each
attempt and after a failed one, never the error code (Learn documents none for "already sent")."""

from __future__ import annotations

import uuid

import pytest
import responses

from dataverse.client import DataverseClient
from dataverse.errors import DataverseServerError
from dataverse.rows import SEND_ATTEMPTS, send_email_once
from tests.conftest import API

EMAIL = uuid.UUID("00000000-0000-0000-0000-0000000000e1")
STATE = f"{API}emails({EMAIL})"
SEND = f"{API}emails({EMAIL})/Microsoft.Dynamics.CRM.SendEmail"
OPEN, COMPLETED = {"statecode": 0}, {"statecode": 1}


def sends(mocked: responses.RequestsMock) -> int:
    return sum(1 for call in mocked.calls if call.request.url == SEND)


def test_an_email_no_longer_open_is_not_sent_again(client: DataverseClient, mocked: responses.RequestsMock) -> None:
    mocked.get(STATE, json=COMPLETED)
    assert send_email_once(client, EMAIL) is False
    assert sends(mocked) == 0


def test_a_refused_send_of_an_email_another_run_sent_is_success(
    client: DataverseClient, mocked: responses.RequestsMock
) -> None:
    mocked.get(STATE, json=OPEN)
    mocked.get(STATE, json=COMPLETED)  # read again after the refusal: an overlapping run sent it meanwhile
    mocked.post(SEND, status=400, json={"error": {"code": "0x80040203", "message": "the email is not open"}})
    assert send_email_once(client, EMAIL) is True
    assert sends(mocked) == 1


def test_a_send_whose_answer_was_lost_is_found_sent_and_not_repeated(
    client: DataverseClient, mocked: responses.RequestsMock
) -> None:
    mocked.get(STATE, json=OPEN)
    mocked.get(STATE, json=COMPLETED)
    mocked.post(SEND, status=502)  # a gateway error: the action may have run
    assert send_email_once(client, EMAIL) is True
    assert sends(mocked) == 1


def test_a_send_that_failed_while_the_email_stays_open_is_tried_again_then_given_up(
    client: DataverseClient, mocked: responses.RequestsMock
) -> None:
    mocked.get(STATE, json=OPEN)
    mocked.post(SEND, status=500)
    with pytest.raises(DataverseServerError):
        send_email_once(client, EMAIL)
    assert sends(mocked) == SEND_ATTEMPTS
