"""Interaction events from other systems against the emulator over HTTP: validated with a path, written once."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from abm.jobs.interactions import (
    EVENT_NAMESPACE,
    MAX_BODY_BYTES,
    InteractionEvent,
    InteractionInputError,
    ingest,
    parse_events,
)
from dataverse.auth import NoAuth
from dataverse.client import DataverseClient
from dataverse.query import Query
from dataverse.rows import IDEMPOTENCY_KEY as KEY_COLUMN
from dataverse.transport import TransportConfig
from devtools.emulator.schema import TABLES
from devtools.emulator.server import Emulator
from devtools.emulator.store import Store
from tests.emulator.conftest import LONER, MULLER, OBRIEN, STAMP

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
SECRET = "siobhan@contoso.example.com"  # personal data a sender might put anywhere: never in an error message


@pytest.fixture
def client(emulator: Emulator) -> Iterator[DataverseClient]:
    with DataverseClient(TransportConfig(org_url=emulator.org_url, backoff_initial=0.01), NoAuth()) as c:
        yield c


def event(n: int, contact: str = OBRIEN, **fields: Any) -> dict[str, Any]:
    return {
        "id": f"evt-{n}",
        "source": "website",
        "type": "WebsiteVisited",
        "contact_id": contact.upper(),
        "occurred_on": "2026-11-22T10:15:30+01:00",
        **fields,
    }


def body(*events: dict[str, Any]) -> bytes:
    return json.dumps({"events": list(events)}).encode()


def post(client: DataverseClient, *events: dict[str, Any]) -> Any:
    """What the HTTP route does: parse and validate the body, then ingest it."""
    return ingest(client, parse_events(body(*events), now=NOW), now=NOW)


def stored_rows(client: DataverseClient) -> dict[str, dict[str, Any]]:
    query = Query("abm_interactions").select(
        "abm_interactionid",
        "_abm_contactid_value",
        "abm_type",
        "abm_occurredon",
        "abm_asset",
        "abm_campaign",
        "abm_contenttype",
        KEY_COLUMN,
    )
    return {row["abm_interactionid"]: row for row in client.iter_rows(query)}


def row_id(source: str, id: str) -> str:
    return str(uuid.uuid5(EVENT_NAMESPACE, f"{source}/{id}"))


def test_a_valid_batch_is_written_with_ids_and_keys_from_the_senders_event_ids(client: DataverseClient) -> None:
    mail = event(2, MULLER, source="mailer", type="EmailClicked", campaign="Autumn webinar", content_type="webinar")
    result = post(client, event(1, asset="Pricing page"), mail, event(3, LONER, type="FormSubmitted"))
    assert result.as_dict() == {"received": 3, "created": 3, "duplicates": 0, "contacts": 3}
    assert result.contacts == tuple(sorted([OBRIEN, MULLER, LONER]))
    rows = stored_rows(client)
    assert set(rows) == {row_id("website", "evt-1"), row_id("mailer", "evt-2"), row_id("website", "evt-3")}
    first = rows[row_id("website", "evt-1")]
    assert first[KEY_COLUMN] == "website/evt-1"
    assert first["_abm_contactid_value"] == OBRIEN
    assert (first["abm_type"], first["abm_asset"], first["abm_campaign"]) == ("WebsiteVisited", "Pricing page", None)
    assert first["abm_occurredon"] == "2026-11-22T09:15:30Z"  # stored in UTC
    clicked = rows[row_id("mailer", "evt-2")]
    assert (clicked["abm_type"], clicked["abm_campaign"], clicked["abm_contenttype"]) == (
        "EmailClicked",
        "Autumn webinar",
        "webinar",
    )


def test_the_same_batch_again_creates_nothing_and_reports_duplicates(client: DataverseClient) -> None:
    events = [event(1), event(2, MULLER), event(3, type="EmailOpened")]
    post(client, *events)
    before = client.stats.total
    again = post(client, *events)
    assert again.as_dict() == {"received": 3, "created": 0, "duplicates": 3, "contacts": 2}
    assert len(stored_rows(client)) == 3
    # the contact check, the CreateMultiple that met the existing rows, one read of which ids exist; the row
    # listing above is the last request
    assert client.stats.total - before == 3 + 1


def test_a_half_new_batch_creates_only_the_new_events(client: DataverseClient) -> None:
    post(client, event(1), event(2))
    result = post(client, event(1), event(2), event(3), event(4, MULLER))
    assert (result.created, result.duplicates) == (2, 2)
    assert set(stored_rows(client)) == {row_id("website", f"evt-{n}") for n in range(1, 5)}


def test_the_same_id_from_two_sources_is_two_events(client: DataverseClient) -> None:
    result = post(client, event(1), event(1, source="forms", type="FormSubmitted"))
    assert result.created == 2


def test_an_event_repeated_within_a_batch_is_stored_once(client: DataverseClient) -> None:
    result = post(client, event(1), event(1), event(2))
    assert result.as_dict() == {"received": 3, "created": 2, "duplicates": 1, "contacts": 1}
    assert len(stored_rows(client)) == 2


def test_an_unknown_contact_refuses_the_whole_batch_before_anything_is_written(client: DataverseClient) -> None:
    unknown = str(uuid.UUID(int=99))
    events = parse_events(body(event(1), event(2, unknown), event(3, str(uuid.UUID(int=98)))), now=NOW)
    with pytest.raises(InteractionInputError) as caught:
        ingest(client, events, now=NOW)
    assert caught.value.path == "events[1].contact_id"
    assert unknown not in str(caught.value)
    assert client.stats.by_table == {"contacts": 1}  # no write was even attempted
    assert stored_rows(client) == {}


def test_a_thousand_events_take_one_create_multiple_and_one_contact_read_per_hundred_contacts(
    store: Store, client: DataverseClient
) -> None:
    contacts = [str(uuid.UUID(int=0xC1000000_0000_4000_8000_000000000000 + i)) for i in range(250)]
    base = {"createdon": STAMP, "modifiedon": STAMP, "statecode": 0, "statuscode": 1}
    store.insert_many(
        TABLES["contact"], [{**base, "contactid": c, "lastname": f"Contact {i}"} for i, c in enumerate(contacts)]
    )
    events = [event(n, contacts[n % 250], occurred_on=f"2026-11-{1 + n % 22:02d}T08:00:00Z") for n in range(1000)]
    first = post(client, *events)
    assert (first.created, first.duplicates, len(first.contacts)) == (1000, 0, 250)
    assert client.stats.by_table == {"contacts": 3, "abm_interactions": 1}
    assert store.scalar("SELECT COUNT(*) FROM abm_interaction") == 1000

    again = post(client, *events)  # redelivered: one failed CreateMultiple and ten reads of existing ids
    assert (again.created, again.duplicates) == (0, 1000)
    assert client.stats.by_table == {"contacts": 6, "abm_interactions": 1 + 1 + 10}
    assert store.scalar("SELECT COUNT(*) FROM abm_interaction") == 1000


# ---- validation: every problem names its JSON path, never the value ----


@pytest.mark.parametrize(
    ("second", "path", "reason"),
    [
        ({k: v for k, v in event(2).items() if k != "contact_id"}, "events[1].contact_id", "is required"),
        (event(2, occurred_on=SECRET), "events[1].occurred_on", "RFC 3339"),
        (event(2, occurred_on="2026-11-22T10:15:30"), "events[1].occurred_on", "RFC 3339"),  # no offset
        (event(2, occurred_on="2026-02-30T10:15:30Z"), "events[1].occurred_on", "not a valid date-time"),
        (event(2, occurred_on="2026-11-24T12:00:01Z"), "events[1].occurred_on", "more than 1 day in the future"),
        (event(2, contact_id=SECRET), "events[1].contact_id", "must be a GUID"),
        (event(2, type=SECRET), "events[1].type", "must be one of EmailSent,"),
        (event(2, type="PhoneCall"), "events[1].type", "WebsiteVisited, FormSubmitted, EventRegistered"),
        (event(2, source=SECRET), "events[1].source", "letters, digits"),
        (event(2, id=""), "events[1].id", "must not be empty"),
        (event(2, id="x" * 101), "events[1].id", "at most 100 characters"),
        (event(2, id=42), "events[1].id", "must be a string"),
        (event(2, asset=SECRET * 10), "events[1].asset", "at most 200 characters"),
        (event(2, content_type="x" * 101), "events[1].content_type", "at most 100 characters"),  # abm_contenttype
        # 150 emoji are 150 characters to the schema but 300 UTF-16 units to Dataverse, which would refuse them
        (event(2, campaign="🚀" * 150), "events[1].campaign", "outside the BMP counts 2"),
        (event(2, email=SECRET), "events[1]", "not allowed (allowed: id, source, type"),
        (event(1, asset=SECRET), "events[1].id", "repeats the source and id of events[0] with different content"),
        ([SECRET], "events[1]", "must be an object"),
    ],
)
def test_a_bad_event_is_refused_with_its_path(second: Any, path: str, reason: str) -> None:
    with pytest.raises(InteractionInputError) as caught:
        parse_events(body(event(1), second), now=NOW)
    assert caught.value.path == path
    assert reason in caught.value.reason
    assert str(caught.value).startswith(f"{path}: ")
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize(
    ("raw", "path", "reason"),
    [
        (b"", "$", "not valid JSON"),
        (b'{"events": [', "$", "not valid JSON"),
        (b"[]", "$", "must be an object"),
        (b"{}", "events", "is required"),
        (b'{"events": []}', "events", "at least 1 event"),
        (json.dumps({"events": [event(n) for n in range(1001)]}).encode(), "events", "at most 1,000 events"),
        (json.dumps({"events": [event(1)], SECRET: 1}).encode(), "$", "not allowed (allowed: events)"),
        (b" " * (MAX_BODY_BYTES + 1), "$", "over 1,048,576 bytes"),
        (b"[" * 100_000, "$", "not valid JSON"),
    ],
)
def test_a_bad_body_is_refused_as_a_whole(raw: bytes, path: str, reason: str) -> None:
    with pytest.raises(InteractionInputError) as caught:
        parse_events(raw, now=NOW)
    assert (caught.value.path, SECRET in str(caught.value)) == (path, False)
    assert reason in caught.value.reason


def test_the_first_bad_event_is_the_one_named() -> None:
    events = [event(1), event(2), event(3, occurred_on="yesterday"), event(4, type="Nope")]
    del events[3]["contact_id"]
    with pytest.raises(InteractionInputError, match=r"^events\[2\]\.occurred_on: "):
        parse_events(body(*events), now=NOW)


def test_valid_events_are_parsed_in_order_with_aware_times_and_lower_case_contacts() -> None:
    parsed = parse_events(body(event(1, asset="Blog"), event(2, occurred_on="2026-11-24T11:59:59z")), now=NOW)
    assert parsed == [
        InteractionEvent(
            "evt-1", "website", "WebsiteVisited", OBRIEN, datetime(2026, 11, 22, 9, 15, 30, tzinfo=UTC), asset="Blog"
        ),
        InteractionEvent("evt-2", "website", "WebsiteVisited", OBRIEN, datetime(2026, 11, 24, 11, 59, 59, tzinfo=UTC)),
    ]
    assert parsed[0].key == "website/evt-1"


def test_ingest_checks_times_of_events_built_in_code_too(client: DataverseClient) -> None:
    late = InteractionEvent("e", "crm", "EmailSent", OBRIEN, datetime(2026, 12, 1, tzinfo=UTC))
    with pytest.raises(InteractionInputError, match=r"^events\[0\]\.occurred_on: is more than 1 day"):
        ingest(client, [late], now=NOW)
    assert client.stats.total == 0
