"""The state store fixture the contract suites share: a fresh store of each adapter, an in-memory SQLite database
or tables and a container under a prefix of their own in the session's one Azurite."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from statestore.azure_tables import AzureStateStore
from statestore.port import StateStore
from statestore.sqlite import SqliteStateStore


@pytest.fixture(params=["sqlite", "azure"])
def both_stores(request: pytest.FixtureRequest) -> Iterator[StateStore]:
    if request.param == "sqlite":
        sqlite = SqliteStateStore()
        yield sqlite
        sqlite.close()
    else:
        azure = AzureStateStore(request.getfixturevalue("azurite"), prefix=f"t{uuid.uuid4().hex[:16]}")
        yield azure
        azure.close()
