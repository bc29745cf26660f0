"""How the Azure mirror packs rows into entities (`statestore.azure_mirror`): keys, pages and the lines in them.

A page is one entity holding many rows as lines of text, split over string properties `t00`, `t01`, ... of at most
`PAGE_CHARS` characters. Every line is ASCII (JSON with `ensure_ascii`, fields separated by tabs, which JSON never
leaves raw), so a property's UTF-16 size is twice its length: 64,000 bytes, under the service's 64 KiB per property,
and `PAGE_PROPS` of them stay under its 1 MiB per entity. A row whose JSON is longer than `ROW_INLINE` is kept in a
blob; its line holds the blob's name as a JSON string where the data would be (data is always a JSON object).

Lines, by where they are kept:
- a partition page or a fragment of a bulk load: `id<TAB>partition<TAB>payload` (the page's lines leave out the
  partition: it is the page's); payload is the data, a blob name, or `null` for a row removed;
- an id page: `id<TAB>partition<TAB>payload`, the payload as in a partition page when it is at most `ID_INLINE`
  characters (most rows: a read by id needs nothing else), else `0`: read it from the partition's rows.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final

from azure.storage.blob import ContainerClient

from statestore.azure_storage import table_key
from statestore.port import bucket_of

__all__ = [
    "ELSEWHERE",
    "GROUPS",
    "ID_BUCKETS",
    "PAGE_LIMIT",
    "ROW_INLINE",
    "dumps",
    "group_of",
    "id_bucket",
    "id_group",
    "id_key",
    "id_payload",
    "join_pages",
    "line",
    "listing_key",
    "page_properties",
    "page_text",
    "quote",
    "row_data",
]

PAGE_CHARS: Final = 32_000
PAGE_PROPS: Final = 14
PAGE_LIMIT: Final = PAGE_CHARS * PAGE_PROPS  # characters of lines per page
ROW_INLINE: Final = 30_000  # characters of a row's JSON kept in its line; beyond, in a blob
ID_INLINE: Final = 2_000  # characters of a payload an id page keeps (so that a page of 8,192 holds ~200 rows)
ELSEWHERE: Final = "0"  # an id page's payload for one kept only in the partition's rows
GROUPS: Final = 64  # PartitionKeys of a table's partitions (a group is 16 consecutive buckets), or of a kind's ids
ID_BUCKETS: Final = 8192  # id pages per kind: a lookup by id reads the page of the id's bucket


_ENCODE = json.JSONEncoder(ensure_ascii=True, separators=(",", ":")).encode  # json.dumps builds one per call


def dumps(value: Any) -> str:
    """Compact ASCII JSON: what lines are made of."""
    return _ENCODE(value)


def quote(text: str) -> str:
    """A string's JSON (as `dumps`), at once for the plain ones most ids and partitions are."""
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return f'"{text}"'
    return _ENCODE(text)


def line(*fields: Any) -> str:
    return "\t".join(dumps(field) for field in fields)


def group_of(partition: str) -> str:
    """The PartitionKey of a partition's pages and rows: its bucket's group ("00" to "63"), so that a put of rows of
    many partitions is a few transactions and a shard's partitions are in known groups."""
    return f"{bucket_of(partition) // (1024 // GROUPS):02d}"


def id_payload(payload: str) -> str:
    """What an id page keeps of a row's payload (see the module docstring)."""
    return payload if len(payload) <= ID_INLINE else ELSEWHERE


def id_bucket(id: str) -> int:
    return zlib.crc32(id.encode()) % ID_BUCKETS


def id_group(id: str) -> int:
    """The PartitionKey (0 to GROUPS - 1) of an id's page within its kind."""
    return id_bucket(id) * GROUPS // ID_BUCKETS


def id_key(kind_key: str, bucket: int) -> tuple[str, str]:
    """The (PartitionKey, RowKey) of the id page of a kind's bucket: 64 PartitionKeys of 128 pages per kind."""
    return f"{kind_key}!{bucket * GROUPS // ID_BUCKETS:02d}", f"{bucket:04d}"


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


def page_properties(text: str) -> dict[str, str]:
    if len(text) > PAGE_LIMIT:
        raise ValueError(f"a page of {len(text)} characters is more than an entity holds")
    return {f"t{i // PAGE_CHARS:02d}": text[i : i + PAGE_CHARS] for i in range(0, len(text), PAGE_CHARS)}


def page_text(entity: Mapping[str, Any]) -> str:
    return "".join(str(entity[name]) for name in sorted(entity) if len(name) == 3 and name[0] == "t")


_DECODE = json.JSONDecoder().raw_decode  # what json.loads does, without its checks around: lines have no whitespace


def row_data(container: ContainerClient, payload: str) -> dict[str, Any]:
    """A row's data from its payload: the JSON object, or the name of the blob holding it."""
    value = _DECODE(payload)[0]
    if isinstance(value, str):
        value = json.loads(container.download_blob(value).readall())
    assert isinstance(value, dict), "a mirror row's data is a JSON object"
    return value
