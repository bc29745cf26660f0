"""Shared fixtures: a Dataverse client wired to `responses` with a recording fake sleep, so no test really waits."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import responses

from dataverse.auth import Secret, StaticTokenAuth
from dataverse.client import DataverseClient
from dataverse.transport import Transport, TransportConfig
from tests.azurite import azurite  # noqa: F401 (session fixture: one Azurite for the Azure state store tests)
from tests.browser import chromium  # noqa: F401 (module fixture: one headless Chromium per module that asks)
from tests.state_stores import both_stores  # noqa: F401 (a fresh store of each adapter, for the contract suites)

ORG = "https://contoso.crm4.dynamics.com"
API = f"{ORG}/api/data/v9.2/"


class FakeSleep:
    """Records the waits a retry loop asked for instead of sleeping."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def sleeps() -> FakeSleep:
    return FakeSleep()


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


def make_client(sleeps: FakeSleep, **config: Any) -> DataverseClient:
    page_size = config.pop("page_size", 5000)
    bulk_chunk_size = config.pop("bulk_chunk_size", 1000)
    transport = Transport(TransportConfig(org_url=ORG, **config), StaticTokenAuth(Secret("test-token")), sleep=sleeps)
    return DataverseClient(transport.config, page_size=page_size, bulk_chunk_size=bulk_chunk_size, transport=transport)


@pytest.fixture
def client(sleeps: FakeSleep, mocked: responses.RequestsMock) -> Iterator[DataverseClient]:
    with make_client(sleeps) as c:
        yield c
