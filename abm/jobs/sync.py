"""The timer's job: bring the mirror up to date through change tracking, evaluate, then save the delta links.

- Full sync on the first run, when the definitions name other columns than the mirror holds (its `$select`
  changed), when a delta link has expired, or when asked (`abm sync --full`): every mirrored table is read again
  in 5,000-row pages with change tracking on, which also gives each table's first delta link.
- Incremental sync otherwise: one change read per table from its stored delta link.
- Then the partitions (accounts) are evaluated from the mirror, with no further read of Dataverse beyond what the
  writes need: every partition after a full read or when the definitions or the settings that shape evaluation
  changed (their fingerprint, `RunSetup.fingerprint`, is kept as a checkpoint; the agenda and the insights'
  timeline are rebuilt; a state store from before the timeline is evaluated whole once for it), otherwise
  only those the agenda says are due: touched by a change since they were last evaluated, or whose next moment of
  change with no new data (a wait ending, a trigger expiring, an interaction entering or leaving a scoring window)
  has come.
- Delta links are saved only after the writes they cover succeeded. A run that dies before that is simply run
  again: the changes are read again and applied again (idempotent; the partitions they touched were marked due
  before the mirror changed), and every write is idempotent.

Large tenants fan out: with `ABM_SHARDS` > 1 the timer applies the changes, records a `ShardRun` holding the new
delta links, and enqueues one message per account shard; each queue-triggered worker evaluates its shard (the
partitions of its buckets, `statestore.port.bucket_of`: only those due, unless the run evaluates everything), marks
it done in the state store, and the worker that finishes the last shard saves the run's delta links. A run whose
shards are not all done by the next tick blocks the next read until a lease runs out; then its missing shards are
enqueued again (each shard is idempotent).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from abm.jobs.columns import check_columns
from abm.jobs.mirror import KINDS, Mirror, mirror_queries
from abm.jobs.pipeline import RunReport, RunSetup, Scope, Shard, evaluate
from abm.jobs.workflows import resume_workflows
from dataverse.client import DataverseClient
from dataverse.errors import ChangeTrackingTokenExpired, DataverseError
from dataverse.mapping import MappingConfig, read_annotations, row_id
from dataverse.pages import Removed, Upserted
from dataverse.query import Query
from dataverse.tables import table
from journeys.model import Journey
from journeys.segments import Segment
from scoring.model import ScoringModel
from statestore.port import (
    DeadLetter,
    EffectLedger,
    EventLog,
    FanOutAndCheckpoints,
    MirrorSync,
    RunStore,
    ShardRun,
    bucket_of,
    iso,
    parse_iso,
)

__all__ = [
    "SHARD_LEASE",
    "ShardMessage",
    "Sync",
    "read_into_mirror",
    "run_main_job",
    "run_shard",
    "shard_of",
    "sync",
]

log = logging.getLogger("abm.sync")
SHARD_LEASE = timedelta(hours=1)
COLUMNS = "columns"
EVALUATION = "evaluation"  # the fingerprint of what the agenda was computed with
_CHUNK = 1000


def _delta(kind: str) -> str:
    return f"delta:{kind}"


def shard_of(partition: str, shards: int) -> int:
    """The shard a partition belongs to: its fixed bucket's (so changing the shard count moves nothing)."""
    return bucket_of(partition) % shards


@dataclass(frozen=True)
class ShardMessage:
    """The queue message of one shard of a fanned-out run (JSON)."""

    run_id: str
    shard: int
    shards: int
    now: datetime
    everything: bool = True  # every partition of the shard, or only those due

    def to_json(self) -> str:
        data = {"run": self.run_id, "shard": self.shard, "shards": self.shards, "now": iso(self.now)}
        return json.dumps({**data, "everything": self.everything})

    @classmethod
    def from_json(cls, text: str | bytes) -> ShardMessage:
        data = json.loads(text)
        shard = cls(str(data["run"]), int(data["shard"]), int(data["shards"]), parse_iso(str(data["now"])))
        return replace(shard, everything=bool(data.get("everything", True)))


MIRROR_LAYOUT = 3  # raise when the mirror files rows differently (3: consent rows by address)


def _fingerprint(queries: Mapping[str, Query]) -> str:
    """What the mirror was read with: its queries and its layout; a sync with another one reads every table again."""
    text = "\n".join(
        [f"layout {MIRROR_LAYOUT}", *(f"{kind} {query.to_path()}" for kind, query in sorted(queries.items()))]
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class Sync:
    """What a sync read: the mode, the changes applied, and the pending checkpoints (the partitions a change touched
    are marked due in the agenda, not kept here)."""

    mode: str
    changes: int
    checkpoints: dict[str, str]

    def as_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "changes": self.changes}


def _apply_feed(mirror: Mirror, kind: str, feed: Any, contacts: dict[str, str]) -> tuple[int, set[str]]:
    """Apply a change feed to the mirror in chunks; a removed contact is forgotten (progress, events). Returns the
    changes read and the partitions they touched."""
    count, touched = 0, set[str]()
    upserts: list[dict[str, Any]] = []

    def flush() -> None:
        nonlocal upserts
        touched.update(mirror.apply(kind, upserts, contacts))
        upserts = []

    for change in feed:
        count += 1
        if isinstance(change, Upserted):
            upserts.append(change.row)
            if len(upserts) >= _CHUNK:
                flush()
        elif isinstance(change, Removed):
            flush()
            touched.update(forget(mirror, kind, str(change.id).lower()))
    flush()
    return count, touched


def forget(mirror: Mirror, kind: str, id: str) -> set[str]:
    """A row deleted in Dataverse leaves the mirror; a deleted contact also leaves the state store (its journey
    progress, its events and its interactions: the right to be forgotten)."""
    if kind == "contact":
        interactions = mirror.interactions_of(id)
        mirror.store.forget_contact(id, interactions)
    return mirror.remove(kind, [id])


def _queries(setup: RunSetup) -> dict[str, Query]:
    return mirror_queries(setup.config, setup.models, setup.segments, setup.journeys)


def read_into_mirror(client: DataverseClient, store: MirrorSync, setup: RunSetup, *, full: bool = False) -> Sync:
    """Bring the mirror up to date: a full read when needed (see the module docstring), else the changes."""
    mirror = Mirror(store, setup.config)
    queries = _queries(setup)
    fingerprint = _fingerprint(queries)
    links = {kind: store.checkpoint(_delta(kind)) for kind in queries}
    if not full and store.checkpoint(COLUMNS) == fingerprint and all(links.values()):
        try:
            return _read_changes(client, mirror, queries, links, fingerprint)
        except ChangeTrackingTokenExpired:
            log.warning("a delta link has expired: reading every table again")
    return _read_full(client, mirror, queries, fingerprint)


def _read_full(client: DataverseClient, mirror: Mirror, queries: Mapping[str, Query], fingerprint: str) -> Sync:
    mirror = Mirror(mirror.store, mirror.config, fresh=True)
    mirror.store.clear_mirror()
    checkpoints, count, contacts = {COLUMNS: fingerprint}, 0, dict[str, str]()
    for kind in KINDS:
        if kind not in queries:
            continue
        feed = client.read_changes(queries[kind], annotations=read_annotations(kind))
        count += _apply_feed(mirror, kind, feed, contacts)[0]
        assert feed.delta_link is not None, "a change-tracking read ends with a delta link"
        checkpoints[_delta(kind)] = feed.delta_link
    return Sync("full", count, checkpoints)


def _read_changes(
    client: DataverseClient,
    mirror: Mirror,
    queries: Mapping[str, Query],
    links: Mapping[str, str | None],
    fingerprint: str,
) -> Sync:
    checkpoints, count, contacts = {COLUMNS: fingerprint}, 0, dict[str, str]()
    for kind in KINDS:
        link = links.get(kind)
        if link is None:
            continue
        feed = client.read_changes(link, annotations=read_annotations(kind))
        count += _apply_feed(mirror, kind, feed, contacts)[0]
        checkpoints[_delta(kind)] = feed.delta_link or link
    return Sync("incremental", count, checkpoints)


def refresher(
    client: DataverseClient, mirror: Mirror, checkpoints: dict[str, str], kind: str, query: Query
) -> Callable[[], set[str]]:
    """A callback that reads one table's changes since the pending delta link into the mirror, moves the link on and
    returns the partitions touched: how the leads a journey created in this run reach the scoring of this run. A
    link that expired meanwhile (between the run's read and this one) costs a full read of that one table, whose
    rows the mirror no longer finds in it are removed, rather than the run."""

    def refresh() -> set[str]:
        link = checkpoints.get(_delta(kind))
        if link is None:
            return set()
        try:
            feed = client.read_changes(link, annotations=read_annotations(kind))
            touched = _apply_feed(mirror, kind, feed, {})[1]
        except ChangeTrackingTokenExpired:
            log.warning("the %s delta link expired during the run: reading that table again", kind)
            feed = client.read_changes(query, annotations=read_annotations(kind))
            before = {row.id for row in mirror.store.mirror(kind)}
            seen: set[str] = set()
            touched = _apply_feed(mirror, kind, _noting(feed, kind, seen), {})[1]
            for gone in sorted(before - seen):
                touched |= forget(mirror, kind, gone)
        checkpoints[_delta(kind)] = feed.delta_link or link
        return touched

    return refresh


def _noting(feed: Iterable[Any], kind: str, seen: set[str]) -> Iterator[Any]:
    """A full read's changes, noting the id of each row it holds."""
    for change in feed:
        if isinstance(change, Upserted):
            seen.add(row_id(table(kind), change.row))
        yield change


def sync(
    client: DataverseClient,
    store: RunStore,
    setup: RunSetup,
    *,
    now: datetime,
    full: bool = False,
    shards: int = 1,
    enqueue: Callable[[Sequence[str]], None] | None = None,
    evaluate_all: bool = False,
) -> RunReport:
    """One timer run. With `shards` > 1 and an `enqueue` for the queue messages, the evaluation fans out and the
    report says so; otherwise the partitions are evaluated here (every one after a full read, a change of
    definitions or with `evaluate_all`; else those due) and the delta links saved at the end. Each run first
    finishes the workflow starts an earlier run claimed and died before making (`resume_workflows`)."""
    started = time.perf_counter()
    _resume_workflows(client, store)
    open_run = store.open_run() if shards > 1 else None
    if open_run is not None:
        return _resume(client, store, open_run, now=now, enqueue=enqueue)
    check_columns(client, store, setup)  # before a read names them (metadata reads only for new definitions)
    read = read_into_mirror(client, store, setup, full=full)
    seconds = {"read": round(time.perf_counter() - started, 3)}
    fingerprint = setup.fingerprint()
    everything = evaluate_all or read.mode == "full" or store.checkpoint(EVALUATION) != fingerprint
    if everything:  # rebuilt by evaluating every partition
        store.clear_agenda()
        store.clear_timeline()
    read.checkpoints[EVALUATION] = fingerprint
    if shards > 1 and enqueue is not None:
        run = ShardRun(str(uuid.uuid4()), shards, now, read.checkpoints)
        store.start_run(run)
        enqueue([ShardMessage(run.id, shard, shards, now, everything).to_json() for shard in range(shards)])
        return RunReport(
            now=now,
            tenant={},
            requests=client.stats.as_dict(),
            sync={**read.as_dict(), "shards": shards, "run": run.id},
            seconds=seconds,
        )
    mirror = Mirror(store, setup.config)
    due = None if everything else store.due_partitions(now)
    report = evaluate(
        client,
        store,
        setup,
        now=now,
        scope=due,
        server_segments=read.mode == "full",
        refresh_leads=refresher(client, mirror, read.checkpoints, "lead", _queries(setup)["lead"]),
    )
    store.save_checkpoints(read.checkpoints)
    evaluated = {} if due is None else {"evaluated": len(due)}
    seconds |= {**report.seconds, "total": round(time.perf_counter() - started, 3)}
    return replace(report, requests=client.stats.as_dict(), sync={**read.as_dict(), **evaluated}, seconds=seconds)


def _resume_workflows(client: DataverseClient, store: EffectLedger) -> None:
    """Resume what dead runs left; a Dataverse error is logged, never the end of this run (it retries next time)."""
    try:
        started, newly = resume_workflows(client, store)
    except DataverseError as exc:
        log.warning("resuming workflow runs left by an earlier run failed: %s", exc.summary)
        return
    store.record_effects(started.items())
    if newly:
        log.info("%d workflow runs left by an earlier run started", newly)


def _resume(
    client: DataverseClient,
    store: FanOutAndCheckpoints,
    run: ShardRun,
    *,
    now: datetime,
    enqueue: Callable[[Sequence[str]], None] | None,
) -> RunReport:
    """A fanned-out run is still open: complete it if its shards are all done, wait for it while its lease runs,
    and send its missing shards again after that."""
    missing = [s for s in range(run.shards) if s not in run.done]
    status = "waiting"
    if not missing:
        store.save_checkpoints(run.checkpoints)
        store.complete_run(run.id)
        status = "completed"
    elif now - run.started_at >= SHARD_LEASE and enqueue is not None:
        enqueue([ShardMessage(run.id, shard, run.shards, run.started_at).to_json() for shard in missing])
        status = "resent"
    return RunReport(
        now=now,
        tenant={},
        requests=client.stats.as_dict(),
        sync={"mode": status, "run": run.id, "shards": run.shards, "missing": len(missing)},
    )


def store_dead_shard(store: EventLog, body: bytes, *, attempts: int, now: datetime) -> ShardMessage:
    """After the last retry (the poison queue): the shard becomes a dead letter carrying its message, so that
    `abm replay --event shard:<run>:<n>` can run it again."""
    shard = ShardMessage.from_json(body)
    store.add_dead_letter(
        DeadLetter(
            id=f"shard:{shard.run_id}:{shard.shard}",
            kind="shard",
            failed_at=now,
            payload=body,
            error="RuntimeError: the shard failed after its retries; see the function's log",
            attempts=attempts,
        )
    )
    return shard


def run_shard(client: DataverseClient, store: RunStore, setup: RunSetup, message: ShardMessage) -> RunReport:
    """Evaluate one shard of a fanned-out run (idempotent), mark it done, and save the run's delta links when it
    was the last one: the state store's count of finished shards is what knows that all are done."""
    shard = Shard(message.shard, message.shards)
    scope: Scope = shard if message.everything else store.due_partitions(message.now, shard.buckets())
    report = evaluate(client, store, setup, now=message.now, scope=scope)
    if store.finish_shard(message.run_id, message.shard):
        run = store.open_run()
        if run is not None and run.id == message.run_id:
            store.save_checkpoints(run.checkpoints)
            store.complete_run(run.id)
    evaluated = {} if isinstance(scope, Shard) or scope is None else {"evaluated": len(scope)}
    return replace(report, sync={"mode": "shard", "run": message.run_id, "shard": message.shard, **evaluated})


def run_main_job(
    client: DataverseClient,
    state: RunStore,
    *,
    now: datetime,
    models: Sequence[ScoringModel] = (),
    config: MappingConfig | None = None,
    predictive_model: str | None = None,
    segments: Sequence[Segment] = (),
    journeys: Sequence[Journey] = (),
    send_emails: bool = False,
    handoff_workflow: str | None = None,
) -> RunReport:
    """A full sync of these definitions into `state`: the main job `abm demo` runs, for callers holding definitions
    rather than a `RunSetup`."""
    setup = RunSetup(
        models=models,
        segments=segments,
        journeys=journeys,
        config=config or MappingConfig(),
        predictive_model=predictive_model,
        send_emails=send_emails,
        handoff_workflow=handoff_workflow,
    )
    return sync(client, state, setup, now=now, full=True)
