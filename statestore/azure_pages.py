"""How the Azure mirror packs rows into entities (`statestore.azure_mirror`): keys, pages and the lines in them.

A page is one entity holding many rows as lines of text, at most `PAGE_LIMIT` characters, compressed (zlib, its
fastest level: mirror rows shrink about five times, and so does what the service stores, sends and parses) and split
over binary properties `z00`, `z01`, ... of at most `PROPERTY_BYTES` (the service's limit is 64 KiB a property, 1 MiB
an entity). Every line is ASCII (JSON with `ensure_ascii`, fields separated by tabs, which JSON never leaves raw), so
a page's bytes are its characters, and even uncompressed they fit. A row whose JSON is longer than `ROW_INLINE` is
kept in a blob; its line holds the blob's name as a JSON string where the data would be (data is always an object).

Lines, by where they are kept (every field JSON):
- a partition page: `id<TAB>payload`, the payload being the row's data or its blob's name;
- an id page: `id<TAB>partition<TAB>payload`, the payload as in a partition page when it is at most `ID_INLINE`
  characters (most rows: a read by id needs nothing else), else `ELSEWHERE` (`0`): in the partition's rows;
- a bulk load's fragment (`statestore.azure_bulk`): `id<TAB>partition<TAB>payload` by partition, `id<TAB>partition`
  by id (`null` for a row removed).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from azure.storage.blob import ContainerClient

from statestore.azure_storage import table_key
from statestore.port import bucket_of

__all__ = [
    "DECODED",
    "ELSEWHERE",
    "FINE",
    "GROUPS",
    "NEW_KIND_BUCKETS",
    "PAGE_LIMIT",
    "ROW_INLINE",
    "IdLayout",
    "blob_text",
    "dumps",
    "group_of",
    "id_buckets_for",
    "id_group",
    "id_payload",
    "join_pages",
    "listing_key",
    "page_properties",
    "page_text",
    "quote",
    "rows_data",
]

PROPERTY_BYTES: Final = 64_000
PAGE_LIMIT: Final = 14 * PROPERTY_BYTES  # characters of lines per page (so bytes, so compressed at most that)
ROW_INLINE: Final = 30_000  # characters of a row's JSON kept in its line; beyond, in a blob
ID_INLINE: Final = 2_000  # characters of a payload an id page keeps (so that a page of 8,192 holds ~200 rows)
ELSEWHERE: Final = "0"  # an id page's payload for one kept only in the partition's rows
GROUPS: Final = 16  # PartitionKeys of a table's partitions (a group is 64 consecutive buckets), or of a kind's ids
FINE: Final = 8192  # the most id pages a kind has: a lookup by id reads the page of the id's bucket
DECODED: Final = 1000  # payloads decoded in one call (`rows_data`): their text joined, then their data, held at once
ROWS_PER_ID_PAGE: Final = 64  # what a bulk load sizes a kind's id pages for
NEW_KIND_BUCKETS: Final = 1024  # id pages of a kind first put row by row (not by a bulk load, which counts them)


_ENCODE = json.JSONEncoder(ensure_ascii=True, separators=(",", ":")).encode  # json.dumps builds one per call


def dumps(value: Any) -> str:
    """Compact ASCII JSON: what lines are made of."""
    return _ENCODE(value)


def quote(text: str) -> str:
    """A string's JSON (as `dumps`), at once for the plain ones most ids and partitions are."""
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return f'"{text}"'
    return _ENCODE(text)


def group_of(partition: str) -> str:
    """The PartitionKey of a partition's pages and rows: its bucket's group ("00" to "15"), so that a put of rows of
    many partitions is a few transactions and a shard's partitions are in known groups."""
    return f"{bucket_of(partition) // (1024 // GROUPS):02d}"


def id_payload(payload: str) -> str:
    """What an id page keeps of a row's payload (see the module docstring)."""
    return payload if len(payload) <= ID_INLINE else ELSEWHERE


def _fine(id: str) -> int:
    return zlib.crc32(id.encode()) % FINE


def id_group(id: str) -> int:
    """The PartitionKey (0 to GROUPS - 1) of an id's page within its kind, whatever the kind's number of pages."""
    return _fine(id) * GROUPS // FINE


def id_buckets_for(rows: int) -> int:
    """The id pages of a kind of this many rows: about ROWS_PER_ID_PAGE rows a page, a power of two from GROUPS to
    FINE. Pages are compressed, so a large one costs little to send; fewer pages are fewer queries per lookup."""
    buckets = GROUPS
    while buckets < FINE and buckets * ROWS_PER_ID_PAGE < rows:
        buckets *= 2
    return buckets


@dataclass(frozen=True)
class IdLayout:
    """How a kind's ids map to its id pages in a generation: `buckets` pages (fixed for the generation), each a
    coarsening of the FINE buckets, so that a page is in its ids' `id_group` whatever the count."""

    kind_key: str
    buckets: int

    def bucket(self, id: str) -> int:
        return _fine(id) * self.buckets // FINE

    def key(self, bucket: int) -> tuple[str, str]:
        """The (PartitionKey, RowKey) of a page: GROUPS PartitionKeys per kind."""
        return f"{self.kind_key}!{bucket * GROUPS // self.buckets:02d}", f"{bucket:04d}"


def listing_key(kind_key: str, partition: str) -> tuple[str, str]:
    """The (PartitionKey, RowKey) of a (kind, partition) pair in the listing: 16 PartitionKeys per kind, of 64
    buckets each."""
    bucket = bucket_of(partition)
    return f"{kind_key}!{bucket // 64:02d}", f"{bucket:04d}!{table_key(partition)}"


def join_pages(lines: Iterable[str]) -> Iterator[str]:
    """Lines as page texts of at most PAGE_LIMIT characters each (a line is never split)."""
    page: list[str] = []
    size = 0
    for text in lines:
        if page and size + len(text) + 1 > PAGE_LIMIT:
            yield "\n".join(page)
            page, size = [], 0
        page.append(text)
        size += len(text) + 1
    if page:
        yield "\n".join(page)


def page_properties(text: str) -> dict[str, bytes]:
    """A page's lines as the entity's properties: compressed, in pieces."""
    if len(text) > PAGE_LIMIT:
        raise ValueError(f"a page of {len(text)} characters is more than an entity holds")
    packed = zlib.compress(text.encode("ascii"), 1)
    size = PROPERTY_BYTES
    return {f"z{i // size:02d}": packed[i : i + size] for i in range(0, len(packed), size)}


def page_text(entity: Mapping[str, Any]) -> str:
    """A page's lines from its entity."""
    pieces = [bytes(entity[name]) for name in sorted(entity) if len(name) == 3 and name[0] == "z"]
    return zlib.decompress(b"".join(pieces)).decode("ascii") if pieces else ""


_DECODE = json.JSONDecoder().raw_decode  # what json.loads does, without its checks around: lines have no whitespace


def _blob(container: ContainerClient, name: str) -> str:
    return container.download_blob(name).readall().decode()


def blob_text(container: ContainerClient, payload: str) -> str:
    """A payload with the blob it names read: the row's JSON (a payload of data is returned as it is)."""
    return _blob(container, _DECODE(payload)[0]) if payload.startswith('"') else payload


def _shared(rows: list[dict[str, Any]]) -> None:
    """Each distinct text value of these rows held once: the rows of a chunk (a few accounts) repeat most of theirs
    (their contacts' ids, an interaction's type, asset and campaign), and the records mapped from them keep them. At
    `ref`, a batch's interactions hold 8 MB of text values instead of 26 (for 30 ms of work)."""
    seen: dict[str, str] = {}
    for row in rows:
        for name, value in row.items():
            if type(value) is str:
                row[name] = seen.setdefault(value, value)


def rows_data(container: ContainerClient, payloads: Sequence[str]) -> list[dict[str, Any]]:
    """Rows' data from their payloads (the JSON object, or the name of the blob holding it), in order, decoded
    DECODED at a time as one JSON array. The decoder keeps one copy of each object key per call, so rows decoded
    together share their column names (decoded one by one, each row holds its own: a batch's interactions take half
    as much again, and a call per row also costs more); their text values are shared too (`_shared`)."""
    found: list[dict[str, Any]] = []
    for start in range(0, len(payloads), DECODED):
        values = _DECODE(f"[{','.join(payloads[start : start + DECODED])}]")[0]
        chunk = [json.loads(_blob(container, value)) if isinstance(value, str) else value for value in values]
        assert all(isinstance(data, dict) for data in chunk), "a mirror row's data is a JSON object"
        _shared(chunk)
        found += chunk
    return found
