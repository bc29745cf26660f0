"""Writes: create, update and upsert (by id or alternate key, with `If-Match` / `If-None-Match`), delete, and the
bulk messages CreateMultiple, UpdateMultiple and UpsertMultiple (one transaction each), as Learn documents them:

- "Use Upsert to Create or Update a record": a `PATCH` by alternate key answers `OData-EntityId` in the key form of its
  URL; on an existing row the key's columns in the body are dropped (a key cannot change through itself), on a new
  row the body's key values win over the URL's.
- "Web service error codes": a create that repeats an alternate key's values is DuplicateRecordEntityKey
  (0x80060892); one that repeats a primary key is DuplicateRecord (0x80040237).
- "Perform conditional operations using the Web API": `If-None-Match: *` on an existing row is 412 "A record with
  matching key values already exists.", `If-Match: *` on a missing one 404.
- "Use bulk operation messages": any error rolls the whole request back; two Targets with the same primary or
  alternate key make UpsertMultiple fail, while UpdateMultiple applies the first and ignores the others.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Hashable, Iterable, Mapping
from typing import Any

from devtools.emulator.collection import Reads, find, missing
from devtools.emulator.errors import (
    EmulatorError,
    already_exists,
    bad_request,
    duplicate,
    duplicate_key,
)
from devtools.emulator.keys import ROW, RowKey, key_segment, parse_key
from devtools.emulator.metadata import Metadata
from devtools.emulator.rows import from_json
from devtools.emulator.schema import TableDef, by_entity_set
from devtools.emulator.store import Store
from devtools.emulator.wire import Answer, now_iso

__all__ = ["Writes", "stale_version"]


def stale_version() -> EmulatorError:
    """412 for an `If-Match` ETag that no longer matches (ConcurrencyVersionMismatch)."""
    return EmulatorError(
        412, "0x80060882", "The version of the existing record doesn't match the RowVersion property provided."
    )


def _identity(key: RowKey) -> Hashable:
    """What makes two Targets address the same row: the same id, or the same alternate key values."""
    return key if isinstance(key, str) else tuple(sorted(key.items()))


class Writes:
    """The write routes of one emulator; every write runs in a store transaction."""

    def __init__(self, store: Store, reads: Reads, metadata: Metadata, user_id: str, api_url: str) -> None:
        self.store = store
        self.reads = reads
        self.metadata = metadata
        self.user_id = user_id
        self.api_url = api_url

    # ---- keys ------------------------------------------------------------------------------------------------------

    def parse_key(self, table: TableDef, inner: str) -> RowKey:
        """`parse_key`, and an alternate key must be Active in the table's definition."""
        key = parse_key(table, inner)
        if isinstance(key, dict):
            self.metadata.check_key(table, key)
        return key

    def _resolve(self, table: TableDef, key: RowKey) -> str:
        """The id of the row an `@odata.bind` addresses by id or by key; 404 when there is none."""
        if isinstance(key, dict):
            self.metadata.check_key(table, key)
        row = find(self.store, table, key)
        if row is None:
            raise missing(table, key)
        return str(row[table.primary_key])

    def _entity_id(self, table: TableDef, key: RowKey, id: str) -> str:
        """`OData-EntityId`: the row's URL by id, or in the alternate key form it was addressed by."""
        segment = key_segment(table, key) if isinstance(key, dict) else id
        return f"{self.api_url}{table.entity_set}({segment})"

    def _key_name(self, table: TableDef, columns: Iterable[str]) -> str:
        """The SchemaName the table definition gives the alternate key made of these columns."""
        wanted = sorted(columns)
        found = self.metadata.key(table, wanted)
        return found.schema_name if found else "_".join(wanted)

    def _check_keys_free(self, table: TableDef, row: Mapping[str, Any]) -> None:
        """DuplicateRecordEntityKey when another row already has this row's values for one of its alternate keys."""
        for columns in table.alternate_keys:
            values = {column: row.get(column) for column in columns}
            if any(value is None for value in values.values()):
                continue
            other = self.store.find(table, values)
            if other is not None and other[table.primary_key] != row.get(table.primary_key):
                raise duplicate_key(self._key_name(table, columns), columns)

    # ---- rows ------------------------------------------------------------------------------------------------------

    def _new_row(self, table: TableDef, data: Any, id: str | None = None) -> dict[str, Any]:
        values = from_json(table, data, self._resolve)
        supplied = values.pop(table.primary_key, None)
        stamp = now_iso()
        row = {"createdon": stamp, "modifiedon": stamp, **values}
        row[table.primary_key] = id or supplied or str(uuid.uuid4())
        if table.stateful:
            row.setdefault("statecode", 0)
            row.setdefault("statuscode", 1)
        user = self.user_id
        row.setdefault("createdby", user)
        row.setdefault("createdby__type", "systemuser")
        if table.lookup("ownerid") is not None and row.get("ownerid") is None:
            row["ownerid"], row["ownerid__type"] = user, "systemuser"
        return row

    def _insert(self, table: TableDef, row: dict[str, Any]) -> None:
        """Insert a new row: DuplicateRecord for a taken id, DuplicateRecordEntityKey for taken key values."""
        if self.store.get(table, row[table.primary_key]) is not None:
            raise duplicate()
        self._check_keys_free(table, row)
        try:
            self.store.insert(table, row)
        except sqlite3.IntegrityError:  # a unique index the checks above do not know of
            raise duplicate() from None

    @staticmethod
    def _key_columns(table: TableDef, key: Mapping[str, Any]) -> dict[str, Any]:
        """Stored values of an alternate key: a lookup column gets its target type too."""
        values = dict(key)
        for name in key:
            lookup = table.lookup(name)
            if lookup is not None:
                values[f"{name}__type"] = lookup.targets[0]
        return values

    def _written(
        self,
        table: TableDef,
        key: RowKey,
        id: str,
        *,
        params: Mapping[str, str],
        prefer: Mapping[str, str],
        status: int,
    ) -> Answer:
        """The answer to a write: 204 with `OData-EntityId`, or the row with `Prefer: return=representation`."""
        if prefer.get("return") == "representation":
            return self.reads.representation(table, id, params, prefer, status)
        return Answer(204, None, {"OData-EntityId": self._entity_id(table, key, id)})

    # ---- routes ----------------------------------------------------------------------------------------------------

    def create(self, table: TableDef, data: Any, params: Mapping[str, str], prefer: Mapping[str, str]) -> Answer:
        with self.store.transaction():
            row = self._new_row(table, data)
            self._insert(table, row)
        id = row[table.primary_key]
        return self._written(table, id, id, params=params, prefer=prefer, status=201)

    def patch(
        self,
        table: TableDef,
        key: RowKey,
        data: Any,
        headers: Mapping[str, str],
        *,
        params: Mapping[str, str],
        prefer: Mapping[str, str],
    ) -> Answer:
        """Update, or upsert when no `If-Match` is sent; `If-None-Match: *` makes it create-only."""
        if_match = headers.get("if-match")
        if_none_match = headers.get("if-none-match")
        with self.store.transaction():
            existing = find(self.store, table, key)
            if existing is None:
                if if_match is not None:
                    raise missing(table, key)
                id = self._upsert_create(table, key, data)
                return self._written(table, key, id, params=params, prefer=prefer, status=201)
            if if_none_match == "*":
                raise already_exists()
            if if_match not in (None, "*") and if_match != f'W/"{existing["versionnumber"]}"':
                raise stale_version()
            self._update(table, key, existing, data)
        return self._written(table, key, existing[table.primary_key], params=params, prefer=prefer, status=200)

    def _upsert_create(self, table: TableDef, key: RowKey, data: Any) -> str:
        """Create the row an upsert did not find: by the URL's id, or with the URL's key values where the body has
        none of its own."""
        row = self._new_row(table, data, key if isinstance(key, str) else None)
        if isinstance(key, dict):
            for column, value in self._key_columns(table, key).items():
                row.setdefault(column, value)
        self._insert(table, row)
        return str(row[table.primary_key])

    def _update(self, table: TableDef, key: RowKey, existing: Mapping[str, Any], data: Any) -> None:
        """Apply a body to an existing row; the key columns it was addressed by are not changed through the key."""
        values = from_json(table, data, self._resolve)
        values.pop(table.primary_key, None)
        if isinstance(key, dict):
            for column in self._key_columns(table, key):
                values.pop(column, None)
        self._check_keys_free(table, {**existing, **values})
        values["modifiedon"] = now_iso()
        self.store.update(table, existing[table.primary_key], values)

    def delete(self, table: TableDef, key: RowKey, headers: Mapping[str, str]) -> Answer:
        with self.store.transaction():
            existing = find(self.store, table, key)
            if existing is None:
                raise missing(table, key)
            if_match = headers.get("if-match")
            if if_match not in (None, "*") and if_match != f'W/"{existing["versionnumber"]}"':
                raise stale_version()
            self.store.delete(table, existing[table.primary_key])
        return Answer(204)

    # ---- bulk messages ---------------------------------------------------------------------------------------------

    def _targets(self, table: TableDef, data: Any) -> list[dict[str, Any]]:
        targets = data.get("Targets") if isinstance(data, dict) else None
        if not isinstance(targets, list) or not all(isinstance(t, dict) for t in targets):
            raise bad_request("The request must have a 'Targets' array of entity objects.")
        expected = f"Microsoft.Dynamics.CRM.{table.logical_name}"
        for index, target in enumerate(targets):
            if target.get("@odata.type") != expected:
                raise bad_request(f"Targets[{index}] must have '@odata.type': '{expected}'.")
        return targets

    def _target_key(self, table: TableDef, message: str, target: Mapping[str, Any]) -> RowKey:
        """The row a target of UpdateMultiple/UpsertMultiple addresses: its primary key, or its `@odata.id`."""
        if target.get(table.primary_key):
            return str(target[table.primary_key]).lower()
        address = target.get("@odata.id")
        if isinstance(address, str):
            match = ROW.match(address.rsplit("/", 1)[-1])
            if match is None or by_entity_set(match.group(1)) is not table:
                raise bad_request(f"'@odata.id' {address} does not address a {table.logical_name}.")
            return self.parse_key(table, match.group(2))
        raise bad_request(f"Each target of {message} must identify its row.")

    def _keyed_targets(
        self, table: TableDef, message: str, targets: list[dict[str, Any]]
    ) -> list[tuple[RowKey, dict[str, Any]]]:
        """Each target with its row key. Two targets with the same key: UpsertMultiple fails, UpdateMultiple keeps the
        first and ignores the others (Learn, "Duplicate records in … Targets parameter")."""
        seen: dict[Hashable, int] = {}
        keyed: list[tuple[RowKey, dict[str, Any]]] = []
        for index, target in enumerate(targets):
            key = self._target_key(table, message, target)
            first = seen.setdefault(_identity(key), index)
            if first == index:
                keyed.append((key, target))
            elif message == "UpsertMultiple":
                raise bad_request(
                    f"Targets[{first}] and Targets[{index}] address the same row: multiple records with the same "
                    "primary key or alternate key values are not supported with UpsertMultiple."
                )
        return keyed

    def bulk(self, table: TableDef, message: str, data: Any) -> Answer:
        """CreateMultiple (200 with the new ids), UpdateMultiple or UpsertMultiple (204), all in one transaction."""
        targets = self._targets(table, data)
        if message == "CreateMultiple":
            return self._create_multiple(table, targets)
        headers = {"if-match": "*"} if message == "UpdateMultiple" else {}
        with self.store.transaction():
            for key, target in self._keyed_targets(table, message, targets):
                body = {k: v for k, v in target.items() if k != "@odata.id"}
                self.metadata.check_columns(table, body)
                self.patch(table, key, body, headers, params={}, prefer={})
        return Answer(204)

    def _create_multiple(self, table: TableDef, targets: list[dict[str, Any]]) -> Answer:
        ids: list[str] = []
        with self.store.transaction():
            for target in targets:
                self.metadata.check_columns(table, target)
                row = self._new_row(table, target)
                self._insert(table, row)
                ids.append(row[table.primary_key])
        context = f"{self.api_url}$metadata#Microsoft.Dynamics.CRM.CreateMultipleResponse"
        return Answer(200, {"@odata.context": context, "Ids": ids})
