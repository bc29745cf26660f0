"""The state store fixture the contract suites share: a fresh store of each adapter, an in-memory SQLite database
or tables and a container under a prefix of their own in the session's one Azurite."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from statestore.azure_tables import AzureStateStore
from statestore.port import StateStore
from statestore.sqlite import SqliteStateStore


def fresh_store(kind: str, request: pytest.FixtureRequest) -> StateStore:
    """An empty state store of either adapter ("sqlite" in memory, "azure" under a prefix of its own)."""
    if kind == "sqlite":
        return SqliteStateStore()
    return AzureStateStore(request.getfixturevalue("azurite"), prefix=f"t{uuid.uuid4().hex[:16]}")


@pytest.fixture(params=["sqlite", "azure"])
def both_stores(request: pytest.FixtureRequest) -> Iterator[StateStore]:
    store = fresh_store(request.param, request)
    yield store
    store.close()
