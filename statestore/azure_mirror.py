"""The Azure state store's mirror (`MirrorStore`), shaped by how the engine reads and writes it.

The engine reads the mirror by batches of partitions (a kind at a time), by id (a chunk's rows before it puts them,
the leads of scores, the records a batch reaches in other partitions), and lists the partitions of a shard's
buckets; it writes it in bulk after emptying it (a full sync: `statestore.azure_bulk`), else a few thousand rows at
a time (a tick's changes, the scores a run wrote coming back with their ids). A generation
(`statestore.azure_generations`) holds, as the layout table in `statestore.azure_tables` shows:

- rows by partition (`mp`): PartitionKey the partition's group of 64 buckets, so that a chunk touching hundreds of
  partitions is a few transactions; under it, for a partition and a kind, the pages a bulk load wrote (`...!p!n`,
  never changed afterwards) and one entity per row put since (`...!r!id`: the row, or `gone` for a row that moved
  away or was removed), which replaces the page's line of the same id. Reads: `statestore.azure_mirror_reads`;
- id pages (`mi`): each row again, by id (its partition and data, or its blob's name; a longer row only points to
  its partition), in pages of about 64 rows keyed by a hash of the id, 16 PartitionKeys per kind: a read by id is a
  query per 14 pages, with no second step; a put rewrites the pages it touched under their etags (read again on a
  conflict);
- the listing (`ml`): a kind's (bucket, partition) pairs, 16 PartitionKeys per kind, so that a shard lists only its
  buckets. A pair is added when a row lands in a new partition and never removed: a partition a move or a removal
  left empty stays listed until the next refill (the engine evaluates it and finds nothing). Removing it would cost
  a read of the partition after every move or removal, and the engine removes and puts back every score it wrote.

A put writes the rows first, then the id pages, then the `gone` entities of the rows that moved: a crash in between
leaves a row in two partitions (until it is put again), never in none. Large rows sit in blobs named by generation,
kind and id, so that a put replaces its blob in place.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from functools import partial
from typing import Final, TypeVar

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError
from azure.data.tables import UpdateMode

from statestore.azure_batch import TransactionFailed
from statestore.azure_bulk import BulkLoad
from statestore.azure_generations import Generation, Generations
from statestore.azure_mirror_reads import IdPage, MirrorReads, Where, blob_of
from statestore.azure_pages import (
    DECODED,
    ELSEWHERE,
    ROW_INLINE,
    IdLayout,
    blob_text,
    dumps,
    group_of,
    id_payload,
    listing_key,
    page_properties,
    quote,
    rows_data,
)
from statestore.azure_storage import (
    MAX_TRIES,
    Op,
    digest,
    new_entity,
    table_key,
    upsert_op,
)
from statestore.port import MirrorRow

__all__ = ["IDLE_SECONDS", "AzureMirror"]

log = logging.getLogger("abm.state")

_T = TypeVar("_T")
IDLE_SECONDS: Final = 600.0  # a bulk load untouched this long is taken for abandoned


def _gone(error: Exception) -> bool:
    """A table of a generation deleted since its number was read (another process published a newer one)."""
    code = getattr(error, "error_code", None) or getattr(error, "code", None)
    return getattr(error, "status_code", None) == 404 and code == "TableNotFound"


def _row_key(kind: str, partition: str, id: str) -> str:
    return f"{table_key(partition)}!{table_key(kind)}!r!{table_key(id)}"


class AzureMirror(MirrorReads):
    """Mirror rows by partition, by id, and the listing of partitions, in generations (see the module docstring);
    a bulk load after `clear_mirror`."""

    def __init__(self, connection_string: str, prefix: str) -> None:
        super().__init__(connection_string, prefix)
        self._generations = Generations(self._service, self._checkpoints, self._container, prefix)
        self._bulk: BulkLoad | None = None

    def close(self) -> None:
        self._settle_mirror()
        self._generations.close()
        super().close()

    def _bulk_load(self) -> BulkLoad | None:
        """This process's bulk load, if one is under way; one left untouched for IDLE_SECONDS (a sync that failed
        while refilling, in a process that lives on) is dropped, and the mirror stays the one before."""
        bulk = self._bulk
        if bulk is not None and time.monotonic() - bulk.touched > IDLE_SECONDS:
            log.warning("an unfinished refill of the mirror was dropped: the mirror is the one before it")
            self._bulk = None
            self._generations.drop(bulk.generation.number)
        return self._bulk

    def _settle_mirror(self) -> None:
        """Seal and publish this process's bulk load, if one is under way."""
        if self._bulk_load() is not None:
            self._forget_reads()
            bulk, self._bulk = self._bulk, None
            assert bulk is not None
            bulk.seal()
            self._generations.drop_log(bulk.generation)
            self._generations.publish(bulk.generation)

    def _on_current(self, work: Callable[[Generation], _T]) -> _T:
        """`work` on the current generation; once more on the one current then if its tables went meanwhile."""
        try:
            return work(self._generations.current())
        except (HttpResponseError, TransactionFailed) as error:
            if not _gone(error):
                raise
        return work(self._generations.current())

    # ---- the port ----

    def put_mirror(self, rows: Iterable[MirrorRow]) -> None:
        """Insert or replace rows by (kind, id) (the last of an id wins); a row whose partition changed moves."""
        latest: dict[str, dict[str, MirrorRow]] = {}
        for row in rows:
            latest.setdefault(row.kind, {})[row.id] = row
        self._forget_reads()
        bulk = self._bulk_load()
        if bulk is not None:
            for kind, by_id in latest.items():
                bulk.put(kind, list(by_id.values()))
            return
        for kind, by_id in latest.items():
            self._on_current(partial(self._put, kind=kind, by_id=by_id))

    def delete_mirror(self, kind: str, ids: Iterable[str]) -> None:
        wanted = sorted(set(ids))
        if not wanted:
            return
        self._forget_reads()
        bulk = self._bulk_load()
        if bulk is not None:
            bulk.delete(kind, wanted)
            return
        self._on_current(lambda generation: self._delete(generation, kind, wanted))

    def mirror(self, kind: str, partitions: Iterable[str] | None = None) -> Iterator[MirrorRow]:
        """The rows of one kind, in the given partitions (all when None), in (partition, id) order: read now,
        decoded as they are taken (`_decoded`)."""
        self._settle_mirror()
        wanted = None if partitions is None else sorted(set(partitions))
        if wanted is None:
            found = self._on_current(lambda generation: self._read(generation, kind, None).get(kind, {}))
        elif wanted:
            found = self._on_current(lambda generation: self._batch_rows(generation, kind, wanted))
        else:
            return iter(())
        for rows in found.values():  # blobs read now, with the pages: only the decoding waits for the caller
            for id, payload in rows.items():
                if payload.startswith('"'):
                    rows[id] = blob_text(self._container, payload)
        return self._decoded(kind, found)

    def _decoded(self, kind: str, found: dict[str, dict[str, str]]) -> Iterator[MirrorRow]:
        """The rows read, in (partition, id) order, decoded DECODED at a time as they are taken, each payload
        dropped once decoded: a caller mapping rows as they come holds its records and a chunk of rows, and one
        keeping every row holds them once (as data), not also as text."""
        chunk: list[tuple[str, str, str]] = []
        for partition in sorted(found):
            rows = found.pop(partition)
            for id in sorted(rows):
                chunk.append((partition, id, rows.pop(id)))
                if len(chunk) == DECODED:
                    yield from self._rows(kind, chunk)
                    chunk = []
        yield from self._rows(kind, chunk)

    def _rows(self, kind: str, chunk: list[tuple[str, str, str]]) -> list[MirrorRow]:
        data = rows_data(self._container, [payload for _, _, payload in chunk])
        return [MirrorRow(kind, id, partition, row) for (partition, id, _), row in zip(chunk, data, strict=True)]

    def mirror_rows(self, kind: str, ids: Iterable[str]) -> dict[str, MirrorRow]:
        """The rows of one kind with these ids, by id, from their id pages."""
        wanted = sorted(set(ids))
        if not wanted:
            return {}
        bulk = self._bulk_load()
        if bulk is not None:
            return bulk.rows(kind, wanted)

        def read(generation: Generation) -> dict[str, MirrorRow]:
            layout = self._id_layout(generation, kind, create=False)
            if layout is None:
                return {}
            where = self._where(self._pages(generation, layout, {layout.bucket(id) for id in wanted}, fresh=True))
            found = {id: where[id] for id in wanted if id in where}
            elsewhere = {partition for partition, payload in found.values() if payload == ELSEWHERE}
            rows = self._read(generation, kind, elsewhere).get(kind, {}) if elsewhere else {}
            payloads = {
                id: rows.get(partition, {}).get(id) if payload == ELSEWHERE else payload
                for id, (partition, payload) in found.items()
            }
            # None: moved or removed between the two reads
            present = {id: payload for id, payload in payloads.items() if payload is not None}
            data = rows_data(self._container, list(present.values()))
            return {id: MirrorRow(kind, id, found[id][0], row) for id, row in zip(present, data, strict=True)}

        return self._on_current(read)

    def mirror_partitions(self, kinds: Collection[str], buckets: Collection[int] | None = None) -> list[str]:
        """The distinct partitions holding rows of these kinds (in `buckets`), sorted, from the listing."""
        self._settle_mirror()
        wanted = None if buckets is None else sorted(set(buckets))
        if not kinds or wanted == []:
            return []
        return self._on_current(lambda generation: self._listed(generation, sorted(set(kinds)), wanted))

    def clear_mirror(self) -> None:
        """Empty the mirror: a new generation, which this process fills in bulk (`statestore.azure_bulk`)."""
        self._forget_reads()
        if self._bulk is not None:
            self._generations.drop(self._bulk.generation.number)
        self._bulk = None
        self._bulk = BulkLoad(self, self._generations.begin())

    # ---- writing ----

    @staticmethod
    def _where(pages: Mapping[int, IdPage | None]) -> dict[str, Where]:
        where: dict[str, Where] = {}
        for page in pages.values():
            if page is not None:
                where |= page.entries
        return where

    def _put(self, generation: Generation, kind: str, by_id: dict[str, MirrorRow]) -> None:
        """Rows, listing, id pages (from a recent read by id where there was one), then `gone` in old partitions."""
        layout = self._id_layout(generation, kind, create=True)
        assert layout is not None
        pages = self._pages(generation, layout, {layout.bucket(id) for id in by_id})
        before = self._where(pages)
        rows: list[Op] = []
        listed: list[Op] = []
        after: dict[str, Where] = {}
        for id, row in by_id.items():
            stored = new_entity(group_of(row.partition), _row_key(kind, row.partition, id), kind=kind, id=id,
                                partition=row.partition)  # fmt: skip
            payload = dumps(row.data)
            if len(payload) > ROW_INLINE:
                blob = f"{generation.blobs}{digest(kind, id)}"
                self._container.upload_blob(blob, payload.encode(), overwrite=True)
                stored["data_blob"], payload = blob, quote(blob)
            else:
                stored["data"] = payload
            # A row new to the mirror is inserted (cheaper than a replace on Azurite), unless its partition still
            # has the entity of an earlier one (removed since): then replaced, as every other row.
            rows.append(("create", stored, {}) if id not in before else upsert_op(stored))
            if not self._in_place(before.get(id), row.partition):
                listed.append(self._listing_op(kind, row.partition))
            after[id] = (row.partition, id_payload(payload))
        taken = self._transact(generation.rows, rows, conflicts=True)
        self._transact(generation.rows, [upsert_op(op[1]) for op in taken])
        self._transact(generation.listing, listed)
        replaced = self._update_ids(generation, layout, after, pages)
        moved = {id: old for id, old in replaced.items() if old is not None and old[0] != by_id[id].partition}
        unseen = {  # rows a stale page showed in place already, so not listed above: listed now
            by_id[id].partition
            for id, old in replaced.items()
            if self._in_place(before.get(id), by_id[id].partition) and not self._in_place(old, by_id[id].partition)
        }
        self._transact(generation.listing, [self._listing_op(kind, partition) for partition in unseen])
        self._remove(generation, kind, moved)
        new_blobs = {blob_of(payload) for _, payload in after.values()}
        self._drop_blobs(
            stale for old in replaced.values() if old and (stale := blob_of(old[1])) and stale not in new_blobs
        )

    @staticmethod
    def _in_place(where: Where | None, partition: str) -> bool:
        return where is not None and where[0] == partition

    @staticmethod
    def _listing_op(kind: str, partition: str) -> Op:
        return upsert_op(new_entity(*listing_key(table_key(kind), partition), partition=partition))

    def _delete(self, generation: Generation, kind: str, ids: list[str]) -> None:
        """`gone` in the rows' partitions, then the id pages (each rewritten under its etag, so that a page kept from
        a read and changed since is read again), then the blobs."""
        layout = self._id_layout(generation, kind, create=False)
        if layout is None:
            return
        pages = self._pages(generation, layout, {layout.bucket(id) for id in ids})
        absent = {bucket for bucket, page in pages.items() if page is None}  # no etag to check them by: read again
        if absent:
            found = self._id_pages(generation, layout, absent)
            pages |= {bucket: found.get(bucket) for bucket in absent}
        entries = self._where(pages)
        present = {id: entries[id] for id in ids if id in entries}
        self._remove(generation, kind, present)
        replaced = self._update_ids(generation, layout, dict.fromkeys(ids), pages)
        late = {id: old for id, old in replaced.items() if old is not None and old != present.get(id)}
        self._remove(generation, kind, late)
        self._drop_blobs(blob for old in [*present.values(), *late.values()] if (blob := blob_of(old[1])))

    def _remove(self, generation: Generation, kind: str, where: dict[str, Where]) -> None:
        """Mark rows gone from the partitions they were in (the listing keeps those partitions: see the module
        docstring)."""
        self._transact(
            generation.rows,
            (
                upsert_op(new_entity(group_of(p), _row_key(kind, p, id), kind=kind, id=id, partition=p, gone=True))
                for id, (p, _) in where.items()
            ),
        )

    def _update_ids(
        self,
        generation: Generation,
        layout: IdLayout,
        changes: Mapping[str, Where | None],
        pages: Mapping[int, IdPage | None],
    ) -> dict[str, Where | None]:
        """Set (or, for None, remove) ids' lines, every page touched rewritten only if unchanged since read (else
        read again); the pages written are kept for the next put or removal. Returns each id's line in the page
        version replaced."""
        replaced: dict[str, Where | None] = {}
        pending = dict(changes)
        current = dict(pages)
        for _ in range(MAX_TRIES):
            by_bucket: dict[int, list[str]] = {}
            for id in pending:
                by_bucket.setdefault(layout.bucket(id), []).append(id)
            ops: list[Op] = []
            seen: dict[str, Where | None] = {}
            written: dict[int, dict[str, Where]] = {}
            for bucket, ids in by_bucket.items():
                page = current.get(bucket)
                entries = {} if page is None else dict(page.entries)
                for id in ids:
                    seen[id] = entries.get(id)
                    change = pending[id]
                    if change is None:
                        entries.pop(id, None)
                    else:
                        entries[id] = change
                op = self._page_op(layout, bucket, page, entries)
                if op is not None:
                    ops.append(op)
                    written[bucket] = entries
            etags: dict[tuple[str, str], str | None] = {}
            failed = {int(op[1]["RowKey"]) for op in self._transact(generation.ids, ops, conflicts=True, etags=etags)}
            self._keep_pages(generation, layout.kind_key, {
                bucket: IdPage(entries, etag) if entries and (etag := etags.get(layout.key(bucket))) else None
                for bucket, entries in written.items()
                if bucket not in failed
            })  # fmt: skip
            replaced |= {id: old for id, old in seen.items() if layout.bucket(id) not in failed}
            if not failed:
                return replaced
            pending = {id: change for id, change in pending.items() if layout.bucket(id) in failed}
            fresh = self._id_pages(generation, layout, failed)
            current |= {bucket: fresh.get(bucket) for bucket in failed}
        raise RuntimeError(f"mirror ids of {layout.kind_key!r}: still contended after {MAX_TRIES} tries")

    @staticmethod
    def _page_op(layout: IdLayout, bucket: int, page: IdPage | None, entries: dict[str, Where]) -> Op | None:
        """The write of an id page with these lines: created, replaced or deleted, under the etag it was read with."""
        pk, rk = layout.key(bucket)
        text = "\n".join(f"{quote(id)}\t{quote(entries[id][0])}\t{entries[id][1]}" for id in sorted(entries))
        if page is None:
            return ("create", new_entity(pk, rk, **page_properties(text)), {}) if entries else None
        condition = {"etag": page.etag, "match_condition": MatchConditions.IfNotModified}
        if not entries:
            return ("delete", new_entity(pk, rk), condition)
        return ("update", new_entity(pk, rk, **page_properties(text)), {"mode": UpdateMode.REPLACE, **condition})
