"""The state store's timeline (the insights' event stream), run against both adapters: what it keeps, how a
partition's events are replaced, which events a query reads and in what order."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from insights.timeline import (
    LEAD_CREATED,
    MARKETING_QUALIFIED,
    OPPORTUNITY_CREATED,
    OPPORTUNITY_WON,
    Event,
    event_order,
)
from statestore.port import StateStore, TimelineQuery

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
MICRO = timedelta(microseconds=1)
# Partition and record names as Dataverse and emails make them, and one beyond a Table Storage key's 1 KiB.
AWKWARD = ["a/b", "hash#tag", "what?", "quote'd", "ünï ☃ 𝄞", "~7E!", "x" * 1100]


@pytest.fixture
def store(both_stores: StateStore) -> StateStore:
    return both_stores


def interaction(id: str, at: datetime, account: str | None = "a1", kind: str = "EmailOpened", **more: str) -> Event:
    return Event(at, kind, False, id, account, more.get("contact", f"c-{account}"), None, more.get("content_type"))


def milestone(id: str, at: datetime, kind: str, account: str | None = "a1", opportunity: str | None = None) -> Event:
    return Event(at, kind, True, id, account, f"c-{account}", opportunity, None)


def test_events_round_trip_with_every_field_and_awkward_names(store: StateStore) -> None:
    events = [
        Event(T0 + i * MICRO, name, i % 2 == 0, f"src-{name}", name, f"c-{name}", name if i % 3 else None, name)
        for i, name in enumerate(AWKWARD)
    ]
    events.append(Event(T0, "EmailOpened", False, "bare", None, None, None, None))
    store.save_timeline({"p1": events[:4], "ünï ☃ 𝄞": events[4:]})
    assert store.timeline() == sorted(events, key=event_order)
    assert store.timeline_types() == {*AWKWARD, "EmailOpened"}


def test_saving_a_partition_replaces_its_events_and_leaves_the_others(store: StateStore) -> None:
    store.save_timeline(
        {
            "a1": [interaction("i1", T0), interaction("i2", T0 + MICRO)],
            "a2": [interaction("i3", T0, account="a2", kind="FormSubmitted")],
        }
    )
    store.save_timeline({"a1": [interaction("i4", T0 + timedelta(days=1), kind="PageVisited")]})
    assert [e.source for e in store.timeline()] == ["i3", "i4"]
    store.save_timeline({"a2": [], "a3": []})
    assert [e.source for e in store.timeline()] == ["i4"]
    assert store.timeline_types() == {"PageVisited"}
    store.clear_timeline()
    assert store.timeline() == []
    assert store.timeline_types() == set()


def test_events_come_in_the_streams_order_whatever_order_they_were_saved_in(store: StateStore) -> None:
    same = T0 + timedelta(hours=1)
    events = [
        milestone("opp1", same, OPPORTUNITY_WON, opportunity="opp1"),
        milestone("opp1", same, OPPORTUNITY_CREATED, opportunity="opp1"),
        milestone("lead1", same, MARKETING_QUALIFIED),
        milestone("lead1", same, LEAD_CREATED),
        interaction("i-b", same),
        interaction("i-a", same, kind="Zeta"),
        interaction("i-a", same, kind="Alpha"),
        interaction("early", T0),
        interaction("micro", T0 + MICRO),
    ]
    shuffled = events[:]
    random.Random(7).shuffle(shuffled)
    store.save_timeline({"a1": shuffled[:5], "a2": shuffled[5:]})
    expected = sorted(events, key=event_order)
    assert [(e.source, e.type) for e in expected][:4] == [
        ("early", "EmailOpened"),
        ("micro", "EmailOpened"),
        ("i-a", "Alpha"),
        ("i-a", "Zeta"),
    ]
    assert store.timeline() == expected


def test_a_query_reads_its_types_range_and_account_only(store: StateStore) -> None:
    events = [
        interaction("i1", T0, kind="EmailOpened", content_type="webinar"),
        interaction("i2", T0 + timedelta(days=1), kind="FormSubmitted"),
        interaction("i3", T0 + timedelta(days=2), account="a2", kind="FormSubmitted", content_type="ebook"),
        interaction("i4", T0 + timedelta(days=3), account=None, kind="EmailOpened"),
        milestone("l1", T0 + timedelta(days=4), MARKETING_QUALIFIED, account="a2"),
        milestone("o1", T0 + timedelta(days=5), OPPORTUNITY_CREATED, opportunity="o1"),
    ]
    store.save_timeline({"a1": [events[0], events[1], events[5]], "a2": [events[2], events[4]], "~c9": [events[3]]})

    def sources(query: TimelineQuery) -> list[str]:
        found = store.timeline(query)
        assert found == [e for e in sorted(events, key=event_order) if query.matches(e)]
        return [e.source for e in found]

    assert sources(TimelineQuery(types=frozenset({"FormSubmitted", OPPORTUNITY_CREATED}))) == ["i2", "i3", "o1"]
    assert sources(TimelineQuery(types=frozenset({MARKETING_QUALIFIED}), content_typed=True)) == ["i1", "i3", "l1"]
    assert sources(TimelineQuery(content_typed=True)) == ["i1", "i3"]
    assert sources(TimelineQuery(content_types=frozenset({"ebook", "video"}))) == ["i3"]
    assert sources(TimelineQuery(types=frozenset({"EmailOpened"}), content_types=frozenset({"ebook"}))) == [
        "i1",
        "i3",
        "i4",
    ]
    assert sources(TimelineQuery(types=frozenset({"Unknown"}))) == []
    assert sources(TimelineQuery(types=frozenset(), content_types=frozenset())) == []
    # The range is half-open, to the microsecond.
    start, end = T0 + timedelta(days=1), T0 + timedelta(days=4)
    assert sources(TimelineQuery(start=start, end=end)) == ["i2", "i3", "i4"]
    assert sources(TimelineQuery(start=start + MICRO, end=end + MICRO)) == ["i3", "i4", "l1"]
    assert sources(TimelineQuery(accounts=frozenset({"a2"}))) == ["i3", "l1"]
    assert sources(TimelineQuery(accounts=frozenset({"a1", "a2"}), start=start)) == ["i2", "i3", "l1", "o1"]
    assert sources(TimelineQuery(types=frozenset({"FormSubmitted"}), accounts=frozenset({"a2"}), end=end)) == ["i3"]
    assert sources(TimelineQuery(accounts=frozenset({"nobody"}))) == []
    assert sources(TimelineQuery(accounts=frozenset())) == []
    assert sources(TimelineQuery(contacts=frozenset({"c-a2", "c-None"}))) == ["i3", "i4", "l1"]
    assert sources(TimelineQuery(contacts=frozenset({"c-a1"}), accounts=frozenset({"a1"}), end=end)) == ["i1", "i2"]


def test_a_large_timeline_is_saved_and_read_whole(store: StateStore) -> None:
    """A partition with more events than a table property or a transaction holds, and many partitions at once."""
    big = [interaction(f"i{n:05d}", T0 + n * timedelta(minutes=1), content_type="x" * 40) for n in range(3000)]
    many = {f"acc{p:03d}": [interaction(f"m{p:03d}", T0, account=f"acc{p:03d}")] for p in range(300)}
    store.save_timeline({"big": big, **many})
    found = store.timeline()
    assert len(found) == 3300
    assert found == sorted([*big, *(e for es in many.values() for e in es)], key=event_order)
    store.save_timeline({"big": big[:10]})
    assert len(store.timeline(TimelineQuery(accounts=frozenset({"a1"})))) == 10
    # Many accounts at once (an Azure read filters them rather than asking for each).
    wanted = frozenset(f"acc{p:03d}" for p in range(0, 300, 3))
    assert {e.source for e in store.timeline(TimelineQuery(accounts=wanted))} == {f"m{p:03d}" for p in range(0, 300, 3)}


def test_an_accounts_events_filed_under_another_partition_are_its_own(store: StateStore) -> None:
    """A lead with a parent account sits in that account's partition, but an event's account is not always its
    partition (an orphan contact's lead naming an account): reads by account find it wherever it is."""
    store.save_timeline(
        {
            "a1": [interaction("i1", T0)],
            "contact:x9": [milestone("lead9", T0 + MICRO, LEAD_CREATED, account="a1")],
            "a2": [interaction("i2", T0, account="a2")],
        }
    )
    assert [e.source for e in store.timeline(TimelineQuery(accounts=frozenset({"a1"})))] == ["i1", "lead9"]
