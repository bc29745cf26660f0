"""Segments: one definition, two evaluators (Dataverse's server-side query and the mirror), agreeing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from abm.definitions import definition_files, load_segments
from abm.jobs.mirror import Snapshot, load_snapshot
from abm.jobs.pipeline import RunSetup
from abm.jobs.segments import evaluate_segment
from abm.jobs.sync import read_into_mirror
from dataverse.auth import NoAuth
from dataverse.client import DataverseClient
from dataverse.mapping import MappingConfig
from dataverse.transport import TransportConfig
from devtools.demo import load_tenant
from devtools.emulator.server import Emulator, EmulatorIdentity
from devtools.emulator.store import Store
from devtools.tenant import CALLER_USER_ID
from journeys.segments import Segment, members, parse_segment
from statestore.sqlite import SqliteStateStore

NOW = datetime(2026, 11, 23, tzinfo=UTC)
DEMO = load_segments(definition_files("definitions", "segments"))
EDGES: list[dict[str, Any]] = [
    {
        "name": "no-title-or-not-purchaser",
        "type": "dynamic",
        "contact": {
            "any": [{"column": "jobtitle", "op": "is_null"}, {"column": "jobtitle", "op": "ne", "value": "Purchaser"}]
        },
    },
    {
        "name": "not-in-amsterdam",
        "type": "dynamic",
        "account": {"all": [{"column": "address1_city", "op": "ne", "value": "amsterdam"}]},
    },
    {
        "name": "cities",
        "type": "dynamic",
        "account": {"all": [{"column": "address1_city", "op": "in", "value": ["Berlin", "Kraków", "Zürich"]}]},
    },
    {
        "name": "nested",
        "type": "dynamic",
        "combine": "any",
        "account": {
            "all": [
                {"column": "revenue", "op": "lt", "value": 50000},
                {
                    "any": [
                        {"column": "industrycode", "op": "eq", "value": 7},
                        {"column": "name", "op": "startswith", "value": "d'"},
                    ]
                },
            ]
        },
        "contact": {"all": [{"column": "lastname", "op": "contains", "value": "'"}]},
    },
]


@pytest.fixture(scope="module")
def world() -> Iterator[tuple[DataverseClient, Snapshot]]:
    store = Store()
    load_tenant(store, "small", seed=1, now=NOW)
    segments = [*DEMO, *(parse_segment(e) for e in EDGES)]
    with Emulator(store, EmulatorIdentity(CALLER_USER_ID)) as emulator:
        client = DataverseClient(TransportConfig(org_url=emulator.org_url), NoAuth())
        config = MappingConfig(consent_levels={})
        state = SqliteStateStore()
        read_into_mirror(client, state, RunSetup(segments=segments, config=config))
        yield client, load_snapshot(state, config)
    store.close()


@pytest.mark.parametrize("segment", [*DEMO, *(parse_segment(e) for e in EDGES)], ids=lambda s: s.name)
def test_the_server_query_and_the_mirror_agree(segment: Segment, world: tuple[DataverseClient, Snapshot]) -> None:
    client, snapshot = world
    on_server = evaluate_segment(client, segment)
    in_mirror = members(segment, snapshot.contacts, snapshot.accounts)
    assert on_server == in_mirror
    assert on_server  # every segment here has members at size small, so agreement is not vacuous


def test_a_static_segment_picks_listed_contacts(world: tuple[DataverseClient, Snapshot]) -> None:
    client, snapshot = world
    picked = [c.id for c in snapshot.contacts[:3]]
    segment = parse_segment({"name": "picked", "type": "static", "contacts": picked})
    assert [m.contact_id for m in evaluate_segment(client, segment)] == sorted(picked)
    assert [m.contact_id for m in members(segment, snapshot.contacts, snapshot.accounts)] == sorted(picked)
