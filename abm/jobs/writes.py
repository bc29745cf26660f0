"""Idempotent bulk creates: rows whose ids the caller derived from deterministic keys, written exactly once.

A row created with a client-assigned id cannot be created twice (Dataverse answers a duplicate key), so repeating
a write after a crash, a replay or a redelivery is safe: it only has to tell the rows it created from those that
were already there. Shared by the journeys' effects and the interaction events other systems post.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from dataverse.client import DataverseClient
from dataverse.errors import DataverseDuplicate
from dataverse.mapping import row_id
from dataverse.rows import existing_ids
from dataverse.tables import Table

__all__ = ["create_idempotent"]


def _id(table: Table, row: Mapping[str, Any]) -> uuid.UUID:
    return uuid.UUID(row_id(table, row))


def create_idempotent(client: DataverseClient, table: Table, rows: Sequence[Mapping[str, Any]]) -> int:
    """Create rows that carry their primary key (CreateMultiple); returns how many this call created.

    When a chunk meets a row that already exists (the whole chunk is then rolled back), the ids already there are
    read (one request per 100) and only the others are created, in bulk again; should that meet a duplicate too (a
    concurrent writer, a duplicate-detection rule), they are created row by row and the duplicates count as done.
    A fully redelivered batch therefore costs one failed CreateMultiple and the reads, never a request per row."""
    try:
        client.create_multiple(table, rows)
    except DataverseDuplicate:
        pass
    else:
        return len(rows)
    existing = existing_ids(client, table, sorted({_id(table, row) for row in rows}))
    missing = [row for row in rows if _id(table, row) not in existing]
    if not missing:
        return 0
    try:
        client.create_multiple(table, missing)
    except DataverseDuplicate:
        made = 0
        for row in missing:
            body = {k: v for k, v in row.items() if k != table.primary_key}
            with contextlib.suppress(DataverseDuplicate):
                client.create(table, body, id=_id(table, row))
                made += 1
        return made
    return len(missing)
