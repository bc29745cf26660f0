"""The SQLite timeline writes only the difference when a partition is saved again: rows of events that did not
change stay as they are (same rowid), and what is read back is exactly what a delete and insert would leave."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone

from insights.timeline import MARKETING_QUALIFIED, Event, event_order
from statestore.sqlite import SqliteStateStore

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
MICRO = timedelta(microseconds=1)


def event(source: str, at: datetime = T0, account: str | None = "a1", **more: str | None) -> Event:
    return Event(at, more.get("kind") or "EmailOpened", False, source, account, "c1", None, more.get("content_type"))


def rowids(store: SqliteStateStore) -> dict[str, int]:
    return dict(store.conn.execute("SELECT source, rowid FROM timeline").fetchall())


def test_saving_again_rewrites_only_the_events_that_changed() -> None:
    store = SqliteStateStore()
    same, moved, retyped, gone = event("same"), event("moved"), event("retyped"), event("gone")
    store.save_timeline({"a1": [same, moved, retyped, gone], "a2": [event("other", account="a2")]})
    before = rowids(store)
    changed = [
        same,
        moved._replace(at=T0 + MICRO),
        retyped._replace(content_type="webinar"),
        event("new"),
        Event(T0, MARKETING_QUALIFIED, True, "lead1", "a1", "c1"),
    ]
    store.save_timeline({"a1": changed})
    after = rowids(store)
    assert after["same"] == before["same"] and after["other"] == before["other"]
    assert after["moved"] != before["moved"] and after["retyped"] != before["retyped"]
    assert "gone" not in after
    assert store.timeline() == sorted([*changed, event("other", account="a2")], key=event_order)


def test_an_event_in_another_zone_is_the_same_event() -> None:
    store = SqliteStateStore()
    store.save_timeline({"a1": [event("i1")]})
    before = rowids(store)
    store.save_timeline({"a1": [event("i1", at=T0.astimezone(timezone(timedelta(hours=1))))]})
    assert rowids(store) == before


def test_repeated_events_keep_their_count() -> None:
    store = SqliteStateStore()
    twice = event("twice")
    store.save_timeline({"a1": [twice, twice, twice], "a2": [twice]})
    store.save_timeline({"a1": [twice, twice]})
    assert store.timeline() == [twice] * 3
    store.save_timeline({"a1": [twice] * 4, "a2": []})
    assert store.timeline() == [twice] * 4


def test_any_sequence_of_saves_reads_back_as_replacing_each_partition() -> None:
    rng = random.Random(15)
    store = SqliteStateStore()
    expected: dict[str, list[Event]] = {}
    pool = [
        event(f"i{n}", T0 + rng.choice([0, 1, 2]) * MICRO, rng.choice(["a1", "a2", None]), content_type=ct)
        for n in range(12)
        for ct in (None, "webinar")
    ]
    for _ in range(60):
        saves = {p: rng.choices(pool, k=rng.randint(0, 6)) for p in rng.sample(["a1", "a2", "a3", "c:x"], 2)}
        store.save_timeline(saves)
        expected.update(saves)
        found = store.timeline()
        assert Counter(found) == Counter(e for es in expected.values() for e in es)
        assert found == sorted(found, key=event_order)
