"""Journeys in the main job: advance each live journey over its segment's members, then write its effects exactly once.

Every effect the engine decides carries a deterministic key (journey / tile / contact or account). The row it
creates gets an id derived from that key (uuid5), so a create is idempotent: written in bulk (CreateMultiple with
client-assigned ids); rows that already exist (a run that crashed after writing but before saving its state) count
as done (`abm.jobs.writes.create_idempotent`). Keys written are recorded in the state store, and the journey's progress
is saved only after its effects are written, so a repeated run, a replay or an overlapping run creates nothing twice.

ExecuteWorkflow has no idempotency key: launch-workflow effects are started at most once through
`abm.jobs.workflows.start_workflows` (intent recorded before the call, completed with the system job's id after it).
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

from abm.errors import NotConfigured
from abm.jobs.outbox import BULK, WORKFLOW_BATCH, Outbox
from abm.jobs.workflows import WorkflowRun, start_workflows, workflow_problem
from abm.jobs.writes import create_idempotent
from dataverse.client import DataverseClient
from dataverse.rows import ActivityWrite, LeadWrite, activity_row, lead_row, send_email_once
from dataverse.tables import table
from dataverse.workflows import read_workflows
from journeys.due import next_change
from journeys.engine import COUNTERS, Effect, JourneyState, Progress, advance
from journeys.model import Journey, LaunchWorkflowTile
from journeys.segments import Member
from scoring.records import Account, Contact, Interaction
from statestore.port import EffectLedger, ProgressAndEffects

__all__ = [
    "EFFECT_NAMESPACE",
    "EffectWriter",
    "JourneyBatches",
    "JourneyCheckError",
    "JourneyRun",
    "check_workflows",
    "effect_id",
    "write_effects",
]

log = logging.getLogger("abm.journeys")
EFFECT_NAMESPACE = uuid.UUID("6b1e7f3a-4d0c-5b9e-8a21-3c7d9e0f1a2b")
_TABLES = {"task": "task", "phonecall": "phonecall", "appointment": "appointment", "email": "email", "lead": "lead"}
_WRITE_KEYS = {"task": "tasks", "phonecall": "phonecalls", "appointment": "appointments", "email": "emails"}


class JourneyCheckError(NotConfigured):
    """A journey that cannot run against this org: the message names the journey, the tile and the reason."""


def check_workflows(client: DataverseClient, journeys: Sequence[Journey]) -> None:
    """Every launch-workflow tile must name an activated, on-demand classic workflow whose primary table matches
    the tile (contact for "for each contact", account for "for each account"): checked before any journey runs."""
    tiles = [(j, t) for j in journeys if j.live for t in j.tiles if isinstance(t, LaunchWorkflowTile)]
    if not tiles:
        return
    found = read_workflows(client, [t.workflow for _, t in tiles])
    for journey, tile in tiles:
        problem = workflow_problem(found.get(tile.workflow.lower()), tile.for_each)
        if problem is not None:
            raise JourneyCheckError(f"journey {journey.name!r}, tile {tile.id!r}: workflow {tile.workflow} {problem}")


def effect_id(key: str) -> uuid.UUID:
    """The id of the row an effect creates: the same key always gives the same id."""
    return uuid.uuid5(EFFECT_NAMESPACE, key)


@dataclass
class JourneyRun:
    """What the journeys did in one run: per journey its target and tile counts; rows created per table."""

    journeys: dict[str, dict[str, Any]] = field(default_factory=dict)
    created: Counter[str] = field(default_factory=Counter)

    def writes(self) -> dict[str, dict[str, int]]:
        writes: dict[str, dict[str, int]] = {}
        for kind, count in sorted(self.created.items()):
            if kind == "workflow":
                writes["workflows"] = {"started": count}
            elif kind == "lead":
                writes["leads"] = {"created": count}
            elif kind == "sent":
                writes.setdefault("emails", {})["sent"] = count
            else:
                writes[_WRITE_KEYS[kind]] = {"created": count}
        return writes


def _per_contact(effect: Effect) -> bool:
    return f"/{effect.tile_id}/contact/" in effect.key


def _row(effect: Effect, contacts: Mapping[str, Contact], accounts: Mapping[str, Account]) -> dict[str, Any]:
    """The row an effect creates, its id derived from its key: a lead (for each contact: the contact's, copying its
    details; for each account: the account's), or an activity regarding its row."""
    id, key, subject, owner_id = effect_id(effect.key), effect.key, effect.subject, effect.owner_id
    if effect.kind == "lead":
        contact = contacts.get(effect.contact_id or "") if _per_contact(effect) else None
        account = accounts.get(effect.account_id or "")
        return lead_row(LeadWrite(id, key, subject, owner_id=owner_id, contact=contact, account=account))
    write = ActivityWrite(
        effect.kind, id, key, subject, description=effect.body, owner_id=owner_id, regarding=effect.regarding
    )
    return activity_row(write)


def _workflow_run(effect: Effect) -> WorkflowRun:
    """A launch-workflow effect as the run `start_workflows` starts once."""
    assert effect.workflow_id is not None and effect.entity is not None
    return WorkflowRun(effect.key, effect.workflow_id, effect.entity[1])


def _send_emails(client: DataverseClient, store: EffectLedger, effects: Sequence[Effect]) -> int:
    """SendEmail for recorded emails not sent yet. SendEmail is not idempotent: the email's state is read before each
    attempt (`send_email_once`: an email already sent is only recorded as such), so neither a fault nor a rerun after
    a crash sends twice."""
    keys = [f"{e.key}/send" for e in effects]
    done = store.effects_done(keys)
    sent = 0
    for key, effect in zip(keys, effects, strict=True):
        if key in done:
            continue
        email_id = effect_id(effect.key)
        sent += send_email_once(client, email_id)
        store.record_effects([(key, str(email_id))])
    return sent


class EffectWriter:
    """The journeys' effects through an outbox, each exactly once: rows created in bulk with ids derived from their
    keys and then recorded, emails sent once created (when asked), workflows started once. `created` counts rows
    created per kind, emails sent ("sent") and workflows started ("workflow")."""

    def __init__(self, client: DataverseClient, store: EffectLedger, outbox: Outbox, *, send_emails: bool) -> None:
        self.client, self.store, self.outbox, self.send_emails = client, store, outbox, send_emails
        self.created: Counter[str] = Counter()
        for kind in _TABLES:
            outbox.open(kind, BULK, partial(self._create, kind))
        outbox.open("send", WORKFLOW_BATCH, self._send)
        outbox.open("workflow", WORKFLOW_BATCH, self._start)

    def queue(
        self, effects: Sequence[Effect], contacts: Mapping[str, Contact], accounts: Mapping[str, Account]
    ) -> None:
        """Queue the effects not written before (an email written but not sent yet is queued for sending)."""
        done = self.store.effects_done(e.key for e in effects)
        for effect in effects:
            if effect.key in done:
                if effect.kind == "email" and self.send_emails:
                    self.outbox.put("send", [effect])
            elif effect.kind == "workflow":
                self.outbox.put("workflow", [_workflow_run(effect)])
            else:
                self.outbox.put(effect.kind, [(effect, _row(effect, contacts, accounts))])

    def _create(self, kind: str, items: list[tuple[Effect, dict[str, Any]]]) -> None:
        made = create_idempotent(self.client, table(_TABLES[kind]), [row for _, row in items])
        self.store.record_effects((e.key, str(effect_id(e.key))) for e, _ in items)
        if made:
            self.created[kind] += made
        if kind == "email" and self.send_emails:
            self.outbox.put("send", [e for e, _ in items])

    def _send(self, effects: list[Effect]) -> None:
        sent = _send_emails(self.client, self.store, effects)
        if sent:
            self.created["sent"] += sent

    def _start(self, runs: list[WorkflowRun]) -> None:
        started, newly = start_workflows(self.client, self.store, runs)
        self.store.record_effects(started.items())
        if newly:
            self.created["workflow"] += newly


def write_effects(
    client: DataverseClient,
    store: EffectLedger,
    effects: Sequence[Effect],
    contacts: Mapping[str, Contact],
    accounts: Mapping[str, Account],
    *,
    send_emails: bool = False,
) -> Counter[str]:
    """Write the effects not written before, now; returns rows created per kind (and emails sent, when asked)."""
    outbox = Outbox()
    writer = EffectWriter(client, store, outbox, send_emails=send_emails)
    writer.queue(effects, contacts, accounts)
    outbox.flush()
    return writer.created


def _counts_by_account(
    counts: Mapping[str, Mapping[str, int]], by_account: Mapping[str, Mapping[str, Mapping[str, int]]]
) -> dict[str, dict[str, dict[str, int]]]:
    """This run's counts by account, with contacts that have no account under "" (so the totals add up)."""
    split = {account: {tile: dict(c) for tile, c in tiles.items()} for account, tiles in by_account.items()}
    for tile, counters in counts.items():
        for counter, value in counters.items():
            rest = value - sum(tiles.get(tile, {}).get(counter, 0) for tiles in by_account.values())
            if rest:
                split.setdefault("", {}).setdefault(tile, {})[counter] = rest
    return split


@dataclass
class _Saves:
    """One journey's progress, handled pairs and counts from a run's batches, saved once its effects are written."""

    progress: list[Progress] = field(default_factory=list)
    handled: set[tuple[str, str]] = field(default_factory=set)
    counts: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    account_of: dict[str, str | None] = field(default_factory=dict)  # the account of each contact that moved


class JourneyBatches:
    """The live journeys over a run's account batches: each batch advances every live journey over its contacts and
    queues the effects in the outbox; `finish`, called once the outbox is flushed, saves the progress (effects
    first, progress after: a run that dies in between is run again and writes nothing twice).

    A batch holds whole accounts: an account's contacts are together, so an account-based trigger or tile sees all
    of them. The progress of contacts outside the batches is neither read nor touched (a contact outside the scope
    has not left the journey)."""

    def __init__(
        self, client: DataverseClient, store: ProgressAndEffects, journeys: Sequence[Journey], outbox: Outbox, *,
        now: datetime, send_emails: bool = False,
    ) -> None:  # fmt: skip
        self.client, self.store, self.now = client, store, now
        self.checked = False  # the workflows are checked before the first batch (a run with none reads nothing)
        self.live = [j for j in journeys if j.status == "live"]
        self.writer = EffectWriter(client, store, outbox, send_emails=send_emails)
        self.saves = {j.name: _Saves() for j in self.live}

    def batch(
        self,
        members: Mapping[str, Sequence[Member]],
        contacts: Sequence[Contact],
        accounts: Sequence[Account],
        interactions: Sequence[Interaction],
    ) -> dict[str, datetime]:
        """Advance every live journey over one batch; returns, by contact, the next moment a journey could move it
        with no new data (the earliest over the journeys)."""
        if not self.checked:
            check_workflows(self.client, self.live)
            self.checked = True
        by_contact = {c.id: c for c in contacts}
        by_account = {a.id: a for a in accounts}
        interactions_by_contact: dict[str, list[Interaction]] = {}
        for interaction in interactions:
            if interaction.contact_id:
                interactions_by_contact.setdefault(interaction.contact_id, []).append(interaction)
        owner_of = {a.id: a.owner_id for a in accounts if a.owner_id}
        creator_of = {a.id: a.created_by for a in accounts if a.created_by}
        account_ids = {c.account_id for c in contacts if c.account_id}
        due: dict[str, datetime] = {}
        for journey in self.live:
            state = JourneyState(
                progress={p.contact_id: p for p in self.store.progress(journey.name, by_contact)},
                handled=frozenset(self.store.handled(journey.name, account_ids)),
            )
            step = advance(
                journey,
                members.get(journey.segment, ()),
                by_contact,
                by_account,
                interactions_by_contact,
                state,
                now=self.now,
                owner_of=owner_of,
                creator_of=creator_of,
            )
            self.writer.queue(step.effects, by_contact, by_account)
            saves = self.saves[journey.name]
            moved = [p for c, p in step.state.progress.items() if state.progress.get(c) != p]
            saves.progress.extend(moved)
            saves.account_of.update((p.contact_id, by_contact[p.contact_id].account_id) for p in moved
                                    if p.contact_id in by_contact)  # fmt: skip
            saves.handled |= step.state.handled - state.handled
            _add_counts(saves.counts, _counts_by_account(step.counts, step.counts_by_account))
            for contact_id, moment in next_change(journey, step.state.progress.values(), interactions_by_contact,
                                                  now=self.now).items():  # fmt: skip
                due[contact_id] = min(moment, due.get(contact_id, moment))
        return due

    def finish(self, failed: Sequence[Effect] = ()) -> JourneyRun:
        """Save every journey's progress (call once the effects are written) and report the totals. The contacts an
        effect that could not be written was for (every contact of its account, for a per-account tile) keep their
        saved progress and the tile stays unhandled for the account, so the next run decides them again and writes
        the effect then (exactly once: its key was not recorded)."""
        result = JourneyRun(created=self.writer.created)
        for journey in self.live:
            saves = self.saves[journey.name]
            mine = [e for e in failed if e.journey == journey.name]
            contacts = {e.contact_id for e in mine if e.contact_id}
            accounts = {e.account_id for e in mine if e.account_id and not e.contact_id}
            progress = [
                p
                for p in saves.progress
                if p.contact_id not in contacts and saves.account_of.get(p.contact_id) not in accounts
            ]
            handled = {(tile, account) for tile, account in saves.handled if account not in accounts}
            self.store.save_journey(journey.name, progress, handled, saves.counts)
            totals = self.store.tile_counts(journey.name)
            result.journeys[journey.name] = {
                "target": journey.target,
                "tiles": {tile: {c: totals.get(tile, {}).get(c, 0) for c in COUNTERS} for tile in journey.order},
            }
        return result


def _add_counts(
    into: dict[str, dict[str, dict[str, int]]], counts: Mapping[str, Mapping[str, Mapping[str, int]]]
) -> None:
    for account, tiles in counts.items():
        for tile, counters in tiles.items():
            target = into.setdefault(account, {}).setdefault(tile, {})
            for counter, value in counters.items():
                target[counter] = target.get(counter, 0) + value
