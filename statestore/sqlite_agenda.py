"""The SQLite state store's agenda (`Agenda`), a role of `statestore.sqlite.SqliteStateStore` kept apart: when each
partition is next due (`agenda`: a row per partition, by bucket and due moment) and the refs its last evaluation
read (`agenda_refs`: a row per ref and partition). The tables are in the store's schema; every write is one
transaction.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

from statestore.port import AgendaEntry, bucket_of, iso_micro

__all__ = ["CHUNK", "SqliteAgenda", "chunks"]

_T = TypeVar("_T")

CHUNK = 500  # values per IN list, under SQLite's 999 parameters with room for the others


def chunks(values: Sequence[_T]) -> Iterator[tuple[Sequence[_T], str]]:
    """`values` in slices of CHUNK, each with its "?, ?, ..." for an IN list."""
    for start in range(0, len(values), CHUNK):
        chunk = values[start : start + CHUNK]
        yield chunk, ",".join("?" for _ in chunk)


class SqliteAgenda:
    """The agenda's reads and writes over the store's connection (see the module docstring)."""

    conn: sqlite3.Connection
    _lock: threading.RLock

    if TYPE_CHECKING:

        def _transaction(self, *, immediate: bool = False) -> AbstractContextManager[sqlite3.Connection]: ...

    def save_agenda(self, entries: Iterable[AgendaEntry]) -> None:
        """Replace each entry's due moment and refs (the last entry of a partition wins), in one transaction."""
        latest = {entry.partition: entry for entry in entries}
        kept = [e for e in latest.values() if e.due is not None or e.refs]
        removed = [(e.partition,) for e in latest.values() if e.due is None and not e.refs]
        with self._transaction() as conn:
            conn.executemany("DELETE FROM agenda_refs WHERE partition = ?", ((p,) for p in latest))
            conn.executemany("DELETE FROM agenda WHERE partition = ?", removed)
            conn.executemany(
                "INSERT OR REPLACE INTO agenda VALUES (?, ?, ?)",
                ((e.partition, bucket_of(e.partition), None if e.due is None else iso_micro(e.due)) for e in kept),
            )
            conn.executemany(
                "INSERT OR IGNORE INTO agenda_refs VALUES (?, ?)", ((ref, e.partition) for e in kept for ref in e.refs)
            )

    def mark_due(self, partitions: Iterable[str], at: datetime) -> None:
        due = iso_micro(at)
        with self._transaction() as conn:
            conn.executemany(
                "INSERT INTO agenda VALUES (?, ?, ?) ON CONFLICT (partition) DO UPDATE "
                "SET due = min(coalesce(due, excluded.due), excluded.due)",
                ((p, bucket_of(p), due) for p in set(partitions)),
            )

    def due_partitions(self, until: datetime, buckets: Collection[int] | None = None) -> list[str]:
        sql = "SELECT partition FROM agenda WHERE due <= ?"
        with self._lock:
            if buckets is None:
                return sorted(p for (p,) in self.conn.execute(sql, (iso_micro(until),)))
            found: list[str] = []
            for chunk, marks in chunks(sorted(set(buckets))):
                found += [p for (p,) in self.conn.execute(f"{sql} AND bucket IN ({marks})", (iso_micro(until), *chunk))]
        return sorted(found)

    def dependents(self, refs: Iterable[str]) -> set[str]:
        found: set[str] = set()
        with self._lock:
            for chunk, marks in chunks(sorted(set(refs))):
                sql = f"SELECT partition FROM agenda_refs WHERE ref IN ({marks})"  # noqa: S608
                found.update(p for (p,) in self.conn.execute(sql, chunk))
        return found

    def clear_agenda(self) -> None:
        with self._transaction() as conn:
            conn.execute("DELETE FROM agenda_refs")
            conn.execute("DELETE FROM agenda")
