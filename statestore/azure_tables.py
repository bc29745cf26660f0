"""The state store in Azure Table Storage, with blobs for large values: the production adapter of `StateStore`.

It lives in the Function app's own storage account. Every table is `{prefix}{name}`; the mirror's four come per
generation `g` (`statestore.azure_generations`): emptying the mirror starts a new set instead of deleting rows. A
"group" is one of 16 PartitionKeys a table spreads its keys over (of a partition: its bucket // 64, so a shard's
partitions are in known groups; of another key: a hash of it), so that no partition is hot and a write of many keys
is a few transactions. Each table is laid out for how the engine reads and writes it (issue 15):

| table | PartitionKey | RowKey | why |
|---|---|---|---|
| progress | journey!group of contact | contact | a batch's contacts: a query per 14; a journey: one range |
| handled | journey | tile!account | add-only, written in transactions |
| counts | journey | account!tile | counters as JSON, added under optimistic concurrency |
| effects | journey!group of key | key | recorded in a transaction per group; looked up 14 a query |
| intents | key | "" | claimed by insert: the first writer wins |
| checkpoints | "c"; "m" | name; what | saved together; "m": the mirror's generation, layouts converted |
| mp{g} | group of partition | partition!kind!p!n, partition!kind!r!id | rows by partition (1) |
| mi{g} | kind!group of id | page number | rows by id (2) |
| ml{g} | kind!bucket // 64; "~" | bucket!partition; kind | partitions by bucket (3); "~": each kind's id pages |
| mf{g} | kind | side slice!flush!n | a bulk load's fragments (`statestore.azure_bulk`), dropped once sealed |
| runs | "r" | run id | |
| shards | run id | shard | the done shards of a run are one partition |
| events | event id | "" | recorded by insert: the first delivery wins |
| deadletters | letter id | "" | |
| agenda | group of partition | bucket!partition; ...!m!moment | a shard's due partitions: a query per group (4) |
| agendarefs | group of ref | ref!partition | the partitions depending on a few refs: a query per group for 7 (4) |
| timeline | group of partition | partition!n; "~types" | a partition's events in a chunk or a few; the types (5) |

1. A partition's pages a bulk load wrote (`p`, never changed afterwards) and one entity per row put since (`r`: the
   row, or `gone`), which replaces the page's line of its id. A batch is a query per group for up to 7 partitions,
   every kind at once when read ahead; a chunk of rows is a transaction per group (`statestore.azure_mirror`).
2. Each row again, by id: about 64 to a page (compressed), up to 8,192 pages per kind. A read by id is a query per
   14 pages (or per group, when many); a put rewrites the pages it touched under their etags.
3. Kept on put; a partition emptied since the mirror was refilled may stay listed (evaluating it finds nothing).
4. Entries with their refs; a mark makes a partition due without a read (`statestore.azure_agenda`).
5. Compressed, each string once; a save is a transaction per group (with the group's types record, under its etag),
   a whole read a query per group, one account's events one query (`statestore.azure_timeline`).

Pages (`statestore.azure_pages`) pack many rows into one entity as compressed lines; transactions are sent as one
hand-built `$batch` request (`statestore.azure_batch`). Keys are escaped and large values kept in blobs by the
plumbing in `statestore.azure_storage`; each role's reads and writes sit in `azure_journeys` (progress, effects,
intents), `azure_sync` (checkpoints, runs), `azure_mirror` (with `azure_mirror_reads` and `azure_bulk`),
`azure_events` (events, dead letters), `azure_agenda` (the agenda) and `azure_timeline` (the insights' events).
`AzureStateStore` is all of them, and forgets a contact across them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from statestore.azure_agenda import AzureAgenda
from statestore.azure_events import AzureEventLog
from statestore.azure_journeys import AzureEffectLedger, AzureProgress
from statestore.azure_mirror import AzureMirror
from statestore.azure_storage import FILTER_KEYS, INLINE_LIMIT, blobs_of, delete_op, table_key
from statestore.azure_sync import AzureCheckpoints, AzureFanOut
from statestore.azure_timeline import AzureTimeline
from statestore.port import wall_clock

if TYPE_CHECKING:
    from statestore.port import StateStore

__all__ = ["INLINE_LIMIT", "AzureStateStore"]


class AzureStateStore(
    AzureProgress,
    AzureEffectLedger,
    AzureCheckpoints,
    AzureMirror,
    AzureFanOut,
    AzureEventLog,
    AzureAgenda,
    AzureTimeline,
):
    """`StateStore` in Table Storage and blobs of one storage account (see the module docstring for the layout)."""

    def __init__(
        self, connection_string: str, prefix: str = "abm", *, clock: Callable[[], datetime] | None = None
    ) -> None:
        self._clock = clock or wall_clock
        super().__init__(connection_string, prefix)

    def forget_contact(self, contact_id: str, record_ids: Iterable[str] = ()) -> None:
        """Remove the contact's progress in every journey, the workflow runs on it, and the events and dead letters
        about it or `record_ids`."""
        progress = self._progress.query_entities(
            "RowKey eq @rk", parameters={"rk": table_key(contact_id)}, select=["PartitionKey", "RowKey"]
        )
        self._transact(self._progress, (delete_op(e["PartitionKey"], e["RowKey"]) for e in progress))
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
            self._transact(table, (delete_op(e["PartitionKey"], "") for e in doomed))
            self._drop_blobs(name for e in doomed for name in blobs_of(e))


if TYPE_CHECKING:

    def _conforms(store: AzureStateStore) -> StateStore:  # mypy checks the adapter against the port
        return store
