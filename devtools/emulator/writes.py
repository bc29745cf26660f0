"""Writes: create, update and upsert (by id or alternate key, with `If-Match` / `If-None-Match`), delete, and the
bulk messages CreateMultiple, UpdateMultiple and UpsertMultiple (one transaction each)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from devtools.emulator.collection import Reads, find, missing
from devtools.emulator.errors import EmulatorError, bad_request, duplicate
from devtools.emulator.keys import ROW, RowKey, parse_key
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


class Writes:
    """The write routes of one emulator; every write runs in a store transaction."""

    def __init__(self, store: Store, reads: Reads, metadata: Metadata, user_id: str, api_url: str) -> None:
        self.store = store
        self.reads = reads
        self.metadata = metadata
        self.user_id = user_id
        self.api_url = api_url

    def parse_key(self, table: TableDef, inner: str) -> RowKey:
        """`parse_key`, and an alternate key must be Active in the table's definition."""
        key = parse_key(table, inner)
        if isinstance(key, dict):
            self.metadata.check_key(table, key)
        return key

    @staticmethod
    def _key_columns(table: TableDef, key: Mapping[str, Any]) -> dict[str, Any]:
        """Stored values of an alternate key: a lookup column gets its target type too."""
        values = dict(key)
        for name in key:
            lookup = table.lookup(name)
            if lookup is not None:
                values[f"{name}__type"] = lookup.targets[0]
        return values

    def _exists(self, table: TableDef, id: str) -> bool:
        return self.store.get(table, id) is not None

    def _new_row(self, table: TableDef, data: Any, id: str | None = None) -> dict[str, Any]:
        values = from_json(table, data, self._exists)
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
        if self.store.get(table, row[table.primary_key]) is not None:
            raise duplicate()
        try:
            self.store.insert(table, row)
        except Exception as exc:  # sqlite3.IntegrityError on an alternate key
            if "UNIQUE" in str(exc):
                raise duplicate("A record with matching key values already exists.") from None
            raise

    def _created(
        self, table: TableDef, id: str, params: Mapping[str, str], prefer: Mapping[str, str], status: int = 201
    ) -> Answer:
        entity_id = f"{self.api_url}{table.entity_set}({id})"
        if prefer.get("return") == "representation":
            return self.reads.representation(table, id, params, prefer, status)
        return Answer(204, None, {"OData-EntityId": entity_id})

    def create(self, table: TableDef, data: Any, params: Mapping[str, str], prefer: Mapping[str, str]) -> Answer:
        with self.store.transaction():
            row = self._new_row(table, data)
            self._insert(table, row)
        return self._created(table, row[table.primary_key], params, prefer)

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
        if_match = headers.get("if-match")
        if_none_match = headers.get("if-none-match")
        if if_none_match == "null":
            if_none_match = None
        with self.store.transaction():
            existing = find(self.store, table, key)
            if existing is None:
                if if_match is not None:
                    raise missing(table, key)
                row = self._new_row(table, data, key if isinstance(key, str) else None)
                if isinstance(key, dict):
                    row.update(self._key_columns(table, key))
                self._insert(table, row)
                return self._created(table, row[table.primary_key], params, prefer)
            if if_none_match == "*":
                raise EmulatorError(412, "0x80040237", "A record with matching key values already exists.")
            if if_match not in (None, "*") and if_match != f'W/"{existing["versionnumber"]}"':
                raise stale_version()
            values = from_json(table, data, self._exists)
            values.pop(table.primary_key, None)
            values["modifiedon"] = now_iso()
            self.store.update(table, existing[table.primary_key], values)
        id = existing[table.primary_key]
        if prefer.get("return") == "representation":
            return self._created(table, id, params, prefer, status=200)
        return Answer(204, None, {"OData-EntityId": f"{self.api_url}{table.entity_set}({id})"})

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

    def _targets(self, table: TableDef, data: Any) -> list[dict[str, Any]]:
        targets = data.get("Targets") if isinstance(data, dict) else None
        if not isinstance(targets, list) or not all(isinstance(t, dict) for t in targets):
            raise bad_request("The request must have a 'Targets' array of entity objects.")
        expected = f"Microsoft.Dynamics.CRM.{table.logical_name}"
        for index, target in enumerate(targets):
            if target.get("@odata.type") != expected:
                raise bad_request(f"Targets[{index}] must have '@odata.type': '{expected}'.")
        return targets

    def bulk(self, table: TableDef, message: str, data: Any) -> Answer:
        targets = self._targets(table, data)
        ids: list[str] = []
        with self.store.transaction():
            for target in targets:
                if message == "CreateMultiple":
                    self.metadata.check_columns(table, target)
                    row = self._new_row(table, target)
                    self._insert(table, row)
                    ids.append(row[table.primary_key])
                    continue
                key: RowKey | None = None
                if target.get(table.primary_key):
                    key = str(target[table.primary_key]).lower()
                elif isinstance(target.get("@odata.id"), str):
                    match = ROW.match(target["@odata.id"].rsplit("/", 1)[-1])
                    if match is None or by_entity_set(match.group(1)) is not table:
                        raise bad_request(f"'@odata.id' {target['@odata.id']} does not address a {table.logical_name}.")
                    key = self.parse_key(table, match.group(2))
                if key is None:
                    raise bad_request(f"Each target of {message} must identify its row.")
                body = {k: v for k, v in target.items() if k != "@odata.id"}
                self.metadata.check_columns(table, body)
                headers = {"if-match": "*"} if message == "UpdateMultiple" else {}
                self.patch(table, key, body, headers, params={}, prefer={})
        if message == "CreateMultiple":
            context = f"{self.api_url}$metadata#Microsoft.Dynamics.CRM.CreateMultipleResponse"
            return Answer(200, {"@odata.context": context, "Ids": ids})
        return Answer(204)
