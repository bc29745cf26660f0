"""The Table Storage and blob plumbing of the Azure state store (`statestore.azure_tables`): the connection and its
tables, keys, entities, transactions, keyed lookups, and values too large for a property.

Keys are escaped by `table_key` (Table keys may not hold / \\ # ? or control characters); the original values are kept
as properties and are what is read back. Text or bytes over `INLINE_LIMIT` (a property holds 64 KiB, text counted
in UTF-16) go to a blob in `{prefix}-payloads`; the entity keeps the blob's name in `{field}_blob`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.core.paging import ItemPaged
from azure.data.tables import TableClient, TableEntity, TableServiceClient, UpdateMode
from azure.storage.blob import BlobServiceClient, ContainerClient

from statestore.azure_batch import Op, TransactionFailed, submit

__all__ = [
    "FILTER_KEYS",
    "INLINE_LIMIT",
    "MAX_TRIES",
    "PARALLEL",
    "REPLACE",
    "SCAN_ABOVE",
    "AzureStorage",
    "Op",
    "blobs_of",
    "compact_json",
    "delete_op",
    "digest",
    "drained",
    "in_parallel",
    "key_after",
    "key_filters",
    "new_entity",
    "pair_key",
    "range_filters",
    "table_key",
    "upsert_op",
]

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
    "runs",
    "shards",
    "events",
    "deadletters",
    "agenda",
    "agendarefs",
    "timeline",
)
REPLACE = {"mode": UpdateMode.REPLACE}
_RANGES = 7  # RowKey ranges per OR query: with the partition, the service's 15 comparisons per filter

_T = TypeVar("_T")
_R = TypeVar("_R")
Filter = tuple[str, dict[str, Any]]


def table_key(value: str) -> str:
    """A PartitionKey/RowKey for any text: letters, digits, - and _ kept, every other character as ~XX per UTF-8
    byte (so never / \\ # ? ' % or control characters, and never !, the separator of composite keys); injective."""
    escaped = "".join(c if c in _SAFE else "".join(f"~{b:02X}" for b in c.encode()) for c in value)
    if len(escaped) > KEY_LIMIT:
        return "~h" + hashlib.sha256(value.encode()).hexdigest()
    return escaped


def pair_key(first: str, second: str) -> str:
    return f"{table_key(first)}!{table_key(second)}"


def key_after(prefix: str) -> str:
    """The first key after every key starting with `prefix` (which ends with "!")."""
    return prefix[:-1] + '"'


def in_parallel(work: Callable[[_T], list[_R]], items: Collection[_T]) -> list[_R]:
    """`work` over `items`, a few at a time (PARALLEL), the results concatenated in the order of `items`."""
    if len(items) <= 1:
        return [result for item in items for result in work(item)]
    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        return [result for results in pool.map(work, items) for result in results]


def drained(query: ItemPaged[TableEntity]) -> list[TableEntity]:
    """Every entity a query returns, its pages read in turn. The SDK's pager refers to itself (through its own
    callbacks), so once dropped it waits for the cyclic garbage collector with what it kept: the last page's entities
    and the service's parsed answer. While the collector is paused (`abm.jobs.pipeline` pauses it over a batch), the
    queries of a batch's reads would hold about 14 MB at `ref` that way; the pager's attributes are dropped once it
    is read, which breaks the cycle."""
    pages = query.by_page()
    try:
        return [entity for page in pages for entity in page]
    finally:
        getattr(pages, "__dict__", {}).clear()


def key_filters(pk: str, rks: Sequence[str], field: str = "RowKey") -> list[Filter]:
    """Queries for the entities of partition `pk` with these row keys (or these values of another string `field`):
    OR queries of FILTER_KEYS keys each. The SDK substitutes @names only as whole words (split on spaces), hence the
    spaced parentheses."""
    filters: list[Filter] = []
    for start in range(0, len(rks), FILTER_KEYS):
        chunk = rks[start : start + FILTER_KEYS]
        names = [f"r{i}" for i in range(len(chunk))]
        wanted = " or ".join(f"{field} eq @{name}" for name in names)
        filters.append((f"PartitionKey eq @pk and ( {wanted} )", {"pk": pk, **dict(zip(names, chunk, strict=True))}))
    return filters


def range_filters(pk: str, ranges: Sequence[tuple[str, str]]) -> list[Filter]:
    """Queries for the entities of partition `pk` whose RowKey is in one of these [low, high) ranges: OR queries of
    _RANGES ranges each."""
    filters: list[Filter] = []
    for start in range(0, len(ranges), _RANGES):
        chunk = ranges[start : start + _RANGES]
        clauses = " or ".join(f"( RowKey ge @l{i} and RowKey lt @h{i} )" for i in range(len(chunk)))
        parameters: dict[str, Any] = {"pk": pk}
        for i, (low, high) in enumerate(chunk):
            parameters[f"l{i}"], parameters[f"h{i}"] = low, high
        filters.append((f"PartitionKey eq @pk and ( {clauses} )", parameters))
    return filters


def digest(*parts: str) -> str:
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


def blobs_of(entity: Mapping[str, Any]) -> set[str]:
    return {str(value) for name, value in entity.items() if name.endswith("_blob") and value}


def new_entity(pk: str, rk: str, **properties: Any) -> dict[str, Any]:
    return {"PartitionKey": pk, "RowKey": rk, **properties}


def upsert_op(entity: dict[str, Any]) -> Op:
    return ("upsert", entity, REPLACE)


def delete_op(pk: str, rk: str) -> Op:
    return ("delete", {"PartitionKey": pk, "RowKey": rk}, {})


def compact_json(data: Mapping[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


class AzureStorage:
    """One storage account: a table per kind of state (see `statestore.azure_tables` for the layout) and a container
    for large values, with the transactions, lookups and blob handling the roles share."""

    def __init__(self, connection_string: str, prefix: str) -> None:
        if not _PREFIX.fullmatch(prefix):
            raise ValueError("state prefix must be 1 to 52 lower-case letters and digits, starting with a letter")
        try:
            self._service = TableServiceClient.from_connection_string(connection_string)
            self._blob_service = BlobServiceClient.from_connection_string(connection_string)
        except ValueError:
            raise ValueError("the storage connection string is malformed") from None  # never echo it: it has a key
        self._prefix = prefix
        tables = {name: self._service.create_table_if_not_exists(f"{prefix}{name}") for name in _TABLES}
        self._progress = tables["progress"]
        self._handled = tables["handled"]
        self._counts = tables["counts"]
        self._effects = tables["effects"]
        self._intents = tables["intents"]
        self._checkpoints = tables["checkpoints"]
        self._runs = tables["runs"]
        self._shards = tables["shards"]
        self._events = tables["events"]
        self._letters = tables["deadletters"]
        self._agenda = tables["agenda"]
        self._agenda_refs = tables["agendarefs"]
        self._timeline = tables["timeline"]
        self._tables = list(tables.values())
        self._container: ContainerClient = self._blob_service.get_container_client(f"{prefix}-payloads")
        with contextlib.suppress(ResourceExistsError):
            self._container.create_container()

    def _regroup(self, table: TableClient, marker: str, partition: Callable[[TableEntity], str]) -> None:
        """Move a table's entities of the layout before (a PartitionKey without "!") to the PartitionKey `partition`
        gives them, properties and all, once per store: the checkpoints entity ("m", `marker`) says it is done. Of
        processes doing it at once, each copies (idempotent) and removes (a row already gone is no error)."""
        try:
            self._checkpoints.get_entity("m", marker)
            return
        except ResourceNotFoundError:
            pass
        old = [entity for entity in table.list_entities() if "!" not in entity["PartitionKey"]]
        self._transact(table, (upsert_op({**entity, "PartitionKey": partition(entity)}) for entity in old))
        self._transact(table, (delete_op(entity["PartitionKey"], entity["RowKey"]) for entity in old))
        with contextlib.suppress(ResourceExistsError):
            self._checkpoints.create_entity(new_entity("m", marker, layout=2))

    def _settle_mirror(self) -> None:
        """Finish what the mirror has under way before its contents reach another process (see
        `statestore.azure_mirror`; nothing here)."""

    def close(self) -> None:
        for table in self._tables:
            table.close()
        self._container.close()
        self._service.close()
        self._blob_service.close()

    def _transact(
        self,
        table: TableClient,
        ops: Iterable[Op],
        *,
        conflicts: bool = False,
        etags: dict[tuple[str, str], str | None] | None = None,
    ) -> list[Op]:
        """Submit upserts/deletes (or creates/updates) as transactions: grouped by partition, at most BATCH_SIZE
        entities and BATCH_BYTES each, the last operation per key kept, a few transactions at a time. A transaction
        failing on a delete of a row already gone is redone one by one. With `conflicts`, the operations of
        transactions that failed on a concurrent change (404, 409, 412) are returned instead of raised. `etags`, if
        given, gets the new etag of each entity written by a transaction that succeeded, by (PartitionKey, RowKey)."""
        groups: dict[str, dict[str, Op]] = {}
        for op in ops:
            groups.setdefault(op[1]["PartitionKey"], {})[op[1]["RowKey"]] = op
        batches: list[list[Op]] = []
        for group in groups.values():
            batch: list[Op] = []
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
        found: dict[tuple[str, str], str | None] = {} if etags is None else etags
        if len(batches) <= 1:
            return [op for batch in batches for op in self._submit(table, batch, found, conflicts=conflicts)]
        with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
            done = pool.map(lambda batch: self._submit(table, batch, found, conflicts=conflicts), batches)
            return [op for failed in done for op in failed]

    @staticmethod
    def _submit(
        table: TableClient, batch: list[Op], etags: dict[tuple[str, str], str | None], *, conflicts: bool
    ) -> list[Op]:
        try:
            for done, etag in zip(batch, submit(table, batch), strict=False):
                etags[(done[1]["PartitionKey"], done[1]["RowKey"])] = etag
        except TransactionFailed as error:
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
        everything = drained(table.query_entities("PartitionKey eq @pk", parameters={"pk": pk}))
        return [entity for entity in everything if entity["RowKey"] in wanted]

    @classmethod
    def _find(
        cls, table: TableClient, pk: str, rks: Sequence[str], select: list[str] | None = None, *, field: str = "RowKey"
    ) -> list[TableEntity]:
        """The entities of one partition with these row keys (or these values of another string `field`): OR
        queries of FILTER_KEYS keys, a few in parallel."""
        return cls._query_all(table, key_filters(pk, rks, field), select)

    @staticmethod
    def _query_all(table: TableClient, filters: Sequence[Filter], select: list[str] | None = None) -> list[TableEntity]:
        """The entities every query finds, the queries a few at a time."""

        def query(found: Filter) -> list[TableEntity]:
            return drained(table.query_entities(found[0], parameters=found[1], select=select))

        return in_parallel(query, filters)

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
