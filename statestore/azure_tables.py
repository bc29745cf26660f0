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
| agenda | the partition's bucket, "0000" to "1023" | partition | a shard's due partitions are a query per bucket |
| agendarefs | ref | partition | the partitions depending on a ref are one partition query |

Keys are escaped and large values kept in blobs by the plumbing in `statestore.azure_storage`; each role's reads and
writes sit in `azure_journeys` (progress, effects, intents), `azure_sync` (checkpoints, mirror, runs), `azure_events`
(events, dead letters) and `azure_agenda` (the agenda). `AzureStateStore` is all of them, and forgets a contact
across them.
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
from statestore.port import wall_clock

if TYPE_CHECKING:
    from statestore.port import StateStore

__all__ = ["INLINE_LIMIT", "AzureStateStore"]


class AzureStateStore(
    AzureProgress, AzureEffectLedger, AzureCheckpoints, AzureMirror, AzureFanOut, AzureEventLog, AzureAgenda
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
