"""The state store's contract, run against both adapters: SQLite (embedded) and Azure Table Storage (on Azurite).

Every test gets a fresh store: an in-memory SQLite database, or tables and a container under a prefix of its own in
the session's one Azurite. At the end, a few checks that only the Azure adapter needs (blobs, keys, errors).
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from statestore.azure_tables import AzureStateStore
from statestore.port import DeadLetter, Intent, MirrorRow, Progress, ShardRun, StateStore, StoredEvent
from statestore.sqlite import SqliteStateStore

WHEN = datetime(2026, 11, 23, 8, 30, tzinfo=UTC)
# Keys that Table Storage forbids or that URLs and OData quote: every one must round-trip.
AWKWARD = ["a/b", "back\\slash", "hash#tag", "what?", "tab\there", "nl\nx", "quote'd", "100%", "ünï ☃ 𝄞", "", "~7E!"]


@pytest.fixture(params=["sqlite", "azure"])
def store(request: pytest.FixtureRequest) -> Iterator[StateStore]:
    if request.param == "sqlite":
        sqlite = SqliteStateStore()
        yield sqlite
        sqlite.close()
    else:
        azure = AzureStateStore(request.getfixturevalue("azurite"), prefix=f"t{uuid.uuid4().hex[:16]}")
        yield azure
        azure.close()


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


def test_azure_writes_a_large_mirror_in_transactions(azure: AzureStateStore, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    submit = azure._mirror.submit_transaction

    def counting(operations: list[object], **kwargs: object) -> object:
        calls.append(len(operations))
        return submit(operations, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(azure._mirror, "submit_transaction", counting)
    azure.put_mirror(MirrorRow("contact", f"c{i}", f"a{i % 2}", {"i": i}) for i in range(250))
    assert sorted(calls) == [25, 25, 100, 100]  # per partition, at most 100 rows a transaction


def test_azure_rejects_a_bad_prefix_and_never_echoes_the_connection_string(azurite: str) -> None:
    with pytest.raises(ValueError, match="prefix"):
        AzureStateStore(azurite, prefix="bad-prefix")
    with pytest.raises(ValueError) as error:
        AzureStateStore("AccountKey=s3cr3t-key-material;nonsense")
    assert "s3cr3t" not in str(error.value) and "s3cr3t" not in repr(error.value.__cause__)
