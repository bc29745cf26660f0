"""The Azure state store's timeline (`Timeline`): each partition's events packed into a few entities, and per group
a record of the event types it holds. The tables' layout: `statestore.azure_tables`.

A run saves the events of 250 partitions at a time (every partition after `clear_timeline` on a full sync, a few
hundred on a tick); the insights read the whole tenant's events (of a few types, a span, some accounts or contacts) and
the types on every call. So, in the table `timeline`:

- a partition's events sit in its group of 64 buckets ("00" to "15", as the mirror's rows and the agenda), RowKey
  `partition!nnnn`, in chunks of up to `PAGE_LIMIT` characters (one chunk for all but the largest partitions),
  compressed (`statestore.azure_pages`). A chunk's text is JSON `[strings, rows]`: each distinct string once, and a
  row per event, `[microseconds since 1970, type, milestone, source, account, contact, opportunity, content type]`
  with strings as their index (or null). Account and contact ids repeat, so chunks are small (about 40 bytes an
  event compressed, 18 MB for the ref tenant) and decoding shares the strings. Beside the data: the chunk's
  `partition`, its `types` (JSON), and flags `content` (an event has a content type) and `foreign` (an event's
  account is not the partition);
- each group's types record (RowKey `~types`, which no chunk's is: those hold a "!") lists every type of its chunks.

A save reads the heads of the groups it touches (keys and types, no data: a query per group, or one scan of every
head when it touches many groups), then writes per group the chunks, the deletion of chunks left over from a
larger earlier version, and the group's types record recomputed, last, under the etag it was read with (created if
there was none): a transaction per group when they fit (100 entities, 2 MiB), which saves 250 partitions of the ref
tenant in about 20 requests. A group whose record changed meanwhile (another process saved partitions of it) is read
and written again, so the record stays exact. (A group's writes too large for one transaction, only with partitions
of many thousand events, are not atomic: a crash between them leaves a mix until the partition is saved again.)

Reading the timeline is a query per group (a few in parallel); chunks without a wanted type are skipped undecoded,
rows are filtered as `TimelineQuery.matches` does before an `Event` is built, and each chunk's events (saved in
order) are merged in the stream's order, so that little more than the events returned is held. A few accounts'
events are a query per four for their partitions' chunks, the first also for every chunk flagged `foreign` (an
event's account is not always its partition). The types are one query for the 16 records.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from azure.core import MatchConditions
from azure.data.tables import TableEntity, UpdateMode

from insights.timeline import Event, event_order
from statestore.azure_pages import GROUPS, PAGE_LIMIT, dumps, group_of, page_properties, page_text, quote
from statestore.azure_storage import (
    MAX_TRIES,
    PARALLEL,
    AzureStorage,
    Op,
    delete_op,
    in_parallel,
    key_after,
    new_entity,
    table_key,
    upsert_op,
)
from statestore.port import TimelineQuery

__all__ = ["AzureTimeline"]

_TYPES: Final = "~types"  # RowKey of a group's types record
_TYPES_LIMIT: Final = 8_000  # characters of a chunk's `types` past which the next event starts a new chunk
_ROW_MAX: Final = 200  # characters a row's indices and moment take at most
_HEADS: Final = ["PartitionKey", "RowKey", "types"]
_FEW_ACCOUNTS: Final = 8  # accounts a read asks for by key (more: a query per group, filtered)
_PER_QUERY: Final = 4  # accounts per query (3 comparisons each, within the service's 15 per filter)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO: Final = timedelta(microseconds=1)
Filter = tuple[str, dict[str, Any]]


def _micros(at: datetime) -> int:
    return (at - _EPOCH) // _MICRO


class _Chunk:
    """One chunk being packed: its distinct strings (by index), rows and types."""

    def __init__(self) -> None:
        self.strings: dict[str, int] = {}
        self.quoted: list[str] = []
        self.rows: list[str] = []
        self.types: set[str] = set()
        self.size = 6  # characters of the text: "[[" "],[" "]]"
        self.types_size = 2
        self.content = self.foreign = False

    def fits(self, new: Mapping[str, str], kind: str) -> bool:
        """Whether an event with these new strings (value -> JSON) and type still fits (an empty chunk takes any)."""
        grows = sum(len(text) + 1 for text in new.values()) + _ROW_MAX
        typed = 0 if kind in self.types else len(quote(kind)) + 1
        return not self.rows or (self.size + grows <= PAGE_LIMIT and self.types_size + typed <= _TYPES_LIMIT)

    def add(self, event: Event, new: Mapping[str, str], partition: str) -> None:
        for value, text in new.items():
            self.strings[value] = len(self.quoted)
            self.quoted.append(text)
            self.size += len(text) + 1
        if event.type not in self.types:
            self.types.add(event.type)
            self.types_size += len(quote(event.type)) + 1
        fields = (event.contact_id, event.opportunity_id, event.content_type)
        a, c, o, ct = ("null" if value is None else str(self.strings[value]) for value in (event.account_id, *fields))
        kind, source = self.strings[event.type], self.strings[event.source]
        row = f"[{_micros(event.at)},{kind},{int(event.milestone)},{source},{a},{c},{o},{ct}]"
        self.rows.append(row)
        self.size += len(row) + 1
        self.content |= bool(event.content_type)
        self.foreign |= event.account_id is not None and event.account_id != partition

    def properties(self, partition: str) -> dict[str, Any]:
        text = f"[[{','.join(self.quoted)}],[{','.join(self.rows)}]]"
        flags = {"content": self.content or None, "foreign": self.foreign or None}  # None: left out
        return {"partition": partition, "types": dumps(sorted(self.types)), **flags, **page_properties(text)}


def _pack(partition: str, events: Sequence[Event]) -> list[dict[str, Any]]:
    """A partition's events, in the stream's order, as its chunks' properties (none for no events)."""
    chunks: list[dict[str, Any]] = []
    chunk = _Chunk()
    for event in sorted(events, key=event_order):
        values = (event.type, event.source, event.account_id, event.contact_id, event.opportunity_id)
        new = {v: quote(v) for v in (*values, event.content_type) if v is not None and v not in chunk.strings}
        if not chunk.fits(new, event.type):
            chunks.append(chunk.properties(partition))
            chunk = _Chunk()
            new = {v: quote(v) for v in (*values, event.content_type) if v is not None}
        chunk.add(event, new, partition)
    if chunk.rows:
        chunks.append(chunk.properties(partition))
    return chunks


def _unpack(text: str, query: TimelineQuery) -> list[Event]:
    """A chunk's events that `query` reads, in the order saved: rows are filtered on their indices and moment before
    an `Event` is built (kinds, accounts and contacts as sets of indices), and then by `TimelineQuery.matches`."""
    strings, rows = json.loads(text)

    def indices(wanted: frozenset[str] | None) -> set[int] | None:
        return None if wanted is None else {i for i, s in enumerate(strings) if s in wanted}

    types, contents = indices(query.types), indices(query.content_types)
    accounts, contacts = indices(query.accounts), indices(query.contacts)
    if accounts == set() or contacts == set():
        return []
    kinds = query.by_kind()
    typed = query.content_typed
    start = None if query.start is None else _micros(query.start)
    end = None if query.end is None else _micros(query.end)
    events: list[Event] = []
    for at, t, m, s, a, c, o, ct in rows:
        if (
            (
                kinds
                and not (types is not None and t in types)
                and not (ct is not None and ((typed and strings[ct]) or (contents is not None and ct in contents)))
            )
            or (start is not None and at < start)
            or (end is not None and at >= end)
            or (accounts is not None and a not in accounts)
            or (contacts is not None and c not in contacts)
        ):
            continue
        event = Event(
            _EPOCH + timedelta(microseconds=at),
            strings[t],
            bool(m),
            strings[s],
            None if a is None else strings[a],
            None if c is None else strings[c],
            None if o is None else strings[o],
            None if ct is None else strings[ct],
        )
        if query.matches(event):
            events.append(event)
    return events


def _skipped(entity: TableEntity, query: TimelineQuery) -> bool:
    """Whether a chunk (or the types record) holds no event `query` reads, judged without decoding it."""
    if entity["RowKey"] == _TYPES:
        return True
    if not query.by_kind() or ((query.content_typed or query.content_types is not None) and entity.get("content")):
        return False
    return (query.types or frozenset()).isdisjoint(json.loads(entity["types"]))


def _group_ops(group: str, saved: Mapping[str, list[dict[str, Any]]], heads: Iterable[TableEntity]) -> list[Op]:
    """A group's writes: each saved partition's chunks and the deletion of its chunks beyond them, then the group's
    types record (from the heads read and the chunks written) under the etag it was read with; none if nothing
    changes."""
    keys = {table_key(partition): partition for partition in saved}
    types: set[str] = set()
    record: TableEntity | None = None
    leftover: dict[str, list[str]] = {}
    for head in heads:
        rk = str(head["RowKey"])
        key, _, number = rk.rpartition("!")
        if rk == _TYPES:
            record = head
        elif key not in keys:
            types.update(json.loads(head["types"]))
        elif int(number) >= len(saved[keys[key]]):
            leftover.setdefault(key, []).append(rk)
    ops: list[Op] = []
    for key, partition in keys.items():
        for n, properties in enumerate(saved[partition]):
            ops.append(upsert_op(new_entity(group, f"{key}!{n:04d}", **properties)))
            types.update(json.loads(properties["types"]))
        ops += [delete_op(group, rk) for rk in leftover.get(key, [])]
    if not ops:
        return []
    kept = new_entity(group, _TYPES, **page_properties(dumps(sorted(types))))
    if record is None:
        return [*ops, ("create", kept, {})] if types else ops
    condition = {"etag": record.metadata["etag"], "match_condition": MatchConditions.IfNotModified}
    if not types:
        return [*ops, ("delete", new_entity(group, _TYPES), condition)]
    return [*ops, ("update", kept, {"mode": UpdateMode.REPLACE, **condition})]


class AzureTimeline(AzureStorage):
    """Each partition's events in compressed chunks by bucket group, and a types record per group."""

    def _heads(self, groups: Sequence[str]) -> dict[str, list[TableEntity]]:
        """The heads (keys and types, no data) of every chunk and types record of these groups: a query per group,
        or one scan of the table's heads when more groups than run at once."""
        found: dict[str, list[TableEntity]] = {group: [] for group in groups}
        if len(groups) > PARALLEL:
            heads: Iterable[TableEntity] = self._timeline.list_entities(select=_HEADS)
        else:
            filters = [("PartitionKey eq @pk", {"pk": group}) for group in groups]
            heads = self._query_all(self._timeline, filters, _HEADS)
        for head in heads:
            if head["PartitionKey"] in found:
                found[head["PartitionKey"]].append(head)
        return found

    def save_timeline(self, partitions: Mapping[str, Sequence[Event]]) -> None:
        """Replace each partition's chunks, a transaction per group when they fit (see the module docstring); the
        groups whose types record changed meanwhile are read and written again."""
        packed: dict[str, dict[str, list[dict[str, Any]]]] = {}
        for partition, events in partitions.items():
            packed.setdefault(group_of(partition), {})[partition] = _pack(partition, events)
        pending = sorted(packed)
        for _ in range(MAX_TRIES):
            heads = self._heads(pending)
            ops = [op for group in pending for op in _group_ops(group, packed[group], heads[group])]
            failed = self._transact(self._timeline, ops, conflicts=True)
            pending = sorted({op[1]["PartitionKey"] for op in failed})
            if not pending:
                return
        raise RuntimeError(f"timeline: groups {pending} still contended after {MAX_TRIES} tries")

    def timeline(self, query: TimelineQuery = TimelineQuery()) -> list[Event]:  # noqa: B008 (frozen, shared)
        """The events `query` reads: a query per group, or for a few accounts a query per four (see the module
        docstring)."""
        filters: list[Filter] = [("PartitionKey eq @pk", {"pk": f"{group:02d}"}) for group in range(GROUPS)]
        if query.accounts is not None and len(query.accounts) <= _FEW_ACCOUNTS:
            wanted = sorted(query.accounts)
            filters = []
            for start in range(0, max(len(wanted), 1), _PER_QUERY):  # the first also every chunk flagged foreign
                where: dict[str, Any] = {} if start else {"yes": True}
                terms = [] if start else ["foreign eq @yes"]
                for n, account in enumerate(wanted[start : start + _PER_QUERY]):
                    low = f"{table_key(account)}!"
                    terms.append(f"( PartitionKey eq @pk{n} and RowKey ge @low{n} and RowKey lt @high{n} )")
                    where |= {f"pk{n}": group_of(account), f"low{n}": low, f"high{n}": key_after(low)}
                filters.append((" or ".join(terms), where))

        def read(found: Filter) -> list[tuple[tuple[str, str], list[Event]]]:
            chunks = self._timeline.query_entities(found[0], parameters=found[1])
            return [
                ((str(chunk["PartitionKey"]), str(chunk["RowKey"])), _unpack(page_text(chunk), query))
                for chunk in chunks
                if not _skipped(chunk, query)
            ]

        runs = dict(in_parallel(read, filters))  # a chunk two queries found counts once
        for run in runs.values():
            run.sort(key=event_order)  # saved in order (so at once), unless that order changed since
        return list(heapq.merge(*(run for run in runs.values() if run), key=event_order))

    def timeline_types(self) -> set[str]:
        """Every type the groups' types records list: one query."""
        records = self._timeline.query_entities("RowKey eq @rk", parameters={"rk": _TYPES})
        return {kind for record in records for kind in json.loads(page_text(record))}

    def clear_timeline(self) -> None:
        """Remove every chunk and types record: their keys read in one scan, removed a transaction per 100."""
        keys = self._timeline.list_entities(select=["PartitionKey", "RowKey"])
        self._transact(self._timeline, (delete_op(e["PartitionKey"], e["RowKey"]) for e in keys))
