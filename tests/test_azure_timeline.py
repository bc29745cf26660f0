"""The Azure timeline's layout (`statestore.azure_timeline`): how many requests a save and the reads take, chunks
left over from a larger version removed, the groups' types records kept exact (under concurrent saves too)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.data.tables._base_client import TransportWrapper

import statestore.azure_timeline as azure_timeline
from insights.timeline import Event, event_order
from statestore.azure_pages import group_of
from statestore.azure_storage import table_key
from statestore.azure_tables import AzureStateStore
from statestore.port import TimelineQuery

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def store(azurite: str) -> Iterator[AzureStateStore]:
    azure = AzureStateStore(azurite, prefix=f"t{uuid.uuid4().hex[:16]}")
    yield azure
    azure.close()


@pytest.fixture
def requests(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every request sent to the service from now on (method and URL)."""
    sent: list[str] = []
    send = TransportWrapper.send

    def counted(self: TransportWrapper, request: Any, **kwargs: Any) -> Any:
        sent.append(f"{request.method} {request.url}")
        return send(self, request, **kwargs)

    monkeypatch.setattr(TransportWrapper, "send", counted)
    return sent


def events(account: str, n: int, kind: str = "EmailOpened", **more: Any) -> list[Event]:
    return [
        Event(T0 + timedelta(minutes=i), kind, False, f"{account}-{kind}-{i}", account, f"c-{account}-{i % 3}", **more)
        for i in range(n)
    ]


def counting(sent: list[str], work: Callable[[], Any]) -> tuple[Any, int]:
    before = len(sent)
    result = work()
    return result, len(sent) - before


def chunk_keys(store: AzureStateStore, partition: str) -> list[str]:
    low = f"{table_key(partition)}!"
    found = store._timeline.query_entities(
        "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high",
        parameters={"pk": group_of(partition), "low": low, "high": low[:-1] + '"'},
        select=["RowKey"],
    )
    return sorted(str(e["RowKey"]) for e in found)


def test_a_batch_of_250_partitions_is_a_read_and_a_transaction_per_group(
    store: AzureStateStore, requests: list[str]
) -> None:
    first = {f"acc{p:04d}": events(f"acc{p:04d}", 40) for p in range(250)}
    second = {f"acc{p:04d}": events(f"acc{p:04d}", 40, "FormSubmitted") for p in range(250, 500)}
    _, saved = counting(requests, lambda: store.save_timeline(first))
    assert saved == 1 + 16  # the heads (one scan), a transaction per group
    _, saved = counting(requests, lambda: store.save_timeline(second))
    assert saved == 1 + 16
    _, small = counting(requests, lambda: store.save_timeline({"acc0001": events("acc0001", 3)}))
    assert small == 1 + 1  # the group's heads, its transaction
    everything, read = counting(requests, store.timeline)
    assert read == 16 and len(everything) == 499 * 40 + 3
    assert everything == sorted(everything, key=event_order)
    types, typed = counting(requests, store.timeline_types)
    assert typed == 1 and types == {"EmailOpened", "FormSubmitted"}
    one, by_account = counting(requests, lambda: store.timeline(TimelineQuery(accounts=frozenset({"acc0300"}))))
    assert by_account == 1 and one == events("acc0300", 40, "FormSubmitted")


def test_a_smaller_version_of_a_partition_removes_the_chunks_left_over(
    store: AzureStateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(azure_timeline, "PAGE_LIMIT", 2_000)  # about 20 events a chunk
    big = events("a/1", 200, content_type="webinar")
    store.save_timeline({"a/1": big, "a2": events("a2", 5, "FormSubmitted")})
    keys = chunk_keys(store, "a/1")
    assert len(keys) > 5 and keys == [f"{table_key('a/1')}!{n:04d}" for n in range(len(keys))]
    assert store.timeline(TimelineQuery(accounts=frozenset({"a/1"}))) == big
    store.save_timeline({"a/1": big[:60]})
    fewer = chunk_keys(store, "a/1")
    assert 1 < len(fewer) < len(keys) and fewer == keys[: len(fewer)]
    assert store.timeline() == sorted([*big[:60], *events("a2", 5, "FormSubmitted")], key=event_order)
    store.save_timeline({"a/1": []})
    assert chunk_keys(store, "a/1") == []
    assert store.timeline_types() == {"FormSubmitted"}


def test_the_types_records_follow_every_save_and_an_empty_group_has_none(store: AzureStateStore) -> None:
    same_group = [p for p in (f"p{n}" for n in range(200)) if group_of(p) == group_of("p0")][:2]
    store.save_timeline({same_group[0]: events("x", 2, "A"), same_group[1]: events("y", 2, "B")})
    assert store.timeline_types() == {"A", "B"}
    store.save_timeline({same_group[0]: events("x", 2, "C")})
    assert store.timeline_types() == {"B", "C"}
    store.save_timeline({same_group[0]: [], same_group[1]: []})
    assert store.timeline_types() == set()
    assert list(store._timeline.list_entities()) == []  # the group's record went with its last chunk
    store.save_timeline({"p1": events("x", 2, "A"), "q": events("q", 1, "B")})
    store.clear_timeline()
    assert list(store._timeline.list_entities()) == [] and store.timeline_types() == set()


def test_one_accounts_events_include_those_saved_in_other_partitions(
    store: AzureStateStore, requests: list[str]
) -> None:
    contact_only = Event(T0, "LeadCreated", True, "lead1", "acc1", "c9", None, None)  # a lead of acc1 via c9
    store.save_timeline({"acc1": events("acc1", 3), "~c9": [contact_only], "acc2": events("acc2", 3)})
    found, sent = counting(requests, lambda: store.timeline(TimelineQuery(accounts=frozenset({"acc1"}))))
    assert sent == 1 and found == sorted([*events("acc1", 3), contact_only], key=event_order)
    assert store.timeline(TimelineQuery(accounts=frozenset({"c9"}))) == []


def test_chunks_without_a_wanted_type_are_not_decoded(store: AzureStateStore, monkeypatch: pytest.MonkeyPatch) -> None:
    store.save_timeline(
        {"a1": events("a1", 3, "A"), "a2": events("a2", 3, "B"), "a3": events("a3", 2, "C", content_type="x")}
    )
    decoded: list[str] = []
    unpack = azure_timeline._unpack

    def spy(text: str, query: TimelineQuery) -> list[Event]:
        found = unpack(text, query)
        decoded.append(text)
        return found

    monkeypatch.setattr(azure_timeline, "_unpack", spy)
    assert [e.type for e in store.timeline(TimelineQuery(types=frozenset({"B"})))] == ["B"] * 3
    assert len(decoded) == 1
    found = store.timeline(TimelineQuery(types=frozenset({"B"}), content_typed=True))
    assert {e.type for e in found} == {"B", "C"} and len(decoded) == 3


def test_a_save_racing_another_in_the_same_group_is_done_again(
    store: AzureStateStore, azurite: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = AzureStateStore(azurite, prefix=store._prefix)
    try:
        first, second = [p for p in (f"p{n}" for n in range(200)) if group_of(p) == group_of("p0")][:2]
        store.save_timeline({first: events("x", 2, "Old")})
        heads = AzureStateStore._heads
        reads: list[list[str]] = []

        def racing(self: AzureStateStore, groups: list[str]) -> Any:
            found = heads(self, groups)
            reads.append(groups)
            if len(reads) == 1:  # the other process saves between this one's read and its write
                other.save_timeline({second: events("y", 2, "B")})
            return found

        monkeypatch.setattr(AzureStateStore, "_heads", racing)
        store.save_timeline({first: events("x", 2, "A")})
        assert reads == [[group_of(first)], [group_of(first)], [group_of(second)]]  # ours, the other's, ours again
        assert store.timeline_types() == {"A", "B"}
        assert {e.type for e in other.timeline()} == {"A", "B"}
    finally:
        other.close()
