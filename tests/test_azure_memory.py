"""What the Azure mirror's reads hold in memory (`statestore.azure_mirror`, `statestore.azure_pages`): rows decoded
together share their column names and text values, `mirror` decodes rows as they are taken (the blobs of large rows
read with the pages, at the call), and a read leaves no cyclic garbage behind (the SDK's pagers refer to themselves),
which a run pausing the collector over a batch would hold until the batch ends."""

from __future__ import annotations

import gc
import uuid
from collections.abc import Iterator

import pytest
from azure.data.tables import TableEntity

from statestore.azure_pages import DECODED, ROW_INLINE, dumps, rows_data
from statestore.azure_tables import AzureStateStore
from statestore.port import MirrorRow

KIND = "abm_interaction"


@pytest.fixture
def store(azurite: str) -> Iterator[AzureStateStore]:
    azure = AzureStateStore(azurite, prefix=f"m{uuid.uuid4().hex[:16]}")
    yield azure
    azure.close()


def interactions(partition: str, n: int) -> list[MirrorRow]:
    return [
        MirrorRow(KIND, f"{partition}-{i}", partition, {"abm_interactionid": f"{partition}-{i}", "abm_type": "Opened"})
        for i in range(n)
    ]


class _Download:
    def __init__(self, text: str) -> None:
        self.text = text

    def readall(self) -> bytes:
        return self.text.encode()


class _Blobs:
    """A container holding a few blobs (what `rows_data` asks of one)."""

    def __init__(self, blobs: dict[str, str]) -> None:
        self.blobs = blobs

    def download_blob(self, name: str) -> _Download:
        return _Download(self.blobs[name])


def test_rows_data_decodes_in_order_reads_blobs_and_shares_names_and_values() -> None:
    payloads = [dumps({"id": str(i), "n": i, "type": "Opened"}) for i in range(DECODED + 5)]
    payloads[3] = dumps("mirrors/1/big")
    big = dumps({"id": "big", "n": -1, "type": "Opened"})
    found = rows_data(_Blobs({"mirrors/1/big": big}), payloads)  # type: ignore[arg-type]
    assert [row["n"] for row in found] == [-1 if i == 3 else i for i in range(DECODED + 5)]
    assert found[0] == {"id": "0", "n": 0, "type": "Opened"}
    first, second = (next(iter(row)) for row in found[:2])
    assert first is second  # one copy of a column name per chunk, not one per row
    assert found[0]["type"] is found[1]["type"] is found[3]["type"]  # and of a text value (a blob's row's too)
    assert rows_data(_Blobs({}), []) == []  # type: ignore[arg-type]


def test_mirror_rows_share_their_column_names(store: AzureStateStore) -> None:
    store.put_mirror([*interactions("a1", 30), *interactions("a2", 30)])
    found = list(store.mirror(KIND, ["a1", "a2"]))
    assert [row.id for row in found] == sorted(row.id for row in found)
    assert len(found) == 60
    names = {id(name) for row in found for name in row.data}
    assert len(names) == 2  # abm_interactionid and abm_type, once for the whole chunk
    by_id = store.mirror_rows(KIND, ["a1-3", "a2-4"])
    assert {name for row in by_id.values() for name in row.data} == {"abm_interactionid", "abm_type"}
    assert len({id(name) for row in by_id.values() for name in row.data}) == 2


def test_mirror_reads_blobs_at_the_call_and_decodes_as_taken(store: AzureStateStore) -> None:
    large = MirrorRow(KIND, "big", "a1", {"abm_interactionid": "big", "body": "x" * (ROW_INLINE + 10)})
    store.put_mirror([large, *interactions("a1", 3)])
    taken = store.mirror(KIND, ["a1"])
    store.delete_mirror(KIND, ["big"])  # removes the row's blob: the rows were read before
    assert [row.id for row in taken] == ["a1-0", "a1-1", "a1-2", "big"]
    assert [row.id for row in store.mirror(KIND, ["a1"])] == ["a1-0", "a1-1", "a1-2"]


def test_a_read_leaves_no_cyclic_garbage(store: AzureStateStore) -> None:
    store.put_mirror([*interactions("a1", 20), *interactions("a2", 20)])
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        assert len(list(store.mirror(KIND, ["a1", "a2"]))) == 40
        assert len(store.mirror_rows(KIND, ["a1-1", "a2-2"])) == 2
        assert store.mirror_partitions([KIND]) == ["a1", "a2"]
        gc.collect()
        left = [type(found).__name__ for found in gc.garbage if isinstance(found, TableEntity)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
        gc.collect()
    assert left == []
