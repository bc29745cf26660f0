"""One evaluation of a run setup over a scope of the mirror: segments, journeys, scoring, write-back, agenda.

The timer's sync evaluates every partition (or one shard's), or only those its changes touched and those whose due
moment has come; a webhook or a replay evaluates the partitions a change touched; all run this one function. It
walks its partitions in batches (`BATCH` accounts with everything they hold, `abm.jobs.loading`), so memory is
bounded by the batch, not the tenant: per batch it evaluates the segments (the server-side queries' members, held
as ids, on a full run; the mirror evaluator otherwise: one definition, two evaluators, tested to agree), advances
the journeys and scores the open leads, and saves the batch's partitions' events to the insights' timeline as they
stand once the run's writes are made (a lead this run finds sales-ready is marketing qualified in it). The writes
wait in an outbox and leave in full bulk requests; once all are written, journey progress and each partition's
agenda entry (the next moment its outcome can change with no new data, and the records it read elsewhere) are saved.
"""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from abm.definitions import ColumnRef
from abm.jobs.journeys import JourneyBatches
from abm.jobs.loading import Batch, load_batch
from abm.jobs.mirror import EVALUATED, Mirror
from abm.jobs.outbox import Failure, Outbox
from abm.jobs.scoring import ScoreWriter
from abm.jobs.segments import evaluate_segments, segment_report
from abm.jobs.workflows import WorkflowRun
from dataverse.client import DataverseClient
from dataverse.mapping import MappingConfig
from dataverse.scores import PredictiveWrite, SalesReadyFlag, ScoreWrite, flagged_lead
from insights.timeline import Event, timeline
from journeys.engine import Effect
from journeys.model import Journey
from journeys.segments import Member, Segment, members
from scoring.due import next_change
from scoring.engine import score_run
from scoring.model import ScoringModel
from statestore.port import BUCKETS, AgendaEntry, Evaluation

__all__ = ["BATCH", "RunReport", "RunSetup", "Scope", "Shard", "evaluate", "merge_writes"]

BATCH = 250  # partitions (accounts) evaluated together
# What an evaluation saves besides its writes, as a version in the run setup's fingerprint: a new one makes the next
# sync evaluate every partition once (2: the insights' timeline).
SAVES = 2


@dataclass(frozen=True)
class Shard:
    """One of `count` shards of a fanned-out run: the partitions in the buckets b with b % count == index."""

    index: int
    count: int

    def buckets(self) -> frozenset[int]:
        return frozenset(b for b in range(BUCKETS) if b % self.count == self.index)


# What an evaluation covers: every partition (None), these partitions, or every partition of a shard.
Scope = Collection[str] | Shard | None


@dataclass(frozen=True)
class RunSetup:
    """What a run evaluates and how it writes: the definitions and the org-specific options."""

    models: Sequence[ScoringModel] = ()
    segments: Sequence[Segment] = ()
    journeys: Sequence[Journey] = ()
    config: MappingConfig = field(default_factory=MappingConfig)
    predictive_model: str | None = None
    send_emails: bool = False
    handoff_workflow: str | None = None
    columns: tuple[ColumnRef, ...] = field(default=(), compare=False)  # the columns definitions name, and where

    def fingerprint(self) -> str:
        """What evaluation depends on besides the data, as a stable digest: the definitions and the options. The
        agenda holds only for the fingerprint it was computed with."""
        return hashlib.sha256(repr((SAVES, _canonical(self))).encode()).hexdigest()[:16]


def _canonical(value: object) -> object:
    """A value as plain, ordered data (dataclasses by field, mappings and sets sorted), the same in every process."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = [f for f in dataclasses.fields(value) if f.compare]  # derived fields (a compiled template) left out
        return (type(value).__name__, tuple((f.name, _canonical(getattr(value, f.name))) for f in fields))
    if isinstance(value, Mapping):
        return ("map", tuple(sorted((repr(_canonical(k)), _canonical(v)) for k, v in value.items())))
    if isinstance(value, set | frozenset):
        return ("set", tuple(sorted(repr(_canonical(v)) for v in value)))
    if isinstance(value, list | tuple):
        return tuple(_canonical(v) for v in value)
    if isinstance(value, datetime):
        return value.isoformat()
    if value is None or isinstance(value, str | int | float | Decimal | Enum):
        return value
    raise TypeError(f"no stable form for a {type(value).__name__} in the run setup")


@dataclass(frozen=True)
class RunReport:
    """What a run did: the moment it ran for, what it read, what it wrote, the scoring summary, the requests sent."""

    now: datetime
    tenant: dict[str, int]
    requests: dict[str, Any]
    writes: dict[str, dict[str, int]] = field(default_factory=dict)
    segments: dict[str, dict[str, Any]] = field(default_factory=dict)
    journeys: dict[str, dict[str, Any]] = field(default_factory=dict)
    scoring: dict[str, Any] = field(default_factory=dict)
    sync: dict[str, Any] = field(default_factory=dict)
    report: str | None = None  # the HTML insights report written after the run (abm demo)
    seconds: dict[str, float] = field(default_factory=dict)  # how long its steps took (read, evaluate)
    failures: list[dict[str, Any]] = field(default_factory=list)  # writes that failed for good (the run went on)

    def as_dict(self) -> dict[str, Any]:
        report: dict[str, Any] = {
            "now": self.now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "tenant": self.tenant,
            "requests": self.requests,
            "writes": self.writes,
            "segments": self.segments,
            "journeys": self.journeys,
            "scoring": self.scoring,
        }
        if self.sync:
            report["sync"] = self.sync
        if self.report is not None:
            report["report"] = self.report
        if self.seconds:
            report["seconds"] = self.seconds
        if self.failures:
            report["failures"] = self.failures
        return report


def merge_writes(*writes: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """Writes per table from several steps (leads created by journeys and updated by scoring), counts added."""
    merged: dict[str, dict[str, int]] = {}
    for part in writes:
        for table_name, counts in part.items():
            into = merged.setdefault(table_name, {})
            for kind, count in counts.items():
                into[kind] = into.get(kind, 0) + count
    return dict(sorted(merged.items()))


def _add(into: dict[str, Any], part: Mapping[str, Any]) -> None:
    """Add a summary's counts into another (nested dicts of numbers; other values are kept)."""
    for key, value in part.items():
        if isinstance(value, Mapping):
            _add(into.setdefault(key, {}), value)
        elif isinstance(value, int) and not isinstance(value, bool) and isinstance(into.get(key), int):
            into[key] += value
        else:
            into.setdefault(key, value)


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class _Evaluation:
    """One evaluation's writers, its running totals and the agenda entries it will save."""

    def __init__(self, client: DataverseClient, store: Evaluation, setup: RunSetup, now: datetime) -> None:
        self.store, self.setup, self.now = store, setup, now
        self.mirror = Mirror(store, setup.config)
        self.outbox = Outbox(keep_going=True)  # one chunk that fails for good does not cost the rest of the run
        self.journeys = JourneyBatches(
            client, store, setup.journeys, self.outbox, now=now, send_emails=setup.send_emails
        )
        self.scores = ScoreWriter(
            client,
            self.outbox,
            now=now,
            predictive_model=setup.predictive_model,
            handoff_workflow=setup.handoff_workflow,
            store=store,
            written=self.mirror.write_through,
        )
        self.tenant: dict[str, int] = {}
        self.scoring: dict[str, Any] = score_run(setup.models, (), (), (), (), now=now).summary()
        self.agenda: dict[str, AgendaEntry] = {}
        self.scored: set[str] = set()
        self.partition_of: dict[str, str] = {}  # contacts and leads of this run's batches (where a failed write was)

    def hold_back(self, failures: Sequence[Failure]) -> None:
        """Keep the partitions of writes that failed due now, so the next run evaluates them and writes them then
        (nothing of theirs was recorded as written)."""
        records = {id for failure in failures for item in failure.items for id in _records_of(item)}
        for partition in {self.partition_of.get(id, id) for id in records}:
            earlier = self.agenda.get(partition)
            self.agenda[partition] = AgendaEntry(partition, self.now, earlier.refs if earlier else frozenset())

    def batch(self, batch: Batch, found: Mapping[str, Sequence[Member]], *, journeys: bool = True) -> None:
        """Evaluate one batch (with `journeys=False`, score only the leads no batch of this run scored yet)."""
        due: dict[str, datetime] = {}
        if journeys:
            _add(self.tenant, batch.counts())
            self.partition_of.update((c.id, batch.partition_of[c.id]) for c in batch.contacts)
            due = self.journeys.batch(found, batch.contacts, batch.accounts, batch.interactions)
        self.partition_of.update((lead.id, batch.partition_of[lead.id]) for lead in batch.leads)
        leads = [lead for lead in batch.leads if lead.id not in self.scored]
        self.scored |= {lead.id for lead in leads}
        contacts = [*batch.contacts, *batch.related_contacts]
        interactions = [*batch.interactions, *batch.related_interactions]
        if batch.related_interactions:
            interactions.sort(key=lambda i: (i.occurred_on, i.id))
        models, accounts = self.setup.models, [*batch.accounts, *batch.related_accounts]
        run = score_run(models, leads, contacts, accounts, interactions, now=self.now)
        self.store.save_timeline(_timeline(batch, self.scores.queue(run, leads, batch.scores)))
        _add(self.scoring, run.summary())
        for lead_id, moment in next_change(models, leads, contacts, interactions, now=self.now).items():
            due[lead_id] = min(moment, due.get(lead_id, moment))
        moments: dict[str, datetime] = {}
        for record_id, moment in due.items():
            partition = batch.partition_of.get(record_id)
            if partition is not None:
                moments[partition] = min(moment, moments.get(partition, moment))
        for partition, refs in batch.refs.items():
            entry = AgendaEntry(partition, moments.get(partition), refs)
            earlier = self.agenda.get(partition)
            if earlier is not None:  # a second pass over a partition (the leads a journey just created)
                due_at = min((m for m in (entry.due, earlier.due) if m is not None), default=None)
                entry = AgendaEntry(partition, due_at, refs | earlier.refs)
            self.agenda[partition] = entry


def _records_of(item: object) -> list[str]:
    """The contacts, leads or accounts a queued write was for (an effect with its row, an email to send, a score,
    a flag, a predictive copy, a workflow run)."""
    if isinstance(item, tuple):
        item = item[0]
    if isinstance(item, Effect):
        return [id for id in (item.contact_id, item.account_id) if id]
    if isinstance(item, ScoreWrite):
        return [item.score.lead_id]
    if isinstance(item, SalesReadyFlag | PredictiveWrite):
        return [item.lead_id]
    if isinstance(item, WorkflowRun):
        return [item.entity_id]
    return []


def _failed_effects(failures: Sequence[Failure]) -> list[Effect]:
    """The journeys' effects among the writes that failed (created rows and emails to send)."""
    effects = (item[0] if isinstance(item, tuple) else item for failure in failures for item in failure.items)
    return [effect for effect in effects if isinstance(effect, Effect)]


def _timeline(batch: Batch, flags: Sequence[SalesReadyFlag]) -> dict[str, list[Event]]:
    """Each partition's events (none for an emptied one) as they stand once this run's sales-ready flags are
    written; a lead's account may be its contact's, in another partition (hence the related contacts)."""
    flagged = {flag.lead_id: flag for flag in flags}
    leads = [flagged_lead(lead, flagged[lead.id]) if lead.id in flagged else lead for lead in batch.leads]
    contacts = [*batch.contacts, *batch.related_contacts]
    found: dict[str, list[Event]] = {partition: [] for partition in batch.refs}
    for event in timeline(contacts, leads, batch.opportunities, batch.interactions):
        found[batch.partition_of[event.source]].append(event)
    return found


def _segment_members(
    client: DataverseClient, segments: Sequence[Segment], server: bool
) -> tuple[dict[str, frozenset[str]] | None, dict[str, dict[str, Any]]]:
    """On a full run, each segment's members as Dataverse's query answers them, held as contact ids, and their
    report; otherwise nothing yet (the mirror evaluator finds the members batch by batch)."""
    if not server:
        return None, {}
    found = evaluate_segments(client, segments)
    return {name: frozenset(m.contact_id for m in ms) for name, ms in found.items()}, segment_report(found)


def _found(setup: RunSetup, batch: Batch, server: Mapping[str, frozenset[str]] | None) -> dict[str, list[Member]]:
    if server is None:
        return {s.name: members(s, batch.contacts, batch.accounts) for s in setup.segments}
    return {
        name: sorted(Member(c.id, c.account_id) for c in batch.contacts if c.id in ids) for name, ids in server.items()
    }


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector paused while a batch is evaluated (reference counting still frees what the
    batch drops). A batch holds a hundred thousand records or more until its end; the collector, triggered by
    allocations, would walk them again and again and find no cycle (a fifth of an incremental tick's time). A cycle
    made meanwhile waits for the next collection."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def scope_partitions(store: Evaluation, scope: Scope) -> list[str]:
    """The partitions a scope covers, sorted."""
    if scope is None:
        return store.mirror_partitions(EVALUATED)
    if isinstance(scope, Shard):
        return store.mirror_partitions(EVALUATED, scope.buckets())
    return sorted(set(scope))


def evaluate(
    client: DataverseClient,
    store: Evaluation,
    setup: RunSetup,
    *,
    now: datetime,
    scope: Scope = None,
    server_segments: bool = False,
    refresh_leads: Callable[[], set[str]] | None = None,
) -> RunReport:
    """Evaluate the scope in batches and write back (see the module docstring); `refresh_leads` brings the leads
    the journeys created into the mirror (returning the partitions they touched), so that this run scores them too.
    The report's `requests` is the client's count (give the run a client of its own)."""
    started = time.perf_counter()
    partitions = scope_partitions(store, scope)
    server, segments = _segment_members(client, setup.segments, server_segments)
    run = _Evaluation(client, store, setup, now)
    for chunk in _chunks(partitions, BATCH):
        with _collector_paused():
            batch = load_batch(store, setup.config, chunk)
            found = _found(setup, batch, server)
            if server is None:
                for name, part in segment_report(found).items():
                    _add(segments.setdefault(name, {}), part)
            run.batch(batch, found)
    run.outbox.flush()
    journey_run = run.journeys.finish(_failed_effects(run.outbox.failures))
    if journey_run.created["lead"] and refresh_leads is not None:  # score the leads just created, in this run
        touched = sorted(refresh_leads())
        for chunk in _chunks(touched, BATCH):
            with _collector_paused():
                run.batch(load_batch(store, setup.config, chunk), {}, journeys=False)
        run.outbox.flush()
    run.hold_back(run.outbox.failures)
    store.save_agenda(run.agenda.values())
    return RunReport(
        now=now,
        tenant=run.tenant,
        requests=client.stats.as_dict(),
        writes=merge_writes(journey_run.writes(), run.scores.result().as_dict()),
        segments=segments,
        journeys=journey_run.journeys,
        scoring={"models": run.scoring},
        seconds={"evaluate": round(time.perf_counter() - started, 3)},
        failures=[failure.as_dict() for failure in run.outbox.failures],
    )
