"""Events: Dataverse webhook deliveries received, deduplicated, stored, processed; dead letters; replay.

Receiving is quick and never evaluates: the body is checked (size, shape), the event stored under its
deduplication key, and its id handed to the queue, so Dataverse gets its answer in milliseconds. Processing (the
queue worker) re-reads the row the event is about and evaluates only the accounts it touches.

- Deduplication key: the asynchronous step's `OperationId` (one per system job, the same on every redelivery);
  without one, the SHA-256 of the body, which can never merge two real changes (their bodies differ).
- Processing re-reads the row instead of trusting the payload's images: deliveries arrive out of order and a
  trimmed body (`x-ms-dynamics-msg-size-exceeded`) has none, while the row as it is now is always right. A Delete
  removes the row from the mirror; a deleted contact is also forgotten by the state store.
- A redelivery of an event still pending is queued again: the first delivery's queue message may never have been
  written (the host writes output bindings after the function returns, and a failed write fails the call, so
  Dataverse redelivers). Processing is idempotent, so a message queued twice costs a re-read, never a second effect.
- A batch of interaction events is stored with only the ids of the interaction rows of its events (never the
  contacts or what they did): processing re-reads those rows, and forgetting a contact leaves nothing about them
  in the batch.
- An event whose processing still fails after the queue's retries becomes a dead letter with its payload and error;
  `abm replay` or `POST /api/replay` runs it again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from abm.dry_run import DryRun
from abm.errors import MAX_BODY_BYTES, InvalidInput, NotFound, check_body_size
from abm.inputs import EARLIEST, LATEST, guid, is_text, moment
from abm.jobs.columns import check_columns
from abm.jobs.interactions import IngestResult, ingest, parse_events
from abm.jobs.mirror import KINDS, Mirror, mirror_queries
from abm.jobs.pipeline import RunReport, RunSetup, evaluate
from abm.jobs.sync import ShardMessage, forget, run_shard
from dataverse.client import DataverseClient
from dataverse.errors import DataverseError, WebhookContextError
from dataverse.mapping import MappingConfig, read_annotations
from dataverse.query import in_
from dataverse.tables import table
from dataverse.webhook import decode_context
from statestore.port import DeadLetter, Evaluation, EventLog, EventWork, MirrorAndAgenda, StateStore, StoredEvent

__all__ = [
    "MAX_BODY_BYTES",
    "WATCHED_MESSAGES",
    "WATCHED_TABLES",
    "EventInputError",
    "Receipt",
    "ReplayResult",
    "dead_letter_event",
    "describe_error",
    "process_event",
    "receive_interactions",
    "receive_webhook",
    "replay",
]

log = logging.getLogger("abm.events")
WATCHED_TABLES = ("contact", "account", "lead", "abm_interaction")
WATCHED_MESSAGES = ("Create", "Update", "Delete")
INGEST = "Ingest"  # the message of a stored batch of interaction events
Record = tuple[str, str, str]  # (table, id, message): a row an event or a replay is about


class EventInputError(InvalidInput):
    """A webhook delivery or a replay request that cannot be accepted; the message names the problem."""


@dataclass(frozen=True)
class Receipt:
    """The answer to a delivery: stored and to be processed (`queued`), a redelivery, or ignored (and why)."""

    status: str
    event_id: str | None = None
    reason: str | None = None

    @property
    def queued(self) -> bool:
        """Whether the caller puts the event's id on the queue: a new event, or a redelivery still pending."""
        return self.status in ("accepted", "requeued")

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in {"status": self.status, "id": self.event_id, "reason": self.reason}.items() if v}


def receive_webhook(store: EventLog, body: bytes, headers: Mapping[str, str], *, now: datetime) -> Receipt:
    """Check, deduplicate and store one delivery. `TooLarge` or `EventInputError` for a body that cannot be a
    RemoteExecutionContext; an unknown table or message is accepted and ignored (so Dataverse stops retrying)."""
    check_body_size(body)
    try:
        event = decode_context(body, headers, max_bytes=MAX_BODY_BYTES)
    except WebhookContextError as exc:
        raise EventInputError(f"not a RemoteExecutionContext: {exc}") from None
    name, message = event.primary_entity_name, event.message_name
    if name not in WATCHED_TABLES or message not in WATCHED_MESSAGES:
        log.info("webhook ignored: %s of %s is not watched", message, name)
        return Receipt("ignored", reason=f"{message} of {name} is not handled")
    key = str(event.operation_id) if event.operation_id else "sha256:" + hashlib.sha256(body).hexdigest()
    stored = StoredEvent(
        id=key,
        source="webhook",
        received_at=now,
        table=name,
        record_id=str(event.primary_entity_id).lower(),
        message=message,
        payload=body,
    )
    receipt = _record(store, stored)
    log.info("webhook %s %s: %s of %s %s", key, receipt.status, message, name, stored.record_id)
    return receipt


def _record(store: EventLog, event: StoredEvent) -> Receipt:
    """Store a new event (`accepted`); a redelivery is `requeued` while the stored one is still pending (its queue
    message may be lost), else a `duplicate` that needs nothing."""
    if store.record_event(event):
        return Receipt("accepted", event.id)
    stored = store.event(event.id)
    return Receipt("requeued" if stored is not None and stored.status == "pending" else "duplicate", event.id)


def _reread(client: DataverseClient, mirror: Mirror, setup: RunSetup, kind: str, ids: list[str]) -> set[str]:
    """Bring rows of the mirror up to date from Dataverse, with the mirror's own `$select`, 100 ids per read; a row
    Dataverse no longer has leaves the mirror. Returns the partitions touched."""
    query = mirror_queries(setup.config, setup.models, setup.segments, setup.journeys)[kind]
    key, touched = table(kind).primary_key, set[str]()
    annotations = read_annotations(kind)
    for start in range(0, len(ids), 100):
        chunk = ids[start : start + 100]
        rows = list(
            client.iter_rows(query.where(in_(key, sorted({uuid.UUID(i) for i in chunk}))), annotations=annotations)
        )
        touched |= mirror.apply(kind, rows)
        touched |= set(mirror.partitions_of(kind, rows, {}))  # evaluated even when unchanged (a replay, a retry)
        found = {mirror.row_id(kind, row) for row in rows}
        for gone in sorted({i.lower() for i in chunk} - found):
            touched |= forget(mirror, kind, gone)
    return touched


def touch(client: DataverseClient, store: MirrorAndAgenda, setup: RunSetup, records: Iterable[Record]) -> set[str]:
    """Apply changes to the mirror: deletions forgotten, every other record re-read (100 ids per read and table);
    returns the partitions touched."""
    mirror = Mirror(store, setup.config)
    touched: set[str] = set()
    reread: dict[str, list[str]] = {}
    for kind, id, message in records:
        if message == "Delete":
            touched |= forget(mirror, kind, id)
        else:
            reread.setdefault(kind, []).append(id)
    for kind in sorted(reread, key=KINDS.index):  # contacts first: their rows place their leads and interactions
        touched |= _reread(client, mirror, setup, kind, reread[kind])
    return touched


def _records(event: StoredEvent) -> list[Record]:
    """The rows an event is about: a batch of interactions, the rows it wrote; a webhook delivery, its record."""
    if event.message == INGEST:
        stored = json.loads(event.payload)
        if "interactions" in stored:
            ids = stored["interactions"]
        else:  # stored by an earlier version, with the whole body
            ids = [str(e.row_id) for e in parse_events(event.payload, now=event.received_at)]
        return [("abm_interaction", id, "Update") for id in ids]
    return [(event.table, event.record_id, event.message)]


def receive_interactions(
    client: DataverseClient, store: EventLog, body: bytes, *, now: datetime, config: MappingConfig
) -> tuple[IngestResult, Receipt]:
    """`POST /api/interactions`: validate the batch, write it (idempotent by the sender's event ids), and store it as
    an event whose processing re-scores the accounts it touches. `InteractionInputError` names the bad path."""
    check_body_size(body)
    events = parse_events(body, now=now)
    result = ingest(client, events, now=now, mapping=config)
    key = "interactions:" + hashlib.sha256(body).hexdigest()
    rows = json.dumps({"interactions": sorted({str(e.row_id) for e in events})}).encode()
    return result, _record(store, StoredEvent(key, "interactions", now, "abm_interaction", "", INGEST, rows))


def _evaluate(
    client: DataverseClient, store: Evaluation, setup: RunSetup, partitions: set[str], now: datetime
) -> RunReport:
    return evaluate(client, store, setup, now=now, scope=sorted(partitions))


def process_event(
    client: DataverseClient, store: EventWork, setup: RunSetup, event_id: str, *, now: datetime
) -> RunReport | None:
    """Process a stored event (the queue worker): mirror, then the touched accounts. An error is recorded on the
    event and raised again, so the queue retries; `dead_letter_event` takes it after the last retry."""
    event = store.event(event_id)
    if event is None:
        log.warning("event %s is not stored (forgotten, or from another store): nothing to do", event_id)
        return None
    if event.status == "done":
        return None
    try:
        check_columns(client, store, setup)
        touched = touch(client, store, setup, _records(event))
        report = _evaluate(client, store, setup, touched, now)
    except Exception as exc:
        store.mark_event(event_id, "pending", error=describe_error(exc))
        raise
    store.mark_event(event_id, "done")
    return report


def describe_error(exc: BaseException) -> str:
    """An error as stored with a dead letter: its kind and Dataverse's status and code, no row values."""
    if isinstance(exc, DataverseError):
        return exc.summary
    return f"{type(exc).__name__}: {str(exc)[:300]}"


def dead_letter_event(store: EventLog, event_id: str, *, now: datetime, error: str | None = None) -> None:
    """After the last retry (the poison queue): the event becomes a dead letter with its payload and last error."""
    event = store.event(event_id)
    if event is None:
        return
    store.add_dead_letter(
        DeadLetter(
            id=event.id,
            kind="event",
            failed_at=now,
            payload=event.payload,
            error=error or event.error or "failed",
            attempts=event.attempts,
            record_id=event.record_id,
        )
    )
    store.mark_event(event.id, "failed", error=event.error)


@dataclass
class ReplayResult:
    """What a replay did (or, dry, would do): the records re-read, the accounts evaluated, the writes."""

    dry_run: bool
    records: list[dict[str, str]] = field(default_factory=list)
    partitions: int = 0
    writes: list[dict[str, Any]] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "dry_run": self.dry_run,
            "records": self.records,
            "accounts_evaluated": self.partitions,
            "summary": self.report,
        }
        if self.dry_run:
            result["writes"] = self.writes
        return result


def _records_of(store: EventLog, request: Mapping[str, Any]) -> tuple[list[Record], list[str]]:
    """The records a replay request names, and the dead letters it clears when it succeeds. A window runs each
    record once, with the latest message received for it."""
    if "event" in request:
        event_id = str(request["event"])
        event = store.event(event_id)
        if event is None:
            raise NotFound(f"no stored event or dead letter {event_id}")
        cleared = [event_id] if store.dead_letter(event_id) else []
        return _records(event), cleared
    if "table" in request:
        return [(str(request["table"]), str(request["id"]).lower(), "Update")], []
    latest: dict[tuple[str, str], str] = {}
    for event in store.events(since=request["since"], until=request["until"]):
        for kind, id, message in _records(event):
            latest[(kind, id)] = message
    return [(kind, id, message) for (kind, id), message in sorted(latest.items())], []


def replay(
    client: DataverseClient,
    store: StateStore,
    setup: RunSetup,
    request: Mapping[str, Any],
    *,
    now: datetime,
    dry_run: DryRun | None = None,
) -> ReplayResult:
    """Run a stored or dead-lettered event, one record, or every record of a time window again.

    `request` has exactly one of: `event` (an event or dead-letter id), `table` + `id`, or `since` + `until`
    (aware datetimes). With `dry_run` (composed over `client` and `store` by `abm.bootstrap.build_dry_run`) the
    replay runs on its client and store: nothing is written, to Dataverse or to the state store, and the result lists
    the exact writes the replay would send."""
    run_client, run_store = (dry_run.client, dry_run.store) if dry_run else (client, store)
    letter = store.dead_letter(str(request["event"])) if "event" in request else None
    if letter is not None and letter.kind == "shard":
        report = run_shard(run_client, run_store, setup, ShardMessage.from_json(letter.payload))
        if not dry_run:
            store.remove_dead_letter(letter.id)
        return _result(dry_run, [], 0, report)
    records, cleared = _records_of(store, request)
    for kind, _, _ in records:
        if kind not in WATCHED_TABLES:
            raise EventInputError(f"table {kind!r} is not one of {', '.join(WATCHED_TABLES)}")
    check_columns(run_client, run_store, setup)
    touched = touch(run_client, run_store, setup, records)
    report = _evaluate(run_client, run_store, setup, touched, now)
    if not dry_run:
        for letter_id in cleared:
            store.remove_dead_letter(letter_id)
            store.mark_event(letter_id, "done")
    shown = [{"table": k, "id": i, "message": m} for k, i, m in records]
    return _result(dry_run, shown, len(touched), report)


def _result(dry_run: DryRun | None, records: list[dict[str, str]], partitions: int, report: RunReport) -> ReplayResult:
    writes = list(dry_run.writes) if dry_run else []
    summary = {"writes": report.writes, "requests": report.requests.get("total", 0)}
    return ReplayResult(dry_run is not None, records, partitions, writes, summary)


def parse_replay_request(body: bytes) -> tuple[dict[str, Any], bool]:
    """The JSON body of `POST /api/replay`: `{"event": ID}`, `{"table": T, "id": GUID}` or `{"since": ISO,
    "until": ISO}`, plus `"dry_run": true|false`. `TooLarge` or `EventInputError` names what is wrong."""
    check_body_size(body)
    try:
        data = json.loads(body or b"{}")
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser goes
        raise EventInputError("the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise EventInputError("the body must be a JSON object")
    dry_run = data.pop("dry_run", False)
    if not isinstance(dry_run, bool):
        raise EventInputError("dry_run must be true or false")
    shapes = {frozenset({"event"}), frozenset({"table", "id"}), frozenset({"since", "until"})}
    if frozenset(data) not in shapes:
        raise EventInputError('give one of {"event"}, {"table", "id"} or {"since", "until"} (and dry_run)')
    if "event" in data and not (isinstance(data["event"], str) and 0 < len(data["event"]) <= 200):
        raise EventInputError("event must be an event id")
    if "event" in data and not is_text(data["event"]):
        raise EventInputError("event must be an event id (text without control characters)")
    if "table" in data:
        if data["table"] not in WATCHED_TABLES:
            raise EventInputError(f"table must be one of {', '.join(WATCHED_TABLES)}")
        data["id"] = guid(data["id"])
        if data["id"] is None:
            raise EventInputError("id must be a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)")
    if "since" in data:
        data["since"], data["until"] = _moment(data["since"], "since"), _moment(data["until"], "until")
        if data["since"] >= data["until"]:
            raise EventInputError("since must be before until")
    return data, dry_run


def _moment(value: object, name: str) -> datetime:
    found = moment(value)
    if found is None:
        raise EventInputError(
            f"{name} must be an ISO 8601 date-time with a time zone (e.g. Z), "
            f"from {EARLIEST:%Y-%m-%d} to {LATEST:%Y-%m-%d}"
        )
    return found
