"""The timer's job: bring the mirror up to date through change tracking, evaluate, then save the delta links.

- Full sync on the first run, when the definitions name other columns than the mirror holds (its `$select`
  changed), when a delta link has expired, or when asked (`abm sync --full`): every mirrored table is read again
  in 5,000-row pages with change tracking on, which also gives each table's first delta link.
- Incremental sync otherwise: one change read per table from its stored delta link.
- Then every account is evaluated (journeys' waits and scoring's date windows move with time, not only with data)
  from the mirror, with no further read of Dataverse beyond what the writes need.
- Delta links are saved only after the writes they cover succeeded. A run that dies before that is simply run
  again: the changes are read again and applied again (idempotent), and every write is idempotent.

Large tenants fan out: with `ABM_SHARDS` > 1 the timer applies the changes, records a `ShardRun` holding the new
delta links, and enqueues one message per account shard; each queue-triggered worker evaluates its shard and marks
it done in the state store, and the worker that finishes the last shard saves the run's delta links. A run whose
shards are not all done by the next tick blocks the next read until a lease runs out; then its missing shards are
enqueued again (each shard is idempotent).
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from abm.jobs.mirror import KINDS, Mirror, mirror_queries
from abm.jobs.pipeline import RunReport, RunSetup, evaluate
from abm.jobs.workflows import resume_workflows
from dataverse.client import DataverseClient
from dataverse.errors import ChangeTrackingTokenExpired, DataverseError
from dataverse.mapping import MappingConfig, read_annotations
from dataverse.pages import Removed, Upserted
from dataverse.query import Query
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
_CHUNK = 1000


def _delta(kind: str) -> str:
    return f"delta:{kind}"


def shard_of(partition: str, shards: int) -> int:
    """The shard a partition belongs to: stable across processes and Python versions (CRC-32, not `hash`)."""
    return zlib.crc32(partition.encode()) % shards


@dataclass(frozen=True)
class ShardMessage:
    """The queue message of one shard of a fanned-out run (JSON)."""

    run_id: str
    shard: int
    shards: int
    now: datetime

    def to_json(self) -> str:
        return json.dumps({"run": self.run_id, "shard": self.shard, "shards": self.shards, "now": iso(self.now)})

    @classmethod
    def from_json(cls, text: str | bytes) -> ShardMessage:
        data = json.loads(text)
        return cls(str(data["run"]), int(data["shard"]), int(data["shards"]), parse_iso(str(data["now"])))


MIRROR_LAYOUT = 2  # raise when the mirror files rows differently (2: opportunities follow their contact's account)


def _fingerprint(queries: Mapping[str, Query]) -> str:
    """What the mirror was read with: its queries and its layout; a sync with another one reads every table again."""
    text = "\n".join(
        [f"layout {MIRROR_LAYOUT}", *(f"{kind} {query.to_path()}" for kind, query in sorted(queries.items()))]
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class Sync:
    """What a sync read: the mode, the changes applied, and the pending checkpoints (the timer evaluates every
    account whatever changed, so the partitions a change touched are not kept)."""

    mode: str
    changes: int
    checkpoints: dict[str, str]

    def as_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "changes": self.changes}


def _apply_feed(mirror: Mirror, kind: str, feed: Any, contacts: dict[str, str]) -> int:
    """Apply a change feed to the mirror in chunks; a removed contact is forgotten (progress, events)."""
    count = 0
    upserts: list[dict[str, Any]] = []

    def flush() -> None:
        nonlocal upserts
        mirror.apply(kind, upserts, contacts)
        upserts = []

    for change in feed:
        count += 1
        if isinstance(change, Upserted):
            upserts.append(change.row)
            if len(upserts) >= _CHUNK:
                flush()
        elif isinstance(change, Removed):
            flush()
            forget(mirror, kind, str(change.id).lower())
    flush()
    return count


def forget(mirror: Mirror, kind: str, id: str) -> set[str]:
    """A row deleted in Dataverse leaves the mirror; a deleted contact also leaves the state store (its journey
    progress, its events and its interactions: the right to be forgotten)."""
    if kind == "contact":
        interactions = mirror.interactions_of(id)
        mirror.store.forget_contact(id, interactions)
    return mirror.remove(kind, [id])


def read_into_mirror(client: DataverseClient, store: MirrorSync, setup: RunSetup, *, full: bool = False) -> Sync:
    """Bring the mirror up to date: a full read when needed (see the module docstring), else the changes."""
    mirror = Mirror(store, setup.config)
    queries = mirror_queries(setup.config, setup.models, setup.segments, setup.journeys)
    fingerprint = _fingerprint(queries)
    links = {kind: store.checkpoint(_delta(kind)) for kind in queries}
    if not full and store.checkpoint(COLUMNS) == fingerprint and all(links.values()):
        try:
            return _read_changes(client, mirror, queries, links, fingerprint)
        except ChangeTrackingTokenExpired:
            log.warning("a delta link has expired: reading every table again")
    return _read_full(client, mirror, queries, fingerprint)


def _read_full(client: DataverseClient, mirror: Mirror, queries: Mapping[str, Query], fingerprint: str) -> Sync:
    mirror.store.clear_mirror()
    checkpoints, count, contacts = {COLUMNS: fingerprint}, 0, dict[str, str]()
    for kind in KINDS:
        if kind not in queries:
            continue
        feed = client.read_changes(queries[kind], annotations=read_annotations(kind))
        count += _apply_feed(mirror, kind, feed, contacts)
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
        count += _apply_feed(mirror, kind, feed, contacts)
        checkpoints[_delta(kind)] = feed.delta_link or link
    return Sync("incremental", count, checkpoints)


def refresher(client: DataverseClient, mirror: Mirror, checkpoints: dict[str, str], kind: str) -> Callable[[], None]:
    """A callback that reads one table's changes since the pending delta link into the mirror and moves the link
    on: how the leads a journey created in this run reach the scoring of this run."""

    def refresh() -> None:
        link = checkpoints.get(_delta(kind))
        if link is None:
            return
        feed = client.read_changes(link, annotations=read_annotations(kind))
        _apply_feed(mirror, kind, feed, {})
        checkpoints[_delta(kind)] = feed.delta_link or link

    return refresh


def sync(
    client: DataverseClient,
    store: RunStore,
    setup: RunSetup,
    *,
    now: datetime,
    full: bool = False,
    shards: int = 1,
    enqueue: Callable[[Sequence[str]], None] | None = None,
) -> RunReport:
    """One timer run. With `shards` > 1 and an `enqueue` for the queue messages, the evaluation fans out and the
    report says so; otherwise every account is evaluated here and the delta links saved at the end. Each run first
    finishes the workflow starts an earlier run claimed and died before making (`resume_workflows`)."""
    _resume_workflows(client, store)
    open_run = store.open_run() if shards > 1 else None
    if open_run is not None:
        return _resume(client, store, open_run, now=now, enqueue=enqueue)
    read = read_into_mirror(client, store, setup, full=full)
    if shards > 1 and enqueue is not None:
        run = ShardRun(str(uuid.uuid4()), shards, now, read.checkpoints)
        store.start_run(run)
        enqueue([ShardMessage(run.id, shard, shards, now).to_json() for shard in range(shards)])
        return RunReport(
            now=now,
            tenant={},
            requests=client.stats.as_dict(),
            sync={**read.as_dict(), "shards": shards, "run": run.id},
        )
    mirror = Mirror(store, setup.config)
    report = evaluate(
        client,
        store,
        setup,
        now=now,
        server_segments=read.mode == "full",
        refresh_leads=refresher(client, mirror, read.checkpoints, "lead"),
    )
    store.save_checkpoints(read.checkpoints)
    return replace(report, requests=client.stats.as_dict(), sync=read.as_dict())


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
    report = evaluate(
        client,
        store,
        setup,
        now=message.now,
        scope=lambda partition: shard_of(partition, message.shards) == message.shard,
    )
    if store.finish_shard(message.run_id, message.shard):
        run = store.open_run()
        if run is not None and run.id == message.run_id:
            store.save_checkpoints(run.checkpoints)
            store.complete_run(run.id)
    return replace(report, sync={"mode": "shard", "run": message.run_id, "shard": message.shard})


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
