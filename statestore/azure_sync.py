"""The Azure state store's sync roles besides the mirror (`statestore.azure_mirror`): `Checkpoints` and fanned-out
runs (`FanOut`). The tables' layout: `statestore.azure_tables`.

Both hand the mirror to other processes (checkpoints describe it; a fanned-out run's shards read it), so both first
settle it: a bulk load this process has under way is sealed and published (`statestore.azure_bulk`)."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Mapping
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from statestore.azure_storage import (
    REPLACE,
    AzureStorage,
    Op,
    blobs_of,
    delete_op,
    digest,
    new_entity,
    table_key,
    upsert_op,
)
from statestore.port import ShardRun, iso_micro, parse_iso

__all__ = ["AzureCheckpoints", "AzureFanOut"]

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
        """Set (or, for None, remove) named checkpoints, in one transaction (they share a partition), once the
        mirror they describe is settled."""
        self._settle_mirror()
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


class AzureFanOut(AzureStorage):
    """Runs in one partition, and the done shards of each run in a partition of its own."""

    def start_run(self, run: ShardRun) -> None:
        """Record a run unless it exists (then only add its done shards), once the mirror its shards read is
        settled."""
        self._settle_mirror()
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
