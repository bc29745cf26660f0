"""Running a journey: members, records, interactions and the previous state in; the new state and effects out.

`advance` is pure and deterministic (no clock: `now` is a parameter). The service persists the returned
`JourneyState` and writes the `Effect`s, deriving each record's id from `Effect.key`, which names one real-world
effect (`<journey>/<tile>/contact/<contact id>` or `<journey>/<tile>/account/<account id>`), so a replayed or
overlapping run never creates anything twice.

Semantics of one run:

- `members` is the segment's full current membership; `contacts` should hold every member's record. A member whose
  contact is active (`statecode` 0) and has never been in the journey enters at `start`. A contact enters a journey
  once: finished contacts do not re-enter. A member without a contact record neither enters nor moves this run.
- A contact in progress that is no longer a member (or whose record is now inactive) stops where it is: its progress
  is kept, marked finished, and counted in `Step.left`.
- Tiles are processed once each, in the journey's topological order (journeys have no cycles), so every contact moves
  as far as it can, and a trigger based on account sees together all contacts of an account that are at it in this
  run, including those that just arrived. Entering a tile sets `entered_at` to `now`; reaching a null next finishes.
- Action tiles act and pass on at once. Per-account tiles act once per account, for the first contact (lowest id)
  of that account to reach them, and record (tile id, account id) in `handled`; later contacts pass without acting;
  contacts without an account pass per-account tiles without acting (counted as `no_account`).
- Per-account activity templates render with that first contact. `assigned_to` account_owner / account_creator take
  the user from `owner_of` / `creator_of` by account id and fall back to the journey owner when it is unknown.
- Wait: holds until `entered_at + days` or `until`. Trigger: see `journeys.model.TriggerTile`; an interaction
  condition looks at interactions with `now - within_days <= occurred_on <= now`; expiry when
  `now >= entered_at + expires_after_days`.
- Email: skipped (`skipped_consent`) below the journey's minimum consent (unknown consent counts as 0) or with
  do_not_bulk_email; the contact still goes on.
- Subjects and activity/lead descriptions are rendered as plain text (values not HTML-escaped); an email's body is
  HTML with escaped values.
- `counts` are this run's, per tile: entered, true, false, activities, leads, workflows, emails, skipped_consent,
  no_account; `counts_by_account` the same per account id (contacts without an account are not in it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Final, Literal

from journeys.model import (
    TYPED,
    ActivityTile,
    AttributeTest,
    CreateLeadTile,
    EmailTile,
    InteractionCondition,
    Journey,
    LaunchWorkflowTile,
    Tile,
    TriggerTile,
    WaitTile,
)
from journeys.personalize import render
from journeys.segments import Member
from scoring.records import Account, Contact, Interaction

__all__ = ["COUNTERS", "Effect", "EffectKind", "JourneyState", "Progress", "Step", "advance"]

EffectKind = Literal["task", "phonecall", "appointment", "lead", "email", "workflow"]
COUNTERS: Final = (
    "entered",
    "true",
    "false",
    "activities",
    "leads",
    "workflows",
    "emails",
    "skipped_consent",
    "no_account",
)


@dataclass(frozen=True)
class Progress:
    """Where a contact is: its tile (None once past the end), when it entered it, whether it is done, and when it
    entered the journey (`started_at`; None in progress saved before it was kept: then `entered_at` stands in)."""

    contact_id: str
    tile_id: str | None
    entered_at: datetime
    finished: bool = False
    started_at: datetime | None = None


@dataclass(frozen=True)
class JourneyState:
    """One journey's progress by contact id, and the (tile id, account id) pairs per-account tiles acted for."""

    progress: Mapping[str, Progress] = field(default_factory=dict)
    handled: frozenset[tuple[str, str]] = frozenset()


@dataclass(frozen=True)
class Effect:
    """A record the service must write. `regarding` and `entity` are (logical name, id); `entity` is a workflow's
    target. `owner_id` is the owner of the created record (None for workflows)."""

    key: str
    kind: EffectKind
    journey: str
    tile_id: str
    contact_id: str | None
    account_id: str | None
    owner_id: str | None
    regarding: tuple[str, str] | None
    subject: str
    body: str | None
    workflow_id: str | None
    entity: tuple[str, str] | None


@dataclass(frozen=True)
class Step:
    """What one run did: the new state, effects ordered by key, counts per tile (and per account, then tile), and how
    many contacts stopped because they left the segment."""

    state: JourneyState
    effects: tuple[Effect, ...]
    counts: dict[str, dict[str, int]]
    left: int
    counts_by_account: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)


def _active(contact: Contact | None) -> bool:
    return contact is not None and contact.attributes.get("statecode", 0) == 0


class _Run:
    """The mutable working state of one `advance` call."""

    def __init__(
        self,
        journey: Journey,
        *,
        contacts: Mapping[str, Contact],
        accounts: Mapping[str, Account],
        interactions: Mapping[str, Sequence[Interaction]],
        state: JourneyState,
        now: datetime,
        owner_of: Mapping[str, str],
        creator_of: Mapping[str, str],
    ) -> None:
        self.journey, self.contacts, self.accounts, self.interactions = journey, contacts, accounts, interactions
        self.now, self.owner_of, self.creator_of = now, owner_of, creator_of
        self.progress: dict[str, Progress] = dict(state.progress)
        self.handled: set[tuple[str, str]] = set(state.handled)
        self.effects: dict[str, Effect] = {}
        self.counts = {tile.id: dict.fromkeys(COUNTERS, 0) for tile in journey.tiles}
        self.by_account: dict[str, dict[str, dict[str, int]]] = {}
        self.account_of: dict[str, str | None] = {}

    def count(self, tile_id: str, counter: str, contact_id: str) -> None:
        self.counts[tile_id][counter] += 1
        account_id = self.account_of.get(contact_id)
        if account_id is not None:
            tiles = self.by_account.setdefault(account_id, {})
            tiles.setdefault(tile_id, dict.fromkeys(COUNTERS, 0))[counter] += 1

    def move(self, contact_id: str, target: str | None) -> None:
        """Send a contact to `target` (None: the end)."""
        before = self.progress.get(contact_id)
        started = (before.started_at or before.entered_at) if before is not None else self.now
        self.progress[contact_id] = Progress(contact_id, target, self.now, target is None, started)
        if target is not None:
            self.count(target, "entered", contact_id)

    def account(self, contact_id: str) -> Account | None:
        account_id = self.account_of.get(contact_id)
        return self.accounts.get(account_id) if account_id else None

    # -- conditions ------------------------------------------------------------------------------------------------

    def holds(self, tile: TriggerTile, contact_id: str) -> bool:
        condition = tile.condition
        if isinstance(condition, InteractionCondition):
            since = self.now - timedelta(days=condition.within_days)
            return any(
                item.type == condition.interaction
                and since <= item.occurred_on <= self.now
                and all(test.matches(item.attributes) for test in condition.where)
                for item in self.interactions.get(contact_id, ())
            )
        return self.attribute(condition, contact_id)

    def attribute(self, test: AttributeTest, contact_id: str) -> bool:
        record: Contact | Account | None
        record = self.contacts[contact_id] if test.table == "contact" else self.account(contact_id)
        if record is None:
            return test.matches(None)
        if test.table == "contact":
            record_typed = {"id": record.id, "account_id": self.account_of.get(contact_id)}
        else:
            record_typed = {"id": record.id}
        typed = TYPED[test.table].get(test.column)
        actual = record_typed[typed] if typed else record.attributes.get(test.column)
        return test.matches(actual)

    # -- tiles -----------------------------------------------------------------------------------------------------

    def trigger(self, tile: TriggerTile, here: list[str]) -> None:
        groups: dict[str, list[str]] = {}
        for contact_id in here:
            account_id = self.account_of.get(contact_id)
            group = f"account:{account_id}" if tile.based_on == "account" and account_id else f"contact:{contact_id}"
            groups.setdefault(group, []).append(contact_id)
        expiry = timedelta(days=tile.expires_after_days)
        for members in groups.values():
            answers = [self.holds(tile, contact_id) for contact_id in members]
            result = any(answers) if tile.account_rule == "any" else all(answers)
            if result:
                path, target = "true", tile.true
            elif self.now >= min(self.progress[c].entered_at for c in members) + expiry:
                path, target = "false", tile.false
            else:
                continue
            for contact_id in members:
                self.count(tile.id, path, contact_id)
                self.move(contact_id, target)

    def wait(self, tile: WaitTile, here: list[str]) -> None:
        for contact_id in here:
            entered = self.progress[contact_id].entered_at
            release = tile.until if tile.until is not None else entered + timedelta(days=tile.days or 0)
            if self.now >= release:
                self.move(contact_id, tile.next)

    def first_for_account(self, tile: Tile, contact_id: str) -> str | None:
        """The account a per-account tile acts for now (None: nothing to do for this contact)."""
        account_id = self.account_of.get(contact_id)
        if account_id is None:
            self.count(tile.id, "no_account", contact_id)
            return None
        if (tile.id, account_id) in self.handled:
            return None
        self.handled.add((tile.id, account_id))
        return account_id

    def add(
        self,
        tile: Tile,
        kind: EffectKind,
        contact_id: str,
        per_account: bool,
        *,
        subject: str = "",
        owner_id: str | None = None,
        regarding: tuple[str, str] | None = None,
        body: str | None = None,
        workflow_id: str | None = None,
        entity: tuple[str, str] | None = None,
    ) -> None:
        account_id = self.account_of.get(contact_id)
        scope = f"account/{account_id}" if per_account else f"contact/{contact_id}"
        key = f"{self.journey.name}/{tile.id}/{scope}"
        contact = None if per_account else contact_id
        self.effects[key] = Effect(
            key, kind, self.journey.name, tile.id, contact, account_id, owner_id, regarding, subject, body, workflow_id,
            entity,
        )  # fmt: skip

    def owner(self, tile: ActivityTile, account_id: str | None) -> str:
        """The activity's owner: the journey owner, or the account's owner/creator when known."""
        table = {"account_owner": self.owner_of, "account_creator": self.creator_of}.get(tile.assigned_to)
        if table is None or account_id is None:
            return self.journey.owner
        return table.get(account_id, self.journey.owner)

    def act(self, tile: ActivityTile | LaunchWorkflowTile | CreateLeadTile | EmailTile, contact_id: str) -> None:
        per_account = not isinstance(tile, EmailTile) and tile.for_each == "account"
        if per_account and self.first_for_account(tile, contact_id) is None:
            return
        contact, account = self.contacts[contact_id], self.account(contact_id)
        account_id = self.account_of.get(contact_id)
        if isinstance(tile, ActivityTile):
            on_account = tile.regarding == "account" and account_id is not None
            regarding = ("account", account_id) if account_id is not None and on_account else ("contact", contact_id)
            description = render(tile.description, contact, account, html=False) if tile.description else None
            subject = render(tile.subject, contact, account, html=False)
            owner = self.owner(tile, account_id)
            self.add(tile, tile.activity, contact_id, per_account, regarding=regarding, subject=subject,
                     body=description, owner_id=owner)  # fmt: skip
            self.count(tile.id, "activities", contact_id)
        elif isinstance(tile, LaunchWorkflowTile):
            entity = ("account", account_id) if per_account and account_id else ("contact", contact_id)
            self.add(tile, "workflow", contact_id, per_account, workflow_id=tile.workflow, entity=entity)
            self.count(tile.id, "workflows", contact_id)
        elif isinstance(tile, CreateLeadTile):
            description = render(tile.description, contact, account, html=False) if tile.description else None
            subject = render(tile.subject, contact, account, html=False)
            self.add(
                tile, "lead", contact_id, per_account, subject=subject, body=description, owner_id=self.journey.owner
            )
            self.count(tile.id, "leads", contact_id)
        else:
            consent = contact.consent_level or 0
            if consent < self.journey.minimum_consent or contact.do_not_bulk_email:
                self.count(tile.id, "skipped_consent", contact_id)
                return
            subject, body = render(tile.subject, contact, account, html=False), render(tile.template, contact, account)
            regarding = ("contact", contact_id)
            owner = self.journey.owner
            self.add(tile, "email", contact_id, False, regarding=regarding, subject=subject, body=body, owner_id=owner)
            self.count(tile.id, "emails", contact_id)


def advance(  # noqa: PLR0917 (the service calls it positionally: journey, members, records, state)
    journey: Journey,
    members: Sequence[Member],
    contacts: Mapping[str, Contact],
    accounts: Mapping[str, Account],
    interactions_by_contact: Mapping[str, Sequence[Interaction]],
    state: JourneyState,
    *,
    now: datetime,
    owner_of: Mapping[str, str] | None = None,
    creator_of: Mapping[str, str] | None = None,
) -> Step:
    """Move the journey's contacts as far as they can go at `now` (see the module docstring for the rules)."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be an aware datetime (UTC)")
    run = _Run(
        journey,
        contacts=contacts,
        accounts=accounts,
        interactions=interactions_by_contact,
        state=state,
        now=now,
        owner_of=owner_of or {},
        creator_of=creator_of or {},
    )
    membership = {member.contact_id: member for member in members}
    for member in members:
        record = contacts.get(member.contact_id)
        run.account_of[member.contact_id] = record.account_id if record is not None else member.account_id
    for contact_id, contact in contacts.items():
        run.account_of.setdefault(contact_id, contact.account_id)
    left = 0
    for contact_id in sorted(run.progress):
        progress = run.progress[contact_id]
        record = contacts.get(contact_id)
        gone = contact_id not in membership or (record is not None and not _active(record))
        if not progress.finished and gone:
            run.progress[contact_id] = replace(progress, finished=True)
            left += 1
    for contact_id in sorted(membership):
        if contact_id not in run.progress and _active(contacts.get(contact_id)):
            run.move(contact_id, journey.start)
    for tile_id in journey.order:
        tile = journey.tile(tile_id)
        here = sorted(c for c, p in run.progress.items() if p.tile_id == tile_id and not p.finished and c in contacts)
        if isinstance(tile, TriggerTile):
            run.trigger(tile, here)
        elif isinstance(tile, WaitTile):
            run.wait(tile, here)
        else:
            for contact_id in here:
                run.act(tile, contact_id)
                run.move(contact_id, tile.next)
    new_state = JourneyState(dict(sorted(run.progress.items())), frozenset(run.handled))
    effects = tuple(run.effects[key] for key in sorted(run.effects))
    return Step(new_state, effects, run.counts, left, run.by_account)
