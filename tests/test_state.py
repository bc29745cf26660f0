"""The SQLite state store: progress, handled pairs, written effects and workflow intents survive a reopen."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from abm.state import Intent, ProgressRow, SqliteStateStore

WHEN = datetime(2026, 11, 23, 8, 30, tzinfo=UTC)


def test_progress_and_handled_survive_a_reopen(tmp_path: Path) -> None:
    path = str(tmp_path / "state.sqlite")
    store = SqliteStateStore(path)
    store.save_journey("j", [ProgressRow("c1", "t1", WHEN, False), ProgressRow("c2", None, WHEN, True)], [("t2", "a1")])
    store.close()
    again = SqliteStateStore(path)
    assert again.progress("j") == [ProgressRow("c1", "t1", WHEN, False), ProgressRow("c2", None, WHEN, True)]
    assert again.handled("j") == {("t2", "a1")}
    assert again.progress("other") == [] and again.handled("other") == set()


def test_saving_replaces_a_contacts_progress_and_keeps_handled_pairs() -> None:
    store = SqliteStateStore()
    store.save_journey("j", [ProgressRow("c1", "t1", WHEN, False)], [("t1", "a1")])
    store.save_journey("j", [ProgressRow("c1", "t2", WHEN, False)], [("t2", "a1")])
    assert [p.tile_id for p in store.progress("j")] == ["t2"]
    assert store.handled("j") == {("t1", "a1"), ("t2", "a1")}


def test_effects_done_finds_recorded_keys_in_large_batches() -> None:
    store = SqliteStateStore()
    store.record_effects((f"k{i}", f"id{i}") for i in range(1200))
    found = store.effects_done([f"k{i}" for i in range(0, 1300, 100)])
    assert found == {f"k{i}": f"id{i}" for i in range(0, 1200, 100)}


def test_a_workflow_intent_is_recorded_then_completed() -> None:
    store = SqliteStateStore()
    assert store.intent("w") is None
    store.record_intent(Intent("w", "wf", "e1", None))
    assert store.intent("w") == Intent("w", "wf", "e1", None)
    store.record_intent(Intent("w", "wf", "e1", "job-1"))
    assert store.intent("w") == Intent("w", "wf", "e1", "job-1")


def test_tile_counts_add_up_across_runs_and_filter_by_account() -> None:
    store = SqliteStateStore()
    store.save_journey("j", [], [], {"a1": {"t1": {"entered": 2, "true": 1}}, "": {"t1": {"entered": 1}}})
    store.save_journey("j", [], [], {"a1": {"t1": {"entered": 1}}, "a2": {"t2": {"emails": 3}}})
    assert store.tile_counts("j") == {"t1": {"entered": 4, "true": 1}, "t2": {"emails": 3}}
    assert store.tile_counts("j", account="a1") == {"t1": {"entered": 3, "true": 1}}
    assert store.tile_counts("j", account="a3") == {}
