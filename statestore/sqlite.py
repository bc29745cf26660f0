"""The state store in one SQLite file (or in memory): the embedded default, for `abm demo` and local runs."""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from operator import itemgetter
from typing import TYPE_CHECKING

from statestore.port import (
    Intent,
    MirrorRow,
    Progress,
    ShardRun,
    bucket_of,
    iso,
    iso_micro,
    parse_iso,
    wall_clock,
)
from statestore.sqlite_agenda import SqliteAgenda
from statestore.sqlite_agenda import chunks as _chunks
from statestore.sqlite_events import SqliteEventLog
from statestore.sqlite_timeline import SCHEMA as _TIMELINE
from statestore.sqlite_timeline import SqliteTimeline

if TYPE_CHECKING:
    from statestore.port import StateStore

__all__ = ["SqliteStateStore"]

log = logging.getLogger("abm.state")

_VERSION = 1  # PRAGMA user_version: 1 since the mirror keeps each row's bucket (0: before, or a new file)
_DECODED = 1000  # mirror rows whose JSON is decoded in one call (bounded: a whole-tenant read yields as it goes)
_SCHEMA = """
    CREATE TABLE IF NOT EXISTS progress (journey TEXT, contact_id TEXT, tile_id TEXT, entered_at TEXT,
        finished INTEGER, started_at TEXT, PRIMARY KEY (journey, contact_id));
    CREATE TABLE IF NOT EXISTS handled (journey TEXT, tile_id TEXT, account_id TEXT,
        PRIMARY KEY (journey, tile_id, account_id));
    CREATE INDEX IF NOT EXISTS handled_account ON handled (journey, account_id, tile_id);
    CREATE TABLE IF NOT EXISTS effects (key TEXT PRIMARY KEY, entity_id TEXT);
    CREATE TABLE IF NOT EXISTS intents (key TEXT PRIMARY KEY, workflow_id TEXT, entity_id TEXT,
        job_id TEXT, claimed_at TEXT);
    CREATE INDEX IF NOT EXISTS open_intents ON intents (key) WHERE job_id IS NULL;
    CREATE TABLE IF NOT EXISTS tile_counts (journey TEXT, account_id TEXT, tile_id TEXT, counter TEXT,
        value INTEGER, PRIMARY KEY (journey, account_id, tile_id, counter));
    CREATE TABLE IF NOT EXISTS checkpoints (name TEXT PRIMARY KEY, value TEXT);
    CREATE TABLE IF NOT EXISTS mirror (kind TEXT, id TEXT, partition TEXT, bucket INTEGER, data TEXT,
        PRIMARY KEY (kind, id));
    CREATE INDEX IF NOT EXISTS mirror_partition ON mirror (kind, partition, id);
    CREATE INDEX IF NOT EXISTS mirror_bucket ON mirror (kind, bucket, partition);
    CREATE TABLE IF NOT EXISTS agenda (partition TEXT PRIMARY KEY, bucket INTEGER, due TEXT);
    CREATE INDEX IF NOT EXISTS agenda_due ON agenda (due, partition);
    CREATE INDEX IF NOT EXISTS agenda_bucket ON agenda (bucket, due, partition);
    CREATE TABLE IF NOT EXISTS agenda_refs (ref TEXT, partition TEXT, PRIMARY KEY (partition, ref));
    CREATE INDEX IF NOT EXISTS agenda_ref ON agenda_refs (ref, partition);
    CREATE TABLE IF NOT EXISTS runs (id TEXT PRIMARY KEY, shards INTEGER, started_at TEXT,
        checkpoints TEXT, completed INTEGER);
    CREATE TABLE IF NOT EXISTS run_shards (run_id TEXT, shard INTEGER, PRIMARY KEY (run_id, shard));
    CREATE TABLE IF NOT EXISTS events (id TEXT PRIMARY KEY, source TEXT, received_at TEXT, tbl TEXT,
        record_id TEXT, message TEXT, payload BLOB, status TEXT, attempts INTEGER, error TEXT);
    CREATE INDEX IF NOT EXISTS events_received ON events (received_at, id);
    CREATE TABLE IF NOT EXISTS dead_letters (id TEXT PRIMARY KEY, kind TEXT, failed_at TEXT,
        payload BLOB, error TEXT, attempts INTEGER, record_id TEXT);
"""


def _decoded(kind: str, rows: Sequence[tuple[str, str, str]]) -> Iterator[MirrorRow]:
    """Mirror rows from (id, partition, data) rows, their JSON decoded `_DECODED` at a time as one array: a call of
    `json.loads` per row costs three times as much, and a run decodes hundreds of thousands."""
    for start in range(0, len(rows), _DECODED):
        part = rows[start : start + _DECODED]
        decoded = json.loads("[" + ",".join(data for _, _, data in part) + "]")
        for (id, partition, _), data in zip(part, decoded, strict=True):
            yield MirrorRow(kind, id, partition, data)


class SqliteStateStore(SqliteAgenda, SqliteEventLog, SqliteTimeline):
    """The state store in one SQLite file (or in memory): the embedded default, for `abm demo` and local runs."""

    def __init__(self, path: str | None = None, *, clock: Callable[[], datetime] | None = None) -> None:
        self._clock = clock or wall_clock
        self.conn = sqlite3.connect(path or ":memory:", check_same_thread=False, isolation_level=None, timeout=30)
        self._lock = threading.RLock()
        with self._lock:
            # A write-ahead log: a commit is an append, synced at checkpoints rather than an fsync per transaction
            # (a run records thousands of workflow claims one by one). What it gives up: a power loss or an OS crash
            # (not a crash of the process) may roll back the last commits; this is the local and demo store.
            if path:
                self.conn.execute("PRAGMA journal_mode = WAL")
                self.conn.execute("PRAGMA synchronous = NORMAL")
            (version,) = self.conn.execute("PRAGMA user_version").fetchone()
        # Upgrading takes the write lock first (and reads the version again under it): of two processes opening an
        # old file at once, one migrates. A current file is opened without writing.
        with self._transaction(immediate=version < _VERSION) as conn:
            (version,) = conn.execute("PRAGMA user_version").fetchone()
            mirror = {row[1] for row in conn.execute("PRAGMA table_info(mirror)")}
            relaid = version < _VERSION and bool(mirror) and "bucket" not in mirror
            if relaid:  # a file from before buckets: the mirror is read again rather than converted
                conn.execute("DROP TABLE mirror")
            for statement in (_SCHEMA + _TIMELINE).split(";"):
                if statement.strip():
                    conn.execute(statement)
            columns = {row[1] for row in conn.execute("PRAGMA table_info(progress)")}
            if "started_at" not in columns:  # a state file written before journeys kept their entry time
                conn.execute("ALTER TABLE progress ADD COLUMN started_at TEXT")
            if relaid:
                conn.execute("DELETE FROM checkpoints WHERE name = 'columns'")
            if version < _VERSION:
                conn.execute(f"PRAGMA user_version = {_VERSION}")
        if relaid:
            log.warning("the state file's mirror layout changed: the next sync reads every table again")

    def close(self) -> None:
        with self._lock:
            self.conn.close()

    @contextmanager
    def _transaction(self, *, immediate: bool = False) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self.conn.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    def progress(self, journey: str, contacts: Iterable[str] | None = None) -> list[Progress]:
        sql = "SELECT contact_id, tile_id, entered_at, finished, started_at FROM progress WHERE journey = ?"
        with self._lock:
            if contacts is None:
                rows = self.conn.execute(sql, (journey,)).fetchall()
            else:
                rows = []
                for chunk, marks in _chunks(sorted(set(contacts))):
                    rows += self.conn.execute(f"{sql} AND contact_id IN ({marks})", (journey, *chunk)).fetchall()
        return [
            Progress(contact, tile, parse_iso(entered), bool(finished), parse_iso(started or entered))
            for contact, tile, entered, finished, started in sorted(rows, key=lambda row: str(row[0]))
        ]

    def handled(self, journey: str, accounts: Iterable[str] | None = None) -> set[tuple[str, str]]:
        sql = "SELECT tile_id, account_id FROM handled WHERE journey = ?"
        with self._lock:
            if accounts is None:
                return set(self.conn.execute(sql, (journey,)).fetchall())
            found: set[tuple[str, str]] = set()
            for chunk, marks in _chunks(sorted(set(accounts))):
                found.update(self.conn.execute(f"{sql} AND account_id IN ({marks})", (journey, *chunk)).fetchall())
        return found

    def save_journey(
        self,
        journey: str,
        progress: Iterable[Progress],
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
                "INSERT OR REPLACE INTO progress VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (
                        journey,
                        p.contact_id,
                        p.tile_id,
                        iso(p.entered_at),
                        int(p.finished),
                        iso(p.started_at or p.entered_at),
                    )
                    for p in progress
                ],
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
        found: dict[str, str] = {}
        with self._lock:
            for chunk, marks in _chunks(list(keys)):
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

    def clock(self) -> datetime:
        return self._clock()

    def take_over_intent(self, stale: Intent, claimed_at: str | None) -> bool:
        with self._transaction() as conn:
            cursor = conn.execute(
                "UPDATE intents SET claimed_at = ? WHERE key = ? AND job_id IS NULL AND claimed_at IS ?",
                (claimed_at, stale.key, stale.claimed_at),
            )
            return cursor.rowcount == 1

    def open_intents(self) -> list[Intent]:
        with self._lock:
            rows = self.conn.execute(
                "SELECT key, workflow_id, entity_id, job_id, claimed_at FROM intents WHERE job_id IS NULL ORDER BY key"
            ).fetchall()
        return [Intent(*row) for row in rows]

    def forget_contact(self, contact_id: str, record_ids: Iterable[str] = ()) -> None:
        about = [contact_id, *record_ids]
        with self._transaction() as conn:
            conn.execute("DELETE FROM progress WHERE contact_id = ?", (contact_id,))
            conn.execute("DELETE FROM intents WHERE entity_id = ?", (contact_id,))
            for chunk, marks in _chunks(about):
                conn.execute(f"DELETE FROM events WHERE record_id IN ({marks})", chunk)  # noqa: S608
                conn.execute(f"DELETE FROM dead_letters WHERE record_id IN ({marks})", chunk)  # noqa: S608

    # ---- checkpoints ----

    def checkpoint(self, name: str) -> str | None:
        with self._lock:
            row = self.conn.execute("SELECT value FROM checkpoints WHERE name = ?", (name,)).fetchone()
        return str(row[0]) if row else None

    def save_checkpoints(self, values: Mapping[str, str | None]) -> None:
        with self._transaction() as conn:
            for name, value in values.items():
                if value is None:
                    conn.execute("DELETE FROM checkpoints WHERE name = ?", (name,))
                else:
                    conn.execute("INSERT OR REPLACE INTO checkpoints VALUES (?, ?)", (name, value))

    # ---- mirror ----

    def put_mirror(self, rows: Iterable[MirrorRow]) -> None:
        with self._transaction() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO mirror (kind, id, partition, bucket, data) VALUES (?, ?, ?, ?, ?)",
                (
                    (r.kind, r.id, r.partition, bucket_of(r.partition), json.dumps(r.data, separators=(",", ":")))
                    for r in rows
                ),
            )

    def delete_mirror(self, kind: str, ids: Iterable[str]) -> None:
        with self._transaction() as conn:
            conn.executemany("DELETE FROM mirror WHERE kind = ? AND id = ?", ((kind, id) for id in ids))

    def mirror(self, kind: str, partitions: Iterable[str] | None = None) -> Iterator[MirrorRow]:
        if partitions is None:
            with self._lock:
                rows = self.conn.execute(
                    "SELECT id, partition, data FROM mirror WHERE kind = ? ORDER BY partition, id", (kind,)
                ).fetchall()
        else:
            rows = []
            with self._lock:
                for chunk, marks in _chunks(sorted(set(partitions))):
                    rows += self.conn.execute(
                        f"SELECT id, partition, data FROM mirror WHERE kind = ? AND partition IN ({marks})",  # noqa: S608
                        (kind, *chunk),
                    ).fetchall()
            rows.sort(key=itemgetter(1, 0))  # by partition, then id
        yield from _decoded(kind, rows)

    def mirror_rows(self, kind: str, ids: Iterable[str]) -> dict[str, MirrorRow]:
        rows: list[tuple[str, str, str]] = []
        with self._lock:
            for chunk, marks in _chunks(sorted(set(ids))):
                rows += self.conn.execute(
                    f"SELECT id, partition, data FROM mirror WHERE kind = ? AND id IN ({marks})",  # noqa: S608
                    (kind, *chunk),
                ).fetchall()
        return {row.id: row for row in _decoded(kind, rows)}

    def mirror_partitions(self, kinds: Collection[str], buckets: Collection[int] | None = None) -> list[str]:
        """The distinct partitions of these kinds' rows (in `buckets`), sorted: per kind, a walk of the covering
        index on (kind, partition, id), or of the one on (kind, bucket, partition) for the buckets wanted."""
        scopes: list[tuple[str, Sequence[int]]] = [("SELECT DISTINCT partition FROM mirror WHERE kind = ?", ())]
        if buckets is not None:
            scopes = [
                (f"SELECT DISTINCT partition, bucket FROM mirror WHERE kind = ? AND bucket IN ({marks})", chunk)  # noqa: S608
                for chunk, marks in _chunks(sorted(set(buckets)))
            ]
        found: set[str] = set()
        with self._lock:
            for kind in set(kinds):
                for sql, chunk in scopes:
                    found.update(row[0] for row in self.conn.execute(sql, (kind, *chunk)))
        return sorted(found)

    def clear_mirror(self) -> None:
        with self._transaction() as conn:
            conn.execute("DELETE FROM mirror")

    # ---- sharded runs ----

    def start_run(self, run: ShardRun) -> None:
        with self._transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO runs VALUES (?, ?, ?, ?, ?)",
                (run.id, run.shards, iso_micro(run.started_at), json.dumps(run.checkpoints), int(run.completed)),
            )
            conn.executemany("INSERT OR IGNORE INTO run_shards VALUES (?, ?)", ((run.id, s) for s in run.done))

    def open_run(self) -> ShardRun | None:
        with self._lock:
            row = self.conn.execute(
                "SELECT id, shards, started_at, checkpoints FROM runs WHERE completed = 0 "
                "ORDER BY started_at DESC, id DESC LIMIT 1"
            ).fetchone()
            if row is None:
                return None
            done = {s for (s,) in self.conn.execute("SELECT shard FROM run_shards WHERE run_id = ?", (row[0],))}
        return ShardRun(row[0], int(row[1]), parse_iso(row[2]), json.loads(row[3]), frozenset(done))

    def finish_shard(self, run_id: str, shard: int) -> bool:
        with self._transaction() as conn:
            conn.execute("INSERT OR IGNORE INTO run_shards VALUES (?, ?)", (run_id, shard))
            (done,) = conn.execute("SELECT COUNT(*) FROM run_shards WHERE run_id = ?", (run_id,)).fetchone()
            row = conn.execute("SELECT shards FROM runs WHERE id = ?", (run_id,)).fetchone()
        return row is not None and int(done) >= int(row[0])

    def complete_run(self, run_id: str) -> None:
        with self._transaction() as conn:
            conn.execute("UPDATE runs SET completed = 1 WHERE id = ?", (run_id,))


if TYPE_CHECKING:

    def _conforms(store: SqliteStateStore) -> StateStore:  # mypy checks the adapter against the port (every role)
        return store
