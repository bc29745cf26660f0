"""The state store: what Functions cannot keep between runs, behind one port with an SQLite adapter.

Journey progress (which contact is at which tile since when), the per-account tiles already handled, the effects
already written (by idempotency key, with the id of the row they created), and workflow intents (recorded before
ExecuteWorkflow is called, completed with the system job's id after) so that a repeated run, a replay or an
overlapping run never creates anything twice. SQLite is the embedded default; the Azure Table Storage adapter comes
with the production runtime (issue 6) and implements the same `StateStore` protocol.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

__all__ = ["Intent", "ProgressRow", "SqliteStateStore", "StateStore", "iso"]


@dataclass(frozen=True)
class ProgressRow:
    """One contact's place in one journey."""

    contact_id: str
    tile_id: str | None
    entered_at: datetime
    finished: bool


@dataclass(frozen=True)
class Intent:
    """A workflow run the service meant to start: for which entity, and the system job once it is known."""

    key: str
    workflow_id: str
    entity_id: str
    job_id: str | None
    claimed_at: str | None = None  # when a run claimed it (ISO, UTC): an overlapping run leaves a fresh claim alone


class StateStore(Protocol):
    """The port: journey progress, handled per-account tiles, written effects, workflow intents."""

    def progress(self, journey: str) -> list[ProgressRow]: ...

    def handled(self, journey: str) -> set[tuple[str, str]]: ...

    def save_journey(
        self,
        journey: str,
        progress: Iterable[ProgressRow],
        handled: Iterable[tuple[str, str]],
        counts: Mapping[str, Mapping[str, Mapping[str, int]]] | None = None,
    ) -> None: ...

    def tile_counts(self, journey: str, account: str | None = None) -> dict[str, dict[str, int]]: ...

    def effects_done(self, keys: Iterable[str]) -> dict[str, str]: ...

    def record_effects(self, done: Iterable[tuple[str, str]]) -> None: ...

    def intent(self, key: str) -> Intent | None: ...

    def record_intent(self, intent: Intent) -> None: ...

    def claim_intent(self, intent: Intent) -> bool: ...


def iso(moment: datetime) -> str:
    """The state store's timestamp format: UTC, whole seconds, `Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class SqliteStateStore:
    """The state store in one SQLite file (or in memory): the embedded default, for `abm demo` and local runs."""

    def __init__(self, path: str | None = None) -> None:
        self.conn = sqlite3.connect(path or ":memory:", check_same_thread=False, isolation_level=None)
        self._lock = threading.RLock()
        with self._lock:
            self.conn.executescript(
                """
                CREATE TABLE IF NOT EXISTS progress (journey TEXT, contact_id TEXT, tile_id TEXT, entered_at TEXT,
                    finished INTEGER, PRIMARY KEY (journey, contact_id));
                CREATE TABLE IF NOT EXISTS handled (journey TEXT, tile_id TEXT, account_id TEXT,
                    PRIMARY KEY (journey, tile_id, account_id));
                CREATE TABLE IF NOT EXISTS effects (key TEXT PRIMARY KEY, entity_id TEXT);
                CREATE TABLE IF NOT EXISTS intents (key TEXT PRIMARY KEY, workflow_id TEXT, entity_id TEXT,
                    job_id TEXT, claimed_at TEXT);
                CREATE TABLE IF NOT EXISTS tile_counts (journey TEXT, account_id TEXT, tile_id TEXT, counter TEXT,
                    value INTEGER, PRIMARY KEY (journey, account_id, tile_id, counter));
                """
            )

    def close(self) -> None:
        with self._lock:
            self.conn.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self.conn.execute("BEGIN")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    def progress(self, journey: str) -> list[ProgressRow]:
        with self._lock:
            rows = self.conn.execute(
                "SELECT contact_id, tile_id, entered_at, finished FROM progress WHERE journey = ? ORDER BY contact_id",
                (journey,),
            ).fetchall()
        return [
            ProgressRow(contact, tile, datetime.fromisoformat(entered.replace("Z", "+00:00")), bool(finished))
            for contact, tile, entered, finished in rows
        ]

    def handled(self, journey: str) -> set[tuple[str, str]]:
        with self._lock:
            rows = self.conn.execute("SELECT tile_id, account_id FROM handled WHERE journey = ?", (journey,)).fetchall()
        return {(tile, account) for tile, account in rows}

    def save_journey(
        self,
        journey: str,
        progress: Iterable[ProgressRow],
        handled: Iterable[tuple[str, str]],
        counts: Mapping[str, Mapping[str, Mapping[str, int]]] | None = None,
    ) -> None:
        """Replace the journey's progress, add its handled pairs and add this run's tile counts (by account id; ""
        for contacts without an account), in one transaction."""
        additions = [
            (journey, account, tile, counter, value)
            for account, tiles in (counts or {}).items()
            for tile, counters in tiles.items()
            for counter, value in counters.items()
            if value
        ]
        with self._transaction() as conn:
            conn.executemany(
                "INSERT INTO tile_counts VALUES (?, ?, ?, ?, ?) ON CONFLICT (journey, account_id, tile_id, counter) "
                "DO UPDATE SET value = value + excluded.value",
                additions,
            )
            conn.executemany(
                "INSERT OR REPLACE INTO progress VALUES (?, ?, ?, ?, ?)",
                [(journey, p.contact_id, p.tile_id, iso(p.entered_at), int(p.finished)) for p in progress],
            )
            conn.executemany(
                "INSERT OR IGNORE INTO handled VALUES (?, ?, ?)",
                [(journey, tile, account) for tile, account in handled],
            )

    def tile_counts(self, journey: str, account: str | None = None) -> dict[str, dict[str, int]]:
        """Counts per tile since the journey started, for every account or for one."""
        sql = "SELECT tile_id, counter, SUM(value) FROM tile_counts WHERE journey = ?"
        params: list[str] = [journey]
        if account is not None:
            sql += " AND account_id = ?"
            params.append(account)
        with self._lock:
            rows = self.conn.execute(sql + " GROUP BY tile_id, counter ORDER BY tile_id, counter", params).fetchall()
        totals: dict[str, dict[str, int]] = {}
        for tile, counter, value in rows:
            totals.setdefault(tile, {})[counter] = int(value)
        return totals

    def effects_done(self, keys: Iterable[str]) -> dict[str, str]:
        """The effects among `keys` already written, with the id of the row each created."""
        wanted = list(keys)
        found: dict[str, str] = {}
        with self._lock:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                marks = ",".join("?" for _ in chunk)
                rows = self.conn.execute(f"SELECT key, entity_id FROM effects WHERE key IN ({marks})", chunk)  # noqa: S608
                found.update(dict(rows.fetchall()))
        return found

    def record_effects(self, done: Iterable[tuple[str, str]]) -> None:
        with self._transaction() as conn:
            conn.executemany("INSERT OR REPLACE INTO effects VALUES (?, ?)", list(done))

    def intent(self, key: str) -> Intent | None:
        with self._lock:
            row = self.conn.execute(
                "SELECT key, workflow_id, entity_id, job_id, claimed_at FROM intents WHERE key = ?", (key,)
            ).fetchone()
        return Intent(*row) if row else None

    def claim_intent(self, intent: Intent) -> bool:
        """Record a new intent unless one exists: True for the run that got it (only that run may call out)."""
        with self._transaction() as conn:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO intents VALUES (?, ?, ?, ?, ?)",
                (intent.key, intent.workflow_id, intent.entity_id, intent.job_id, intent.claimed_at),
            )
            return cursor.rowcount == 1

    def record_intent(self, intent: Intent) -> None:
        with self._transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO intents VALUES (?, ?, ?, ?, ?)",
                (intent.key, intent.workflow_id, intent.entity_id, intent.job_id, intent.claimed_at),
            )
