"""The dry-run overlay: a state store that reads through to the real one and keeps every write in memory, so a dry
run sees its own writes (the mirror it updated, the effects it recorded) and the real store is left untouched.

What a dry run does is decided per role, one class each; `OverlayStore` is all of them over one real store and one
memory (an in-memory SQLite store):

- read through: journey progress (`ProgressStore`), effects and intents (`EffectLedger`), `Checkpoints`, the mirror
  (`MirrorStore`), the `Agenda`: the real store's, under the dry run's own writes;
- read only: fanned-out runs (`FanOut`), events and dead letters (`EventLog`) and the insights' `Timeline`: the
  real store's, never changed (an event the dry run records is known to it by id, nothing more; what a dry run
  evaluates changes no insight);
- in memory: forgetting a contact (`Erasure`), whose progress read from the real store is hidden from then on.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from insights.timeline import Event
from statestore.port import (
    AgendaEntry,
    DeadLetter,
    Intent,
    MirrorRow,
    Progress,
    ShardRun,
    StateStore,
    StoredEvent,
    TimelineQuery,
)
from statestore.sqlite import SqliteStateStore

__all__ = ["OverlayStore"]


class _Layers:
    """The real store below, the memory above, and the contacts this dry run forgot."""

    def __init__(self, base: StateStore) -> None:
        self.base = base
        self.top = SqliteStateStore()
        self._forgotten: set[str] = set()


class _ProgressThrough(_Layers):
    """Journey progress: the real store's, with what the dry run saved over it (by contact), counts added up."""

    def progress(self, journey: str, contacts: Iterable[str] | None = None) -> list[Progress]:
        wanted = None if contacts is None else list(contacts)
        mine = {p.contact_id: p for p in self.top.progress(journey, wanted)}
        rows = [p for p in self.base.progress(journey, wanted) if p.contact_id not in self._forgotten]
        merged = {p.contact_id: p for p in rows} | mine
        return [merged[c] for c in sorted(merged)]

    def handled(self, journey: str, accounts: Iterable[str] | None = None) -> set[tuple[str, str]]:
        wanted = None if accounts is None else list(accounts)
        return self.base.handled(journey, wanted) | self.top.handled(journey, wanted)

    def save_journey(
        self,
        journey: str,
        progress: Iterable[Progress],
        handled: Iterable[tuple[str, str]],
        counts: Mapping[str, Mapping[str, Mapping[str, int]]] | None = None,
    ) -> None:
        self.top.save_journey(journey, progress, handled, counts)

    def tile_counts(self, journey: str, account: str | None = None) -> dict[str, dict[str, int]]:
        totals = self.base.tile_counts(journey, account)
        for tile, counters in self.top.tile_counts(journey, account).items():
            for counter, value in counters.items():
                totals.setdefault(tile, {})[counter] = totals.get(tile, {}).get(counter, 0) + value
        return totals


class _LedgerThrough(_Layers):
    """Effects and intents: the real store's and the dry run's; an intent the real store holds is never claimed
    again, one a dead run left is taken over in memory. Claims are stamped by the real store's clock."""

    def effects_done(self, keys: Iterable[str]) -> dict[str, str]:
        wanted = list(keys)
        return self.base.effects_done(wanted) | self.top.effects_done(wanted)

    def record_effects(self, done: Iterable[tuple[str, str]]) -> None:
        self.top.record_effects(done)

    def intent(self, key: str) -> Intent | None:
        return self.top.intent(key) or self.base.intent(key)

    def record_intent(self, intent: Intent) -> None:
        self.top.record_intent(intent)

    def claim_intent(self, intent: Intent) -> bool:
        return self.base.intent(intent.key) is None and self.top.claim_intent(intent)

    def clock(self) -> datetime:
        return self.base.clock()

    def take_over_intent(self, stale: Intent, claimed_at: str | None) -> bool:
        if self.top.intent(stale.key) is not None:
            return self.top.take_over_intent(stale, claimed_at)
        if self.base.intent(stale.key) != stale or stale.job_id:
            return False
        self.top.record_intent(Intent(stale.key, stale.workflow_id, stale.entity_id, None, claimed_at))
        return True

    def open_intents(self) -> list[Intent]:
        merged = {i.key: i for i in self.base.open_intents()} | {i.key: i for i in self.top.open_intents()}
        return [i for key, i in sorted(merged.items()) if self.intent(key) == i]


class _CheckpointsThrough(_Layers):
    """Checkpoints: the dry run's, else the real store's; a removal is not kept (the real value still reads)."""

    def checkpoint(self, name: str) -> str | None:
        return self.top.checkpoint(name) or self.base.checkpoint(name)

    def save_checkpoints(self, values: Mapping[str, str | None]) -> None:
        self.top.save_checkpoints({k: v for k, v in values.items() if v is not None})


class _MirrorThrough(_Layers):
    """The mirror: the real store's rows, less those the dry run deleted or moved (all of them once it cleared the
    mirror for a full read), and the rows the dry run put. Its partitions are the real store's and the dry run's: a
    partition whose rows the dry run all deleted or moved away may still be listed (an evaluation finds it empty)."""

    def __init__(self, base: StateStore) -> None:
        super().__init__(base)
        self._gone: set[tuple[str, str]] = set()  # (kind, id) deleted or moved in the dry run
        self._cleared = False

    def put_mirror(self, rows: Iterable[MirrorRow]) -> None:
        written = list(rows)
        self._gone.update((r.kind, r.id) for r in written)
        self.top.put_mirror(written)

    def delete_mirror(self, kind: str, ids: Iterable[str]) -> None:
        wanted = list(ids)
        self._gone.update((kind, i) for i in wanted)
        self.top.delete_mirror(kind, wanted)

    def mirror(self, kind: str, partitions: Iterable[str] | None = None) -> Iterator[MirrorRow]:
        scope = None if partitions is None else list(partitions)
        base = () if self._cleared else self.base.mirror(kind, scope)
        rows = [r for r in base if (kind, r.id) not in self._gone]
        rows += list(self.top.mirror(kind, scope))
        yield from sorted(rows, key=lambda r: (r.partition, r.id))

    def mirror_rows(self, kind: str, ids: Iterable[str]) -> dict[str, MirrorRow]:
        wanted = list(ids)
        base = {} if self._cleared else self.base.mirror_rows(kind, wanted)
        found = {i: r for i, r in base.items() if (kind, i) not in self._gone}
        return found | self.top.mirror_rows(kind, wanted)

    def mirror_partitions(self, kinds: Collection[str], buckets: Collection[int] | None = None) -> list[str]:
        base = [] if self._cleared else self.base.mirror_partitions(kinds, buckets)
        return sorted({*base, *self.top.mirror_partitions(kinds, buckets)})

    def clear_mirror(self) -> None:
        self._cleared = True
        self.top.clear_mirror()


class _AgendaThrough(_Layers):
    """The agenda: the real store's entries, but for the partitions whose entry the dry run saved (its own replaces
    them) or all once it cleared the agenda, and the dry run's. A partition the dry run marked due keeps its real
    entry too: it is due when either is, and depends on what either names."""

    def __init__(self, base: StateStore) -> None:
        super().__init__(base)
        self._saved: set[str] = set()  # partitions whose entry the dry run replaced (or removed)
        self._agenda_cleared = False

    def save_agenda(self, entries: Iterable[AgendaEntry]) -> None:
        written = list(entries)
        self._saved.update(e.partition for e in written)
        self.top.save_agenda(written)

    def mark_due(self, partitions: Iterable[str], at: datetime) -> None:
        self.top.mark_due(partitions, at)

    def due_partitions(self, until: datetime, buckets: Collection[int] | None = None) -> list[str]:
        real = [] if self._agenda_cleared else self.base.due_partitions(until, buckets)
        mine = self.top.due_partitions(until, buckets)
        return sorted({p for p in real if p not in self._saved} | set(mine))

    def dependents(self, refs: Iterable[str]) -> set[str]:
        wanted = list(refs)
        real = set() if self._agenda_cleared else self.base.dependents(wanted)
        return (real - self._saved) | self.top.dependents(wanted)

    def clear_agenda(self) -> None:
        """Hide the real store's entries from then on; the real store keeps them."""
        self._agenda_cleared = True
        self.top.clear_agenda()


class _FanOutReadOnly(_Layers):
    """Fanned-out runs: the real store's open run is what a dry run sees (it resumes or waits for it as the real run
    would); it starts, finishes and completes none."""

    def open_run(self) -> ShardRun | None:
        return self.base.open_run()

    def start_run(self, run: ShardRun) -> None:
        """A dry run starts no run."""

    def finish_shard(self, run_id: str, shard: int) -> bool:
        return False

    def complete_run(self, run_id: str) -> None:
        """A dry run completes nothing."""


class _EventLogReadOnly(_Layers):
    """Events and dead letters: the real store's. An event the dry run records is known to it by id (so a second
    delivery is a duplicate); the listing, the marks and the dead letters are the real store's, unchanged."""

    def record_event(self, event: StoredEvent) -> bool:
        return self.base.event(event.id) is None and self.top.record_event(event)

    def event(self, event_id: str) -> StoredEvent | None:
        return self.top.event(event_id) or self.base.event(event_id)

    def events(
        self, *, since: datetime | None = None, until: datetime | None = None, record_id: str | None = None
    ) -> list[StoredEvent]:
        return self.base.events(since=since, until=until, record_id=record_id)

    def mark_event(self, event_id: str, status: str, *, error: str | None = None) -> None:
        """A dry run leaves events as they are."""

    def add_dead_letter(self, letter: DeadLetter) -> None:
        """A dry run adds no dead letter."""

    def dead_letters(self) -> list[DeadLetter]:
        return self.base.dead_letters()

    def dead_letter(self, letter_id: str) -> DeadLetter | None:
        return self.base.dead_letter(letter_id)

    def remove_dead_letter(self, letter_id: str) -> None:
        """A dry run removes nothing."""


class _TimelineReadOnly(_Layers):
    """The insights' timeline: the real store's. A dry run's evaluation saves nothing to it (no insight changes)."""

    def save_timeline(self, partitions: Mapping[str, Sequence[Event]]) -> None:
        """A dry run changes no insight."""

    def timeline(self, query: TimelineQuery = TimelineQuery()) -> list[Event]:  # noqa: B008 (frozen, shared)
        return self.base.timeline(query)

    def timeline_types(self) -> set[str]:
        return self.base.timeline_types()

    def clear_timeline(self) -> None:
        """A dry run changes no insight."""


class _ErasureInMemory(_Layers):
    """Forgetting a contact: in memory, and its progress read from the real store is hidden from then on."""

    def forget_contact(self, contact_id: str, record_ids: Iterable[str] = ()) -> None:
        self._forgotten.add(contact_id)
        self.top.forget_contact(contact_id, record_ids)


class OverlayStore(
    _ProgressThrough,
    _LedgerThrough,
    _CheckpointsThrough,
    _MirrorThrough,
    _AgendaThrough,
    _FanOutReadOnly,
    _EventLogReadOnly,
    _TimelineReadOnly,
    _ErasureInMemory,
):
    """A `StateStore` that reads `base` and writes to memory: what a dry run sees as its own state (each role as the
    module docstring says)."""


if TYPE_CHECKING:

    def _conforms(store: OverlayStore) -> StateStore:  # mypy checks the overlay against the port
        return store
