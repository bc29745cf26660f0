"""SQLite storage for the emulator: one SQL table per Dataverse table, a global row version, a log of deletions.

Values are stored as Dataverse reads them back: GUIDs as lowercase text, datetimes as `YYYY-MM-DDTHH:MM:SSZ` text
(so text order is time order), dates as `YYYY-MM-DD`, booleans as 0/1, money and decimals as REAL. A lookup is two
columns, `<name>` and `<name>__type`. Every write takes the next value of one global version counter: it is the
row's `versionnumber` (its ETag) and the change-tracking token (a delta link returns rows whose version is above it,
and deletions logged above it).

One connection, guarded by a re-entrant lock: the HTTP server is threaded, SQLite serialises writes anyway, and a
`$batch` change set needs its reads and writes inside one transaction.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from devtools.emulator.filter_sql import register_functions
from devtools.emulator.schema import TABLES, ColumnType, TableDef, system_rows

__all__ = ["Store"]

_SQL_TYPES: dict[ColumnType, str] = {
    "guid": "TEXT",
    "string": "TEXT",
    "memo": "TEXT",
    "int": "INTEGER",
    "decimal": "REAL",
    "money": "REAL",
    "bool": "INTEGER",
    "datetime": "TEXT",
    "date": "TEXT",
    "choice": "INTEGER",
}


def sql_columns(table: TableDef) -> list[str]:
    """Every stored column of a table: its typed columns, then `<lookup>` and `<lookup>__type` pairs."""
    names = list(table.all_columns)
    for lookup in table.all_lookups:
        names += [lookup.name, f"{lookup.name}__type"]
    return names


class Store:
    """The emulator's data. `path=None` keeps it in memory; a file path makes it survive restarts."""

    def __init__(self, path: str | None = None) -> None:
        self.conn = sqlite3.connect(path or ":memory:", check_same_thread=False, isolation_level=None)
        self.conn.row_factory = sqlite3.Row
        register_functions(self.conn)
        self.lock = threading.RLock()
        self._depth = 0
        with self.lock:
            self.conn.execute("PRAGMA journal_mode=WAL" if path else "PRAGMA journal_mode=MEMORY")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self._create_schema()

    def close(self) -> None:
        with self.lock:
            self.conn.close()

    def _create_schema(self) -> None:
        self.conn.execute("CREATE TABLE IF NOT EXISTS _meta (key TEXT PRIMARY KEY, value TEXT)")
        self.conn.execute("INSERT OR IGNORE INTO _meta VALUES ('version', '0')")
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS _deletions "
            "(entity_set TEXT, id TEXT, version INTEGER, PRIMARY KEY (entity_set, id))"
        )
        for table in TABLES.values():
            columns = []
            for name in sql_columns(table):
                kind = table.all_columns.get(name, "guid" if not name.endswith("__type") else "string")
                columns.append(f'"{name}" {_SQL_TYPES[kind]}' + (" PRIMARY KEY" if name == table.primary_key else ""))
            self.conn.execute(f'CREATE TABLE IF NOT EXISTS "{table.logical_name}" ({", ".join(columns)})')
            self._add_new_columns(table, columns)
            self.conn.execute(
                f'CREATE INDEX IF NOT EXISTS "{table.logical_name}_version" ON "{table.logical_name}" (versionnumber)'
            )
            for lookup in table.all_lookups:
                self.conn.execute(
                    f'CREATE INDEX IF NOT EXISTS "{table.logical_name}_{lookup.name}" '
                    f'ON "{table.logical_name}" ("{lookup.name}")'
                )
            for key in table.alternate_keys:
                cols = ", ".join(f'"{c}"' for c in key)
                self.conn.execute(
                    f'CREATE UNIQUE INDEX IF NOT EXISTS "{table.logical_name}_key_{"_".join(key)}" '
                    f'ON "{table.logical_name}" ({cols})'
                )
        self._seed_system_rows()

    def _add_new_columns(self, table: TableDef, definitions: list[str]) -> None:
        """A file written by an older emulator gets the columns the schema gained since (empty in old rows)."""
        have = {row[1] for row in self.conn.execute(f'PRAGMA table_info("{table.logical_name}")')}
        for name, definition in zip(sql_columns(table), definitions, strict=True):
            if name not in have:
                self.conn.execute(f'ALTER TABLE "{table.logical_name}" ADD COLUMN {definition}')

    def _seed_system_rows(self) -> None:
        """Rows every org has before anything happens (SDK messages and their filters): version 0, so they are in
        no delta and take no version from the counter; `INSERT OR IGNORE`, so a reopened file keeps them once."""
        stamp = "2020-01-01T00:00:00Z"
        for name, rows in system_rows().items():
            table = TABLES[name]
            columns = sql_columns(table)
            names = ", ".join(f'"{c}"' for c in columns)
            placeholders = ", ".join("?" for _ in columns)
            values = [
                tuple({"createdon": stamp, "modifiedon": stamp, "versionnumber": 0, **row}.get(c) for c in columns)
                for row in rows
            ]
            self.conn.executemany(
                f'INSERT OR IGNORE INTO "{table.logical_name}" ({names}) VALUES ({placeholders})', values
            )

    # ---- transactions and versions -------------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All-or-nothing: nested uses become savepoints, so a change set inside a batch rolls back alone."""
        with self.lock:
            name = f"sp{self._depth}"
            self.conn.execute(f"SAVEPOINT {name}")
            self._depth += 1
            try:
                yield
            except BaseException:
                self.conn.execute(f"ROLLBACK TO {name}")
                self.conn.execute(f"RELEASE {name}")
                raise
            else:
                self.conn.execute(f"RELEASE {name}")
            finally:
                self._depth -= 1

    def next_version(self) -> int:
        with self.lock:
            self.conn.execute("UPDATE _meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'version'")
            return int(self.conn.execute("SELECT value FROM _meta WHERE key = 'version'").fetchone()[0])

    def current_version(self) -> int:
        with self.lock:
            return int(self.conn.execute("SELECT value FROM _meta WHERE key = 'version'").fetchone()[0])

    # ---- rows ------------------------------------------------------------------------------------------------------

    def get(self, table: TableDef, id: str) -> dict[str, Any] | None:
        with self.lock:
            row = self.conn.execute(
                f'SELECT * FROM "{table.logical_name}" WHERE "{table.primary_key}" = ?', (id,)
            ).fetchone()
        return dict(row) if row else None

    def find(self, table: TableDef, key: Mapping[str, Any]) -> dict[str, Any] | None:
        """The row matching an alternate key's column values."""
        where = " AND ".join(f'"{c}" = ?' for c in key)
        with self.lock:
            row = self.conn.execute(
                f'SELECT * FROM "{table.logical_name}" WHERE {where}', tuple(key.values())
            ).fetchone()
        return dict(row) if row else None

    def insert(self, table: TableDef, row: Mapping[str, Any]) -> int:
        """Insert one row (its primary key set by the caller); returns its version. IntegrityError on a duplicate."""
        return self.insert_many(table, [row])

    def insert_many(self, table: TableDef, rows: Iterable[Mapping[str, Any]]) -> int:
        """Insert rows in one statement batch (loading a tenant: no request per row); returns the last version."""
        columns = sql_columns(table)
        placeholders = ", ".join("?" for _ in columns)
        names = ", ".join(f'"{c}"' for c in columns)
        with self.lock, self.transaction():
            version = self.next_version()
            values = [tuple(self._complete(table, row, version).get(c) for c in columns) for row in rows]
            self.conn.executemany(f'INSERT INTO "{table.logical_name}" ({names}) VALUES ({placeholders})', values)
            self.conn.execute(
                "DELETE FROM _deletions WHERE entity_set = ? AND id IN (SELECT value FROM json_each(?))",
                (table.entity_set, _json_list(v[columns.index(table.primary_key)] for v in values)),
            )
        return version

    def update(self, table: TableDef, id: str, changes: Mapping[str, Any]) -> int:
        with self.lock, self.transaction():
            version = self.next_version()
            changes = {**changes, "versionnumber": version}
            if table.computed_fullname and ({"firstname", "lastname"} & set(changes)):
                current = self.get(table, id) or {}
                merged = {**current, **changes}
                changes["fullname"] = _fullname(merged)
            assignments = ", ".join(f'"{c}" = ?' for c in changes)
            self.conn.execute(
                f'UPDATE "{table.logical_name}" SET {assignments} WHERE "{table.primary_key}" = ?',
                (*changes.values(), id),
            )
        return version

    def delete(self, table: TableDef, id: str) -> None:
        with self.lock, self.transaction():
            version = self.next_version()
            self.conn.execute(f'DELETE FROM "{table.logical_name}" WHERE "{table.primary_key}" = ?', (id,))
            self.conn.execute(
                "INSERT OR REPLACE INTO _deletions (entity_set, id, version) VALUES (?, ?, ?)",
                (table.entity_set, id, version),
            )

    def select(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(row) for row in self.conn.execute(sql, tuple(params)).fetchall()]

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        with self.lock:
            row = self.conn.execute(sql, tuple(params)).fetchone()
        return row[0] if row else None

    def deletions_since(self, table: TableDef, version: int) -> list[str]:
        with self.lock:
            rows = self.conn.execute(
                "SELECT id FROM _deletions WHERE entity_set = ? AND version > ? ORDER BY version",
                (table.entity_set, version),
            ).fetchall()
        return [r[0] for r in rows]

    def count(self, table: TableDef) -> int:
        return int(self.scalar(f'SELECT COUNT(*) FROM "{table.logical_name}"'))

    def _complete(self, table: TableDef, row: Mapping[str, Any], version: int) -> dict[str, Any]:
        complete = dict(row)
        complete["versionnumber"] = version
        if table.computed_fullname:
            complete["fullname"] = _fullname(complete)
        return complete


def _fullname(row: Mapping[str, Any]) -> str:
    """Dataverse's default full name format: first name, space, last name."""
    return " ".join(part for part in (row.get("firstname"), row.get("lastname")) if part)


def _json_list(values: Iterable[Any]) -> str:
    return json.dumps(list(values))
