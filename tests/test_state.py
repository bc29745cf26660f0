"""The SQLite state store: what it wrote survives a reopen of its file (the contract itself: test_state_contract.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from abm.state import ProgressRow, SqliteStateStore

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
    again.close()
