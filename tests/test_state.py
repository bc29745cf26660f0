"""The SQLite state store: what it wrote survives a reopen of its file (the contract itself: test_state_contract.py)."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from statestore.port import ProgressRow
from statestore.sqlite import SqliteStateStore

WHEN = datetime(2026, 11, 23, 8, 30, tzinfo=UTC)


def test_progress_and_handled_survive_a_reopen(tmp_path: Path) -> None:
    path = str(tmp_path / "state.sqlite")
    store = SqliteStateStore(path)
    rows = [ProgressRow("c1", "t1", WHEN, False, WHEN), ProgressRow("c2", None, WHEN, True, WHEN)]
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
