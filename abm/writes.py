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
from dataverse.tables import Table

__all__ = ["create_idempotent"]


def create_idempotent(client: DataverseClient, table: Table, rows: Sequence[Mapping[str, Any]]) -> int:
    """CreateMultiple with client ids; a chunk meeting an existing row is replayed row by row (duplicates are done).
    Returns how many rows this call created. Every row must carry its primary key."""
    try:
        client.create_multiple(table, rows)
    except DataverseDuplicate:
        made = 0
        for row in rows:
            body = {k: v for k, v in row.items() if k != table.primary_key}
            with contextlib.suppress(DataverseDuplicate):
                client.create(table, body, id=uuid.UUID(str(row[table.primary_key])))
                made += 1
        return made
    return len(rows)
