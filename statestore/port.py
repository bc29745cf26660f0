"""The state store's port: what Functions cannot keep between runs, the records it holds, and the roles its adapters
play. A job asks for the roles it uses (a small intersection where it needs two); `StateStore` is all of them.

- `ProgressStore`, journey progress: which contact is at which tile since when, the per-account tiles already
  handled, tile counts by account.
- `EffectLedger`, effects and workflow intents: the effects already written (by idempotency key, with the id of the
  row they created) and workflow intents (recorded before ExecuteWorkflow is called, completed with the system job's
  id after), so that a repeated run, a replay or an overlapping run never creates anything twice.
- `Checkpoints`: change-tracking delta links and the like, saved only after the writes they cover.
- `MirrorStore`: the mirror of the rows the engine reasons over, partitioned by account.
- `FanOut`: fanned-out runs with their finished shards (the barrier the last shard passes).
- `EventLog`: received webhook and interaction events by id (the id is the deduplication key), and dead letters.
- `Erasure`: forgetting a contact deleted in Dataverse, in every role that keeps something about it.
- `Agenda`: when each partition must next be evaluated, and the foreign records its last evaluation read (so that a
  change to one of those makes it due too): what lets a run evaluate only the partitions that need it.
- `Timeline`: the insights' event stream, each partition's interactions and milestones as its last evaluation found
  them, read by type, time and account without loading the mirror.

Partitions fall into `BUCKETS` fixed buckets (`bucket_of`): a shard of N takes the buckets b with b % N == shard, so
the mirror's partitions and the agenda are read by bucket, and changing the shard count moves nothing.

Its adapters sit beside it: `statestore.sqlite.SqliteStateStore` (the embedded default),
`statestore.azure_tables.AzureStateStore` (Azure Table Storage, and blobs for payloads beyond a table property's
64 KiB) and the dry-run overlay. `tests/test_state_contract.py` runs one suite against the first two.
"""

from __future__ import annotations

import zlib
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from insights.timeline import Event  # the timeline keeps the insights' events as the domain holds them
from journeys.engine import Progress  # a contact's place in a journey is stored as the engine holds it

__all__ = [
    "BUCKETS",
    "Agenda",
    "AgendaEntry",
    "Checkpoints",
    "DeadLetter",
    "EffectLedger",
    "Erasure",
    "Evaluation",
    "EventLog",
    "EventWork",
    "FanOut",
    "FanOutAndCheckpoints",
    "InsightsStore",
    "Intent",
    "MirrorAndAgenda",
    "MirrorAndErasure",
    "MirrorAndProgress",
    "MirrorRow",
    "MirrorStore",
    "MirrorSync",
    "Progress",
    "ProgressAndEffects",
    "ProgressStore",
    "RunStore",
    "ShardRun",
    "StateStore",
    "StoredEvent",
    "Timeline",
    "TimelineQuery",
    "bucket_of",
    "iso",
    "iso_micro",
    "parse_iso",
    "wall_clock",
]

BUCKETS: Final = 1024


def bucket_of(partition: str) -> int:
    """The fixed bucket of a partition: CRC-32 of its UTF-8 bytes mod BUCKETS (stable across processes, unlike
    hash); a shard of N takes the buckets b with b % N == shard, so changing the shard count moves nothing."""
    return zlib.crc32(partition.encode()) % BUCKETS


@dataclass(frozen=True)
class Intent:
    """A workflow run the service meant to start: for which entity, and the system job once it is known."""

    key: str
    workflow_id: str
    entity_id: str
    job_id: str | None
    claimed_at: str | None = None  # when a run claimed it (ISO, UTC): an overlapping run leaves a fresh claim alone


@dataclass(frozen=True)
class StoredEvent:
    """An event as received (a webhook delivery, a batch of interaction events): its id is the deduplication key.

    `status` is "pending" until processed, then "done", or "failed" once it became a dead letter. `table` and
    `record_id` name the Dataverse row it is about (for replay by record and for forgetting a contact)."""

    id: str
    source: str
    received_at: datetime
    table: str
    record_id: str
    message: str
    payload: bytes
    status: str = "pending"
    attempts: int = 0
    error: str | None = None


@dataclass(frozen=True)
class DeadLetter:
    """Work that still failed after its retries: an event or a sync shard, with its payload and the last error."""

    id: str
    kind: str  # "event" or "shard"
    failed_at: datetime
    payload: bytes
    error: str
    attempts: int
    record_id: str = ""


@dataclass(frozen=True)
class MirrorRow:
    """One mirrored Dataverse row: `kind` is the table's logical name, `partition` the account it belongs to (or a
    key of its own for rows without an account), `data` the row as read (JSON-serialisable)."""

    kind: str
    id: str
    partition: str
    data: dict[str, Any]


@dataclass(frozen=True)
class AgendaEntry:
    """When a partition must next be evaluated with no new data (None: only when its data changes), and the foreign
    records its last evaluation read (refs such as "account:<id>", "contact:<id>", "consent:<email>"): a change to
    one of those makes the partition due too."""

    partition: str
    due: datetime | None
    refs: frozenset[str] = frozenset()


@dataclass(frozen=True)
class TimelineQuery:
    """Which events of the timeline to read. By kind, when any of the three is given: of `types`, or with a content
    type in `content_types`, or (`content_typed`) with any content type; moments in `[start, end)` (None: unbounded);
    of `accounts`, of `contacts` (None: any)."""

    types: frozenset[str] | None = None
    content_types: frozenset[str] | None = None
    content_typed: bool = False
    start: datetime | None = None
    end: datetime | None = None
    accounts: frozenset[str] | None = None
    contacts: frozenset[str] | None = None

    def by_kind(self) -> bool:
        """Whether the query reads some kinds of events only."""
        return self.types is not None or self.content_types is not None or self.content_typed

    def matches(self, event: Event) -> bool:
        """Whether `event` is one this query reads (what an adapter without an index filters with)."""
        content = event.content_type
        kind = (
            not self.by_kind()
            or (self.types is not None and event.type in self.types)
            or (self.content_typed and bool(content))
            or (self.content_types is not None and content in self.content_types)
        )
        return (
            kind
            and (self.start is None or event.at >= self.start)
            and (self.end is None or event.at < self.end)
            and (self.accounts is None or event.account_id in self.accounts)
            and (self.contacts is None or event.contact_id in self.contacts)
        )


@dataclass(frozen=True)
class ShardRun:
    """A sync fanned out over `shards` queue messages; `checkpoints` are saved when the last shard is done."""

    id: str
    shards: int
    started_at: datetime
    checkpoints: dict[str, str]
    done: frozenset[int] = frozenset()
    completed: bool = False


class ProgressStore(Protocol):
    """Journey progress: each contact's place in each journey, the (tile, account) pairs already handled (an
    account-based tile acts once per account), and the tile counts by account."""

    def progress(self, journey: str, contacts: Iterable[str] | None = None) -> list[Progress]:
        """The journey's progress, of these contacts only when given (cheap for a few hundred), by contact id."""
        ...

    def handled(self, journey: str, accounts: Iterable[str] | None = None) -> set[tuple[str, str]]:
        """The journey's handled (tile, account) pairs, only those whose account is among `accounts` when given."""
        ...

    def save_journey(
        self,
        journey: str,
        progress: Iterable[Progress],
        handled: Iterable[tuple[str, str]],
        counts: Mapping[str, Mapping[str, Mapping[str, int]]] | None = None,
    ) -> None: ...

    def tile_counts(self, journey: str, account: str | None = None) -> dict[str, dict[str, int]]: ...


class EffectLedger(Protocol):
    """Effects and workflow intents: what was written (by idempotency key, with the id of the row it created) and
    which workflow runs were claimed and started, so that nothing is created or started twice."""

    def effects_done(self, keys: Iterable[str]) -> dict[str, str]: ...

    def record_effects(self, done: Iterable[tuple[str, str]]) -> None: ...

    def intent(self, key: str) -> Intent | None: ...

    def record_intent(self, intent: Intent) -> None: ...

    def claim_intent(self, intent: Intent) -> bool: ...

    def clock(self) -> datetime:
        """The time claims are stamped and their lease judged by: the wall clock of the processes sharing this store
        (a run's `now` can be hours old, e.g. a resent shard's), injectable for tests."""
        ...

    def open_intents(self) -> list[Intent]:
        """Intents without a job (claimed, not known to be started), by key: what a dead run may have left."""
        ...

    def take_over_intent(self, stale: Intent, claimed_at: str | None) -> bool:
        """Claim again an intent a dead run left, only if it is still exactly `stale` (no job, the same claim): of
        runs taking it over at once, one wins."""
        ...


class Checkpoints(Protocol):
    """Named checkpoints such as the change-tracking delta links (`delta:contact`) and the mirror's `columns`."""

    def checkpoint(self, name: str) -> str | None: ...

    def save_checkpoints(self, values: Mapping[str, str | None]) -> None:
        """Set (or, for None, remove) named checkpoints such as `delta:contact` and `columns`."""
        ...


class MirrorStore(Protocol):
    """The mirror of the Dataverse rows the engine reasons over, partitioned by account."""

    def put_mirror(self, rows: Iterable[MirrorRow]) -> None:
        """Insert or replace rows by (kind, id); a row whose partition changed moves."""
        ...

    def delete_mirror(self, kind: str, ids: Iterable[str]) -> None: ...

    def mirror(self, kind: str, partitions: Iterable[str] | None = None) -> Iterator[MirrorRow]:
        """The rows of one kind, in the given partitions (all when None), in (partition, id) order."""
        ...

    def mirror_rows(self, kind: str, ids: Iterable[str]) -> dict[str, MirrorRow]:
        """The rows of one kind with these ids, by id (the ones that exist)."""
        ...

    def mirror_partitions(self, kinds: Collection[str], buckets: Collection[int] | None = None) -> list[str]:
        """The distinct partitions holding rows of any of these kinds (only those whose bucket is in `buckets`, when
        given), sorted."""
        ...

    def clear_mirror(self) -> None:
        """Empty the mirror (a full sync refills it)."""
        ...


class FanOut(Protocol):
    """Fanned-out runs: a sync spread over shards, and the barrier that knows when the last shard is done."""

    def start_run(self, run: ShardRun) -> None: ...

    def open_run(self) -> ShardRun | None:
        """The newest run not completed, with the shards done so far."""
        ...

    def finish_shard(self, run_id: str, shard: int) -> bool:
        """Record one shard as done; True when, after it, every shard of the run is done."""
        ...

    def complete_run(self, run_id: str) -> None: ...


class EventLog(Protocol):
    """Received events by id (the id is the deduplication key), and dead letters: work that failed its retries."""

    def record_event(self, event: StoredEvent) -> bool:
        """Store an event unless its id is known: True the first time (process it), False for a redelivery."""
        ...

    def event(self, event_id: str) -> StoredEvent | None: ...

    def events(
        self, *, since: datetime | None = None, until: datetime | None = None, record_id: str | None = None
    ) -> list[StoredEvent]:
        """Events received in [since, until) and/or about one record, oldest first."""
        ...

    def mark_event(self, event_id: str, status: str, *, error: str | None = None) -> None:
        """Set an event's status, count one more attempt, keep the last error."""
        ...

    def add_dead_letter(self, letter: DeadLetter) -> None: ...

    def dead_letters(self) -> list[DeadLetter]:
        """Every dead letter, oldest first."""
        ...

    def dead_letter(self, letter_id: str) -> DeadLetter | None: ...

    def remove_dead_letter(self, letter_id: str) -> None: ...


class Erasure(Protocol):
    """The right to be forgotten, across the roles: what the store keeps about a contact deleted in Dataverse."""

    def forget_contact(self, contact_id: str, record_ids: Iterable[str] = ()) -> None:
        """Remove a deleted contact's journey progress in every journey, the workflow runs recorded on it, and the
        events and dead letters about it or about `record_ids` (its interactions): the right to be forgotten. Its
        events in the timeline (ids only) go when its partition is evaluated again, which removing its rows from the
        mirror makes due."""
        ...


class Agenda(Protocol):
    """When each partition is next due for evaluation, and which foreign records (refs) its last evaluation read: a
    run evaluates the partitions due by now and those whose data or refs changed, not every partition."""

    def save_agenda(self, entries: Iterable[AgendaEntry]) -> None:
        """Replace each entry's partition's due moment and refs; an entry with no due and no refs removes the
        partition's entry."""
        ...

    def mark_due(self, partitions: Iterable[str], at: datetime) -> None:
        """Make partitions due no later than `at`: an earlier due stays, refs stay; a partition without an entry
        gets one."""
        ...

    def due_partitions(self, until: datetime, buckets: Collection[int] | None = None) -> list[str]:
        """Partitions due at or before `until` (only those in `buckets` when given), sorted."""
        ...

    def dependents(self, refs: Iterable[str]) -> set[str]:
        """Partitions whose saved entry names one of these refs."""
        ...

    def clear_agenda(self) -> None:
        """Forget every entry (a full evaluation rebuilds the agenda)."""
        ...


class Timeline(Protocol):
    """The insights' event stream: per partition, the events (`insights.timeline.Event`) of its interactions, leads
    and opportunities as its last evaluation found them, the sales-ready flags that evaluation wrote included.
    Whole-tenant cohorts, flows and paths read the events they need from it rather than mapping the mirror."""

    def save_timeline(self, partitions: Mapping[str, Sequence[Event]]) -> None:
        """Replace each named partition's events (an empty sequence removes them)."""
        ...

    def timeline(self, query: TimelineQuery = TimelineQuery()) -> list[Event]:
        """The events `query` matches, ordered as `insights.timeline.timeline` orders them."""
        ...

    def timeline_types(self) -> set[str]:
        """Every event type the timeline holds."""
        ...

    def clear_timeline(self) -> None:
        """Forget every partition's events (a full evaluation saves them all again)."""
        ...


class StateStore(
    ProgressStore, EffectLedger, Checkpoints, MirrorStore, FanOut, EventLog, Erasure, Agenda, Timeline, Protocol
):
    """The whole port (see the module docstring): every role. Every method is safe to call again with the same
    arguments. A job asks for the roles it uses; the composition root builds the whole store."""


# ---- what a job needing several roles asks for ----


class MirrorAndErasure(MirrorStore, Erasure, Protocol):
    """The mirror, and forgetting a contact whose row left it (what applying changes to the mirror needs)."""


class ProgressAndEffects(ProgressStore, EffectLedger, Protocol):
    """Journey progress and the effects it writes (a run of the journeys)."""


class MirrorAndProgress(MirrorStore, ProgressStore, Protocol):
    """The mirror and journey progress (a journey's insights)."""


class FanOutAndCheckpoints(FanOut, Checkpoints, Protocol):
    """Fanned-out runs and the checkpoints the last shard saves (completing a run)."""


class MirrorAndAgenda(MirrorStore, Erasure, Agenda, Protocol):
    """The mirror, forgetting contacts that left it, and the agenda (applying changes marks partitions due)."""


class MirrorSync(MirrorStore, Erasure, Checkpoints, Agenda, Protocol):
    """Reading changes into the mirror: the mirror, forgetting contacts that left it, the delta links, and the
    agenda (applying changes marks the partitions they touch due)."""


class InsightsStore(MirrorStore, Erasure, ProgressStore, Timeline, Protocol):
    """The read side over the timeline, the mirror and journey progress (the mirror's loader needs erasure too)."""


class Evaluation(MirrorStore, Erasure, ProgressStore, EffectLedger, Agenda, Timeline, Protocol):
    """Evaluating accounts of the mirror: segments, journeys (progress and effects), scoring, and what each
    evaluation saves besides its writes: the agenda (when the account is next due, what it read) and the timeline."""


class RunStore(Evaluation, Checkpoints, FanOut, Protocol):
    """A timer run or a shard: evaluation, the delta links and fanned-out runs (everything but the event log)."""


class EventWork(Evaluation, EventLog, Checkpoints, Protocol):
    """Processing a stored event: the event log, an evaluation of the accounts it touched, and the checkpoint that
    says the definitions' columns were found in the org."""


def wall_clock() -> datetime:
    """Now, in UTC: the default clock of the state stores."""
    return datetime.now(UTC)


def parse_iso(text: str) -> datetime:
    """The inverse of `iso`."""
    return datetime.fromisoformat(text)


def iso(moment: datetime) -> str:
    """The state store's timestamp format: UTC, whole seconds, `Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_micro(moment: datetime) -> str:
    """UTC with microseconds, `Z`: for times that order events (sorts as text)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
