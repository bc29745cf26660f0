"""The SQLite state store's timeline (`Timeline`), a role of `statestore.sqlite.SqliteStateStore` kept apart: one row
per event, indexed by type and time (a cohort or a path reads only the types it names), by account and time (one
account's events) and by partition (an evaluation replaces its partitions' events). Each row keeps its place in the
stream's order (`rank`), so SQLite answers in order. The table is in the store's schema; every write is one
transaction.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from insights.timeline import Event, event_order
from statestore.port import TimelineQuery, iso_micro
from statestore.sqlite_agenda import chunks

__all__ = ["SCHEMA", "SqliteTimeline"]

SCHEMA = """
    CREATE TABLE IF NOT EXISTS timeline (partition TEXT, at TEXT, rank INTEGER, source TEXT, type TEXT,
        milestone INTEGER, account TEXT, contact TEXT, opportunity TEXT, content_type TEXT);
    CREATE INDEX IF NOT EXISTS timeline_partition ON timeline (partition);
    CREATE INDEX IF NOT EXISTS timeline_type ON timeline (type, at);
    CREATE INDEX IF NOT EXISTS timeline_account ON timeline (account, at);
    CREATE INDEX IF NOT EXISTS timeline_contact ON timeline (contact, at);
"""
_parse = datetime.fromisoformat  # (what `parse_iso` is, without a call per event on whole-tenant reads)
_COLUMNS = "at, type, milestone, source, account, contact, opportunity, content_type"


def _row(partition: str, event: Event) -> tuple[Any, ...]:
    return (
        partition,
        iso_micro(event.at),
        event_order(event)[1],
        event.source,
        event.type,
        int(event.milestone),
        event.account_id,
        event.contact_id,
        event.opportunity_id,
        event.content_type,
    )


def _events(rows: Iterable[Sequence[Any]]) -> list[Event]:
    """Events from rows of `_COLUMNS` (each equal to the event its row was written from)."""
    return [
        Event(_parse(at), kind, bool(milestone), source, account, contact, opportunity, content_type)
        for at, kind, milestone, source, account, contact, opportunity, content_type in rows
    ]


def _stored(conn: sqlite3.Connection, names: Sequence[str]) -> tuple[dict[tuple[str, Event], int], list[int]]:
    """The stored events of these partitions, each (partition, event) with its row's rowid, and the rowids of the
    rows that repeat one of those."""
    rows: list[tuple[Any, ...]] = []
    for chunk, marks in chunks(names):
        sql = f"SELECT rowid, partition, {_COLUMNS} FROM timeline WHERE partition IN ({marks})"  # noqa: S608
        rows += conn.execute(sql, chunk).fetchall()
    kept: dict[tuple[str, Event], int] = {}
    duplicates: list[int] = []
    for row, event in zip(rows, _events(row[2:] for row in rows), strict=True):
        if kept.setdefault((row[1], event), row[0]) != row[0]:
            duplicates.append(row[0])
    return kept, duplicates


def _where(query: TimelineQuery) -> tuple[str, list[Any]]:
    """The WHERE clause of a query and its parameters (each set as one JSON array, so any size is one parameter)."""
    clauses: list[str] = []
    values: list[Any] = []

    def within(column: str, wanted: frozenset[str]) -> str:
        values.append(json.dumps(sorted(wanted)))
        return f"{column} IN (SELECT value FROM json_each(?))"  # noqa: S608 (a column name of ours)

    if query.by_kind():
        kinds = [within("type", query.types)] if query.types is not None else []
        kinds += ["content_type IS NOT NULL"] if query.content_typed else []
        kinds += [within("content_type", query.content_types)] if query.content_types is not None else []
        clauses.append(f"({' OR '.join(kinds)})")
    for clause, moment in (("at >= ?", query.start), ("at < ?", query.end)):
        if moment is not None:
            clauses.append(clause)
            values.append(iso_micro(moment))
    for column, wanted in (("account", query.accounts), ("contact", query.contacts)):
        if wanted is not None:
            clauses.append(within(column, wanted))
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), values


class SqliteTimeline:
    """The timeline's reads and writes over the store's connection (see the module docstring)."""

    conn: sqlite3.Connection
    _lock: threading.RLock

    if TYPE_CHECKING:

        def _transaction(self, *, immediate: bool = False) -> AbstractContextManager[sqlite3.Connection]: ...

    def save_timeline(self, partitions: Mapping[str, Sequence[Event]]) -> None:
        """Replace the partitions' events, writing only the difference: a tick evaluates partitions whose events are
        mostly as stored, and each row written or deleted costs its five index entries."""
        names = sorted(partitions)
        with self._transaction() as conn:
            kept, duplicates = _stored(conn, names)
            added = [(name, e) for name in names for e in partitions[name] if kept.pop((name, e), None) is None]
            conn.executemany("DELETE FROM timeline WHERE rowid = ?", ((r,) for r in [*kept.values(), *duplicates]))
            conn.executemany(
                "INSERT INTO timeline VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", (_row(name, e) for name, e in added)
            )

    def timeline(self, query: TimelineQuery = TimelineQuery()) -> list[Event]:  # noqa: B008 (frozen, shared)
        where, values = _where(query)
        sql = f"SELECT {_COLUMNS} FROM timeline{where} ORDER BY at, rank, source, type"  # noqa: S608
        with self._lock:
            rows = self.conn.execute(sql, values).fetchall()
        return _events(rows)

    def timeline_types(self) -> set[str]:
        with self._lock:
            return {kind for (kind,) in self.conn.execute("SELECT DISTINCT type FROM timeline")}

    def clear_timeline(self) -> None:
        with self._transaction() as conn:
            conn.execute("DELETE FROM timeline")
