"""Dry runs: the exact writes a replay would make, without making them.

`DryRunClient` is a `DataverseClient` on the same request path (reads are real, counted, retried like any other)
whose writes are recorded instead of sent, each answered as Dataverse would answer a success. Beside it a dry run
uses `statestore.overlay.OverlayStore`, so the run sees its own writes and the real state store is left untouched.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from dataverse.batch import BatchRequest, BatchResponse, ChangeSet, ItemOutcome
from dataverse.client import DataverseClient
from dataverse.tables import Table
from dataverse.transport import json_default

__all__ = ["DryRunClient"]


def _plain(value: Any) -> Any:
    """JSON-ready copy of a request body (dates as ISO text, as they would go on the wire)."""
    return json.loads(json.dumps(value, default=json_default))


class DryRunClient(DataverseClient):
    """Reads through `client`'s transport; records writes in `writes` instead of sending them."""

    def __init__(self, client: DataverseClient) -> None:
        super().__init__(
            client.transport.config,
            page_size=client.page_size,
            bulk_chunk_size=client.bulk_chunk_size,
            transport=client.transport,
        )
        self.writes: list[dict[str, Any]] = []

    def close(self) -> None:
        """The transport belongs to the wrapped client."""

    def _record(self, operation: str, target: str, **details: Any) -> None:
        self.writes.append({"operation": operation, "target": target, **_plain(details)})

    def create(self, table: Table, record: Mapping[str, Any], *, id: uuid.UUID | None = None) -> uuid.UUID:
        new_id = id or uuid.uuid4()
        self._record("Create", table.entity_set, id=str(new_id), row=dict(record))
        return new_id

    def update(self, table: Table, id: uuid.UUID, changes: Mapping[str, Any], *, etag: str | None = None) -> None:
        self._record("Update", table.entity_set, id=str(id), row=dict(changes))

    def upsert(self, table: Table, key: uuid.UUID | Mapping[str, Any], record: Mapping[str, Any]) -> None:
        shown = str(key) if isinstance(key, uuid.UUID) else dict(key)
        self._record("Upsert", table.entity_set, key=shown, row=dict(record))

    def delete(self, table: Table, id: uuid.UUID, *, etag: str | None = None) -> None:
        self._record("Delete", table.entity_set, id=str(id))

    def create_multiple(
        self, table: Table, records: Iterable[Mapping[str, Any]], *, chunk_size: int | None = None
    ) -> list[uuid.UUID]:
        rows = [dict(r) for r in records]
        ids = [uuid.UUID(str(r[table.primary_key])) if r.get(table.primary_key) else uuid.uuid4() for r in rows]
        self._record("CreateMultiple", table.entity_set, rows=rows)
        return ids

    def update_multiple(
        self, table: Table, records: Iterable[Mapping[str, Any]], *, chunk_size: int | None = None
    ) -> int:
        rows = [dict(r) for r in records]
        self._record("UpdateMultiple", table.entity_set, rows=rows)
        return len(rows)

    def upsert_multiple(
        self,
        table: Table,
        records: Iterable[Mapping[str, Any]],
        *,
        key: Sequence[str] | None = None,
        chunk_size: int | None = None,
    ) -> int:
        rows = [dict(r) for r in records]
        self._record("UpsertMultiple", table.entity_set, rows=rows, key=list(key or ()))
        return len(rows)

    def batch(
        self,
        items: Sequence[BatchRequest | ChangeSet],
        *,
        continue_on_error: bool = False,
        idempotent: bool = False,
    ) -> tuple[ItemOutcome, ...]:
        outcomes = []
        for item in items:
            requests = item.requests if isinstance(item, ChangeSet) else (item,)
            for request in requests:
                self._record(request.method, request.url, body=dict(request.body or {}))
            answers = tuple(BatchResponse(204, {}, None) for _ in requests)
            outcomes.append(ItemOutcome(item, "ok", answers))
        return tuple(outcomes)

    def call_action(
        self,
        name: str,
        body: Mapping[str, Any] | None = None,
        *,
        bound: tuple[Table, uuid.UUID] | None = None,
        idempotent: bool = False,
    ) -> Any:
        target = f"{bound[0].entity_set}({bound[1]})" if bound else ""
        self._record(name, target, parameters=dict(body or {}))
        return None

    def execute_workflow(self, workflow_id: uuid.UUID, entity_id: uuid.UUID) -> uuid.UUID | None:
        self._record("ExecuteWorkflow", f"workflows({workflow_id})", entity_id=str(entity_id))
        return None
