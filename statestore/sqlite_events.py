"""The SQLite state store's event log (`EventLog`), a role of `statestore.sqlite.SqliteStateStore` kept apart:
received events by id (`events`) and dead letters (`dead_letters`). The tables are in the store's schema."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from statestore.port import DeadLetter, StoredEvent, iso_micro, parse_iso

__all__ = ["SqliteEventLog"]


class SqliteEventLog:
    """Events and dead letters over the store's connection."""

    conn: sqlite3.Connection
    _lock: threading.RLock

    if TYPE_CHECKING:

        def _transaction(self, *, immediate: bool = False) -> AbstractContextManager[sqlite3.Connection]: ...

    def record_event(self, event: StoredEvent) -> bool:
        with self._transaction() as conn:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    event.id,
                    event.source,
                    iso_micro(event.received_at),
                    event.table,
                    event.record_id,
                    event.message,
                    event.payload,
                    event.status,
                    event.attempts,
                    event.error,
                ),
            )
            return cursor.rowcount == 1

    @staticmethod
    def _event(row: Sequence[Any]) -> StoredEvent:
        id, source, received, table, record, message, payload, status, attempts, error = row
        return StoredEvent(
            id, source, parse_iso(received), table, record, message, bytes(payload), status, int(attempts), error
        )

    def event(self, event_id: str) -> StoredEvent | None:
        with self._lock:
            row = self.conn.execute("SELECT * FROM events WHERE id = ?", (event_id,)).fetchone()
        return self._event(row) if row else None

    def events(
        self, *, since: datetime | None = None, until: datetime | None = None, record_id: str | None = None
    ) -> list[StoredEvent]:
        sql, params = "SELECT * FROM events WHERE 1 = 1", list[str]()
        if since is not None:
            sql, params = sql + " AND received_at >= ?", [*params, iso_micro(since)]
        if until is not None:
            sql, params = sql + " AND received_at < ?", [*params, iso_micro(until)]
        if record_id is not None:
            sql, params = sql + " AND record_id = ?", [*params, record_id]
        with self._lock:
            rows = self.conn.execute(sql + " ORDER BY received_at, id", params).fetchall()
        return [self._event(row) for row in rows]

    def mark_event(self, event_id: str, status: str, *, error: str | None = None) -> None:
        with self._transaction() as conn:
            conn.execute(
                "UPDATE events SET status = ?, attempts = attempts + 1, error = ? WHERE id = ?",
                (status, error, event_id),
            )

    def add_dead_letter(self, letter: DeadLetter) -> None:
        with self._transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO dead_letters VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    letter.id,
                    letter.kind,
                    iso_micro(letter.failed_at),
                    letter.payload,
                    letter.error,
                    letter.attempts,
                    letter.record_id,
                ),
            )

    @staticmethod
    def _letter(row: Sequence[Any]) -> DeadLetter:
        id, kind, failed, payload, error, attempts, record = row
        return DeadLetter(id, kind, parse_iso(failed), bytes(payload), error, int(attempts), record)

    def dead_letters(self) -> list[DeadLetter]:
        with self._lock:
            rows = self.conn.execute("SELECT * FROM dead_letters ORDER BY failed_at, id").fetchall()
        return [self._letter(row) for row in rows]

    def dead_letter(self, letter_id: str) -> DeadLetter | None:
        with self._lock:
            row = self.conn.execute("SELECT * FROM dead_letters WHERE id = ?", (letter_id,)).fetchone()
        return self._letter(row) if row else None

    def remove_dead_letter(self, letter_id: str) -> None:
        with self._transaction() as conn:
            conn.execute("DELETE FROM dead_letters WHERE id = ?", (letter_id,))
