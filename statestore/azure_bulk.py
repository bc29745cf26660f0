"""A bulk load of the Azure mirror: how a full sync refills a mirror it emptied (`statestore.azure_mirror`).

A full sync empties the mirror and puts every row again, 1,000 rows of one kind at a time, in Dataverse's order (by
id, so in no order of partition), each chunk after a read by id of the same rows. Written row by row, every chunk
would touch hundreds of partitions and every read by id would be a query. So `clear_mirror` starts a new generation
(`statestore.azure_generations`) that only this process writes until it is sealed, and:

- a put only holds the rows, as lines: by partition (grouped as the mirror's rows are) and by id (the id and its
  partition, grouped as the id pages are). Past `_FLUSH` characters held, the lines are written as fragments, one
  compressed entity per kind, side and slice, all of a kind in one PartitionKey: a few transactions per flush;
- a read by id answers from what this process put (the generation is its own): an id it never put is not there,
  without a request (ids are remembered as 64-bit digests, 8 bytes each); one it put is found in the lines;
- sealing writes the readers' layout, a kind at a time and a 16th of it at a time (what memory holds): which ids
  moved (or went) while loading, then the partition pages and the listing, then the id pages, with each row's data
  when the kind is small enough to hold while its partition pages are written (else they point to the partition).
  The fragments' table is then deleted and the generation published.

The owner seals before anything that reads by partition or hands the mirror to another process (reads by partition,
listing partitions, saving checkpoints, starting a fanned-out run, closing the store). Until then other processes
keep reading the previous generation; a load left untouched for `IDLE_SECONDS` (a sync that failed, in a process
that lives on) is dropped, and one whose process died is never published: the previous mirror stays (and so do its
checkpoints, so the next sync reads everything again).
"""

from __future__ import annotations

import bisect
import hashlib
import json
import time
from array import array
from collections.abc import Iterable, Iterator, Sequence
from typing import Final

from azure.data.tables import TableClient, TableEntity

from statestore.azure_generations import Generation
from statestore.azure_pages import (
    ELSEWHERE,
    GROUPS,
    ROW_INLINE,
    IdLayout,
    dumps,
    group_of,
    id_buckets_for,
    id_group,
    id_payload,
    join_pages,
    listing_key,
    page_properties,
    page_text,
    quote,
    rows_data,
)
from statestore.azure_storage import (
    AzureStorage,
    Op,
    digest,
    new_entity,
    range_filters,
    table_key,
    upsert_op,
)
from statestore.port import MirrorRow, bucket_of

__all__ = ["BulkLoad"]

_SLICES: Final = GROUPS  # fragments per flush and side, a PartitionKey's worth of rows or of id pages each
_FLUSH: Final = 16_000_000  # characters of lines held before they are written as fragments
_AT_ONCE: Final = 50_000  # rows of a kind up to which a seal reads a side's fragments in one query
_WRITE_AT: Final = 500  # entities a seal writes at once
_KEPT: Final = 64_000_000  # characters of a kind's rows up to which a seal keeps them all to write its id pages
_NULL: Final = "null"


def _hash(id: str) -> int:
    return int.from_bytes(hashlib.blake2b(id.encode(), digest_size=8).digest(), "big")


class _Seen:
    """The ids put, as sorted runs of 64-bit digests (merged as they grow, so a few runs of log size)."""

    def __init__(self) -> None:
        self._runs: list[array[int]] = []

    def add(self, ids: Iterable[str]) -> None:
        self._runs.append(array("Q", sorted({_hash(id) for id in ids})))
        while len(self._runs) > 1 and len(self._runs[-2]) <= 2 * len(self._runs[-1]):
            newer, older = self._runs.pop(), self._runs.pop()
            self._runs.append(array("Q", sorted(older + newer)))

    def __contains__(self, id: object) -> bool:
        value = _hash(str(id))
        for run in self._runs:
            at = bisect.bisect_left(run, value)
            if at < len(run) and run[at] == value:
                return True
        return False


class BulkLoad:
    """A new generation this process fills and then seals (see the module docstring)."""

    def __init__(self, storage: AzureStorage, generation: Generation) -> None:
        self._storage, self.generation = storage, generation
        self.touched = time.monotonic()  # when the load last put, removed or read a row
        self._flushes = 0
        self._seen: dict[str, _Seen] = {}
        self._counts: dict[str, int] = {}
        self._sizes: dict[str, int] = {}  # characters of a kind's rows put
        self._held: dict[tuple[str, str, int], list[str]] = {}  # (kind, side, slice) -> lines not written yet
        self._size = 0

    # ---- while loading ----

    def put(self, kind: str, rows: Sequence[MirrorRow]) -> None:
        """Hold the rows (one per id) as lines; write them as fragments once enough are held."""
        self.touched = time.monotonic()
        for row in rows:
            id_json, part_json, text = quote(row.id), quote(row.partition), dumps(row.data)
            blob = None
            if len(text) > ROW_INLINE:
                blob = f"{self.generation.blobs}{digest(kind, row.id)}"
                self._storage._container.upload_blob(blob, text.encode(), overwrite=True)
                text = dumps(blob)
            line = f"{id_json}\t{part_json}\t{text}"
            self._hold(kind, "p", bucket_of(row.partition) * _SLICES // 1024, line)
            self._hold(kind, "i", id_group(row.id), f"{id_json}\t{part_json}")
            self._sizes[kind] = self._sizes.get(kind, 0) + len(line)
        self._seen.setdefault(kind, _Seen()).add(row.id for row in rows)
        self._counts[kind] = self._counts.get(kind, 0) + len(rows)
        if self._size > _FLUSH:
            self._flush()

    def delete(self, kind: str, ids: Sequence[str]) -> None:
        """Note the removal of the rows put before (others were never here)."""
        self.touched = time.monotonic()
        seen = self._seen.get(kind)
        for id in ids:
            if seen is not None and id in seen:
                self._hold(kind, "i", id_group(id), f"{quote(id)}\t{_NULL}")

    def _hold(self, kind: str, side: str, number: int, text: str) -> None:
        self._held.setdefault((kind, side, number), []).append(text)
        self._size += len(text)

    def _flush(self) -> None:
        """Write the lines held as fragments: per kind, side and slice, one entity (or more, if large), in the
        kind's PartitionKey, numbered in the order written."""
        self._flushes += 1
        ops: list[Op] = []
        for (kind, side, number), lines in self._held.items():
            for n, text in enumerate(join_pages(lines)):
                rk = f"{side}{number:02d}!{self._flushes:06d}!{n:03d}"
                ops.append(upsert_op(new_entity(table_key(kind), rk, **page_properties(text))))
        self._storage._transact(self.generation.log, ops)
        self._held.clear()
        self._size = 0

    def _lines(self, kind: str, side: str, slices: Iterable[int]) -> list[list[str]]:
        """The lines of these slices, in the order they were put: the fragments written, then those held."""
        numbers = sorted(set(slices))
        found: list[TableEntity] = []
        if self._flushes:
            ranges = [(f"{side}{n:02d}!", f'{side}{n:02d}"') for n in numbers]
            found = self._storage._query_all(self.generation.log, range_filters(table_key(kind), ranges))
            found.sort(key=lambda entity: str(entity["RowKey"]))
        written = [text.split("\n") for text in (page_text(entity) for entity in found) if text]
        return written + [self._held.get((kind, side, n), []) for n in numbers]

    def _slices(self, kind: str, side: str) -> Iterator[tuple[int, list[list[str]]]]:
        """Every slice of a side with its lines (as `_lines`): a small kind's read in one query, a large one's a
        slice at a time (what memory holds)."""
        if self._counts.get(kind, 0) > _AT_ONCE or not self._flushes:
            for number in range(_SLICES):
                yield number, self._lines(kind, side, [number])
            return
        filters = range_filters(table_key(kind), [(side, chr(ord(side) + 1))])
        found = sorted(self._storage._query_all(self.generation.log, filters), key=lambda e: str(e["RowKey"]))
        by_slice: dict[int, list[list[str]]] = {}
        for entity in found:
            text = page_text(entity)
            if text:
                by_slice.setdefault(int(str(entity["RowKey"])[1:3]), []).append(text.split("\n"))
        for number in range(_SLICES):
            yield number, [*by_slice.get(number, []), self._held.get((kind, side, number), [])]

    def rows(self, kind: str, ids: Sequence[str]) -> dict[str, MirrorRow]:
        """The rows with these ids, from what this process put."""
        self.touched = time.monotonic()
        seen = self._seen.get(kind)
        wanted = {quote(id) for id in ids if seen is not None and id in seen}
        if not wanted:
            return {}
        where: dict[str, str] = {}
        for lines in self._lines(kind, "i", {id_group(json.loads(i)) for i in wanted}):
            for text in lines:
                id_json, part_json = text.split("\t")
                if id_json in wanted:
                    where[id_json] = part_json
        located = {id_json: part_json for id_json, part_json in where.items() if part_json != _NULL}
        slices = {bucket_of(json.loads(part_json)) * _SLICES // 1024 for part_json in located.values()}
        payloads: dict[str, str] = {}
        for lines in self._lines(kind, "p", slices) if located else ():
            for text in lines:
                id_json, part_json, payload = text.split("\t", 2)
                if located.get(id_json) == part_json:
                    payloads[id_json] = payload
        data = rows_data(self._storage._container, list(payloads.values()))
        return {
            (id := json.loads(id_json)): MirrorRow(kind, id, json.loads(located[id_json]), row)
            for id_json, row in zip(payloads, data, strict=True)
        }

    # ---- sealing ----

    def seal(self) -> None:
        """Write the loaded rows in the readers' layout (see the module docstring), a kind at a time: which ids
        moved (or went) while loading, then the partition pages (and, for a kind small enough to hold, its rows by
        id), then the id pages."""
        for kind in sorted(self._seen):
            moved = self._moved(kind)
            payloads = self._seal_partitions(kind, moved, keep=self._sizes.get(kind, 0) <= _KEPT)
            self._seal_ids(kind, payloads)
        self._held.clear()

    def _write(self, table: TableClient, ops: list[Op], *, last: bool = False) -> list[Op]:
        """Write `ops` once they are many (or `last`): transactions of several slices go out together, a few at a
        time; returns what is still to write."""
        if ops and (last or len(ops) >= _WRITE_AT or sum(len(op[1].get("z00", b"")) for op in ops) > _FLUSH // 4):
            self._storage._transact(table, ops)
            return []
        return ops

    def _last_places(self, lines: list[list[str]]) -> dict[str, str]:
        """id -> its last partition ("null" once removed), from a slice of id lines in the order put."""
        last: dict[str, str] = {}
        for some in lines:
            for text in some:
                id_json, part_json = text.split("\t")
                last[id_json] = part_json
        return last

    def _moved(self, kind: str) -> dict[str, str]:
        """The ids put in more than one partition, or removed, with their last partition (or "null")."""
        moved: dict[str, str] = {}
        for _, slice_lines in self._slices(kind, "i"):
            seen: dict[str, str] = {}
            for lines in slice_lines:
                for text in lines:
                    id_json, part_json = text.split("\t")
                    before = seen.get(id_json)
                    if part_json == _NULL or id_json in moved or (before is not None and before != part_json):
                        moved[id_json] = part_json
                    seen[id_json] = part_json
        return moved

    def _seal_partitions(self, kind: str, moved: dict[str, str], *, keep: bool) -> dict[str, str]:
        """Write the partition pages and the listing, a slice (one PartitionKey of rows) at a time, without the rows
        of an id put elsewhere later or removed; returns the rows' payloads by id when `keep`, and removes the
        blobs of rows replaced or removed since."""
        kind_key = table_key(kind)
        listing: list[Op] = []
        pages: list[Op] = []
        kept: dict[str, str] = {}
        stale: set[str] = set()
        in_use: set[str] = set()
        for _, slice_lines in self._slices(kind, "p"):
            rows: dict[str, dict[str, str]] = {}
            for lines in slice_lines:
                for text in lines:
                    id_json, part_json, payload = text.split("\t", 2)
                    if moved.get(id_json, part_json) != part_json:
                        if payload.startswith('"'):
                            stale.add(payload)
                        continue
                    earlier = rows.setdefault(part_json, {}).get(id_json)
                    if earlier is not None and earlier.startswith('"'):
                        stale.add(earlier)
                    rows[part_json][id_json] = payload
            for part_json, by_id in rows.items():
                partition = json.loads(part_json)
                partition_key = table_key(partition)
                texts = join_pages(f"{id_json}\t{by_id[id_json]}" for id_json in sorted(by_id))
                for n, text in enumerate(texts):
                    rk = f"{partition_key}!{kind_key}!p!{n:03d}"
                    page = new_entity(group_of(partition), rk, kind=kind, partition=partition, **page_properties(text))
                    pages.append(("create", page, {}))
                listing.append(("create", new_entity(*listing_key(kind_key, partition), partition=partition), {}))
                in_use.update(payload for payload in by_id.values() if payload.startswith('"'))
                if keep:
                    kept.update(by_id)
            pages = self._write(self.generation.rows, pages)
        self._write(self.generation.rows, pages, last=True)
        self._storage._transact(self.generation.listing, listing)
        self._storage._drop_blobs(json.loads(blob) for blob in stale - in_use)
        return kept

    def _seal_ids(self, kind: str, payloads: dict[str, str]) -> None:
        """Write the id pages, a slice (one PartitionKey of them) at a time: each id's last partition, with its
        row's payload when known and short (`id_payload`), else `ELSEWHERE`."""
        kind_key = table_key(kind)
        layout = IdLayout(kind_key, id_buckets_for(self._counts.get(kind, 0)))
        self.generation.listing.create_entity({"PartitionKey": "~", "RowKey": kind_key, "buckets": layout.buckets})
        ops: list[Op] = []
        for _, slice_lines in self._slices(kind, "i"):
            pages: dict[int, list[str]] = {}
            for id_json, part_json in self._last_places(slice_lines).items():
                if part_json != _NULL:
                    payload = id_payload(payloads[id_json]) if id_json in payloads else ELSEWHERE
                    line = f"{id_json}\t{part_json}\t{payload}"
                    pages.setdefault(layout.bucket(json.loads(id_json)), []).append(line)
            for bucket, lines in pages.items():
                pk, rk = layout.key(bucket)
                ops.append(("create", new_entity(pk, rk, **page_properties("\n".join(sorted(lines)))), {}))
            ops = self._write(self.generation.ids, ops)
        self._write(self.generation.ids, ops, last=True)
