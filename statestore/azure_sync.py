"""The Azure state store's sync roles: `Checkpoints`, the mirror (`MirrorStore`) and fanned-out runs (`FanOut`).
The tables' layout: `statestore.azure_tables`."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableEntity, UpdateMode

from statestore.azure_storage import (
    REPLACE,
    AzureStorage,
    Op,
    blobs_of,
    compact_json,
    delete_op,
    digest,
    key_after,
    new_entity,
    pair_key,
    table_key,
    upsert_op,
)
from statestore.port import MirrorRow, ShardRun, iso_micro, parse_iso

__all__ = ["AzureCheckpoints", "AzureFanOut", "AzureMirror"]

_CHECKPOINTS = "c"
_RUNS = "r"


class AzureCheckpoints(AzureStorage):
    """Named checkpoints, in one partition (so they are saved together)."""

    def checkpoint(self, name: str) -> str | None:
        try:
            entity = self._checkpoints.get_entity(_CHECKPOINTS, table_key(name))
        except ResourceNotFoundError:
            return None
        return self._text(entity, "value")

    def save_checkpoints(self, values: Mapping[str, str | None]) -> None:
        """Set (or, for None, remove) named checkpoints, in one transaction (they share a partition)."""
        existing = {
            e["RowKey"]: e
            for e in self._checkpoints.query_entities("PartitionKey eq @pk", parameters={"pk": _CHECKPOINTS})
        }
        ops: list[Op] = []
        stale: set[str] = set()
        for name, value in values.items():
            rk = table_key(name)
            old = existing.get(rk)
            kept: set[str] = set()
            if value is not None:
                entity = new_entity(_CHECKPOINTS, rk, name=name)
                self._stash(entity, "value", value, f"checkpoints/{digest(name)}")
                kept = blobs_of(entity)
                ops.append(("upsert", entity, REPLACE))
            elif old is not None:
                ops.append(delete_op(_CHECKPOINTS, rk))
            if old is not None:
                stale |= blobs_of(old) - kept
        self._transact(self._checkpoints, ops)
        self._drop_blobs(stale)


class AzureMirror(AzureStorage):
    """Mirror rows partitioned by account, and an index by kind and id of where each row lives."""

    def _mirror_index(self, kind: str, ids: Iterable[str]) -> dict[str, TableEntity]:
        """Index entries (id, partition, data_blob) of the rows of `kind` with these ids that exist."""
        return {e["id"]: e for e in self._lookup(self._index, table_key(kind), sorted({table_key(id) for id in ids}))}

    def put_mirror(self, rows: Iterable[MirrorRow]) -> None:
        """Insert or replace rows by (kind, id), in transactions per partition; a row whose partition changed moves.

        Order for a retry after a crash: new rows, then removal of moved rows' old copies, then the index."""
        latest: dict[str, dict[str, MirrorRow]] = {}
        for row in rows:
            latest.setdefault(row.kind, {})[row.id] = row
        for kind, by_id in latest.items():
            old = self._mirror_index(kind, by_id)
            writes: list[Op] = []
            moved: list[Op] = []
            index: list[Op] = []
            stale: set[str] = set()
            for id, row in by_id.items():
                rk = pair_key(kind, id)
                entity = new_entity(table_key(row.partition), rk, kind=kind, id=id, partition=row.partition)
                blob = self._stash(entity, "data", compact_json(row.data), f"mirror/{digest(kind, id)}")
                writes.append(upsert_op(entity))
                entry = new_entity(
                    table_key(kind), table_key(id), kind=kind, id=id, partition=row.partition, data_blob=blob
                )
                index.append(upsert_op(entry))
                previous = old.get(id)
                if previous is not None:
                    if previous["partition"] != row.partition:
                        moved.append(delete_op(table_key(previous["partition"]), rk))
                    stale |= blobs_of(previous) - {blob}
            self._transact(self._mirror, writes)
            self._transact(self._mirror, moved)
            self._transact(self._index, index)
            self._drop_blobs(stale)

    def delete_mirror(self, kind: str, ids: Iterable[str]) -> None:
        found = self._mirror_index(kind, ids)
        self._transact(
            self._mirror, (delete_op(table_key(e["partition"]), pair_key(kind, id)) for id, e in found.items())
        )
        self._drop_blobs(name for e in found.values() for name in blobs_of(e))
        self._transact(self._index, (delete_op(table_key(kind), table_key(id)) for id in found))

    def mirror(self, kind: str, partitions: Iterable[str] | None = None) -> Iterator[MirrorRow]:
        """The rows of one kind, in the given partitions (all when None), in (partition, id) order."""
        low = table_key(kind) + "!"
        if partitions is None:
            entities = self._mirror.query_entities(
                "RowKey ge @low and RowKey lt @high", parameters={"low": low, "high": key_after(low)}
            )
            for entity in sorted(entities, key=lambda e: (e["partition"], e["id"])):
                yield self._mirror_row(entity)
            return
        for partition in sorted(set(partitions)):
            entities = self._mirror.query_entities(
                "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high",
                parameters={"pk": table_key(partition), "low": low, "high": key_after(low)},
            )
            for entity in sorted(entities, key=lambda e: e["id"]):
                yield self._mirror_row(entity)

    def mirror_rows(self, kind: str, ids: Iterable[str]) -> dict[str, MirrorRow]:
        """The rows of one kind with these ids, by id (the ones that exist)."""
        by_partition: dict[str, list[str]] = {}
        for id, entry in self._mirror_index(kind, ids).items():
            by_partition.setdefault(entry["partition"], []).append(pair_key(kind, id))
        found: dict[str, MirrorRow] = {}
        for partition, rks in by_partition.items():
            for entity in self._find(self._mirror, table_key(partition), sorted(rks)):
                found[entity["id"]] = self._mirror_row(entity)
        return found

    def clear_mirror(self) -> None:
        """Empty the mirror: its rows, its index and its blobs (a full sync refills it)."""
        for table in (self._mirror, self._index):
            keys = table.list_entities(select=["PartitionKey", "RowKey"])
            self._transact(table, (delete_op(e["PartitionKey"], e["RowKey"]) for e in keys))
        self._drop_blobs(blob.name for blob in self._container.list_blobs(name_starts_with="mirror/"))

    def _mirror_row(self, entity: Mapping[str, Any]) -> MirrorRow:
        data = self._text(entity, "data")
        return MirrorRow(entity["kind"], entity["id"], entity["partition"], json.loads(data or "{}"))


class AzureFanOut(AzureStorage):
    """Runs in one partition, and the done shards of each run in a partition of its own."""

    def start_run(self, run: ShardRun) -> None:
        """Record a run unless it exists (then only add its done shards)."""
        started = iso_micro(run.started_at)
        entity = new_entity(
            _RUNS, table_key(run.id), id=run.id, shards=run.shards, started_at=started, completed=run.completed
        )
        self._stash(entity, "checkpoints", json.dumps(run.checkpoints), f"runs/{uuid.uuid4().hex}")
        try:
            self._runs.create_entity(entity)
        except ResourceExistsError:
            self._drop_blobs(blobs_of(entity))
        self._transact(self._shards, (upsert_op(self._shard(run.id, shard)) for shard in run.done))

    @staticmethod
    def _shard(run_id: str, shard: int) -> dict[str, Any]:
        return new_entity(table_key(run_id), str(shard), run_id=run_id, shard=shard)

    def open_run(self) -> ShardRun | None:
        """The newest run not completed (by start time, then id), with the shards done so far."""
        entities = list(
            self._runs.query_entities(
                "PartitionKey eq @pk and completed eq @done", parameters={"pk": _RUNS, "done": False}
            )
        )
        if not entities:
            return None
        newest = max(entities, key=lambda e: (e["started_at"], e["id"]))
        checkpoints = json.loads(self._text(newest, "checkpoints") or "{}")
        return ShardRun(
            newest["id"],
            int(newest["shards"]),
            parse_iso(newest["started_at"]),
            checkpoints,
            frozenset(self._done_shards(newest["id"])),
        )

    def _done_shards(self, run_id: str) -> set[int]:
        entities = self._shards.query_entities(
            "PartitionKey eq @pk", parameters={"pk": table_key(run_id)}, select="shard"
        )
        return {int(e["shard"]) for e in entities}

    def finish_shard(self, run_id: str, shard: int) -> bool:
        """Record one shard as done; True when, after it, every shard of the run is done (so also for a
        redelivery of a shard once all are done, and possibly for two shards finishing at the same moment)."""
        self._shards.upsert_entity(self._shard(run_id, shard), mode=UpdateMode.REPLACE)
        try:
            run = self._runs.get_entity(_RUNS, table_key(run_id), select="shards")
        except ResourceNotFoundError:
            return False
        return len(self._done_shards(run_id)) >= int(run["shards"])

    def complete_run(self, run_id: str) -> None:
        entity = new_entity(_RUNS, table_key(run_id), completed=True)
        with contextlib.suppress(ResourceNotFoundError):
            self._runs.update_entity(entity, mode=UpdateMode.MERGE)
