"""The state store's contract, run against both adapters: SQLite (embedded) and Azure Table Storage (on Azurite).

Every test gets a fresh store: an in-memory SQLite database, or tables and a container under a prefix of its own in
the session's one Azurite. At the end, a few checks that only the Azure adapter needs (blobs, keys, errors).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import uuid
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from statestore import azure_bulk, azure_mirror, azure_mirror_reads, azure_storage
from statestore.azure_tables import AzureStateStore
from statestore.port import (
    BUCKETS,
    AgendaEntry,
    DeadLetter,
    Intent,
    MirrorRow,
    Progress,
    ShardRun,
    StateStore,
    StoredEvent,
    bucket_of,
)
from statestore.sqlite import SqliteStateStore

WHEN = datetime(2026, 11, 23, 8, 30, tzinfo=UTC)
# Keys that Table Storage forbids or that URLs and OData quote: every one must round-trip.
AWKWARD = ["a/b", "back\\slash", "hash#tag", "what?", "tab\there", "nl\nx", "quote'd", "100%", "ünï ☃ 𝄞", "", "~7E!"]
# Partition names as accounts, emails and refs make them: ':' '@' '/' '#' '?', non-ASCII, and one hashed as a key.
PARTITIONS = ["a1", "a:1", "x@y.com", "p/q", "h#1", "what?", "ünï ☃ 𝄞", "", "~7E!", "long" * 100]
DAY = timedelta(days=1)
MICRO = timedelta(microseconds=1)
# Refs of one entry beyond what a table property holds (kept in a blob by the Azure adapter), each longer than a key.
MANY_REFS = frozenset(f"consent:{'x' * 180}{i:03d}@example.com" for i in range(100))


def shard(n: int, of: int = 4) -> list[int]:
    """The buckets of shard `n` of `of`."""
    return [b for b in range(BUCKETS) if b % of == n]


@pytest.fixture
def store(both_stores: StateStore) -> StateStore:
    """A fresh store of each adapter (`tests.state_stores`)."""
    return both_stores


def event(id: str, at: datetime, record: str = "c1", **changes: object) -> StoredEvent:
    fields: dict[str, object] = {
        "id": id,
        "source": "webhook",
        "received_at": at,
        "table": "contact",
        "record_id": record,
        "message": "Update",
        "payload": json.dumps({"id": id}).encode(),
    }
    return StoredEvent(**{**fields, **changes})  # type: ignore[arg-type]


def letter(id: str, at: datetime, record: str = "", **changes: object) -> DeadLetter:
    fields: dict[str, object] = {
        "id": id,
        "kind": "event",
        "failed_at": at,
        "payload": b"\x00\x01 payload",
        "error": "timeout",
        "attempts": 5,
        "record_id": record,
    }
    return DeadLetter(**{**fields, **changes})  # type: ignore[arg-type]


# ---- journeys ----


def test_progress_is_replaced_per_contact_and_journeys_are_independent(store: StateStore) -> None:
    store.save_journey("j", [Progress("c1", "t1", WHEN, False, WHEN), Progress("c2", None, WHEN, True, WHEN)], [])
    store.save_journey("j", [Progress("c1", "t2", WHEN + timedelta(hours=1), False, WHEN)], [])
    store.save_journey("other/journey", [Progress("c1", "t9", WHEN, True, WHEN)], [])
    assert store.progress("j") == [
        Progress("c1", "t2", WHEN + timedelta(hours=1), False, WHEN),
        Progress("c2", None, WHEN, True, WHEN),
    ]
    assert store.progress("other/journey") == [Progress("c1", "t9", WHEN, True, WHEN)]
    assert store.progress("none") == []


def test_progress_without_a_journey_entry_time_reads_back_with_its_tile_entry_time(store: StateStore) -> None:
    store.save_journey("j", [Progress("c1", "t1", WHEN + timedelta(hours=2), False)], [])
    assert store.progress("j")[0].started_at == WHEN + timedelta(hours=2)


def test_progress_is_sorted_by_contact_and_takes_any_contact_id(store: StateStore) -> None:
    rows = [Progress(contact, "t1", WHEN, False, WHEN) for contact in AWKWARD]
    store.save_journey("j", reversed(rows), [])
    assert store.progress("j") == sorted(rows, key=lambda row: row.contact_id)


def test_handled_pairs_are_only_added(store: StateStore) -> None:
    store.save_journey("j", [], [("t1", "a1"), ("t1", "")])
    store.save_journey("j", [], [("t2", "a1"), ("t1", "a1")])
    store.save_journey("j", [], [])
    store.save_journey("k", [], [("t#?/", "a/1")])
    assert store.handled("j") == {("t1", "a1"), ("t1", ""), ("t2", "a1")}
    assert store.handled("k") == {("t#?/", "a/1")}
    assert store.handled("none") == set()


def test_progress_and_handled_are_read_for_some_contacts_and_accounts(store: StateStore) -> None:
    contacts = [*(f"c{i:04d}" for i in range(600)), *AWKWARD]
    pairs = {(f"t{i % 3}", f"a{i:04d}") for i in range(600)} | {("t1", a) for a in AWKWARD} | {("t2", "a0000")}
    store.save_journey("j", [Progress(c, "t1", WHEN, False, WHEN) for c in contacts], pairs)
    store.save_journey("k", [Progress("c0001", "t9", WHEN, True, WHEN)], [("t9", "a0001")])
    some = [*(f"c{i:04d}" for i in range(0, 700, 3)), "a/b", "ünï ☃ 𝄞", "", "quote'd"]  # some unknown
    assert store.progress("j", some) == [p for p in store.progress("j") if p.contact_id in set(some)]
    assert store.progress("j", iter(["c0002", "c0001", "c0001"])) == [
        Progress("c0001", "t1", WHEN, False, WHEN),
        Progress("c0002", "t1", WHEN, False, WHEN),
    ]
    assert store.progress("k", ["c0001", "c0002"]) == [Progress("c0001", "t9", WHEN, True, WHEN)]
    assert store.progress("j", []) == [] and store.progress("none", ["c0001"]) == []
    many = [*(f"a{i:04d}" for i in range(0, 700, 2)), "hash#tag", ""]  # a few hundred, some unknown
    assert store.handled("j", many) == {pair for pair in pairs if pair[1] in set(many)}
    few = ["a0000", "a0001", "quote'd", "100%", "ünï ☃ 𝄞", "nobody"]
    assert store.handled("j", iter(few)) == {
        ("t0", "a0000"),
        ("t2", "a0000"),
        ("t1", "a0001"),
        ("t1", "quote'd"),
        ("t1", "100%"),
        ("t1", "ünï ☃ 𝄞"),
    }
    assert store.handled("k", ["a0001", "a0000"]) == {("t9", "a0001")}
    assert store.handled("j", []) == set() and store.handled("none", ["a0000"]) == set()


def test_tile_counts_add_up_across_saves_and_filter_by_account(store: StateStore) -> None:
    store.save_journey("j", [], [], {"a1": {"t1": {"entered": 2, "true": 1}}, "": {"t1": {"entered": 1}}})
    store.save_journey("j", [], [], {"a1": {"t1": {"entered": 1, "false": 0}}, "a2": {"t2": {"emails": 3}}})
    store.save_journey("j", [], [], {"a1/x": {"t1": {"entered": 10}}})
    store.save_journey("k", [], [], {"a1": {"t1": {"entered": 100}}})
    assert store.tile_counts("j") == {"t1": {"entered": 14, "true": 1}, "t2": {"emails": 3}}
    assert store.tile_counts("j", account="a1") == {"t1": {"entered": 3, "true": 1}}
    assert store.tile_counts("j", account="") == {"t1": {"entered": 1}}
    assert store.tile_counts("j", account="a1/x") == {"t1": {"entered": 10}}
    assert store.tile_counts("j", account="a3") == {}
    assert store.tile_counts("none") == {}


def test_effects_done_finds_recorded_keys_in_batches_of_more_than_a_thousand(store: StateStore) -> None:
    recorded = {f"j{i % 2}/t{i % 3}/contact/{i:05d}": f"id{i}" for i in range(1200)}
    recorded |= {f"k{i}": f"plain{i}" for i in range(20)}  # keys without a "/"
    store.record_effects(recorded.items())
    wanted = [*recorded, *(f"j0/t0/contact/missing{i}" for i in range(100)), "missing"]
    assert store.effects_done(wanted) == recorded
    assert store.effects_done([f"k{i}" for i in range(0, 30, 10)]) == {"k0": "plain0", "k10": "plain10"}
    assert store.effects_done([]) == {}


def test_effects_take_any_key(store: StateStore) -> None:
    keys = [*AWKWARD, "j/t/contact/" + "x" * 600, "j/t/contact/" + "x" * 601]
    store.record_effects((key, f"id-{i}") for i, key in enumerate(keys))
    assert store.effects_done(keys) == {key: f"id-{i}" for i, key in enumerate(keys)}


def test_a_workflow_intent_is_recorded_then_completed(store: StateStore) -> None:
    assert store.intent("w") is None
    store.record_intent(Intent("w", "wf", "e1", None))
    assert store.intent("w") == Intent("w", "wf", "e1", None)
    store.record_intent(Intent("w", "wf", "e1", "job-1", "2026-11-23T08:30:00Z"))
    assert store.intent("w") == Intent("w", "wf", "e1", "job-1", "2026-11-23T08:30:00Z")


def test_open_intents_are_those_without_a_job(store: StateStore) -> None:
    assert store.open_intents() == []
    store.claim_intent(Intent("k2", "wf", "c2", None, "2026-11-23T08:30:00Z"))
    store.record_intent(Intent("k1", "wf", "c1", None))
    store.record_intent(Intent("k3", "wf", "c3", "job-3", "2026-11-23T08:30:00Z"))
    assert store.open_intents() == [
        Intent("k1", "wf", "c1", None),
        Intent("k2", "wf", "c2", None, "2026-11-23T08:30:00Z"),
    ]
    store.record_intent(Intent("k2", "wf", "c2", "job-2", "2026-11-23T08:31:00Z"))
    assert store.open_intents() == [Intent("k1", "wf", "c1", None)]


def test_an_intent_left_by_a_dead_run_is_taken_over_once(store: StateStore) -> None:
    stale = Intent("k", "wf", "c1", None, "2026-11-23T08:00:00Z")
    assert not store.take_over_intent(stale, "2026-11-23T09:00:00Z")  # nothing to take over
    assert store.claim_intent(stale)
    assert store.take_over_intent(stale, "2026-11-23T09:00:00Z")
    assert not store.take_over_intent(stale, "2026-11-23T09:00:01Z")  # a second run saw the same stale claim
    assert store.intent("k") == Intent("k", "wf", "c1", None, "2026-11-23T09:00:00Z")
    taken = Intent("k", "wf", "c1", None, "2026-11-23T09:00:00Z")
    store.record_intent(Intent("k", "wf", "c1", "job-1", taken.claimed_at))
    assert not store.take_over_intent(taken, "2026-11-23T10:00:00Z")  # started meanwhile
    assert store.intent("k") == Intent("k", "wf", "c1", "job-1", taken.claimed_at)


def test_an_intent_is_claimed_once(store: StateStore) -> None:
    claim = Intent("j/t/contact/c1", "wf", "c1", None, "2026-11-23T08:30:00Z")
    assert store.claim_intent(claim)
    assert not store.claim_intent(claim)
    assert not store.claim_intent(Intent(claim.key, "wf", "c1", None, "2026-11-23T09:00:00Z"))
    assert store.intent(claim.key) == claim  # the loser changed nothing
    store.record_intent(Intent(claim.key, "wf", "c1", "job-1", claim.claimed_at))
    assert not store.claim_intent(claim)
    assert store.intent(claim.key) == Intent(claim.key, "wf", "c1", "job-1", claim.claimed_at)


def test_concurrent_claims_takeovers_and_deliveries_have_exactly_one_winner(store: StateStore) -> None:
    claims: list[bool] = []
    deliveries: list[bool] = []
    takeovers: list[bool] = []
    stale = Intent("dead", "wf", "c1", None, "2026-11-23T08:00:00Z")
    store.claim_intent(stale)
    start = threading.Barrier(8)

    def race(n: int) -> None:
        start.wait()
        claims.append(store.claim_intent(Intent("k", "wf", f"e{n}", None)))
        deliveries.append(store.record_event(event("e", WHEN, payload=f"delivery {n}".encode())))
        takeovers.append(store.take_over_intent(stale, f"2026-11-23T09:00:0{n}Z"))

    threads = [threading.Thread(target=race, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claims) == [False] * 7 + [True]
    assert sorted(deliveries) == [False] * 7 + [True]
    assert sorted(takeovers) == [False] * 7 + [True]


def test_concurrent_counts_and_marks_all_add_up(store: StateStore) -> None:
    store.record_event(event("e", WHEN))
    start = threading.Barrier(6)

    def run(n: int) -> None:
        start.wait()
        store.save_journey("j", [], [], {"a1": {"t1": {"entered": 1}}, f"a{n}x": {"t1": {"entered": 1}}})
        store.mark_event("e", "failed", error=f"attempt {n}")

    threads = [threading.Thread(target=run, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.tile_counts("j") == {"t1": {"entered": 12}}
    assert store.tile_counts("j", account="a1") == {"t1": {"entered": 6}}
    marked = store.event("e")
    assert marked is not None and marked.attempts == 6 and marked.status == "failed"


# ---- checkpoints ----


def test_checkpoints_are_set_overwritten_and_removed(store: StateStore) -> None:
    link = "https://org.crm4.dynamics.com/api/data/v9.2/contacts?$deltatoken=9%2F1#x"
    assert store.checkpoint("delta:contact") is None
    store.save_checkpoints({"delta:contact": link, "columns": '["a","b"]', "gone": None})
    assert store.checkpoint("delta:contact") == link
    assert store.checkpoint("columns") == '["a","b"]'
    store.save_checkpoints({"delta:contact": link + "2"})
    assert store.checkpoint("delta:contact") == link + "2"
    store.save_checkpoints({"delta:contact": None, "never": None})
    assert store.checkpoint("delta:contact") is None
    assert store.checkpoint("columns") == '["a","b"]'


def test_a_large_checkpoint_round_trips(store: StateStore) -> None:
    big = json.dumps([f"column_{i}_ü" for i in range(5000)])  # > 64 KiB as UTF-16
    store.save_checkpoints({"columns": big})
    assert store.checkpoint("columns") == big
    store.save_checkpoints({"columns": "small"})
    assert store.checkpoint("columns") == "small"
    store.save_checkpoints({"columns": big})
    store.save_checkpoints({"columns": None})
    assert store.checkpoint("columns") is None


# ---- mirror ----

DATA = {
    "nested": {"list": [1, 2.5, None, True, "x"], "empty": {}, "deeper": {"a": {"b": [[]]}}},
    "none": None,
    "int": -(2**53),
    "big": 2**63,
    "float": 0.1,
    "bool": False,
    "text": "ünïcödé ☃ 𝄞 \u0000 \"quoted\" 'single' \\ /",
}


def test_mirror_rows_are_put_filtered_moved_and_deleted(store: StateStore) -> None:
    store.put_mirror(
        [
            MirrorRow("contact", "c2", "a1", {"n": 2}),
            MirrorRow("contact", "c1", "a1", DATA),
            MirrorRow("contact", "c3", "a2", {"n": 3}),
            MirrorRow("account", "a1", "a1", {"name": "Contoso"}),
        ]
    )
    assert [(r.partition, r.id) for r in store.mirror("contact")] == [("a1", "c1"), ("a1", "c2"), ("a2", "c3")]
    assert [r.id for r in store.mirror("contact", ["a2"])] == ["c3"]
    assert [r.id for r in store.mirror("contact", ["a2", "a1", "a9"])] == ["c1", "c2", "c3"]
    assert list(store.mirror("contact", [])) == []
    assert list(store.mirror("lead")) == []
    assert store.mirror_rows("contact", ["c1", "c3", "c9", "a1"]) == {
        "c1": MirrorRow("contact", "c1", "a1", DATA),
        "c3": MirrorRow("contact", "c3", "a2", {"n": 3}),
    }
    store.put_mirror([MirrorRow("contact", "c1", "a2", {"n": 1})])  # moved to another account
    assert [r.id for r in store.mirror("contact", ["a1"])] == ["c2"]
    assert [r.id for r in store.mirror("contact", ["a2"])] == ["c1", "c3"]
    assert store.mirror_rows("contact", ["c1"]) == {"c1": MirrorRow("contact", "c1", "a2", {"n": 1})}
    store.delete_mirror("contact", ["c1", "c9"])
    assert [r.id for r in store.mirror("contact")] == ["c2", "c3"]
    assert store.mirror_rows("contact", ["c1"]) == {}
    assert [r.id for r in store.mirror("account")] == ["a1"]
    store.clear_mirror()
    assert list(store.mirror("contact")) == [] and list(store.mirror("account")) == []
    assert store.mirror_rows("account", ["a1"]) == {}


def test_mirror_data_round_trips(store: StateStore) -> None:
    rows = [MirrorRow("contact", f"c{i}", "a1", {**DATA, "i": i}) for i in range(3)]
    rows.append(MirrorRow("contact", "empty", "a1", {}))
    store.put_mirror(rows)
    assert list(store.mirror("contact")) == sorted(rows, key=lambda r: r.id)


def test_mirror_takes_any_id_and_partition(store: StateStore) -> None:
    rows = [MirrorRow("kind/x", key, f"p{key}", {"key": key}) for key in AWKWARD]
    store.put_mirror(rows)
    assert list(store.mirror("kind/x")) == sorted(rows, key=lambda r: (r.partition, r.id))
    assert list(store.mirror("kind/x", ["pa/b"])) == [MirrorRow("kind/x", "a/b", "pa/b", {"key": "a/b"})]
    assert store.mirror_rows("kind/x", AWKWARD) == {row.id: row for row in rows}
    store.delete_mirror("kind/x", AWKWARD)
    assert list(store.mirror("kind/x")) == []


def test_a_large_mirror_comes_back_complete(store: StateStore) -> None:
    rows = [MirrorRow("contact", f"c{i:05d}", f"a{i % 30:02d}", {"i": i, "name": f"Contact {i}"}) for i in range(2500)]
    store.put_mirror(rows)
    assert list(store.mirror("contact")) == sorted(rows, key=lambda r: (r.partition, r.id))
    some = {"a03", "a17", "a29"}
    assert [r.id for r in store.mirror("contact", some)] == [
        r.id for r in sorted(rows, key=lambda r: (r.partition, r.id)) if r.partition in some
    ]
    ids = [f"c{i:05d}" for i in range(0, 2600, 7)]  # more than a few hundred, some missing
    assert store.mirror_rows("contact", ids) == {r.id: r for r in rows if r.id in set(ids)}
    moved = [MirrorRow(r.kind, r.id, "a99", r.data) for r in rows[:120]]
    store.put_mirror(moved)
    assert len(list(store.mirror("contact"))) == 2500
    assert [r.id for r in store.mirror("contact", ["a99"])] == [r.id for r in moved]
    assert store.mirror_rows("contact", ["c00000", "c00450"]) == {"c00000": moved[0], "c00450": rows[450]}
    assert [r.id for r in store.mirror("contact", ["a00"])] == [f"c{i:05d}" for i in range(120, 2500, 30)]


def test_large_mirror_data_round_trips(store: StateStore) -> None:
    big = {"notes": "ü" * 40_000, "nested": {"x": ["y" * 1000] * 30}, "n": 1}  # > 64 KiB as a property
    store.put_mirror([MirrorRow("contact", "c1", "a1", big), MirrorRow("contact", "c2", "a1", {"n": 2})])
    assert store.mirror_rows("contact", ["c1"]) == {"c1": MirrorRow("contact", "c1", "a1", big)}
    assert [r.data for r in store.mirror("contact")] == [big, {"n": 2}]
    store.put_mirror([MirrorRow("contact", "c1", "a2", big)])
    assert list(store.mirror("contact", ["a2"])) == [MirrorRow("contact", "c1", "a2", big)]
    store.put_mirror([MirrorRow("contact", "c1", "a2", {"n": 1})])
    assert store.mirror_rows("contact", ["c1"]) == {"c1": MirrorRow("contact", "c1", "a2", {"n": 1})}


def test_mirror_partitions_are_listed_by_kind_and_bucket(store: StateStore) -> None:
    store.put_mirror(MirrorRow("contact", f"c{i}", p, {"i": i}) for i, p in enumerate(PARTITIONS))
    store.put_mirror([MirrorRow("contact", "c99", "a1", {}), MirrorRow("account", "a1", "a1", {"name": "x" * 70_000})])
    store.put_mirror([MirrorRow("account", "a2", "only-account", {}), MirrorRow("lead", "l1", "lead-only", {})])
    everything = sorted({*PARTITIONS, "only-account", "lead-only"})
    assert store.mirror_partitions(["contact"]) == sorted(PARTITIONS)
    assert store.mirror_partitions({"contact", "account"}) == sorted({*PARTITIONS, "only-account"})
    assert store.mirror_partitions(["contact", "account", "lead"]) == everything
    assert store.mirror_partitions(["nothing"]) == [] and store.mirror_partitions([]) == []
    for n in range(4):
        assert store.mirror_partitions(["contact", "account", "lead"], shard(n)) == [
            p for p in everything if bucket_of(p) % 4 == n
        ]
    for p in PARTITIONS:
        assert p in store.mirror_partitions(["contact"], [bucket_of(p)])
    assert store.mirror_partitions(["contact"], []) == []
    store.put_mirror([MirrorRow("contact", "c1", "a1", {})])  # the only row of "a:1" moves to "a1"
    store.delete_mirror("lead", ["l1"])
    # A partition left without rows may still be listed (the Azure adapter keeps it until a refill): evaluating it
    # finds nothing. Every partition with rows is listed, and nothing else.
    listed = store.mirror_partitions(["contact", "lead"])
    assert set(PARTITIONS) - {"a:1"} <= set(listed) <= set(PARTITIONS) | {"lead-only"}
    assert listed == sorted(listed)
    store.clear_mirror()
    assert store.mirror_partitions(["contact", "account", "lead"]) == []


@pytest.mark.parametrize(
    ("held", "at_once", "kept"),
    [(10**9, 10**9, 10**9), (1, 10**9, 10**9), (1, 0, 0)],
    ids=["held", "written", "written-by-slice"],
)
def test_a_refilled_mirror_reads_back_complete(
    store: StateStore, monkeypatch: pytest.MonkeyPatch, held: int, at_once: int, kept: int
) -> None:
    """A full sync: the mirror emptied, every row put again (chunks of one kind, each after a read by id of its
    rows), some moved, replaced or removed while it refills; then read by partition and by id, and written again."""
    monkeypatch.setattr(azure_bulk, "_FLUSH", held)  # the Azure adapter holds this much before writing fragments,
    monkeypatch.setattr(azure_bulk, "_AT_ONCE", at_once)  # seals a kind of more rows a slice at a time,
    monkeypatch.setattr(azure_bulk, "_KEPT", kept)  # and keeps the rows of a kind this large in its id pages
    big = {"notes": "x" * 70_000}
    store.put_mirror([MirrorRow("contact", "old", "a1", {"n": 0}), MirrorRow("contact", "old-big", "a1", big)])
    store.clear_mirror()
    assert store.mirror_rows("contact", ["old", "old-big"]) == {}
    rows = [MirrorRow("contact", f"c{i:03d}", PARTITIONS[i % len(PARTITIONS)], {"i": i}) for i in range(300)]
    for chunk in (rows[:120], rows[120:]):
        assert store.mirror_rows("contact", [r.id for r in chunk]) == {}
        store.put_mirror(chunk)
    store.put_mirror([MirrorRow("account", "a1", "a1", big), MirrorRow("lead", "l1", "a1", {"contact": "c001"})])
    assert store.mirror_rows("contact", ["c001", "c299", "nope"]) == {"c001": rows[1], "c299": rows[299]}
    moved = MirrorRow("contact", "c001", "elsewhere", {"i": 1, "moved": True})
    replaced = MirrorRow("contact", "c002", rows[2].partition, {"i": 2, "again": True})
    store.put_mirror([moved, replaced])
    store.delete_mirror("contact", ["c003", "never-put"])
    store.put_mirror([MirrorRow("contact", "c004", "a1", big)])
    small = MirrorRow("contact", "c004", "a2", {"small": True})
    store.put_mirror([small, MirrorRow("contact", "c005", "a1", big)])
    large = MirrorRow("contact", "c005", "a1", big)
    assert store.mirror_rows("contact", ["c001", "c003", "c004", "c005"]) == {"c001": moved, "c004": small,
                                                                               "c005": large}  # fmt: skip
    expected = {r.id: r for r in rows} | {"c001": moved, "c002": replaced, "c004": small, "c005": large}
    del expected["c003"]
    in_order = sorted(expected.values(), key=lambda r: (r.partition, r.id))
    assert store.mirror_partitions(["contact"]) == sorted({r.partition for r in in_order})
    assert list(store.mirror("contact")) == in_order
    some = {"a1", "elsewhere"}
    assert list(store.mirror("contact", some)) == [r for r in in_order if r.partition in some]
    assert store.mirror_rows("contact", list(expected)) == expected
    assert store.mirror_rows("account", ["a1"]) == {"a1": MirrorRow("account", "a1", "a1", big)}
    assert [r.id for r in store.mirror("lead", ["a1"])] == ["l1"]
    # Refilled, it is the mirror: rows put, moved and removed as ever.
    store.put_mirror([MirrorRow("contact", "c001", "a1", {"back": True}), MirrorRow("contact", "c400", "a2", {})])
    store.delete_mirror("contact", ["c002", "c005"])
    assert [r.id for r in store.mirror("contact", ["elsewhere"])] == []
    assert store.mirror_rows("contact", ["c001", "c002", "c005", "c400"]) == {
        "c001": MirrorRow("contact", "c001", "a1", {"back": True}),
        "c400": MirrorRow("contact", "c400", "a2", {}),
    }
    assert len(list(store.mirror("contact"))) == len(expected) - 1
    store.delete_mirror("contact", ["c400"])
    again = MirrorRow("contact", "c400", "a2", {"again": True})
    store.put_mirror([again])  # where a row of that id was removed
    assert store.mirror_rows("contact", ["c400"]) == {"c400": again}
    assert again in list(store.mirror("contact", ["a2"]))


@pytest.fixture(params=["sqlite", "azure"])
def two_stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[StateStore, StateStore]]:
    """Two stores over the same state, as two processes have: one SQLite file, or one storage account and prefix."""
    stores: tuple[StateStore, StateStore]
    if request.param == "sqlite":
        path = str(tmp_path / "state.sqlite")
        stores = (SqliteStateStore(path), SqliteStateStore(path))
    else:
        azurite, prefix = request.getfixturevalue("azurite"), f"t{uuid.uuid4().hex[:16]}"
        stores = (AzureStateStore(azurite, prefix=prefix), AzureStateStore(azurite, prefix=prefix))
    yield stores
    for one in stores:
        one.close()  # type: ignore[attr-defined]


def test_a_refill_reaches_the_other_stores_once_read_by_partition(two_stores: tuple[StateStore, StateStore]) -> None:
    """Another process sees a refilled mirror once the refilling one reads it by partition, hands it over (saves
    checkpoints, starts a fanned-out run) or closes; the Azure adapter shows it the previous mirror until then."""
    one, other = two_stores
    c1, c2, c3 = (MirrorRow("contact", f"c{i}", "a1", {"n": i}) for i in (1, 2, 3))
    one.put_mirror([c1])
    assert other.mirror_rows("contact", ["c1"]) == {"c1": c1}
    one.clear_mirror()
    one.put_mirror([c2])
    assert one.mirror_partitions(["contact"]) == ["a1"]
    assert other.mirror_rows("contact", ["c1", "c2"]) == {"c2": c2} and list(other.mirror("contact")) == [c2]
    other.put_mirror([MirrorRow("contact", "c1", "a1", {"n": 1})])  # the other process writes the refilled mirror
    assert list(one.mirror("contact", ["a1"])) == [c1, c2]
    one.clear_mirror()
    one.put_mirror([c3])
    one.save_checkpoints({"columns": "refilled"})
    assert other.mirror_rows("contact", ["c1", "c2", "c3"]) == {"c3": c3}
    one.clear_mirror()
    one.put_mirror([c1])
    one.start_run(ShardRun("run-1", 2, WHEN, {}))
    assert [r.id for r in other.mirror("contact", ["a1"])] == ["c1"]


def test_concurrent_puts_of_rows_sharing_pages_all_land(
    two_stores: tuple[StateStore, StateStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(azure_mirror_reads, "NEW_KIND_BUCKETS", 64)  # the Azure adapter's id pages: 64 for 400 rows
    one, other = two_stores
    wanted = {f"c{i:03d}": MirrorRow("contact", f"c{i:03d}", f"a{i % 7}", {"i": i}) for i in range(400)}
    rows = list(wanted.values())

    def put(store: StateStore, some: list[MirrorRow]) -> None:
        for start in range(0, len(some), 25):
            store.put_mirror(some[start : start + 25])

    threads = [
        threading.Thread(target=put, args=(one, rows[0::3])),
        threading.Thread(target=put, args=(other, rows[1::3])),
        threading.Thread(target=put, args=(one, rows[2::3])),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert one.mirror_rows("contact", list(wanted)) == wanted
    assert list(other.mirror("contact")) == sorted(rows, key=lambda r: (r.partition, r.id))


def test_reads_of_a_batch_kind_by_kind_see_the_writes_between_them(store: StateStore) -> None:
    partitions = [f"a{i:02d}" for i in range(40)]
    for kind in ("account", "contact", "lead"):
        store.put_mirror(MirrorRow(kind, f"{kind}-{p}", p, {"kind": kind}) for p in partitions)
    assert [r.id for r in store.mirror("account", partitions)] == [f"account-{p}" for p in partitions]
    assert [r.id for r in store.mirror("contact", partitions)] == [f"contact-{p}" for p in partitions]
    store.put_mirror([MirrorRow("lead", "lead-new", "a00", {})])
    store.delete_mirror("lead", ["lead-a01"])
    assert [r.id for r in store.mirror("lead", partitions)][:3] == ["lead-a00", "lead-new", "lead-a02"]
    assert [r.id for r in store.mirror("contact", partitions)] == [f"contact-{p}" for p in partitions]  # again
    assert [r.id for r in store.mirror("account", partitions[:2])] == ["account-a00", "account-a01"]


# ---- sharded runs ----


def test_a_sharded_run_is_done_when_its_last_distinct_shard_is(store: StateStore) -> None:
    assert store.open_run() is None
    run = ShardRun("run-1", 3, WHEN, {"delta:contact": "https://x/?$deltatoken=1", "columns": "[]"})
    store.start_run(run)
    assert store.open_run() == run
    assert store.finish_shard("run-1", 0) is False
    assert store.finish_shard("run-1", 0) is False  # a redelivered message counts once
    assert store.open_run() == ShardRun(run.id, 3, WHEN, run.checkpoints, frozenset({0}))
    assert store.finish_shard("run-1", 2) is False
    assert store.finish_shard("run-1", 1) is True
    assert store.open_run() == ShardRun(run.id, 3, WHEN, run.checkpoints, frozenset({0, 1, 2}))
    store.complete_run("run-1")
    assert store.open_run() is None
    assert store.finish_shard("unknown", 0) is False
    store.complete_run("unknown")


def test_the_newest_open_run_is_returned(store: StateStore) -> None:
    store.start_run(ShardRun("old", 2, WHEN, {}))
    store.start_run(ShardRun("new", 2, WHEN + timedelta(minutes=15), {"a": "b"}, frozenset({1})))
    store.start_run(ShardRun("done", 1, WHEN + timedelta(minutes=30), {}))
    store.complete_run("done")
    assert store.open_run() == ShardRun("new", 2, WHEN + timedelta(minutes=15), {"a": "b"}, frozenset({1}))
    store.start_run(ShardRun("new", 2, WHEN + timedelta(minutes=15), {"a": "b"}, frozenset({1})))  # again
    assert store.finish_shard("new", 0) is True
    store.complete_run("new")
    assert store.open_run() == ShardRun("old", 2, WHEN, {})


# ---- the agenda ----


def test_a_partitions_bucket_is_its_crc32_mod_1024() -> None:
    assert BUCKETS == 1024
    for partition in PARTITIONS:
        assert bucket_of(partition) == zlib.crc32(partition.encode("utf-8")) % 1024
    assert (bucket_of("account-1"), bucket_of("ünï ☃"), bucket_of("")) == (48, 598, 0)  # the same in every process
    assert [len(shard(n)) for n in range(4)] == [256] * 4
    assert sorted(b for n in range(4) for b in shard(n)) == list(range(BUCKETS))
    assert all(set(shard(n, 8)) <= set(shard(n % 4)) for n in range(8))  # doubling the shards splits each one


def test_agenda_entries_are_saved_replaced_and_removed(store: StateStore) -> None:
    assert store.due_partitions(WHEN + DAY) == [] and store.dependents(["account:a1"]) == set()
    store.save_agenda(
        [
            AgendaEntry("a1", WHEN, frozenset({"account:a1", "contact:c1", "consent:x@y.com"})),
            AgendaEntry("a2", WHEN + timedelta(hours=1)),
            AgendaEntry("a:3", None, frozenset({"consent:x@y.com", "contact:a/b#?", "contact:ünï ☃ 𝄞"})),
        ]
    )
    assert store.due_partitions(WHEN + DAY) == ["a1", "a2"]  # "a:3" is due only when something changes
    assert store.dependents(["contact:c1", "nothing"]) == {"a1"}
    assert store.dependents(iter(["consent:x@y.com"])) == {"a1", "a:3"}
    assert store.dependents(["contact:a/b#?", "contact:ünï ☃ 𝄞"]) == {"a:3"}
    assert store.dependents([]) == set()
    store.save_agenda([AgendaEntry("a1", WHEN + 2 * DAY, frozenset({"contact:c2", "consent:x@y.com"}))])
    assert store.due_partitions(WHEN + DAY) == ["a2"]
    assert store.due_partitions(WHEN + 2 * DAY) == ["a1", "a2"]
    assert store.dependents(["contact:c1"]) == set() and store.dependents(["account:a1"]) == set()
    assert store.dependents(["contact:c2"]) == {"a1"}
    assert store.dependents(["consent:x@y.com"]) == {"a1", "a:3"}
    store.save_agenda([AgendaEntry("a2", None), AgendaEntry("a:3", None), AgendaEntry("never-saved", None)])
    assert store.due_partitions(WHEN + 3 * DAY) == ["a1"]
    assert store.dependents(["consent:x@y.com", "contact:a/b#?"]) == {"a1"}
    store.save_agenda([AgendaEntry("a4", WHEN), AgendaEntry("a4", None, frozenset({"r"}))])  # the last one wins
    assert store.due_partitions(WHEN + 3 * DAY) == ["a1"] and store.dependents(["r"]) == {"a4"}
    store.save_agenda([AgendaEntry("a4", None, frozenset({"r"}))])  # unchanged
    store.save_agenda([])
    assert store.dependents(["r"]) == {"a4"}


def test_marking_due_keeps_an_earlier_due_and_the_refs(store: StateStore) -> None:
    store.save_agenda(
        [
            AgendaEntry("early", WHEN, frozenset({"contact:c1"})),
            AgendaEntry("late", WHEN + DAY, frozenset({"contact:c2"})),
            AgendaEntry("x@y.com", None, frozenset({"contact:c3"})),
        ]
    )
    store.mark_due(iter(["early", "late", "x@y.com", "new:1", "new:1"]), WHEN + timedelta(hours=1))
    assert store.due_partitions(WHEN) == ["early"]
    assert store.due_partitions(WHEN + timedelta(hours=1)) == ["early", "late", "new:1", "x@y.com"]
    assert store.dependents(["contact:c1", "contact:c2", "contact:c3"]) == {"early", "late", "x@y.com"}
    store.mark_due(["late", "new:1"], WHEN + 5 * DAY)  # later than their due: nothing moves
    assert store.due_partitions(WHEN + timedelta(hours=1)) == ["early", "late", "new:1", "x@y.com"]
    store.mark_due(["late"], WHEN - DAY)
    assert store.due_partitions(WHEN - DAY) == ["late"]
    store.mark_due([], WHEN)
    store.save_agenda([AgendaEntry("new:1", None), AgendaEntry("late", WHEN + DAY, frozenset({"contact:c2"}))])
    assert store.due_partitions(WHEN + timedelta(hours=1)) == ["early", "x@y.com"]  # a save replaces the due
    assert store.dependents(["contact:c2"]) == {"late"}


def test_due_partitions_are_due_at_or_before_the_moment_to_the_microsecond_and_by_bucket(store: StateStore) -> None:
    store.save_agenda(AgendaEntry(p, WHEN + i * MICRO, frozenset({f"ref:{p}"})) for i, p in enumerate(PARTITIONS))
    store.save_agenda([AgendaEntry("only-refs", None, frozenset({"ref:x"}))])
    assert store.due_partitions(WHEN - MICRO) == []
    assert store.due_partitions(WHEN) == [PARTITIONS[0]]
    assert store.due_partitions(WHEN + 2 * MICRO) == sorted(PARTITIONS[:3])
    assert store.due_partitions((WHEN + MICRO).astimezone(timezone(timedelta(hours=-5)))) == sorted(PARTITIONS[:2])
    assert store.due_partitions(WHEN + DAY) == sorted(PARTITIONS)
    for n in range(4):
        assert store.due_partitions(WHEN + DAY, shard(n)) == sorted(p for p in PARTITIONS if bucket_of(p) % 4 == n)
    for i, p in enumerate(PARTITIONS):
        assert p in store.due_partitions(WHEN + i * MICRO, [bucket_of(p)])
        assert p not in store.due_partitions(WHEN + (i - 1) * MICRO, [bucket_of(p)])
    assert store.due_partitions(WHEN + DAY, []) == []
    assert store.dependents(f"ref:{p}" for p in PARTITIONS) == set(PARTITIONS)


def test_clearing_the_agenda_forgets_every_entry(store: StateStore) -> None:
    store.save_agenda([AgendaEntry("a1", WHEN, frozenset({"r1"})), AgendaEntry("a2", None, MANY_REFS)])
    store.mark_due(["a3"], WHEN)
    assert store.dependents(sorted(MANY_REFS)[-1:]) == {"a2"}
    store.clear_agenda()
    assert store.due_partitions(WHEN + DAY) == [] and store.dependents(["r1", *MANY_REFS]) == set()
    store.save_agenda([AgendaEntry("a2", WHEN, frozenset({"r1"}))])
    assert store.due_partitions(WHEN) == ["a2"] and store.dependents(["r1"]) == {"a2"}


def test_large_refs_are_replaced_and_removed(store: StateStore) -> None:
    many = MANY_REFS
    store.save_agenda([AgendaEntry("a1", WHEN, many)])
    assert store.dependents(sorted(many)[::10]) == {"a1"}
    fewer = frozenset(sorted(many)[:10])
    store.save_agenda([AgendaEntry("a1", WHEN, fewer | {"account:a1"})])
    assert store.dependents(many - fewer) == set()
    assert store.dependents([*fewer, "account:a1"]) == {"a1"}
    store.save_agenda([AgendaEntry("a1", WHEN, many)])
    store.mark_due(["a1"], WHEN - DAY)
    assert store.dependents(sorted(many)[-1:]) == {"a1"} and store.due_partitions(WHEN - DAY) == ["a1"]
    store.save_agenda([AgendaEntry("a1", None)])
    assert store.dependents(many) == set() and store.due_partitions(WHEN + DAY) == []


def test_a_large_agenda_is_saved_in_one_call(store: StateStore) -> None:
    def refs(i: int) -> frozenset[str]:
        return frozenset({f"c:{i % 40}", *([f"a:{i}"] if i % 10 == 0 else [])})

    entries = [AgendaEntry(f"account-{i:04d}", WHEN + i * timedelta(seconds=1), refs(i)) for i in range(2000)]
    store.save_agenda(entries)
    assert store.due_partitions(WHEN + 999 * timedelta(seconds=1)) == [e.partition for e in entries[:1000]]
    in_shard = [e.partition for e in entries if bucket_of(e.partition) % 4 == 1]
    assert store.due_partitions(WHEN + DAY, shard(1)) == in_shard
    assert store.dependents(["c:7"]) == {e.partition for e in entries[7::40]}
    assert store.dependents(f"a:{i}" for i in range(0, 2000, 20)) == {e.partition for e in entries[::20]}
    store.save_agenda(entries)  # again: nothing changes
    store.save_agenda(AgendaEntry(e.partition, None, frozenset({"c:0"})) for e in entries[:1000])
    assert store.due_partitions(WHEN + DAY) == [e.partition for e in entries[1000:]]
    assert store.dependents(["c:0"]) == {e.partition for e in entries[:1000]} | {e.partition for e in entries[1000::40]}
    assert store.dependents(["c:10", "a:10", "a:1010"]) == {e.partition for e in entries[1010::40]}


# ---- events and dead letters ----


def test_an_event_is_recorded_once_and_read_back(store: StateStore) -> None:
    first = event("e1", WHEN.replace(microsecond=123456), message="Create", payload=b"\x00\xff binary")
    assert store.record_event(first) is True
    assert store.record_event(event("e1", WHEN, payload=b"redelivered")) is False
    assert store.event("e1") == first
    assert store.event("e2") is None
    assert store.record_event(event("e/2?#", WHEN, error="earlier", status="failed", attempts=2)) is True
    assert store.event("e/2?#") == event("e/2?#", WHEN, error="earlier", status="failed", attempts=2)


def test_events_are_filtered_by_window_and_record_oldest_first(store: StateStore) -> None:
    t = [WHEN + timedelta(minutes=m) for m in range(5)]
    for e in [event("e3", t[3], "c2"), event("e0", t[0]), event("e2b", t[2]), event("e2a", t[2], "c2")]:
        store.record_event(e)
    store.record_event(event("e1", t[1] + timedelta(microseconds=1)))
    assert [e.id for e in store.events()] == ["e0", "e1", "e2a", "e2b", "e3"]
    assert [e.id for e in store.events(since=t[1], until=t[3])] == ["e1", "e2a", "e2b"]  # [since, until)
    assert [e.id for e in store.events(since=t[2])] == ["e2a", "e2b", "e3"]
    assert [e.id for e in store.events(until=t[1] + timedelta(microseconds=1))] == ["e0"]
    assert [e.id for e in store.events(record_id="c2")] == ["e2a", "e3"]
    assert [e.id for e in store.events(since=t[3], record_id="c2")] == ["e3"]
    assert store.events(record_id="nobody") == []
    assert store.events()[0] == event("e0", t[0])


def test_marking_an_event_counts_attempts_and_keeps_status_and_error(store: StateStore) -> None:
    store.record_event(event("e1", WHEN))
    store.mark_event("e1", "pending", error="HTTP 503")
    assert store.event("e1") == event("e1", WHEN, attempts=1, error="HTTP 503")
    store.mark_event("e1", "failed", error="HTTP 500")
    assert store.event("e1") == event("e1", WHEN, status="failed", attempts=2, error="HTTP 500")
    store.mark_event("e1", "done")  # the last attempt's error: none
    assert store.event("e1") == event("e1", WHEN, status="done", attempts=3, error=None)
    store.mark_event("missing", "done")
    assert store.event("missing") is None


def test_dead_letters_are_added_listed_oldest_first_and_removed(store: StateStore) -> None:
    assert store.dead_letters() == [] and store.dead_letter("d1") is None
    newer = letter("d1", WHEN + timedelta(seconds=1), "c1")
    older = letter("d2", WHEN, kind="shard", payload=b'{"run": "r", "shard": 2}')
    store.add_dead_letter(newer)
    store.add_dead_letter(older)
    store.add_dead_letter(letter("d0", WHEN + timedelta(seconds=1)))
    assert store.dead_letters() == [older, letter("d0", WHEN + timedelta(seconds=1)), newer]
    assert store.dead_letter("d1") == newer
    replaced = letter("d1", WHEN + timedelta(seconds=2), "c1", error="still failing", attempts=6)
    store.add_dead_letter(replaced)
    assert store.dead_letter("d1") == replaced
    store.remove_dead_letter("d1")
    store.remove_dead_letter("missing")
    assert store.dead_letter("d1") is None
    assert [d.id for d in store.dead_letters()] == ["d2", "d0"]


def test_forgetting_a_contact_removes_its_progress_workflow_runs_events_and_dead_letters(store: StateStore) -> None:
    store.save_journey(
        "j1", [Progress("c1", "t1", WHEN, False, WHEN), Progress("c2", "t1", WHEN, False, WHEN)], [("t1", "a")]
    )
    store.save_journey("j2", [Progress("c1", "t3", WHEN, True, WHEN)], [])
    for e in [event("e1", WHEN, "c1"), event("e2", WHEN, "i1"), event("e3", WHEN, "c2"), event("e4", WHEN, "i2")]:
        store.record_event(e)
    for d in [letter("d1", WHEN, "c1"), letter("d2", WHEN, "i2"), letter("d3", WHEN, "c2"), letter("d4", WHEN)]:
        store.add_dead_letter(d)
    store.record_intent(Intent("k1", "w1", "c1", "job-1"))
    store.record_intent(Intent("k2", "w1", "c2", None))
    store.forget_contact("c1", ["i1", "i2", "i9"])
    assert store.intent("k1") is None and store.intent("k2") == Intent("k2", "w1", "c2", None)
    assert store.progress("j1") == [Progress("c2", "t1", WHEN, False, WHEN)]
    assert store.progress("j2") == []
    assert store.handled("j1") == {("t1", "a")}
    assert [e.id for e in store.events()] == ["e3"]
    assert [d.id for d in store.dead_letters()] == ["d3", "d4"]
    store.forget_contact("nobody")
    assert [e.id for e in store.events()] == ["e3"]


def test_large_payloads_round_trip(store: StateStore) -> None:
    payload = os.urandom(200 * 1024)
    big = event("e1", WHEN, payload=payload, message="ü" * 40_000)
    assert store.record_event(big)
    assert store.event("e1") == big
    assert store.events(record_id="c1") == [big]
    store.mark_event("e1", "failed", error="trace " * 20_000)
    assert store.event("e1") == event(
        "e1", WHEN, payload=payload, message=big.message, status="failed", attempts=1, error="trace " * 20_000
    )
    store.mark_event("e1", "done")
    assert store.event("e1") == event("e1", WHEN, payload=payload, message=big.message, status="done", attempts=2)
    dead = letter("d1", WHEN, "c1", payload=payload, error="x" * 70_000)
    store.add_dead_letter(dead)
    assert store.dead_letter("d1") == dead and store.dead_letters() == [dead]
    store.forget_contact("c1")
    assert store.event("e1") is None and store.dead_letter("d1") is None


# ---- what only the Azure adapter needs ----


@pytest.fixture
def azure(azurite: str) -> Iterator[AzureStateStore]:
    store = AzureStateStore(azurite, prefix=f"t{uuid.uuid4().hex[:16]}")
    yield store
    store.close()


def blobs(store: AzureStateStore) -> list[str]:
    return sorted(blob.name for blob in store._container.list_blobs())


def test_azure_keeps_large_values_in_blobs_and_removes_them_with_their_rows(azure: AzureStateStore) -> None:
    big = {"notes": "x" * 70_000}
    azure.put_mirror([MirrorRow("contact", "c1", "a1", big), MirrorRow("contact", "c2", "a1", big)])
    assert len(blobs(azure)) == 2
    azure.put_mirror([MirrorRow("contact", "c1", "a2", {"small": True})])
    assert len(blobs(azure)) == 1
    azure.delete_mirror("contact", ["c2"])
    azure.put_mirror([MirrorRow("contact", "c3", "a1", big)])
    azure.clear_mirror()
    azure.save_checkpoints({"columns": "y" * 40_000})
    azure.save_checkpoints({"columns": None})
    assert blobs(azure) == []
    assert azure.record_event(event("e2", WHEN, payload=os.urandom(100_000)))
    assert not azure.record_event(event("e2", WHEN, payload=os.urandom(100_000)))  # its blob is not kept
    assert len(blobs(azure)) == 1
    azure.mark_event("e2", "failed", error="e" * 40_000)
    azure.mark_event("e2", "failed", error="short")
    assert len(blobs(azure)) == 1
    azure.add_dead_letter(letter("d1", WHEN, payload=os.urandom(100_000)))
    azure.add_dead_letter(letter("d1", WHEN))
    azure.add_dead_letter(letter("d2", WHEN, payload=os.urandom(100_000)))
    azure.remove_dead_letter("d2")
    assert len(blobs(azure)) == 1
    azure.forget_contact("c1")
    assert blobs(azure) == []


class Requests:
    """The transactions (their sizes, by table) and queries (by table) an Azure store sends while recording."""

    def __init__(self, azure: AzureStateStore, monkeypatch: pytest.MonkeyPatch) -> None:
        self.transactions: list[tuple[str, int]] = []
        self.queries: list[tuple[str, dict[str, object]]] = []
        self.tables: list[str] = []
        submit, query_all = azure_storage.submit, azure._query_all

        def counting_submit(table: object, ops: list[object]) -> object:
            self.transactions.append((str(getattr(table, "table_name", "")), len(ops)))
            return submit(table, ops)  # type: ignore[arg-type]

        def counting_queries(table: object, filters: list[tuple[str, dict[str, object]]], *args: object,
                             **kwargs: object) -> object:  # fmt: skip
            self.tables += [str(getattr(table, "table_name", ""))] * len(filters)
            self.queries += filters
            return query_all(table, filters, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(azure_storage, "submit", counting_submit)
        monkeypatch.setattr(azure, "_query_all", counting_queries)

    def clear(self) -> None:
        self.transactions.clear()
        self.queries.clear()
        self.tables.clear()


def test_azure_refills_the_mirror_with_a_few_requests(azure: AzureStateStore, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [MirrorRow("contact", f"c{i:04d}", f"a{i % 300:03d}", {"i": i}) for i in range(2000)]
    azure.put_mirror(rows[:10])
    requests = Requests(azure, monkeypatch)
    azure.clear_mirror()
    for start in range(0, len(rows), 500):  # a full sync: chunks of one kind, each read by id before it is put
        assert azure.mirror_rows("contact", [r.id for r in rows[start : start + 500]]) == {}
        azure.put_mirror(rows[start : start + 500])
    assert requests.transactions == [] and requests.queries == []  # held in memory until sealed
    assert azure.mirror_rows("contact", ["c0001"]) == {"c0001": rows[1]}
    assert azure.mirror_partitions(["contact"]) == sorted({r.partition for r in rows})  # sealed now
    pages = [size for table, size in requests.transactions if table.startswith(f"{azure._prefix}mp")]
    assert sum(pages) == 300 and len(pages) <= 64  # a page per partition, a transaction per group of them
    assert len(requests.transactions) < 200 and len(requests.queries) < 20
    requests.clear()
    moved = [MirrorRow("contact", r.id, "a001", r.data) for r in rows[:250]]
    azure.put_mirror(moved)  # rows of 250 partitions moving to one: a few transactions per group of them
    by_table: dict[str, int] = {}
    for table, _ in requests.transactions:
        code = table[len(azure._prefix) :][:2]
        by_table[code] = by_table.get(code, 0) + 1
    assert by_table["mp"] <= 2 * 64 and by_table["mi"] <= 64 and by_table["ml"] == 1
    stayed = {r.id for r in rows[250:] if r.partition == "a001"}
    assert [r.id for r in azure.mirror("contact", ["a001"])] == sorted({r.id for r in moved} | stayed)


def test_azure_drops_the_previous_generation_once_a_refill_is_sealed(azure: AzureStateStore) -> None:
    def mirror_tables() -> set[str]:
        names = {t.name for t in azure._service.list_tables()}
        return {n for n in names if n.startswith(azure._prefix) and n[len(azure._prefix) :][:2] in ("mp", "mi", "ml")}

    azure.put_mirror([MirrorRow("contact", "c1", "a1", {"notes": "x" * 70_000})])
    before = mirror_tables()
    assert len(before) == 3 and len(blobs(azure)) == 1
    azure.clear_mirror()
    azure.put_mirror([MirrorRow("contact", "c2", "a2", {"n": 2})])
    assert mirror_tables() > before  # the refill's generation, beside the mirror others still read
    assert [r.id for r in azure.mirror("contact")] == ["c2"]
    after = mirror_tables()
    assert not after & before and len(after) == 3
    assert blobs(azure) == []


def test_azure_drops_a_refill_left_unfinished(
    azure: AzureStateStore, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A sync that failed while refilling, in a process that lives on: its refill is dropped, not published."""
    row = MirrorRow("contact", "c1", "a1", {"n": 1})
    azure.put_mirror([row])
    azure.clear_mirror()
    azure.put_mirror([MirrorRow("contact", "c2", "a2", {"n": 2})])
    monkeypatch.setattr(azure_mirror, "IDLE_SECONDS", 0.0)
    with caplog.at_level(logging.WARNING, logger="abm.state"):
        assert azure.mirror_rows("contact", ["c1", "c2"]) == {"c1": row}
    assert [r.getMessage() for r in caplog.records] == [
        "an unfinished refill of the mirror was dropped: the mirror is the one before it"
    ]
    assert list(azure.mirror("contact")) == [row]


def test_azure_reads_again_from_the_generation_published_meanwhile(azure: AzureStateStore) -> None:
    """A process that read which generation is the mirror just before another published a newer one (and deleted
    the older one's tables) reads the newer one."""
    azure.put_mirror([MirrorRow("contact", "c1", "a1", {"n": 1})])
    stale = azure._generations.current()
    azure.clear_mirror()
    azure.put_mirror([MirrorRow("contact", "c2", "a2", {"n": 2})])
    assert azure.mirror_partitions(["contact"]) == ["a2"]  # published: the tables of `stale` are gone
    current, answers = azure._generations.current, iter([stale])
    azure._generations.current = lambda: next(answers, None) or current()  # type: ignore[method-assign]
    assert [r.id for r in azure.mirror_rows("contact", ["c1", "c2"]).values()] == ["c2"]
    answers = iter([stale])
    azure.put_mirror([MirrorRow("contact", "c3", "a2", {"n": 3})])
    assert [r.id for r in azure.mirror("contact")] == ["c2", "c3"]


def test_azure_reads_a_batch_once_for_all_its_kinds(azure: AzureStateStore, monkeypatch: pytest.MonkeyPatch) -> None:
    partitions = [f"a{i:03d}" for i in range(100)]
    kinds = ("account", "contact", "lead", "abm_interaction")
    for kind in kinds:
        azure.put_mirror(MirrorRow(kind, f"{kind}-{p}", p, {}) for p in partitions)
    requests = Requests(azure, monkeypatch)
    counts = []
    for kind in kinds:
        assert len(list(azure.mirror(kind, partitions))) == 100
        counts.append(len(requests.queries))
    assert counts[0] == counts[1] - counts[0] and counts[2] == counts[3] == counts[1]  # the second read read ahead
    assert all(f.startswith("PartitionKey eq @pk and ") for f, _ in requests.queries)


def test_azure_marks_due_without_reading(azure: AzureStateStore, monkeypatch: pytest.MonkeyPatch) -> None:
    requests = Requests(azure, monkeypatch)
    azure.mark_due((f"p{i}" for i in range(1000)), WHEN)
    assert requests.queries == [] and len(requests.transactions) <= 2 * 64
    assert len(azure.due_partitions(WHEN)) == 1000


def test_azure_rejects_a_bad_prefix_and_never_echoes_the_connection_string(azurite: str) -> None:
    with pytest.raises(ValueError, match="prefix"):
        AzureStateStore(azurite, prefix="bad-prefix")
    with pytest.raises(ValueError) as error:
        AzureStateStore("AccountKey=s3cr3t-key-material;nonsense")
    assert "s3cr3t" not in str(error.value) and "s3cr3t" not in repr(error.value.__cause__)


def test_azure_reads_only_the_wanted_buckets_of_the_agenda(
    azure: AzureStateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    azure.save_agenda(AgendaEntry(f"p{i}", WHEN, frozenset()) for i in range(50))
    queries: list[tuple[str, dict[str, object]]] = []
    query = azure._agenda.query_entities

    def recording(query_filter: str, *, parameters: dict[str, object], **kwargs: object) -> object:
        queries.append((query_filter, parameters))
        return query(query_filter, parameters=parameters, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(azure._agenda, "query_entities", recording)
    wanted = {bucket_of("p7"), bucket_of("p8"), 1000}
    assert azure.due_partitions(WHEN, wanted) == sorted(p for p in ("p7", "p8") if bucket_of(p) in wanted)
    assert all(f.startswith("PartitionKey eq @pk and ") for f, _ in queries)  # one partition each
    assert sorted(str(parameters["pk"]) for _, parameters in queries) == sorted({f"{b // 64:02d}" for b in wanted})


def test_azure_keeps_large_refs_in_a_blob_and_removes_it(azure: AzureStateStore) -> None:
    azure.save_agenda([AgendaEntry("a1", WHEN, MANY_REFS), AgendaEntry("a2", WHEN, MANY_REFS)])
    assert len(blobs(azure)) == 2
    azure.save_agenda([AgendaEntry("a1", WHEN, MANY_REFS | {"account:a1"})])  # a new blob, the old one removed
    azure.save_agenda([AgendaEntry("a2", WHEN, frozenset({"account:a2"}))])
    assert len(blobs(azure)) == 1
    azure.clear_agenda()
    assert blobs(azure) == []
