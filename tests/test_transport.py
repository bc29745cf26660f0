"""The one request path: headers, retries (Retry-After, backoff, cap, idempotency), parallelism cap, counting."""

from __future__ import annotations

import json
import logging
import threading
import uuid

import pytest
import requests
import responses
from responses import matchers

from dataverse.client import DataverseClient
from dataverse.errors import (
    DataverseConnectionError,
    DataverseServerError,
    DataverseThrottled,
)
from dataverse.query import Query, eq
from dataverse.tables import table
from dataverse.transport import SERVER_ERROR_RETRIES
from tests.conftest import API, FakeSleep, make_client

WHOAMI = {
    "UserId": str(uuid.UUID(int=1)),
    "BusinessUnitId": str(uuid.UUID(int=2)),
    "OrganizationId": str(uuid.UUID(int=3)),
}
THROTTLED = {"error": {"code": "0x80072322", "message": "Number of requests exceeded the limit of 6000"}}


def test_every_request_carries_the_odata_headers_token_user_agent_and_a_client_request_id(
    client: DataverseClient, mocked: responses.RequestsMock
) -> None:
    mocked.get(f"{API}WhoAmI", json=WHOAMI)
    client.who_am_i()
    headers = mocked.calls[0].request.headers
    assert headers["Accept"] == "application/json"
    assert headers["OData-MaxVersion"] == "4.0"
    assert headers["OData-Version"] == "4.0"
    assert headers["If-None-Match"] == "null"
    assert headers["Authorization"] == "Bearer test-token"
    assert headers["User-Agent"].startswith("abm-dataverse/")
    uuid.UUID(headers["x-ms-client-request-id"])


def test_separate_connect_and_read_timeouts_are_passed_to_requests(sleeps: FakeSleep) -> None:
    seen: list[object] = []
    client = make_client(sleeps, connect_timeout=3.5, read_timeout=240)

    def fake_request(method: str, url: str, **kwargs: object) -> requests.Response:
        seen.append(kwargs["timeout"])
        response = requests.Response()
        response.status_code = 200
        response._content = json.dumps(WHOAMI).encode()
        return response

    client.transport.session.request = fake_request  # type: ignore[method-assign]
    client.who_am_i()
    assert seen == [(3.5, 240)]


def test_a_429_waits_exactly_retry_after_then_succeeds(
    client: DataverseClient, mocked: responses.RequestsMock, sleeps: FakeSleep
) -> None:
    mocked.get(f"{API}WhoAmI", status=429, json=THROTTLED, headers={"Retry-After": "7"})
    mocked.get(f"{API}WhoAmI", status=429, json=THROTTLED, headers={"Retry-After": "2"})
    mocked.get(f"{API}WhoAmI", json=WHOAMI)
    assert client.who_am_i().user_id == uuid.UUID(int=1)
    assert sleeps.calls == [7.0, 2.0]
    assert client.stats.total == 3  # retries are counted


def test_retries_of_one_request_share_its_client_request_id(
    client: DataverseClient, mocked: responses.RequestsMock
) -> None:
    mocked.get(f"{API}WhoAmI", status=503)
    mocked.get(f"{API}WhoAmI", json=WHOAMI)
    client.who_am_i()
    ids = {call.request.headers["x-ms-client-request-id"] for call in mocked.calls}
    assert len(ids) == 1


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_errors_back_off_exponentially_with_jitter(
    status: int, mocked: responses.RequestsMock, sleeps: FakeSleep
) -> None:
    client = make_client(sleeps, backoff_initial=1.0, backoff_max=60.0)
    for _ in range(3):
        mocked.get(f"{API}WhoAmI", status=status)
    mocked.get(f"{API}WhoAmI", json=WHOAMI)
    client.who_am_i()
    assert len(sleeps.calls) == 3
    for n, wait in enumerate(sleeps.calls):
        assert 2**n <= wait <= 2**n + 1.0  # exponential base, jitter up to backoff_initial


def test_a_throttle_longer_than_the_wait_cap_is_raised_with_its_retry_after(
    mocked: responses.RequestsMock, sleeps: FakeSleep
) -> None:
    client = make_client(sleeps, max_retry_wait=30)
    mocked.get(f"{API}WhoAmI", status=429, json=THROTTLED, headers={"Retry-After": "20"})
    mocked.get(f"{API}WhoAmI", status=429, json=THROTTLED, headers={"Retry-After": "20"})
    with pytest.raises(DataverseThrottled) as caught:
        client.who_am_i()
    assert caught.value.retry_after == 20
    assert caught.value.code == "0x80072322"
    assert sleeps.calls == [20.0]  # the second wait would pass the 30 s cap


def test_attempts_are_capped(mocked: responses.RequestsMock, sleeps: FakeSleep) -> None:
    client = make_client(sleeps, max_attempts=3)
    mocked.get(f"{API}WhoAmI", status=503)
    with pytest.raises(DataverseServerError):
        client.who_am_i()
    assert len(mocked.calls) == 3
    assert len(sleeps.calls) == 2


def test_a_500_on_an_idempotent_request_is_retried_twice(
    client: DataverseClient, mocked: responses.RequestsMock
) -> None:
    mocked.get(f"{API}WhoAmI", status=500, json={"error": {"code": "0x80040216", "message": "boom"}})
    with pytest.raises(DataverseServerError):
        client.who_am_i()
    assert len(mocked.calls) == 1 + SERVER_ERROR_RETRIES  # a row that always fails is not retried for long


def test_a_passing_500_on_an_idempotent_request_is_survived(
    client: DataverseClient, mocked: responses.RequestsMock
) -> None:
    mocked.get(f"{API}WhoAmI", status=500, json={"error": {"code": "0x80040216", "message": "boom"}})
    mocked.get(f"{API}WhoAmI", json=WHOAMI)
    assert client.who_am_i() is not None
    assert len(mocked.calls) == 2


def test_a_500_on_a_request_that_is_not_idempotent_is_not_retried(
    client: DataverseClient, mocked: responses.RequestsMock
) -> None:
    mocked.post(f"{API}tasks", status=500, json={"error": {"code": "0x80040216", "message": "boom"}})
    with pytest.raises(DataverseServerError):
        client.create(table("task"), {"subject": "x"})  # no id: a second create could duplicate it
    assert len(mocked.calls) == 1


def test_a_connection_error_on_a_get_is_retried(
    client: DataverseClient, mocked: responses.RequestsMock, sleeps: FakeSleep
) -> None:
    mocked.get(f"{API}WhoAmI", body=requests.exceptions.ReadTimeout("slow"))
    mocked.get(f"{API}WhoAmI", json=WHOAMI)
    client.who_am_i()
    assert len(sleeps.calls) == 1


def test_a_create_without_an_id_is_not_retried_after_an_ambiguous_failure(
    client: DataverseClient, mocked: responses.RequestsMock
) -> None:
    mocked.post(f"{API}leads", status=503)
    with pytest.raises(DataverseServerError):
        client.create(table("lead"), {"subject": "x"})
    mocked.post(f"{API}tasks", body=requests.exceptions.ReadTimeout("answer lost"))
    with pytest.raises(DataverseConnectionError):
        client.create(table("task"), {"subject": "x"})
    assert len(mocked.calls) == 2


def test_a_create_without_an_id_is_retried_after_a_429_because_it_did_not_run(
    client: DataverseClient, mocked: responses.RequestsMock, sleeps: FakeSleep
) -> None:
    new_id = uuid.UUID(int=9)
    mocked.post(f"{API}leads", status=429, json=THROTTLED, headers={"Retry-After": "1"})
    mocked.post(f"{API}leads", status=204, headers={"OData-EntityId": f"{API}leads({new_id})"})
    assert client.create(table("lead"), {"subject": "x"}) == new_id
    assert sleeps.calls == [1.0]


def test_a_create_without_an_id_is_retried_when_the_connection_was_never_made(
    client: DataverseClient, mocked: responses.RequestsMock
) -> None:
    new_id = uuid.UUID(int=10)
    refused = requests.exceptions.ConnectTimeout("connect timed out")
    mocked.post(f"{API}leads", body=refused)
    mocked.post(f"{API}leads", status=204, headers={"OData-EntityId": f"{API}leads({new_id})"})
    assert client.create(table("lead"), {"subject": "x"}) == new_id


def test_the_parallelism_cap_follows_the_dop_hint(sleeps: FakeSleep) -> None:
    client = make_client(sleeps, max_parallel=8)
    limiter = client.transport.limiter
    limiter.hint("2")
    assert limiter.limit == 2
    limiter.hint("100")
    assert limiter.limit == 8  # never above the configured maximum
    limiter.hint("nonsense")
    assert limiter.limit == 8


def test_no_more_requests_are_in_flight_than_the_hint_allows(mocked: responses.RequestsMock, sleeps: FakeSleep) -> None:
    client = make_client(sleeps, max_parallel=8)
    client.transport.limiter.hint("2")
    gate = threading.Event()
    lock = threading.Lock()
    state = {"now": 0, "peak": 0, "arrived": 0}

    def slow(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        with lock:
            state["now"] += 1
            state["arrived"] += 1
            state["peak"] = max(state["peak"], state["now"])
        gate.wait(timeout=5)
        with lock:
            state["now"] -= 1
        return 200, {"x-ms-dop-hint": "2"}, json.dumps(WHOAMI)

    mocked.add_callback(responses.GET, f"{API}WhoAmI", callback=slow)
    threads = [threading.Thread(target=client.who_am_i) for _ in range(6)]
    for t in threads:
        t.start()
    for _ in range(200):
        with lock:
            if state["arrived"] >= 2:
                break
        threading.Event().wait(0.01)
    with lock:
        assert state["now"] == 2  # two inside, four held back by the limiter
    gate.set()
    for t in threads:
        t.join(timeout=5)
    assert state["peak"] == 2
    assert state["arrived"] == 6


def test_requests_are_counted_by_method_and_table(client: DataverseClient, mocked: responses.RequestsMock) -> None:
    mocked.get(f"{API}WhoAmI", json=WHOAMI)
    mocked.get(f"{API}contacts", json={"value": []})
    mocked.patch(f"{API}leads({uuid.UUID(int=1)})", status=204)
    client.who_am_i()
    list(client.iter_rows("contacts"))
    client.update(table("lead"), uuid.UUID(int=1), {"subject": "y"})
    assert client.stats.as_dict() == {
        "total": 3,
        "by_method": {"GET": 2, "PATCH": 1},
        "by_table": {"WhoAmI": 1, "contacts": 1, "leads": 1},
    }


def test_logs_name_the_table_but_never_the_query_string_or_token(
    client: DataverseClient, mocked: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    mocked.get(f"{API}contacts", status=503)
    mocked.get(f"{API}contacts", json={"value": []})
    caplog.set_level(logging.DEBUG, logger="dataverse")
    list(client.iter_rows(Query("contacts").where(eq("emailaddress1", "ada@example.com"))))
    text = caplog.text
    assert "contacts" in text
    assert "ada" not in text and "example.com" not in text
    assert "test-token" not in text


def test_post_body_is_sent_as_json(client: DataverseClient, mocked: responses.RequestsMock) -> None:
    mocked.post(
        f"{API}leads",
        status=204,
        headers={"OData-EntityId": f"{API}leads({uuid.UUID(int=5)})"},
        match=[matchers.json_params_matcher({"subject": "Web enquiry", "lastname": "Lovelace"})],
    )
    client.create(table("lead"), {"subject": "Web enquiry", "lastname": "Lovelace"})
    assert mocked.calls[0].request.headers["Content-Type"].startswith("application/json")
