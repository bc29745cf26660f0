"""The state store in Azure Table Storage, with blobs for large values: the production adapter of `StateStore`.

It lives in the Function app's own storage account. Every table is `{prefix}{name}`:

| table | PartitionKey | RowKey | why |
|---|---|---|---|
| progress | journey | contact | a journey is one partition query; a contact in every journey one RowKey query |
| handled | journey | tile!account | add-only, written in transactions |
| counts | journey | account!tile | counters as JSON, added under optimistic concurrency; an account is a key range |
| effects | the key's first segment (the journey) | key | recorded in transactions; looked up by key |
| intents | key | "" | claimed by insert: the first writer wins |
| checkpoints | "c" | name | saved together in one transaction |
| mirror | the row's partition (its account) | kind!id | a partition's rows of a kind are one range query |
| mirrorindex | kind | id | where a row lives (and its blob), so rows are found, moved and deleted by id |
| runs | "r" | run id | |
| shards | run id | shard | the done shards of a run are one partition |
| events | event id | "" | recorded by insert: the first delivery wins |
| deadletters | letter id | "" | |

Keys are escaped by `_key` (Table keys may not hold / \\ # ? or control characters); the original values are kept
as properties and are what is read back. Text or bytes over `INLINE_LIMIT` (a property holds 64 KiB, text counted
in UTF-16) go to a blob in `{prefix}-payloads`; the entity keeps the blob's name in `{field}_blob`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import TYPE_CHECKING, Any

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient, TableEntity, TableServiceClient, TableTransactionError, UpdateMode
from azure.storage.blob import BlobServiceClient, ContainerClient

from statestore.port import (
    DeadLetter,
    Intent,
    MirrorRow,
    ProgressRow,
    ShardRun,
    StoredEvent,
    iso_micro,
    parse_iso,
    wall_clock,
)

if TYPE_CHECKING:
    from statestore.port import StateStore

__all__ = ["INLINE_LIMIT", "AzureStateStore"]

INLINE_LIMIT = 30 * 1024  # bytes as stored (UTF-16 for text); a property holds 64 KiB, an entity 1 MiB
BATCH_SIZE = 100  # entities per transaction (the service's limit, all in one partition)
BATCH_BYTES = 2 * 1024 * 1024  # payload per transaction, well under the service's 4 MiB
FILTER_KEYS = 14  # row keys per OR query: with the partition, the service's 15 comparisons per filter
SCAN_ABOVE = 200  # keys looked up in a bounded partition: above this, read the whole partition instead
KEY_LIMIT = 200  # escaped key parts longer than this are replaced by a hash (keys hold at most 1 KiB)
PARALLEL = 4  # transactions or queries in flight at once (round trips overlap; the SDK's work holds the GIL)
MAX_TRIES = 20  # optimistic concurrency: rereads before giving up

_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
_PREFIX = re.compile(r"[a-z][a-z0-9]{0,51}")
_TABLES = (
    "progress",
    "handled",
    "counts",
    "effects",
    "intents",
    "checkpoints",
    "mirror",
    "mirrorindex",
    "runs",
    "shards",
    "events",
    "deadletters",
)
_CHECKPOINTS = "c"
_RUNS = "r"
_NO_SLASH = "~"  # the effects partition for keys without "/" (never the result of `_key`)
_REPLACE = {"mode": UpdateMode.REPLACE}

_Op = tuple[str, dict[str, Any], Mapping[str, Any]]


def _key(value: str) -> str:
    """A PartitionKey/RowKey for any text: letters, digits, - and _ kept, every other character as ~XX per UTF-8
    byte (so never / \\ # ? ' % or control characters, and never !, the separator of composite keys); injective."""
    escaped = "".join(c if c in _SAFE else "".join(f"~{b:02X}" for b in c.encode()) for c in value)
    if len(escaped) > KEY_LIMIT:
        return "~h" + hashlib.sha256(value.encode()).hexdigest()
    return escaped


def _pair(first: str, second: str) -> str:
    return f"{_key(first)}!{_key(second)}"


def _after(prefix: str) -> str:
    """The first key after every key starting with `prefix` (which ends with "!")."""
    return prefix[:-1] + '"'


def _digest(*parts: str) -> str:
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def _stored_size(value: str | bytes) -> int:
    return len(value) if isinstance(value, bytes) else len(value.encode("utf-16-le"))


def _approx_size(entity: Mapping[str, Any]) -> int:
    """An upper bound of the entity's size in a transaction's JSON body."""
    size = 256
    for name, value in entity.items():
        if isinstance(value, str):
            size += len(name) + len(json.dumps(value))
        elif isinstance(value, bytes):
            size += len(name) + len(value) * 4 // 3 + 64
        else:
            size += len(name) + 64
    return size


def _blobs_of(entity: Mapping[str, Any]) -> set[str]:
    return {str(value) for name, value in entity.items() if name.endswith("_blob") and value}


def _entity(pk: str, rk: str, **properties: Any) -> dict[str, Any]:
    return {"PartitionKey": pk, "RowKey": rk, **properties}


def _upsert(entity: dict[str, Any]) -> _Op:
    return ("upsert", entity, _REPLACE)


def _delete(pk: str, rk: str) -> _Op:
    return ("delete", {"PartitionKey": pk, "RowKey": rk}, {})


def _dump(data: Mapping[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


class AzureStateStore:
    """`StateStore` in Table Storage and blobs of one storage account (see the module docstring for the layout)."""

    def __init__(
        self, connection_string: str, prefix: str = "abm", *, clock: Callable[[], datetime] | None = None
    ) -> None:
        self._clock = clock or wall_clock
        if not _PREFIX.fullmatch(prefix):
            raise ValueError("state prefix must be 1 to 52 lower-case letters and digits, starting with a letter")
        try:
            self._service = TableServiceClient.from_connection_string(connection_string)
            self._blob_service = BlobServiceClient.from_connection_string(connection_string)
        except ValueError:
            raise ValueError("the storage connection string is malformed") from None  # never echo it: it has a key
        tables = {name: self._service.create_table_if_not_exists(f"{prefix}{name}") for name in _TABLES}
        self._progress = tables["progress"]
        self._handled = tables["handled"]
        self._counts = tables["counts"]
        self._effects = tables["effects"]
        self._intents = tables["intents"]
        self._checkpoints = tables["checkpoints"]
        self._mirror = tables["mirror"]
        self._index = tables["mirrorindex"]
        self._runs = tables["runs"]
        self._shards = tables["shards"]
        self._events = tables["events"]
        self._letters = tables["deadletters"]
        self._tables = list(tables.values())
        self._container: ContainerClient = self._blob_service.get_container_client(f"{prefix}-payloads")
        with contextlib.suppress(ResourceExistsError):
            self._container.create_container()

    def close(self) -> None:
        for table in self._tables:
            table.close()
        self._container.close()
        self._service.close()
        self._blob_service.close()

    # ---- journeys ----

    def progress(self, journey: str) -> list[ProgressRow]:
        entities = self._progress.query_entities("PartitionKey eq @pk", parameters={"pk": _key(journey)})
        rows = [
            ProgressRow(
                e["contact_id"],
                e.get("tile_id"),
                parse_iso(e["entered_at"]),
                bool(e["finished"]),
                parse_iso(e.get("started_at") or e["entered_at"]),
            )
            for e in entities
        ]
        return sorted(rows, key=lambda row: row.contact_id)

    def handled(self, journey: str) -> set[tuple[str, str]]:
        entities = self._handled.query_entities("PartitionKey eq @pk", parameters={"pk": _key(journey)})
        return {(e["tile_id"], e["account_id"]) for e in entities}

    def save_journey(
        self,
        journey: str,
        progress: Iterable[ProgressRow],
        handled: Iterable[tuple[str, str]],
        counts: Mapping[str, Mapping[str, Mapping[str, int]]] | None = None,
    ) -> None:
        """Upsert progress by contact, add handled pairs, then add the tile counts (by account; "" for none).

        Not one transaction as in SQLite: progress and handled are idempotent, and counts go last."""
        pk = _key(journey)
        self._transact(
            self._progress,
            (
                _upsert(
                    _entity(pk, _key(p.contact_id), journey=journey, contact_id=p.contact_id, tile_id=p.tile_id)
                    | {
                        "entered_at": iso_micro(p.entered_at),
                        "finished": p.finished,
                        "started_at": iso_micro(p.started_at or p.entered_at),
                    }
                )
                for p in progress
            ),
        )
        self._transact(
            self._handled,
            (
                _upsert(_entity(pk, _pair(tile, account), journey=journey, tile_id=tile, account_id=account))
                for tile, account in handled
            ),
        )
        self._add_counts(journey, counts or {})

    def _add_counts(self, journey: str, counts: Mapping[str, Mapping[str, Mapping[str, int]]]) -> None:
        """Add counters per (account, tile), each entity replaced only if unchanged since read (else reread)."""
        pk = _key(journey)
        pending: dict[str, tuple[str, str, dict[str, int]]] = {}
        for account, tiles in counts.items():
            for tile, counters in tiles.items():
                added = {name: value for name, value in counters.items() if value}
                if added:
                    rk = _pair(account, tile)
                    merged = pending.setdefault(rk, (account, tile, {}))[2]
                    for name, value in added.items():
                        merged[name] = merged.get(name, 0) + value
        for _ in range(MAX_TRIES):
            if not pending:
                return
            current = {e["RowKey"]: e for e in self._lookup(self._counts, pk, sorted(pending))}
            ops: list[_Op] = []
            for rk, (account, tile, added) in pending.items():
                old = current.get(rk)
                totals: dict[str, int] = json.loads(old["counters"]) if old is not None else {}
                for name, value in added.items():
                    totals[name] = totals.get(name, 0) + value
                text = json.dumps(totals, sort_keys=True)
                entity = _entity(pk, rk, journey=journey, account_id=account, tile_id=tile, counters=text)
                if old is None:
                    ops.append(("create", entity, {}))
                else:
                    condition = {"etag": old.metadata["etag"], "match_condition": MatchConditions.IfNotModified}
                    ops.append(("update", entity, {"mode": UpdateMode.REPLACE, **condition}))
            failed = self._transact(self._counts, ops, conflicts=True)
            pending = {op[1]["RowKey"]: pending[op[1]["RowKey"]] for op in failed}
        raise RuntimeError(f"tile counts of journey {journey!r}: still contended after {MAX_TRIES} tries")

    def tile_counts(self, journey: str, account: str | None = None) -> dict[str, dict[str, int]]:
        """Counts per tile since the journey started, for every account or for one."""
        if account is None:
            entities = self._counts.query_entities("PartitionKey eq @pk", parameters={"pk": _key(journey)})
        else:
            low = _key(account) + "!"
            entities = self._counts.query_entities(
                "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high",
                parameters={"pk": _key(journey), "low": low, "high": _after(low)},
            )
        totals: dict[str, dict[str, int]] = {}
        for entity in entities:
            tile = totals.setdefault(entity["tile_id"], {})
            for name, value in json.loads(entity["counters"]).items():
                tile[name] = tile.get(name, 0) + int(value)
        return {tile: dict(sorted(counters.items())) for tile, counters in sorted(totals.items())}

    @staticmethod
    def _effect_partition(key: str) -> str:
        head, slash, _ = key.partition("/")
        return _key(head) if slash else _NO_SLASH

    def effects_done(self, keys: Iterable[str]) -> dict[str, str]:
        """The effects among `keys` already written, with the id of the row each created."""
        by_partition: dict[str, set[str]] = {}
        for key in keys:
            by_partition.setdefault(self._effect_partition(key), set()).add(_key(key))
        found: dict[str, str] = {}
        for pk, rks in by_partition.items():
            for entity in self._find(self._effects, pk, sorted(rks), select=["key", "entity_id"]):
                found[entity["key"]] = entity["entity_id"]
        return found

    def record_effects(self, done: Iterable[tuple[str, str]]) -> None:
        self._transact(
            self._effects,
            (_upsert(_entity(self._effect_partition(key), _key(key), key=key, entity_id=id)) for key, id in done),
        )

    @staticmethod
    def _intent_entity(intent: Intent) -> dict[str, Any]:
        return _entity(
            _key(intent.key),
            "",
            key=intent.key,
            workflow_id=intent.workflow_id,
            entity_id=intent.entity_id,
            job_id=intent.job_id or "",  # "" for none yet, so that open intents can be queried
            claimed_at=intent.claimed_at,
        )

    def intent(self, key: str) -> Intent | None:
        try:
            e = self._intents.get_entity(_key(key), "")
        except ResourceNotFoundError:
            return None
        return self._intent_of(e)

    @staticmethod
    def _intent_of(e: Mapping[str, Any]) -> Intent:
        return Intent(e["key"], e["workflow_id"], e["entity_id"], e.get("job_id") or None, e.get("claimed_at"))

    def open_intents(self) -> list[Intent]:
        found = self._intents.query_entities("job_id eq ''")
        return sorted((self._intent_of(e) for e in found), key=lambda intent: intent.key)

    def record_intent(self, intent: Intent) -> None:
        self._intents.upsert_entity(self._intent_entity(intent), mode=UpdateMode.REPLACE)

    def clock(self) -> datetime:
        return self._clock()

    def take_over_intent(self, stale: Intent, claimed_at: str | None) -> bool:
        try:
            old = self._intents.get_entity(_key(stale.key), "")
        except ResourceNotFoundError:
            return False
        found = self._intent_of(old)
        if found.job_id or found.claimed_at != stale.claimed_at:
            return False
        taken = self._intent_entity(Intent(found.key, found.workflow_id, found.entity_id, None, claimed_at))
        try:
            self._intents.update_entity(
                taken, mode=UpdateMode.REPLACE, etag=old.metadata["etag"], match_condition=MatchConditions.IfNotModified
            )
        except HttpResponseError as failure:
            if failure.status_code not in (404, 412):  # changed or deleted since read: another run took it
                raise
            return False
        return True

    def claim_intent(self, intent: Intent) -> bool:
        """Record a new intent unless one exists: True for the run that got it (only that run may call out)."""
        try:
            self._intents.create_entity(self._intent_entity(intent))
        except ResourceExistsError:
            return False
        return True

    def forget_contact(self, contact_id: str, record_ids: Iterable[str] = ()) -> None:
        """Remove the contact's progress in every journey, the workflow runs on it, and the events and dead letters
        about it or `record_ids`."""
        progress = self._progress.query_entities(
            "RowKey eq @rk", parameters={"rk": _key(contact_id)}, select=["PartitionKey", "RowKey"]
        )
        self._transact(self._progress, (_delete(e["PartitionKey"], e["RowKey"]) for e in progress))
        intents = self._intents.query_entities(
            "entity_id eq @id", parameters={"id": contact_id}, select=["PartitionKey", "RowKey"]
        )
        for intent in intents:  # each in a partition of its own
            self._intents.delete_entity(intent["PartitionKey"], intent["RowKey"])
        about = sorted({contact_id, *record_ids})
        for table in (self._events, self._letters):
            doomed: list[dict[str, Any]] = []
            for start in range(0, len(about), FILTER_KEYS + 1):
                chunk = about[start : start + FILTER_KEYS + 1]
                names = [f"r{i}" for i in range(len(chunk))]
                query = " or ".join(f"record_id eq @{name}" for name in names)
                doomed += table.query_entities(query, parameters=dict(zip(names, chunk, strict=True)))
            self._transact(table, (_delete(e["PartitionKey"], "") for e in doomed))
            self._drop_blobs(name for e in doomed for name in _blobs_of(e))

    # ---- checkpoints ----

    def checkpoint(self, name: str) -> str | None:
        try:
            entity = self._checkpoints.get_entity(_CHECKPOINTS, _key(name))
        except ResourceNotFoundError:
            return None
        return self._text(entity, "value")

    def save_checkpoints(self, values: Mapping[str, str | None]) -> None:
        """Set (or, for None, remove) named checkpoints, in one transaction (they share a partition)."""
        existing = {
            e["RowKey"]: e
            for e in self._checkpoints.query_entities("PartitionKey eq @pk", parameters={"pk": _CHECKPOINTS})
        }
        ops: list[_Op] = []
        stale: set[str] = set()
        for name, value in values.items():
            rk = _key(name)
            old = existing.get(rk)
            kept: set[str] = set()
            if value is not None:
                entity = _entity(_CHECKPOINTS, rk, name=name)
                self._stash(entity, "value", value, f"checkpoints/{_digest(name)}")
                kept = _blobs_of(entity)
                ops.append(("upsert", entity, _REPLACE))
            elif old is not None:
                ops.append(_delete(_CHECKPOINTS, rk))
            if old is not None:
                stale |= _blobs_of(old) - kept
        self._transact(self._checkpoints, ops)
        self._drop_blobs(stale)

    # ---- mirror ----

    def _mirror_index(self, kind: str, ids: Iterable[str]) -> dict[str, TableEntity]:
        """Index entries (id, partition, data_blob) of the rows of `kind` with these ids that exist."""
        return {e["id"]: e for e in self._lookup(self._index, _key(kind), sorted({_key(id) for id in ids}))}

    def put_mirror(self, rows: Iterable[MirrorRow]) -> None:
        """Insert or replace rows by (kind, id), in transactions per partition; a row whose partition changed moves.

        Order for a retry after a crash: new rows, then removal of moved rows' old copies, then the index."""
        latest: dict[str, dict[str, MirrorRow]] = {}
        for row in rows:
            latest.setdefault(row.kind, {})[row.id] = row
        for kind, by_id in latest.items():
            old = self._mirror_index(kind, by_id)
            writes: list[_Op] = []
            moved: list[_Op] = []
            index: list[_Op] = []
            stale: set[str] = set()
            for id, row in by_id.items():
                rk = _pair(kind, id)
                entity = _entity(_key(row.partition), rk, kind=kind, id=id, partition=row.partition)
                blob = self._stash(entity, "data", _dump(row.data), f"mirror/{_digest(kind, id)}")
                writes.append(_upsert(entity))
                entry = _entity(_key(kind), _key(id), kind=kind, id=id, partition=row.partition, data_blob=blob)
                index.append(_upsert(entry))
                previous = old.get(id)
                if previous is not None:
                    if previous["partition"] != row.partition:
                        moved.append(_delete(_key(previous["partition"]), rk))
                    stale |= _blobs_of(previous) - {blob}
            self._transact(self._mirror, writes)
            self._transact(self._mirror, moved)
            self._transact(self._index, index)
            self._drop_blobs(stale)

    def delete_mirror(self, kind: str, ids: Iterable[str]) -> None:
        found = self._mirror_index(kind, ids)
        self._transact(self._mirror, (_delete(_key(e["partition"]), _pair(kind, id)) for id, e in found.items()))
        self._drop_blobs(name for e in found.values() for name in _blobs_of(e))
        self._transact(self._index, (_delete(_key(kind), _key(id)) for id in found))

    def mirror(self, kind: str, partitions: Iterable[str] | None = None) -> Iterator[MirrorRow]:
        """The rows of one kind, in the given partitions (all when None), in (partition, id) order."""
        low = _key(kind) + "!"
        if partitions is None:
            entities = self._mirror.query_entities(
                "RowKey ge @low and RowKey lt @high", parameters={"low": low, "high": _after(low)}
            )
            for entity in sorted(entities, key=lambda e: (e["partition"], e["id"])):
                yield self._mirror_row(entity)
            return
        for partition in sorted(set(partitions)):
            entities = self._mirror.query_entities(
                "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high",
                parameters={"pk": _key(partition), "low": low, "high": _after(low)},
            )
            for entity in sorted(entities, key=lambda e: e["id"]):
                yield self._mirror_row(entity)

    def mirror_rows(self, kind: str, ids: Iterable[str]) -> dict[str, MirrorRow]:
        """The rows of one kind with these ids, by id (the ones that exist)."""
        by_partition: dict[str, list[str]] = {}
        for id, entry in self._mirror_index(kind, ids).items():
            by_partition.setdefault(entry["partition"], []).append(_pair(kind, id))
        found: dict[str, MirrorRow] = {}
        for partition, rks in by_partition.items():
            for entity in self._find(self._mirror, _key(partition), sorted(rks)):
                found[entity["id"]] = self._mirror_row(entity)
        return found

    def clear_mirror(self) -> None:
        """Empty the mirror: its rows, its index and its blobs (a full sync refills it)."""
        for table in (self._mirror, self._index):
            keys = table.list_entities(select=["PartitionKey", "RowKey"])
            self._transact(table, (_delete(e["PartitionKey"], e["RowKey"]) for e in keys))
        self._drop_blobs(blob.name for blob in self._container.list_blobs(name_starts_with="mirror/"))

    def _mirror_row(self, entity: Mapping[str, Any]) -> MirrorRow:
        data = self._text(entity, "data")
        return MirrorRow(entity["kind"], entity["id"], entity["partition"], json.loads(data or "{}"))

    # ---- sharded runs ----

    def start_run(self, run: ShardRun) -> None:
        """Record a run unless it exists (then only add its done shards)."""
        started = iso_micro(run.started_at)
        entity = _entity(_RUNS, _key(run.id), id=run.id, shards=run.shards, started_at=started, completed=run.completed)
        self._stash(entity, "checkpoints", json.dumps(run.checkpoints), f"runs/{uuid.uuid4().hex}")
        try:
            self._runs.create_entity(entity)
        except ResourceExistsError:
            self._drop_blobs(_blobs_of(entity))
        self._transact(self._shards, (_upsert(self._shard(run.id, shard)) for shard in run.done))

    @staticmethod
    def _shard(run_id: str, shard: int) -> dict[str, Any]:
        return _entity(_key(run_id), str(shard), run_id=run_id, shard=shard)

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
        entities = self._shards.query_entities("PartitionKey eq @pk", parameters={"pk": _key(run_id)}, select="shard")
        return {int(e["shard"]) for e in entities}

    def finish_shard(self, run_id: str, shard: int) -> bool:
        """Record one shard as done; True when, after it, every shard of the run is done (so also for a
        redelivery of a shard once all are done, and possibly for two shards finishing at the same moment)."""
        self._shards.upsert_entity(self._shard(run_id, shard), mode=UpdateMode.REPLACE)
        try:
            run = self._runs.get_entity(_RUNS, _key(run_id), select="shards")
        except ResourceNotFoundError:
            return False
        return len(self._done_shards(run_id)) >= int(run["shards"])

    def complete_run(self, run_id: str) -> None:
        entity = _entity(_RUNS, _key(run_id), completed=True)
        with contextlib.suppress(ResourceNotFoundError):
            self._runs.update_entity(entity, mode=UpdateMode.MERGE)

    # ---- events and dead letters ----

    def record_event(self, event: StoredEvent) -> bool:
        """Store an event unless its id is known: True the first time (process it), False for a redelivery."""
        entity = _entity(
            _key(event.id),
            "",
            id=event.id,
            source=event.source,
            received_at=iso_micro(event.received_at),
            table=event.table,
            record_id=event.record_id,
            status=event.status,
            attempts=event.attempts,
        )
        where = f"events/{uuid.uuid4().hex}"  # unique: a redelivery must not overwrite the first delivery's blobs
        self._stash(entity, "message", event.message, f"{where}/message")
        self._stash(entity, "payload", event.payload, f"{where}/payload")
        self._stash(entity, "error", event.error, f"{where}/error")
        try:
            self._events.create_entity(entity)
        except ResourceExistsError:
            self._drop_blobs(_blobs_of(entity))
            return False
        return True

    def _event(self, entity: Mapping[str, Any]) -> StoredEvent:
        return StoredEvent(
            entity["id"],
            entity["source"],
            parse_iso(entity["received_at"]),
            entity["table"],
            entity["record_id"],
            self._text(entity, "message") or "",
            self._bytes(entity, "payload") or b"",
            entity["status"],
            int(entity["attempts"]),
            self._text(entity, "error"),
        )

    def event(self, event_id: str) -> StoredEvent | None:
        try:
            return self._event(self._events.get_entity(_key(event_id), ""))
        except ResourceNotFoundError:
            return None

    def events(
        self, *, since: datetime | None = None, until: datetime | None = None, record_id: str | None = None
    ) -> list[StoredEvent]:
        """Events received in [since, until) and/or about one record, oldest first (then by id)."""
        conditions: list[str] = []
        parameters: dict[str, Any] = {}
        if since is not None:
            conditions.append("received_at ge @since")
            parameters["since"] = iso_micro(since)
        if until is not None:
            conditions.append("received_at lt @until")
            parameters["until"] = iso_micro(until)
        if record_id is not None:
            conditions.append("record_id eq @record")
            parameters["record"] = record_id
        if conditions:
            entities = list(self._events.query_entities(" and ".join(conditions), parameters=parameters))
        else:
            entities = list(self._events.list_entities())
        entities.sort(key=lambda e: (e["received_at"], e["id"]))
        return [self._event(e) for e in entities]

    def mark_event(self, event_id: str, status: str, *, error: str | None = None) -> None:
        """Set an event's status, count one more attempt and store this attempt's error (None clears it): a
        read-modify-write that retries when another writer changed the event in between."""
        for _ in range(MAX_TRIES):
            try:
                old = self._events.get_entity(_key(event_id), "")
            except ResourceNotFoundError:
                return
            entity = {k: v for k, v in old.items() if k not in ("error", "error_blob")}
            entity["status"] = status
            entity["attempts"] = int(old["attempts"]) + 1
            self._stash(entity, "error", error, f"events/{uuid.uuid4().hex}/error")
            try:
                self._events.update_entity(
                    entity,
                    mode=UpdateMode.REPLACE,
                    etag=old.metadata["etag"],
                    match_condition=MatchConditions.IfNotModified,
                )
            except HttpResponseError as failure:
                self._drop_blobs(_blobs_of(entity) - _blobs_of(old))
                if failure.status_code not in (404, 412):  # 412: changed since read, 404: deleted since read
                    raise
                continue
            self._drop_blobs(_blobs_of(old) - _blobs_of(entity))
            return
        raise RuntimeError(f"event {event_id!r}: still contended after {MAX_TRIES} tries")

    def add_dead_letter(self, letter: DeadLetter) -> None:
        """Insert or replace a dead letter by id."""
        pk = _key(letter.id)
        entity = _entity(
            pk,
            "",
            id=letter.id,
            kind=letter.kind,
            failed_at=iso_micro(letter.failed_at),
            attempts=letter.attempts,
            record_id=letter.record_id,
        )
        where = f"deadletters/{_digest(letter.id)}"
        self._stash(entity, "payload", letter.payload, f"{where}/payload")
        self._stash(entity, "error", letter.error, f"{where}/error")
        try:
            stale = _blobs_of(self._letters.get_entity(pk, "")) - _blobs_of(entity)
        except ResourceNotFoundError:
            stale = set()
        self._letters.upsert_entity(entity, mode=UpdateMode.REPLACE)
        self._drop_blobs(stale)

    def _letter(self, entity: Mapping[str, Any]) -> DeadLetter:
        return DeadLetter(
            entity["id"],
            entity["kind"],
            parse_iso(entity["failed_at"]),
            self._bytes(entity, "payload") or b"",
            self._text(entity, "error") or "",
            int(entity["attempts"]),
            entity.get("record_id", ""),
        )

    def dead_letters(self) -> list[DeadLetter]:
        """Every dead letter, oldest first (then by id)."""
        entities = sorted(self._letters.list_entities(), key=lambda e: (e["failed_at"], e["id"]))
        return [self._letter(e) for e in entities]

    def dead_letter(self, letter_id: str) -> DeadLetter | None:
        try:
            return self._letter(self._letters.get_entity(_key(letter_id), ""))
        except ResourceNotFoundError:
            return None

    def remove_dead_letter(self, letter_id: str) -> None:
        try:
            entity = self._letters.get_entity(_key(letter_id), "")
        except ResourceNotFoundError:
            return
        self._letters.delete_entity(_key(letter_id), "")
        self._drop_blobs(_blobs_of(entity))

    # ---- helpers: transactions, lookups, blobs ----

    def _transact(self, table: TableClient, ops: Iterable[_Op], *, conflicts: bool = False) -> list[_Op]:
        """Submit upserts/deletes (or creates/updates) as transactions: grouped by partition, at most BATCH_SIZE
        entities and BATCH_BYTES each, the last operation per key kept, a few transactions at a time. A transaction
        failing on a delete of a row already gone is redone one by one. With `conflicts`, the operations of
        transactions that failed on a concurrent change (404, 409, 412) are returned instead of raised."""
        groups: dict[str, dict[str, _Op]] = {}
        for op in ops:
            groups.setdefault(op[1]["PartitionKey"], {})[op[1]["RowKey"]] = op
        batches: list[list[_Op]] = []
        for group in groups.values():
            batch: list[_Op] = []
            size = 0
            for op in group.values():
                grows = _approx_size(op[1])
                if batch and (len(batch) == BATCH_SIZE or size + grows > BATCH_BYTES):
                    batches.append(batch)
                    batch, size = [], 0
                batch.append(op)
                size += grows
            if batch:
                batches.append(batch)
        if len(batches) <= 1:
            return [op for batch in batches for op in self._submit(table, batch, conflicts=conflicts)]
        with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
            done = pool.map(lambda batch: self._submit(table, batch, conflicts=conflicts), batches)
            return [op for failed in done for op in failed]

    @staticmethod
    def _submit(table: TableClient, batch: list[_Op], *, conflicts: bool) -> list[_Op]:
        try:
            table.submit_transaction(batch)
        except TableTransactionError as error:
            if conflicts and error.status_code in (404, 409, 412):
                return batch
            if error.status_code != 404 or any(op[0] not in ("delete", "upsert") for op in batch):
                raise
            for op, entity, options in batch:
                if op == "delete":
                    table.delete_entity(entity["PartitionKey"], entity["RowKey"])  # a missing row is no error
                else:
                    table.upsert_entity(entity, **options)
        return []

    @classmethod
    def _lookup(cls, table: TableClient, pk: str, rks: Sequence[str]) -> list[TableEntity]:
        """The entities of one partition with these row keys; for more than SCAN_ABOVE keys, the partition read
        once (used where a partition is bounded: a kind's mirror index, a journey's counts)."""
        if len(rks) <= SCAN_ABOVE:
            return cls._find(table, pk, rks)
        wanted = set(rks)
        everything = table.query_entities("PartitionKey eq @pk", parameters={"pk": pk})
        return [entity for entity in everything if entity["RowKey"] in wanted]

    @staticmethod
    def _find(table: TableClient, pk: str, rks: Sequence[str], select: list[str] | None = None) -> list[TableEntity]:
        """The entities of one partition with these row keys: OR queries of FILTER_KEYS keys, a few in parallel."""
        chunks = [rks[start : start + FILTER_KEYS] for start in range(0, len(rks), FILTER_KEYS)]

        def query(chunk: Sequence[str]) -> list[TableEntity]:
            names = [f"r{i}" for i in range(len(chunk))]
            # The SDK substitutes @names only as whole words (split on spaces), hence the spaced parentheses.
            wanted = " or ".join(f"RowKey eq @{name}" for name in names)
            parameters: dict[str, Any] = {"pk": pk, **dict(zip(names, chunk, strict=True))}
            return list(
                table.query_entities(f"PartitionKey eq @pk and ( {wanted} )", parameters=parameters, select=select)
            )

        if len(chunks) <= 1:
            return query(chunks[0]) if chunks else []
        with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
            return [entity for found in pool.map(query, chunks) for entity in found]

    def _stash(self, entity: dict[str, Any], field: str, value: str | bytes | None, blob: str) -> str | None:
        """Put `value` in the entity, or in blob `blob` (named in `{field}_blob`) when too large; the blob if used."""
        if value is None:
            return None
        if _stored_size(value) <= INLINE_LIMIT:
            entity[field] = value
            return None
        self._container.upload_blob(blob, value.encode() if isinstance(value, str) else value, overwrite=True)
        entity[f"{field}_blob"] = blob
        return blob

    def _bytes(self, entity: Mapping[str, Any], field: str) -> bytes | None:
        blob = entity.get(f"{field}_blob")
        if blob:
            return self._container.download_blob(blob).readall()
        value = entity.get(field)
        return None if value is None else bytes(value)

    def _text(self, entity: Mapping[str, Any], field: str) -> str | None:
        blob = entity.get(f"{field}_blob")
        if blob:
            return self._container.download_blob(blob).readall().decode()
        value = entity.get(field)
        return None if value is None else str(value)

    def _drop_blobs(self, names: Iterable[str]) -> None:
        for name in set(names):
            with contextlib.suppress(ResourceNotFoundError):
                self._container.delete_blob(name)


if TYPE_CHECKING:

    def _conforms(store: AzureStateStore) -> StateStore:  # mypy checks the adapter against the port
        return store
