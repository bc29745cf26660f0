"""The mirror: the Dataverse rows the engine reasons over, kept in the state store and partitioned by account.

An account-based score or trigger needs every contact and interaction of one account, so one account's rows sit
together: an account in its own partition, a contact in its company's, a lead or an opportunity in its parent
account's (or its contact's), an interaction in its contact's, a score in its lead's. Rows without an account get
a partition of their own (`contact:<id>`, ...). A full sync fills the mirror from 5,000-row pages; change tracking
and webhooks keep it current, and every change reports the partitions it touched, so that only those accounts are
evaluated again.

A change that leaves what the engine reads of a row identical (`mapping.evaluated`) touches nothing, and the rows a
run wrote itself (scores, sales-ready flags) are written through to the mirror, so that reading them back is no
change. A change marks the partitions it touched due at once in the agenda (before the row is stored, so that a run
that dies in between still evaluates them), with the partitions whose last evaluation read the changed record from
another partition (a parent account, a lead's contact in another account, a consent row).

Rows are kept as Dataverse returned them (the selected columns, lookups as Dataverse names them); `dataverse.mapping`
turns them into domain records when a run loads a scope and says where each one belongs (`mapping.placement`), so
the mapping stays in one place.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dataverse import mapping
from dataverse.mapping import MappingConfig, Placement
from dataverse.query import Query
from dataverse.scores import (
    SCORE_SELECT,
    SalesReadyFlag,
    ScoreRecord,
    ScoreWrite,
    flagged_lead_row,
    score_mirror_row,
    score_record,
)
from dataverse.tables import table
from journeys.model import Journey
from journeys.model import columns_needed as journey_columns
from journeys.segments import Segment
from journeys.segments import columns_needed as segment_columns
from scoring.model import ScoringModel, columns_needed
from scoring.records import Account, Contact, Interaction, Lead, Opportunity, StoredScore
from statestore.port import MirrorAndAgenda, MirrorRow, MirrorStore

__all__ = [
    "AT_ONCE",
    "CONSENT",
    "EVALUATED",
    "KINDS",
    "SCORE",
    "Mirror",
    "Snapshot",
    "load_snapshot",
    "mirror_queries",
    "record_ref",
    "stored_scores",
]

CONSENT = "msdynmkt_contactpointconsent4"
SCORE = "abm_leadscore"
# The order changes are applied in: a contact's partition needs its account, a lead's and an interaction's need
# the contact's.
KINDS = ("account", "contact", "lead", "abm_interaction", "opportunity", SCORE, CONSENT)
EVALUATED = KINDS[:-1]  # the kinds whose partitions are evaluated (consent rows sit in partitions by address)
AT_ONCE = datetime(1970, 1, 1, tzinfo=UTC)  # the due moment of a partition a change touched


def record_ref(kind: str, id: str) -> str:
    """How an agenda entry names a record its partition's evaluation read from another partition."""
    return f"{kind}:{id}"


def _consent_partition(address: str) -> str:
    return record_ref("consent", address)


@dataclass(frozen=True)
class Snapshot:
    """The records one evaluation reasons over, the stored scores of its leads, and the opportunities it saw."""

    accounts: list[Account]
    contacts: list[Contact]
    leads: list[Lead]
    interactions: list[Interaction]
    opportunities: list[Opportunity]
    scores: dict[tuple[str, str], ScoreRecord] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return {
            "accounts": len(self.accounts),
            "contacts": len(self.contacts),
            "leads": len(self.leads),
            "interactions": len(self.interactions),
            "opportunities": len(self.opportunities),
        }


def mirror_queries(
    config: MappingConfig,
    models: Sequence[ScoringModel] = (),
    segments: Sequence[Segment] = (),
    journeys: Sequence[Journey] = (),
) -> dict[str, Query]:
    """The read of each mirrored table: `$select` of the columns every record needs plus those the definitions name
    (change tracking allows nothing else). The consent table is read only when consent comes from it."""
    needed = columns_needed(models)
    for extra in (segment_columns(segments), journey_columns(journeys)):
        for kind, columns in extra.items():
            needed[kind] = needed.get(kind, set()) | columns

    def query(name: str, columns: Sequence[str]) -> Query:
        return Query(table(name).entity_set).select(*columns)

    queries = {
        "account": query("account", mapping.select_for("account", needed.get("account", ()))),
        "contact": query("contact", mapping.select_for("contact", needed.get("contact", ()), config)),
        "lead": query("lead", mapping.select_for("lead", needed.get("lead", ()))),
        "abm_interaction": query("abm_interaction", mapping.interaction_select(config, needed.get("interaction", ()))),
        "opportunity": query("opportunity", mapping.select_for("opportunity", needed.get("opportunity", ()))),
        SCORE: query(SCORE, SCORE_SELECT),  # what the write-back compares a new score with
    }
    if config.consent_source == "contactpointconsent":
        queries[CONSENT] = query(CONSENT, mapping.CONSENT_SELECT)
    return queries


class Mirror:
    """Applies changes to the mirror in one state store, reporting (and marking due) the partitions they touched.
    `fresh=True` while a full read fills the mirror it just cleared: no row is there to compare with, and nothing is
    marked due (every partition is evaluated after a full read)."""

    def __init__(self, store: MirrorAndAgenda, config: MappingConfig | None = None, *, fresh: bool = False) -> None:
        self.store = store
        self.config = config or MappingConfig()
        self.fresh = fresh

    def row_id(self, kind: str, row: Mapping[str, Any]) -> str:
        return mapping.row_id(table(kind), row)

    def _place(self, kind: str, row: Mapping[str, Any]) -> Placement:
        return mapping.placement(kind, row, self.config)

    def _view(self, kind: str, row: Mapping[str, Any]) -> object:
        return score_record(row) if kind == SCORE else mapping.evaluated(kind, row, self.config)

    def _refs(self, kind: str, row: Mapping[str, Any]) -> set[str]:
        """The refs by which other partitions' evaluations know this row (see `abm.jobs.loading`)."""
        if kind in ("account", "contact"):
            return {record_ref(kind, self.row_id(kind, row))}
        if kind == "abm_interaction":
            contact = self._place(kind, row).contact_id
            return {record_ref("contact", contact)} if contact else set()
        if kind == CONSENT:
            return {_consent_partition(mapping.contact_point_address(row))}
        return set()

    # ---- partitions ----

    def _contact_partitions(self, ids: Collection[str], batch: Mapping[str, str]) -> dict[str, str]:
        """Partitions of contacts: from the rows being applied, else from the mirror."""
        found = {i: batch[i] for i in ids if i in batch}
        missing = [i for i in ids if i not in found]
        found |= {i: row.partition for i, row in self.store.mirror_rows("contact", missing).items()}
        return found

    def partitions_of(self, kind: str, rows: Sequence[Mapping[str, Any]], contacts: Mapping[str, str]) -> list[str]:
        """The partition of each row (contacts: the partitions of contacts applied in the same batch). A lead or an
        opportunity sits in its parent account's, else its contact's (so an account's insights see it), else its
        own; an interaction in its contact's; a consent row in its address's."""
        placed = [self._place(kind, row) for row in rows]
        if kind == "account":
            return [p.id for p in placed]
        if kind == "contact":
            return [p.account_id or f"contact:{p.id}" for p in placed]
        if kind == CONSENT:
            return [_consent_partition(mapping.contact_point_address(row)) for row in rows]
        if kind == SCORE:
            leads = self.store.mirror_rows("lead", {p.lead_id or "" for p in placed})
            return [leads[p.lead_id].partition if p.lead_id in leads else f"lead:{p.lead_id}" for p in placed]
        owners = self._contact_partitions({p.contact_id for p in placed if p.contact_id}, contacts)
        return [
            p.account_id or (owners.get(p.contact_id) if p.contact_id else None) or f"{kind}:{p.id}" for p in placed
        ]

    def _due(self, touched: set[str], refs: set[str]) -> set[str]:
        """The partitions touched and those whose evaluation read a changed record, marked due at once."""
        if self.fresh:
            return touched
        due = touched | (self.store.dependents(refs) if refs else set())
        if due:
            self.store.mark_due(due, AT_ONCE)
        return due

    # ---- changes ----

    def apply(self, kind: str, rows: Sequence[Mapping[str, Any]], contacts: dict[str, str] | None = None) -> set[str]:
        """Insert or replace rows of one kind; returns the partitions touched (old and new, and those that read a
        changed row from elsewhere). A row whose evaluated content is unchanged touches nothing. A contact that
        moved to another account takes its leads, opportunities and interactions along. `contacts` collects
        contact partitions across kinds applied in one batch."""
        if not rows:
            return set()
        contacts = contacts if contacts is not None else {}
        ids = [self.row_id(kind, row) for row in rows]
        partitions = self.partitions_of(kind, rows, contacts)
        if kind == "contact":
            contacts.update(zip(ids, partitions, strict=True))
        before = {} if self.fresh else self.store.mirror_rows(kind, ids)
        provisional = {} if self.fresh else self._provisional(kind, rows, ids, before)
        changed = [
            (i, p, row)
            for i, p, row in zip(ids, partitions, rows, strict=True)
            if self._differs(kind, before.get(i) or provisional.get(i), p, row)
        ]
        if provisional:  # scores the run wrote through, now read back with their ids: kept under those
            self.store.delete_mirror(kind, [old.id for old in provisional.values()])
            moved = {i for i, _, _ in changed}
            same = [(i, p, row) for i, p, row in zip(ids, partitions, rows, strict=True) if i in provisional]
            self.store.put_mirror(MirrorRow(kind, i, p, dict(row)) for i, p, row in same if i not in moved)
        if not changed:
            return set()
        touched = {p for _, p, _ in changed} | {before[i].partition for i, _, _ in changed if i in before}
        if kind == CONSENT:  # a consent partition is not evaluated: the contacts with its address are
            touched = set()
        refs = set[str]()
        if not self.fresh:  # the rows' refs as they are now and as they were
            old = [before[i].data for i, _, _ in changed if i in before]
            refs = refs.union(*(self._refs(kind, row) for row in [*(row for _, _, row in changed), *old]))
        due = self._due(touched, refs)
        if kind == "contact":  # what follows a moved contact moves first: a rerun after a crash finds it moved
            moves = {i: p for i, p, _ in changed if i in before and before[i].partition != p}
            if moves:
                due |= self._follow(moves, {before[i].partition for i in moves})
        self.store.put_mirror(MirrorRow(kind, i, p, dict(row)) for i, p, row in changed)
        return due

    def _differs(self, kind: str, old: MirrorRow | None, partition: str, row: Mapping[str, Any]) -> bool:
        return old is None or old.partition != partition or self._view(kind, old.data) != self._view(kind, row)

    def _provisional(
        self, kind: str, rows: Sequence[Mapping[str, Any]], ids: Sequence[str], before: Mapping[str, MirrorRow]
    ) -> dict[str, MirrorRow]:
        """Score rows written through by a run (under their alternate key, their id unknown then) that these rows,
        new to the mirror, are: by the new row's id."""
        if kind != SCORE:
            return {}
        keys = {i: _provisional_id(score_record(row)) for i, row in zip(ids, rows, strict=True) if i not in before}
        if not keys:
            return {}
        found = self.store.mirror_rows(kind, keys.values())
        return {i: found[key] for i, key in keys.items() if key in found}

    def _follow(self, moved: Mapping[str, str], old: Collection[str]) -> set[str]:
        """Move the leads, opportunities and interactions of contacts that changed partition (those of a lead or an
        opportunity only without a parent account of its own), and their leads' scores."""
        touched: set[str] = set()
        for kind in ("lead", "opportunity", "abm_interaction"):
            placed = ((r, self._place(kind, r.data)) for r in self.store.mirror(kind, old))
            rows = [r for r, p in placed if (p.contact_id or "") in moved and p.account_id is None]
            if rows:
                touched |= self.apply(kind, [r.data for r in rows], dict(moved))
            if kind == "lead" and rows:
                lead_ids = {r.id for r in rows}
                stored = self.store.mirror(SCORE, old)  # (by their lead: a row written through has no id yet)
                scores = [r for r in stored if score_record(r.data).lead_id in lead_ids]
                touched |= self._move_scores(scores)
        return touched

    def _move_scores(self, scores: Sequence[MirrorRow]) -> set[str]:
        """Score rows (provisional ones too) follow their lead to its new partition."""
        leads = self.store.mirror_rows("lead", {score_record(r.data).lead_id for r in scores})
        moved = [
            MirrorRow(SCORE, r.id, leads[lead].partition, r.data)
            for r in scores
            if (lead := score_record(r.data).lead_id) in leads and leads[lead].partition != r.partition
        ]
        self.store.put_mirror(moved)
        return {r.partition for r in moved}

    def remove(self, kind: str, ids: Iterable[str]) -> set[str]:
        """Delete rows of one kind; returns the partitions touched. A removed contact's interactions go too."""
        wanted = [str(i).lower() for i in ids]
        before = self.store.mirror_rows(kind, wanted)
        if not before:
            return set()
        touched = {row.partition for row in before.values()} if kind != CONSENT else set()
        refs = set[str]().union(*(self._refs(kind, row.data) for row in before.values()))
        due = self._due(touched, refs)
        self.store.delete_mirror(kind, before)
        if kind == "contact":
            interactions = self.store.mirror("abm_interaction", touched)
            gone = [r.id for r in interactions if self._place("abm_interaction", r.data).contact_id in before]
            self.store.delete_mirror("abm_interaction", gone)
        return due

    def interactions_of(self, contact_id: str) -> list[str]:
        """Ids of a contact's mirrored interactions (read before the contact is removed)."""
        row = self.store.mirror_rows("contact", [contact_id]).get(contact_id)
        if row is None:
            return []
        return [
            r.id
            for r in self.store.mirror("abm_interaction", [row.partition])
            if self._place("abm_interaction", r.data).contact_id == contact_id
        ]

    # ---- the run's own writes ----

    def write_through(self, scores: Sequence[ScoreWrite], flags: Sequence[SalesReadyFlag]) -> None:
        """Keep what a run wrote (score rows, sales-ready flags) as a read will answer it, so that change tracking
        bringing it back is no change. A new score's row id is not known yet: it is kept under its alternate key
        until the read brings the row (`apply`)."""
        leads = self.store.mirror_rows("lead", {w.score.lead_id for w in scores} | {f.lead_id for f in flags})
        if scores:
            partitions = {leads[w.score.lead_id].partition for w in scores if w.score.lead_id in leads}
            existing = {_provisional_id(score_record(r.data)): r for r in self.store.mirror(SCORE, partitions)}
            rows = []
            for write in scores:
                lead, row = leads.get(write.score.lead_id), score_mirror_row(write)
                key = _provisional_id(score_record(row))
                if lead is not None:
                    old = existing.get(key)
                    id, data = (old.id, {**old.data, **row}) if old is not None else (key, row)
                    rows.append(MirrorRow(SCORE, id, lead.partition, data))
            self.store.put_mirror(rows)
        self.store.put_mirror(
            MirrorRow("lead", f.lead_id, leads[f.lead_id].partition, flagged_lead_row(leads[f.lead_id].data, f))
            for f in flags
            if f.lead_id in leads
        )


def _provisional_id(record: ScoreRecord) -> str:
    """The mirror id of a score row written through before its own id is known: its alternate key."""
    return f"~{record.lead_id}/{record.model}"


def stored_scores(store: MirrorStore) -> list[StoredScore]:
    """Every score the mirror holds, as the insights show them (the report's distributions)."""
    return [score_record(r.data).as_stored() for r in store.mirror(SCORE)]


def load_snapshot(store: MirrorStore, config: MappingConfig, partitions: Collection[str] | None = None) -> Snapshot:
    """The records of every partition (None) or of some, at once (the insights' whole-tenant views; a run loads
    its partitions in batches, `abm.jobs.loading`)."""

    def rows(kind: str) -> Iterator[MirrorRow]:
        return store.mirror(kind, None if partitions is None else sorted(set(partitions)))

    by_email = None
    if config.consent_source == "contactpointconsent":
        by_email = mapping.consent_by_email((r.data for r in store.mirror(CONSENT)), config)
    accounts = [mapping.account(r.data) for r in rows("account")]
    contacts = [mapping.contact(r.data, config, by_email) for r in rows("contact")]
    leads = [mapping.lead(r.data) for r in rows("lead")]
    key = table("abm_interaction").primary_key
    interactions = mapping.interactions((r.data for r in rows("abm_interaction")), key, config)
    interactions.sort(key=lambda i: (i.occurred_on, i.id))
    opportunities = [mapping.opportunity(r.data) for r in rows("opportunity")]
    scores = {(s.lead_id, s.model): s for s in (score_record(r.data) for r in rows(SCORE))}
    return Snapshot(accounts, contacts, leads, interactions, opportunities, scores)
