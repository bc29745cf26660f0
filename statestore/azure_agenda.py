"""The Azure state store's agenda (`Agenda`): when each partition is next due, and the refs its last evaluation read.
The tables' layout: `statestore.azure_tables`.

A run saves the agenda of every partition it evaluated (2,000 at `ref` after a full sync), a tick marks the
partitions its changes touched due, asks which partitions depend on the records that changed, and lists those due
in its buckets. So everything is grouped by PartitionKey, not spread one partition (or one ref) per key:

- an entry sits in its partition's group of 64 buckets ("00" to "15", as the mirror's rows), RowKey
  `bucket!partition`; its refs are kept in it as JSON (in a blob when large), so that a save knows which refs rows
  to remove. A save reads the groups it touches (a query each) and writes a transaction per group (of up to 100);
- marking due adds a mark, `bucket!partition!m!moment`, beside the entry, written blind (no read, no etag): a
  partition is due at the earliest of its entry's due and its marks, so an earlier due always stays; a save
  replaces the entry and removes the marks it read, in the same transaction;
- a refs row sits in the group of the ref's own bucket, RowKey `ref!partition`: the partitions depending on a few
  refs are one query per group for up to seven refs, and a save writes a transaction per group.

Writes are not one transaction as in SQLite; they are ordered so that a crash leaves refs rows too many (a partition
found dependent that no longer is: evaluated once more), never too few: refs rows added, then the entries, then refs
rows no longer named removed.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection, Iterable
from datetime import datetime
from typing import Any

from azure.data.tables import TableEntity

from statestore.azure_pages import GROUPS, group_of
from statestore.azure_storage import (
    AzureStorage,
    Op,
    blobs_of,
    delete_op,
    key_after,
    new_entity,
    range_filters,
    table_key,
    upsert_op,
)
from statestore.port import AgendaEntry, bucket_of, iso_micro

__all__ = ["AzureAgenda"]

_NO_DUE = ""  # the `due` of an entry due only when its data changes (sorts before every moment)


def _entry_key(partition: str) -> tuple[str, str]:
    return group_of(partition), f"{bucket_of(partition):04d}!{table_key(partition)}"


def _ref_key(ref: str, partition: str) -> tuple[str, str]:
    return group_of(ref), f"{table_key(ref)}!{table_key(partition)}"


class AzureAgenda(AzureStorage):
    """Agenda entries and marks by bucket group, and refs rows by the ref's bucket group."""

    def _groups(self, groups: Collection[str]) -> list[TableEntity]:
        """Every entry and mark of these groups: a query each."""
        return self._query_all(self._agenda, [("PartitionKey eq @pk", {"pk": group}) for group in sorted(groups)])

    def _refs(self, entity: TableEntity | None) -> frozenset[str]:
        if entity is None:
            return frozenset()
        return frozenset(json.loads(self._text(entity, "refs") or "[]"))

    def save_agenda(self, entries: Iterable[AgendaEntry]) -> None:
        """Replace each entry's due moment and refs (the last entry of a partition wins) and remove its marks; an
        entry unchanged is not written, and of its refs rows only those added or no longer named are."""
        latest = {entry.partition: entry for entry in entries}
        if not latest:
            return
        old: dict[str, TableEntity] = {}
        marks: dict[str, list[TableEntity]] = {}
        for entity in self._groups({group_of(partition) for partition in latest}):
            partition = entity["partition"]
            if partition in latest:
                if entity.get("mark"):
                    marks.setdefault(partition, []).append(entity)
                else:
                    old[partition] = entity
        added: list[Op] = []
        written: list[Op] = []
        dropped: list[Op] = []
        stale: set[str] = set()
        for partition, entry in latest.items():
            previous = old.get(partition)
            before = self._refs(previous)
            pk, rk = _entry_key(partition)
            written += [delete_op(pk, mark["RowKey"]) for mark in marks.get(partition, [])]
            due = _NO_DUE if entry.due is None else iso_micro(entry.due)
            if entry.due is None and not entry.refs:
                if previous is not None:
                    written.append(delete_op(pk, rk))
                    stale |= blobs_of(previous)
            elif previous is None or previous.get("due") != due or before != entry.refs:
                saved = new_entity(pk, rk, partition=partition, due=due)
                text = json.dumps(sorted(entry.refs), ensure_ascii=False, separators=(",", ":"))
                self._stash(saved, "refs", text, f"agenda/{uuid.uuid4().hex}")
                written.append(upsert_op(saved))
                if previous is not None:
                    stale |= blobs_of(previous)
            added += [upsert_op(new_entity(*_ref_key(ref, partition), ref=ref, partition=partition))
                      for ref in entry.refs - before]  # fmt: skip
            dropped += [delete_op(*_ref_key(ref, partition)) for ref in before - entry.refs]
        self._transact(self._agenda_refs, added)
        self._transact(self._agenda, written)
        self._transact(self._agenda_refs, dropped)
        self._drop_blobs(stale)

    def mark_due(self, partitions: Iterable[str], at: datetime) -> None:
        """Make partitions due no later than `at`: a mark each, written without reading (a transaction per group)."""
        due = iso_micro(at)
        marks = []
        for partition in set(partitions):
            pk, rk = _entry_key(partition)
            marks.append(upsert_op(new_entity(pk, f"{rk}!m!{due}", partition=partition, due=due, mark=True)))
        self._transact(self._agenda, marks)

    def due_partitions(self, until: datetime, buckets: Collection[int] | None = None) -> list[str]:
        """Partitions with an entry or a mark due at or before `until`: a query per group (of the buckets wanted)."""
        wanted = None if buckets is None else set(buckets)
        groups = range(GROUPS) if wanted is None else sorted({bucket * GROUPS // 1024 for bucket in wanted})
        parameters: dict[str, Any] = {"none": _NO_DUE, "until": iso_micro(until)}
        filters = [
            ("PartitionKey eq @pk and due gt @none and due le @until", {**parameters, "pk": f"{group:02d}"})
            for group in groups
        ]
        found = {str(e["partition"]) for e in self._query_all(self._agenda, filters, select=["partition"])}
        return sorted(p for p in found if wanted is None or bucket_of(p) in wanted)

    def dependents(self, refs: Iterable[str]) -> set[str]:
        """Partitions whose saved entry names one of these refs: per group of refs, a query per seven."""
        by_group: dict[str, list[tuple[str, str]]] = {}
        for ref in set(refs):
            low = table_key(ref) + "!"
            by_group.setdefault(group_of(ref), []).append((low, key_after(low)))
        filters = [found for pk, ranges in by_group.items() for found in range_filters(pk, sorted(ranges))]
        return {str(e["partition"]) for e in self._query_all(self._agenda_refs, filters, select=["partition"])}

    def clear_agenda(self) -> None:
        """Forget every entry and mark: the entries, the refs rows and the blobs of large refs."""
        for table in (self._agenda, self._agenda_refs):
            keys = table.list_entities(select=["PartitionKey", "RowKey"])
            self._transact(table, (delete_op(e["PartitionKey"], e["RowKey"]) for e in keys))
        self._drop_blobs(blob.name for blob in self._container.list_blobs(name_starts_with="agenda/"))
