"""The state store beyond its contract (test_state_contract.py): the SQLite file survives a reopen, the roles split
the port and every adapter plays each, and the dry-run overlay reads through and leaves the real store untouched."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Generic, Protocol

import pytest

from statestore.azure_tables import AzureStateStore
from statestore.overlay import OverlayStore
from statestore.port import (
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
)
from statestore.sqlite import SqliteStateStore

WHEN = datetime(2026, 11, 23, 8, 30, tzinfo=UTC)


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


# ---- the roles: every adapter plays each, and together they are the whole port ----

ROLES = (ProgressStore, EffectLedger, Checkpoints, MirrorStore, FanOut, EventLog, Erasure)


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
