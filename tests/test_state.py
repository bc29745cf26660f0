"""The state store beyond its contract (test_state_contract.py): the SQLite file survives a reopen, the roles split
the port and every adapter plays each, and the dry-run overlay reads through and leaves the real store untouched."""

from __future__ import annotations

import logging
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Generic, Protocol

import pytest
from azure.data.tables import TableServiceClient

from statestore.azure_storage import table_key
from statestore.azure_tables import AzureStateStore
from statestore.overlay import OverlayStore
from statestore.port import (
    BUCKETS,
    Agenda,
    AgendaEntry,
    Checkpoints,
    DeadLetter,
    EffectLedger,
    Erasure,
    EventLog,
    FanOut,
    Intent,
    MirrorRow,
    MirrorStore,
    Progress,
    ProgressStore,
    ShardRun,
    StateStore,
    StoredEvent,
    Timeline,
    bucket_of,
)
from statestore.sqlite import SqliteStateStore

WHEN = datetime(2026, 11, 23, 8, 30, tzinfo=UTC)
HOUR = timedelta(hours=1)


def test_progress_and_handled_survive_a_reopen(tmp_path: Path) -> None:
    path = str(tmp_path / "state.sqlite")
    store = SqliteStateStore(path)
    rows = [Progress("c1", "t1", WHEN, False, WHEN), Progress("c2", None, WHEN, True, WHEN)]
    store.save_journey("j", rows, [("t2", "a1")])
    store.close()
    again = SqliteStateStore(path)
    assert again.progress("j") == rows
    assert again.handled("j") == {("t2", "a1")}
    assert again.progress("other") == [] and again.handled("other") == set()
    again.close()


def test_a_state_file_from_before_journey_entry_times_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.state"
    with closing(sqlite3.connect(path)) as old:
        old.execute(
            "CREATE TABLE progress (journey TEXT, contact_id TEXT, tile_id TEXT, entered_at TEXT, finished INTEGER, "
            "PRIMARY KEY (journey, contact_id))"
        )
        old.execute("INSERT INTO progress VALUES ('j', 'c1', 't2', '2026-03-01T00:00:00Z', 0)")
        old.commit()
    store = SqliteStateStore(str(path))
    try:
        (row,) = store.progress("j")
        assert row.started_at == row.entered_at == datetime(2026, 3, 1, tzinfo=UTC)  # the best it knows
        store.save_journey("j", [replace(row, tile_id="t3", started_at=datetime(2026, 2, 1, tzinfo=UTC))], [])
        assert store.progress("j")[0].started_at == datetime(2026, 2, 1, tzinfo=UTC)
    finally:
        store.close()


OLD_MIRROR = """
    CREATE TABLE mirror (kind TEXT, id TEXT, partition TEXT, data TEXT, PRIMARY KEY (kind, id));
    CREATE INDEX mirror_partition ON mirror (kind, partition, id);
    CREATE TABLE checkpoints (name TEXT PRIMARY KEY, value TEXT);
    INSERT INTO mirror VALUES ('contact', 'c1', 'a1', '{"n": 1}');
    INSERT INTO checkpoints VALUES ('columns', 'fingerprint'), ('delta:contact', 'link');
"""


def test_a_mirror_from_before_buckets_is_dropped_and_read_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = str(tmp_path / "old.state")
    with closing(sqlite3.connect(path)) as old:
        old.executescript(OLD_MIRROR)  # the mirror table and its index as they were before buckets
    with caplog.at_level(logging.WARNING, logger="abm.state"):
        store = SqliteStateStore(path)
    try:
        assert [(r.name, r.levelname, r.getMessage()) for r in caplog.records] == [
            ("abm.state", "WARNING", "the state file's mirror layout changed: the next sync reads every table again")
        ]
        assert list(store.mirror("contact")) == []  # dropped: a full sync refills it
        assert store.checkpoint("columns") is None  # so the next sync is a full one
        assert store.checkpoint("delta:contact") == "link"
        assert store.conn.execute("PRAGMA user_version").fetchone() == (1,)
        store.put_mirror([MirrorRow("contact", "c1", "a:1", {"n": 1})])
        assert store.mirror_partitions(["contact"], [bucket_of("a:1")]) == ["a:1"]
        store.save_checkpoints({"columns": "fingerprint"})
    finally:
        store.close()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="abm.state"):
        again = SqliteStateStore(path)  # migrated once
    try:
        assert caplog.records == []
        assert again.checkpoint("columns") == "fingerprint"
        assert [r.id for r in again.mirror("contact")] == ["c1"]
    finally:
        again.close()


def test_an_azure_mirror_of_the_previous_layout_is_dropped_and_read_again(
    azurite: str, caplog: pytest.LogCaptureFixture
) -> None:
    prefix = f"t{uuid.uuid4().hex[:16]}"
    service = TableServiceClient.from_connection_string(azurite)
    old = service.create_table(f"{prefix}mirror")  # the tables of the layout before generations, with a row
    old.create_entity({"PartitionKey": "a1", "RowKey": "contact!c1", "kind": "contact", "id": "c1", "data": "{}"})
    service.create_table(f"{prefix}mirrorindex")
    checkpoints = service.create_table(f"{prefix}checkpoints")
    for name, value in (("columns", "fingerprint"), ("delta:contact", "link")):
        checkpoints.create_entity({"PartitionKey": "c", "RowKey": table_key(name), "name": name, "value": value})
    with caplog.at_level(logging.WARNING, logger="abm.state"):
        store = AzureStateStore(azurite, prefix=prefix)
    try:
        assert [(r.name, r.levelname, r.getMessage()) for r in caplog.records] == [
            ("abm.state", "WARNING", "the state store's mirror layout changed: the next sync reads every table again")
        ]
        assert list(store.mirror("contact")) == [] and store.mirror_rows("contact", ["c1"]) == {}
        assert store.checkpoint("columns") is None  # so the next sync is a full one
        assert store.checkpoint("delta:contact") == "link"
        assert not {f"{prefix}mirror", f"{prefix}mirrorindex"} & {t.name for t in service.list_tables()}
        store.put_mirror([MirrorRow("contact", "c1", "a:1", {"n": 1})])
        store.save_checkpoints({"columns": "fingerprint"})
    finally:
        store.close()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="abm.state"):
        again = AzureStateStore(azurite, prefix=prefix)  # migrated once
    try:
        assert caplog.records == []
        assert again.checkpoint("columns") == "fingerprint"
        assert [r.id for r in again.mirror("contact")] == ["c1"]
    finally:
        again.close()
        service.close()


def test_azure_effects_of_the_previous_layout_are_moved_to_their_groups(azurite: str) -> None:
    """Effects keep a run from writing anything twice: a store of the layout before (a PartitionKey per journey)
    keeps them, converted when first opened."""
    prefix = f"t{uuid.uuid4().hex[:16]}"
    service = TableServiceClient.from_connection_string(azurite)
    effects = service.create_table(f"{prefix}effects")
    old = {f"welcome/t{i}/c{i}": f"row-{i}" for i in range(150)} | {"no-slash": "row-x"}
    for key, row in old.items():
        head, slash, _ = key.partition("/")
        pk = table_key(head) if slash else "~"
        effects.create_entity({"PartitionKey": pk, "RowKey": table_key(key), "key": key, "entity_id": row})
    store = AzureStateStore(azurite, prefix=prefix)
    try:
        assert store.effects_done([*old, "welcome/t1/other"]) == old
        assert all("!" in e["PartitionKey"] for e in effects.list_entities())  # nothing left in the old places
        store.record_effects([("welcome/t9/new", "row-new")])
    finally:
        store.close()
    again = AzureStateStore(azurite, prefix=prefix)
    try:
        assert again.effects_done(["welcome/t9/new", "welcome/t0/c0"]) == {"welcome/t9/new": "row-new",
                                                                           "welcome/t0/c0": "row-0"}  # fmt: skip
    finally:
        again.close()
        service.close()


def test_a_new_state_file_is_not_migrated(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="abm.state"):
        store = SqliteStateStore(str(tmp_path / "new.state"))
    store.close()
    assert caplog.records == []


def test_the_filtered_reads_walk_indexes(tmp_path: Path) -> None:
    """Every query behind the filtered reads (by contacts, accounts, buckets, refs) searches an index: none scans a
    table. The SQL is what the store ran, captured with its parameters bound."""
    store = SqliteStateStore(str(tmp_path / "plan.state"))
    store.put_mirror(MirrorRow("contact", f"c{i}", f"a{i % 50}", {}) for i in range(500))
    store.save_journey("j", [Progress(f"c{i}", "t1", WHEN, False, WHEN) for i in range(100)], [("t1", "a1")])
    store.save_agenda(AgendaEntry(f"a{i}", WHEN, frozenset({f"contact:c{i}"})) for i in range(50))
    ran: list[str] = []
    store.conn.set_trace_callback(ran.append)
    store.progress("j", ["c1", "c2"])
    store.handled("j", ["a1", "a2"])
    store.mirror_partitions(["contact", "account"])
    store.mirror_partitions(["contact"], range(0, BUCKETS, 4))
    list(store.mirror("contact", ["a1", "a2"]))
    store.due_partitions(WHEN)
    store.due_partitions(WHEN, range(1, BUCKETS, 4))
    store.dependents(["contact:c1", "contact:c2"])
    store.conn.set_trace_callback(None)
    plans = {sql: [row[3] for row in store.conn.execute(f"EXPLAIN QUERY PLAN {sql}")] for sql in ran}
    assert len(plans) == 9
    for sql, plan in plans.items():
        assert all(step.startswith("SEARCH") and "INDEX" in step for step in plan), (sql, plan)
    store.close()


# ---- the roles: every adapter plays each, and together they are the whole port ----

ROLES = (ProgressStore, EffectLedger, Checkpoints, MirrorStore, FanOut, EventLog, Erasure, Agenda, Timeline)


def members(protocol: type) -> set[str]:
    """The methods a protocol declares, its bases' included."""
    return {
        name
        for cls in protocol.__mro__
        if cls not in (object, Protocol, Generic)
        for name, value in vars(cls).items()
        if callable(value) and not name.startswith("_")
    }


def test_the_roles_split_the_port_without_overlap() -> None:
    assert StateStore.__bases__[: len(ROLES)] == ROLES
    declared = [name for role in ROLES for name in members(role)]
    assert len(declared) == len(set(declared))  # every method in exactly one role
    assert set(declared) == members(StateStore)


@pytest.mark.parametrize("adapter", [SqliteStateStore, AzureStateStore, OverlayStore])
@pytest.mark.parametrize("role", ROLES, ids=lambda role: role.__name__)
def test_every_adapter_plays_every_role(adapter: type, role: type) -> None:
    assert {name for name in members(role) if callable(getattr(adapter, name, None))} == members(role)


# ---- the dry-run overlay: reads the real store, writes to memory, leaves the real store as it was ----


def tables(store: SqliteStateStore) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table: what "the real store is left untouched" compares."""
    names = [name for (name,) in store.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    return {name: sorted(store.conn.execute(f"SELECT * FROM {name}").fetchall(), key=repr) for name in names}


@pytest.fixture
def base() -> Iterator[SqliteStateStore]:
    store = SqliteStateStore(clock=lambda: WHEN)
    yield store
    store.close()


def at(contact: str, tile: str | None) -> Progress:
    return Progress(contact, tile, WHEN, False, WHEN)


def test_a_dry_run_reads_progress_through_and_keeps_its_own(base: SqliteStateStore) -> None:
    base.save_journey("j", [at("c1", "t1"), at("c2", "t1")], [("t1", "a1")], {"a1": {"t1": {"entered": 2}}})
    before = tables(base)
    dry = OverlayStore(base)
    counts = {"a1": {"t1": {"entered": 1}, "t2": {"entered": 1}}, "a2": {"t1": {"entered": 1}}}
    dry.save_journey("j", [at("c2", "t2"), at("c3", "t1")], [("t2", "a1")], counts)
    assert dry.progress("j") == [at("c1", "t1"), at("c2", "t2"), at("c3", "t1")]
    assert dry.handled("j") == {("t1", "a1"), ("t2", "a1")}
    assert dry.tile_counts("j") == {"t1": {"entered": 4}, "t2": {"entered": 1}}
    assert dry.tile_counts("j", "a1") == {"t1": {"entered": 3}, "t2": {"entered": 1}}
    dry.forget_contact("c2")  # its progress read from the real store is hidden, its progress in memory removed
    assert dry.progress("j") == [at("c1", "t1"), at("c3", "t1")]
    assert tables(base) == before


def test_a_dry_run_reads_effects_and_intents_through_and_claims_in_memory(base: SqliteStateStore) -> None:
    base.record_effects([("k1", "id1")])
    base.record_intent(Intent("started", "wf", "c1", "job-1", "T0"))
    base.record_intent(Intent("stale", "wf", "c2", None, "T0"))
    base.record_intent(Intent("open", "wf", "c3", None, "T0"))
    before = tables(base)
    dry = OverlayStore(base)
    dry.record_effects([("k2", "id2")])
    assert dry.effects_done(["k1", "k2", "k3"]) == {"k1": "id1", "k2": "id2"}
    assert dry.clock() == WHEN  # the real store's
    assert not dry.claim_intent(Intent("started", "wf", "c1", None, "T1"))
    assert dry.claim_intent(Intent("new", "wf", "c4", None, "T1"))
    assert not dry.claim_intent(Intent("new", "wf", "c4", None, "T2"))
    assert dry.intent("new") == Intent("new", "wf", "c4", None, "T1")
    assert not dry.take_over_intent(Intent("started", "wf", "c1", "job-1", "T0"), "T1")
    assert not dry.take_over_intent(Intent("stale", "wf", "c2", None, "other"), "T1")
    assert dry.take_over_intent(Intent("stale", "wf", "c2", None, "T0"), "T1")
    assert not dry.take_over_intent(Intent("stale", "wf", "c2", None, "T0"), "T2")  # taken over in this dry run
    assert dry.intent("stale") == Intent("stale", "wf", "c2", None, "T1")
    dry.record_intent(Intent("open", "wf", "c3", "job-3", "T1"))
    assert dry.open_intents() == [Intent("new", "wf", "c4", None, "T1"), Intent("stale", "wf", "c2", None, "T1")]
    assert tables(base) == before


def test_a_dry_run_reads_checkpoints_through_and_removes_none(base: SqliteStateStore) -> None:
    base.save_checkpoints({"delta:contact": "link-1", "columns": "c1"})
    before = tables(base)
    dry = OverlayStore(base)
    dry.save_checkpoints({"delta:contact": "link-2", "columns": None, "new": "x"})
    assert dry.checkpoint("delta:contact") == "link-2"
    assert dry.checkpoint("columns") == "c1"
    assert dry.checkpoint("new") == "x"
    assert dry.checkpoint("none") is None
    assert tables(base) == before


def test_a_dry_run_sees_the_mirror_it_changed(base: SqliteStateStore) -> None:
    c3 = MirrorRow("contact", "c3", "a2", {"n": 3})
    base.put_mirror([MirrorRow("contact", "c1", "a1", {"n": 1}), MirrorRow("contact", "c2", "a1", {"n": 2}), c3])
    base.put_mirror([MirrorRow("account", "a1", "a1", {})])
    before = tables(base)
    dry = OverlayStore(base)
    c1, c4 = MirrorRow("contact", "c1", "a2", {"n": 10}), MirrorRow("contact", "c4", "a1", {"n": 4})
    dry.put_mirror([c1, c4])  # c1 moves to a2
    dry.delete_mirror("contact", ["c2"])
    assert list(dry.mirror("contact")) == [c4, c1, c3]
    assert list(dry.mirror("contact", ["a2"])) == [c1, c3]
    assert dry.mirror_rows("contact", ["c1", "c2", "c3"]) == {"c1": c1, "c3": c3}
    dry.clear_mirror()  # a full read: the real mirror is hidden
    assert list(dry.mirror("contact")) == [] and dry.mirror_rows("account", ["a1"]) == {}
    dry.put_mirror([MirrorRow("account", "a9", "a9", {})])
    assert [r.id for r in dry.mirror("account")] == ["a9"]
    assert tables(base) == before


def test_a_dry_run_sees_the_real_fanned_out_run_and_changes_none(base: SqliteStateStore) -> None:
    real = ShardRun("real", 2, WHEN, {"delta:contact": "link"}, frozenset({0}))
    base.start_run(real)
    before = tables(base)
    dry = OverlayStore(base)
    dry.start_run(ShardRun("dry", 1, WHEN, {}))
    assert dry.open_run() == real
    assert dry.finish_shard("real", 1) is False
    assert dry.finish_shard("dry", 0) is False
    dry.complete_run("real")
    assert dry.open_run() == real
    assert tables(base) == before


def test_a_dry_run_reads_events_and_dead_letters_and_changes_none(base: SqliteStateStore) -> None:
    def event(id: str) -> StoredEvent:
        return StoredEvent(id, "webhook", WHEN, "contact", "c1", "Update", b"{}")

    dead = DeadLetter("d1", "event", WHEN, b"{}", "timeout", 5, "c1")
    base.record_event(event("e1"))
    base.add_dead_letter(dead)
    before = tables(base)
    dry = OverlayStore(base)
    assert not dry.record_event(event("e1"))  # known to the real store
    assert dry.record_event(event("e2"))
    assert not dry.record_event(event("e2"))
    assert dry.event("e1") == event("e1") and dry.event("e2") == event("e2")
    assert dry.events() == [event("e1")]  # the real store's
    dry.mark_event("e1", "done")
    dry.add_dead_letter(DeadLetter("d2", "event", WHEN, b"{}", "timeout", 5))
    dry.remove_dead_letter("d1")
    assert dry.event("e1") == event("e1")
    assert dry.dead_letters() == [dead] and dry.dead_letter("d1") == dead and dry.dead_letter("d2") is None
    assert tables(base) == before


def test_a_dry_run_reads_filtered_progress_handled_and_partitions_through(base: SqliteStateStore) -> None:
    base.save_journey("j", [at("c1", "t1"), at("c2", "t1"), at("c3", "t1")], [("t1", "a1"), ("t1", "a2")])
    base.put_mirror([MirrorRow("contact", "c1", "a1", {}), MirrorRow("contact", "c2", "a:2", {})])
    base.put_mirror([MirrorRow("account", "a9", "a9", {})])
    before = tables(base)
    dry = OverlayStore(base)
    dry.save_journey("j", [at("c2", "t2"), at("c4", "t1")], [("t2", "a2"), ("t2", "a3")])
    dry.put_mirror([MirrorRow("contact", "c5", "x@y.com", {})])
    dry.delete_mirror("contact", ["c1"])
    dry.forget_contact("c3")
    assert dry.progress("j", iter(["c2", "c3", "c4", "c9"])) == [at("c2", "t2"), at("c4", "t1")]
    assert dry.progress("j", ["c1"]) == [at("c1", "t1")]
    assert dry.handled("j", iter(["a2", "a3"])) == {("t1", "a2"), ("t2", "a2"), ("t2", "a3")}
    assert dry.handled("j", []) == set()
    # "a1" lost its only row in the dry run but is still listed (the real store's partitions read through)
    assert dry.mirror_partitions(["contact"]) == ["a1", "a:2", "x@y.com"]
    assert dry.mirror_partitions(["contact", "account"], [bucket_of("x@y.com"), bucket_of("a9")]) == sorted(
        {"x@y.com", "a9"}
    )
    dry.clear_mirror()
    dry.put_mirror([MirrorRow("contact", "c6", "a6", {})])
    assert dry.mirror_partitions(["contact", "account"]) == ["a6"]
    assert tables(base) == before


def test_a_dry_run_reads_the_agenda_through_and_keeps_its_own(base: SqliteStateStore) -> None:
    base.save_agenda(
        [
            AgendaEntry("a1", WHEN, frozenset({"contact:c1"})),
            AgendaEntry("a2", WHEN + 2 * HOUR, frozenset({"contact:c2"})),
            AgendaEntry("a3", None, frozenset({"contact:c3"})),
        ]
    )
    before = tables(base)
    dry = OverlayStore(base)
    assert dry.due_partitions(WHEN + 2 * HOUR) == ["a1", "a2"]
    assert dry.dependents(["contact:c1", "contact:c3"]) == {"a1", "a3"}
    dry.mark_due(["a2", "a4"], WHEN + HOUR)  # a2 keeps its real refs; a4 is new
    assert dry.due_partitions(WHEN + HOUR) == ["a1", "a2", "a4"]
    assert dry.due_partitions(WHEN + HOUR, [bucket_of("a4")]) == ["a4"]
    assert dry.dependents(["contact:c2"]) == {"a2"}
    dry.save_agenda([AgendaEntry("a1", WHEN + 3 * HOUR, frozenset({"contact:c9"})), AgendaEntry("a3", None)])
    assert dry.due_partitions(WHEN + 2 * HOUR) == ["a2", "a4"]  # the dry run's entry of a1 replaces the real one
    assert dry.dependents(["contact:c1", "contact:c3"]) == set()
    assert dry.dependents(["contact:c9", "contact:c2"]) == {"a1", "a2"}
    assert base.due_partitions(WHEN + 2 * HOUR) == ["a1", "a2"]  # the real agenda is unchanged
    dry.clear_agenda()  # hides the real entries; the real store keeps them
    assert dry.due_partitions(WHEN + 9 * HOUR) == [] and dry.dependents(["contact:c2"]) == set()
    dry.save_agenda([AgendaEntry("a2", WHEN, frozenset({"contact:c2"}))])
    assert dry.due_partitions(WHEN) == ["a2"] and dry.dependents(["contact:c2", "contact:c1"]) == {"a2"}
    assert tables(base) == before
