"""How the Azure mirror is read (`statestore.azure_mirror` has the role and the layout): rows by partition, id
pages, the listing, and the read-ahead of a batch.

A partition's rows are contiguous whatever their kind (RowKey `partition!kind!...`), so one range reads one kind of
a partition and another every kind of it; a query takes up to seven ranges of one group. Reading one kind of every
partition filters on the `kind` property, group by group.

The engine reads a batch of partitions a kind at a time, the same partitions each time. So when a read asks for
the partitions the previous one did, for another kind, it reads every kind of them at once, and keeps what it read
for the kinds the next calls ask for (each served once, until a write through this store, another set of
partitions, or `AHEAD_SECONDS`). A caller reading one kind of some partitions reads that kind only.

The engine also reads rows by id just before it puts (or removes) them. The id pages a read by id found, and those
a put wrote (with the etags the service gave them), are kept per kind for `AHEAD_SECONDS`, and a put or a removal
starts from them instead of reading them again: it rewrites every page it touches only if its etag is unchanged, so
a page changed meanwhile is read again, as on any conflict. (Reads always read.)
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableEntity

from statestore.azure_generations import Generation
from statestore.azure_pages import GROUPS, NEW_KIND_BUCKETS, IdLayout, group_of, page_text
from statestore.azure_storage import FILTER_KEYS, AzureStorage, key_after, key_filters, range_filters, table_key
from statestore.port import bucket_of

__all__ = ["AHEAD_SECONDS", "KEPT_LINES", "IdPage", "MirrorReads", "Rows", "Where", "blob_of", "id_of"]

AHEAD_SECONDS: Final = 10.0
KEPT_LINES: Final = 100_000  # id page lines kept per kind at most (a lookup of a few thousand rows keeps fewer)
Where = tuple[str, str]  # a row's partition and payload
Rows = dict[str, dict[str, dict[str, str]]]  # kind -> partition -> id -> payload (a row's data, or its blob's name)


def id_of(text: str) -> str:
    """An id from its JSON (most are plain: no escape to decode)."""
    return text[1:-1] if "\\" not in text else str(json.loads(text))


def blob_of(payload: str) -> str | None:
    """The blob a payload names (a JSON string), or None for data (a JSON object)."""
    return id_of(payload) if payload.startswith('"') else None


@dataclass(frozen=True)
class IdPage:
    """An id page as read, or as this process last wrote it: its lines (id -> (partition, payload)) and etag."""

    entries: dict[str, Where]
    etag: str


@dataclass
class _Ahead:
    """Rows read ahead for a set of partitions: the kinds not served yet."""

    partitions: frozenset[str]
    rows: Rows
    at: float
    served: set[str] = field(default_factory=set)


class MirrorReads(AzureStorage):
    """The mirror's reads (see the module docstring)."""

    _last_read: tuple[frozenset[str], str] | None = None
    _ahead: _Ahead | None = None
    _pages_seen: dict[str, tuple[int, float, dict[int, IdPage | None]]]  # kind key -> (generation, when, pages)
    _layouts: dict[tuple[int, str], IdLayout]  # (generation, kind key) -> its id pages: fixed for a generation

    def _id_layout(self, generation: Generation, kind: str, *, create: bool) -> IdLayout | None:
        """A kind's id pages in a generation: as a bulk load or the kind's first put recorded them (entity `~`,
        kind in the listing table), else, with `create`, NEW_KIND_BUCKETS recorded now (of two processes doing it
        at once, the first wins); None for a kind never put."""
        if not hasattr(self, "_layouts"):
            self._layouts = {}
        kind_key = table_key(kind)
        known = self._layouts.get((generation.number, kind_key))
        if known is not None:
            return known
        for _ in range(2):
            try:
                buckets = int(generation.listing.get_entity("~", kind_key)["buckets"])
            except ResourceNotFoundError:
                if not create:
                    return None
                try:
                    record = {"PartitionKey": "~", "RowKey": kind_key, "buckets": NEW_KIND_BUCKETS}
                    generation.listing.create_entity(record)
                except ResourceExistsError:
                    continue
                buckets = NEW_KIND_BUCKETS
            layout = IdLayout(kind_key, buckets)
            self._layouts[(generation.number, kind_key)] = layout
            return layout
        raise RuntimeError(f"the id pages of {kind!r}: their record vanished")

    def _forget_reads(self) -> None:
        """Drop what was read ahead (a write through this store may have changed it)."""
        self._last_read, self._ahead = None, None

    def _pages(
        self, generation: Generation, layout: IdLayout, buckets: Collection[int], *, fresh: bool = False
    ) -> dict[int, IdPage | None]:
        """The id pages of these buckets (None for a bucket without one), read now (and kept); unless `fresh`, those
        kept from a recent read or write of the kind are taken as they are (for writes: their etags are checked)."""
        seen: dict[int, IdPage | None] = {} if fresh else self._seen_pages(generation, layout.kind_key)
        known = {bucket: seen[bucket] for bucket in set(buckets) & seen.keys()}
        missing = set(buckets) - known.keys()
        if missing:
            found = self._id_pages(generation, layout, missing)
            read = {bucket: found.get(bucket) for bucket in missing}
            self._keep_pages(generation, layout.kind_key, read)
            known |= read
        return known

    def _seen_pages(self, generation: Generation, kind_key: str) -> dict[int, IdPage | None]:
        if not hasattr(self, "_pages_seen"):
            self._pages_seen = {}
        seen = self._pages_seen.get(kind_key)
        if seen is None or seen[0] != generation.number or time.monotonic() - seen[1] > AHEAD_SECONDS:
            return {}
        return seen[2]

    def _keep_pages(self, generation: Generation, kind_key: str, pages: dict[int, IdPage | None]) -> None:
        """Keep these id pages (as read, or as just written) for the next put or removal of the kind, beside those
        kept already unless that makes more than KEPT_LINES lines."""
        kept = {**self._seen_pages(generation, kind_key), **pages}
        if sum(len(page.entries) for page in kept.values() if page is not None) > KEPT_LINES:
            kept = dict(pages)
        self._pages_seen[kind_key] = (generation.number, time.monotonic(), kept)

    def _batch_rows(self, generation: Generation, kind: str, partitions: list[str]) -> dict[str, dict[str, str]]:
        """One kind's rows in these partitions, read ahead with the other kinds when the previous read asked for
        the same partitions (see the module docstring)."""
        key = frozenset(partitions)
        ahead = self._ahead
        if (
            ahead is not None
            and ahead.partitions == key
            and kind not in ahead.served
            and time.monotonic() - ahead.at < AHEAD_SECONDS
        ):
            ahead.served.add(kind)
            found = ahead.rows.pop(kind, {})
        elif self._last_read is not None and self._last_read[0] == key and self._last_read[1] != kind:
            everything = self._read(generation, None, partitions)
            found = everything.pop(kind, {})
            self._ahead = _Ahead(key, everything, time.monotonic(), {kind})
        else:
            found = self._read(generation, kind, partitions).get(kind, {})
        self._last_read = (key, kind)
        return found

    def _read(self, generation: Generation, kind: str | None, partitions: Collection[str] | None) -> Rows:
        """The rows of one kind (every kind, for None) in these partitions (every partition, for None)."""
        filters: list[tuple[str, dict[str, Any]]] = []
        if partitions is None:
            assert kind is not None, "every kind of every partition is never read at once"
            for group in range(GROUPS):
                filters.append(("PartitionKey eq @pk and kind eq @kind", {"pk": f"{group:02d}", "kind": kind}))
        else:
            suffix = "" if kind is None else f"{table_key(kind)}!"
            by_group: dict[str, list[tuple[str, str]]] = {}
            for partition in partitions:
                low = f"{table_key(partition)}!{suffix}"
                by_group.setdefault(group_of(partition), []).append((low, key_after(low)))
            for pk, ranges in by_group.items():
                filters += range_filters(pk, sorted(set(ranges)))
        return self._merge(self._query_all(generation.rows, filters), partitions)

    @staticmethod
    def _merge(entities: list[TableEntity], partitions: Collection[str] | None) -> Rows:
        """Pages, then the row entities over them (by partition and kind, in RowKey order: "p" sorts before "r"),
        without the partitions left empty."""
        wanted = None if partitions is None else set(partitions)
        rows: Rows = {}
        for entity in sorted(entities, key=lambda e: (str(e["PartitionKey"]), str(e["RowKey"]))):
            partition = str(entity["partition"])
            if wanted is not None and partition not in wanted:
                continue
            found = rows.setdefault(str(entity["kind"]), {}).setdefault(partition, {})
            if str(entity["RowKey"]).split("!")[2] == "p":  # partition!kind!p!n: no key holds a "!"
                text = page_text(entity)
                for line in text.split("\n") if text else ():
                    id_json, payload = line.split("\t", 1)
                    found[id_of(id_json)] = payload
            elif entity.get("gone"):
                found.pop(entity["id"], None)
            else:
                found[entity["id"]] = entity.get("data") or json.dumps(entity["data_blob"])
        kept = {kind: {p: ids for p, ids in by_partition.items() if ids} for kind, by_partition in rows.items()}
        return {kind: by_partition for kind, by_partition in kept.items() if by_partition}

    def _id_pages(self, generation: Generation, layout: IdLayout, buckets: Iterable[int]) -> dict[int, IdPage]:
        """The id pages of these buckets that exist (and maybe others): a query per 14 of a PartitionKey, or one for
        all of it when a quarter of its pages (and more than 14) are wanted."""
        by_pk: dict[str, list[str]] = {}
        for bucket in sorted(set(buckets)):
            pk, rk = layout.key(bucket)
            by_pk.setdefault(pk, []).append(rk)
        per_pk = layout.buckets // GROUPS
        filters: list[tuple[str, dict[str, Any]]] = []
        for pk, rks in by_pk.items():
            if len(rks) > FILTER_KEYS and 4 * len(rks) >= per_pk:
                filters.append(("PartitionKey eq @pk", {"pk": pk}))
            else:
                filters += key_filters(pk, rks)
        return {int(e["RowKey"]): self._id_page(e) for e in self._query_all(generation.ids, filters)}

    @staticmethod
    def _id_page(entity: TableEntity) -> IdPage:
        text = page_text(entity)
        entries: dict[str, Where] = {}
        for line in text.split("\n") if text else ():
            id_json, part_json, payload = line.split("\t", 2)
            entries[id_of(id_json)] = (id_of(part_json), payload)
        return IdPage(entries, str(entity.metadata["etag"]))

    def _listed(self, generation: Generation, kinds: list[str], buckets: list[int] | None) -> list[str]:
        """The partitions the listing has for these kinds (in `buckets`): a query per PartitionKey holding a bucket
        wanted, or per seven of them when that PartitionKey holds only a few."""
        filters: list[tuple[str, dict[str, Any]]] = []
        groups: dict[int, list[int]] = {}
        for bucket in range(1024) if buckets is None else buckets:
            groups.setdefault(bucket // 64, []).append(bucket)
        for kind in kinds:
            for group, members in groups.items():
                pk = f"{table_key(kind)}!{group:02d}"
                if len(members) > 8:
                    filters.append(("PartitionKey eq @pk", {"pk": pk}))
                else:
                    filters += range_filters(pk, [(f"{b:04d}!", f'{b:04d}"') for b in members])
        found = {str(e["partition"]) for e in self._query_all(generation.listing, filters, ["partition"])}
        wanted = None if buckets is None else set(buckets)
        return sorted(p for p in found if wanted is None or bucket_of(p) in wanted)
