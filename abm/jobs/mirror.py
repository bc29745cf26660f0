"""The mirror: the Dataverse rows the engine reasons over, kept in the state store and partitioned by account.

An account-based score or trigger needs every contact and interaction of one account, so one account's rows sit
together: an account in its own partition, a contact in its company's, a lead or an opportunity in its parent
account's (or its contact's), an interaction in its contact's, a score in its lead's. Rows without an account get
a partition of their own (`contact:<id>`, ...). A full sync fills the mirror from 5,000-row pages; change tracking
and webhooks keep it current, and every change reports the partitions it touched, so that only those accounts are
evaluated again.

Rows are kept as Dataverse returned them (the selected columns, lookups as Dataverse names them); `dataverse.mapping`
turns them into domain records when a run loads a scope and says where each one belongs (`mapping.placement`), so
the mapping stays in one place.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dataverse import mapping
from dataverse.mapping import MappingConfig, Placement
from dataverse.query import Query
from dataverse.scores import SCORE_SELECT, ScoreRecord, score_record
from dataverse.tables import table
from journeys.model import Journey
from journeys.model import columns_needed as journey_columns
from journeys.segments import Segment
from journeys.segments import columns_needed as segment_columns
from scoring.model import ScoringModel, columns_needed
from scoring.records import Account, Contact, Interaction, Lead, Opportunity
from statestore.port import MirrorAndErasure, MirrorRow

__all__ = ["CONSENT", "KINDS", "Mirror", "Scope", "Snapshot", "mirror_queries"]

CONSENT = "msdynmkt_contactpointconsent4"
SCORE = "abm_leadscore"
# The order changes are applied in: a contact's partition needs its account, a lead's and an interaction's need
# the contact's.
KINDS = ("account", "contact", "lead", "abm_interaction", "opportunity", SCORE, CONSENT)
_CONSENT_PARTITION = "~consent"
# The accounts an evaluation covers: every partition (None), a set of partitions, or a test on a partition (a shard).
Scope = Collection[str] | Callable[[str], bool] | None


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
    """Reads and writes the mirror in one state store: applies changes (reporting the partitions they touched) and
    loads the records of a scope."""

    def __init__(self, store: MirrorAndErasure, config: MappingConfig | None = None) -> None:
        self.store = store
        self.config = config or MappingConfig()

    def row_id(self, kind: str, row: Mapping[str, Any]) -> str:
        return mapping.row_id(table(kind), row)

    def _place(self, kind: str, row: Mapping[str, Any]) -> Placement:
        return mapping.placement(kind, row, self.config)

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
        own; an interaction in its contact's."""
        placed = [self._place(kind, row) for row in rows]
        if kind == "account":
            return [p.id for p in placed]
        if kind == "contact":
            return [p.account_id or f"contact:{p.id}" for p in placed]
        if kind == CONSENT:
            return [_CONSENT_PARTITION] * len(rows)
        if kind == SCORE:
            leads = self.store.mirror_rows("lead", {p.lead_id or "" for p in placed})
            return [leads[p.lead_id].partition if p.lead_id in leads else f"lead:{p.lead_id}" for p in placed]
        owners = self._contact_partitions({p.contact_id for p in placed if p.contact_id}, contacts)
        return [
            p.account_id or (owners.get(p.contact_id) if p.contact_id else None) or f"{kind}:{p.id}" for p in placed
        ]

    # ---- changes ----

    def apply(self, kind: str, rows: Sequence[Mapping[str, Any]], contacts: dict[str, str] | None = None) -> set[str]:
        """Insert or replace rows of one kind; returns the partitions touched (old and new). A contact that moved
        to another account takes its leads, opportunities and interactions along. `contacts` collects contact
        partitions across kinds applied in one batch."""
        if not rows:
            return set()
        contacts = contacts if contacts is not None else {}
        ids = [self.row_id(kind, row) for row in rows]
        partitions = self.partitions_of(kind, rows, contacts)
        before = self.store.mirror_rows(kind, ids)
        self.store.put_mirror(MirrorRow(kind, i, p, dict(row)) for i, p, row in zip(ids, partitions, rows, strict=True))
        touched = set(partitions) | {row.partition for row in before.values()}
        if kind == "contact":
            contacts.update(zip(ids, partitions, strict=True))
            moved = {i: p for i, p in zip(ids, partitions, strict=True) if i in before and before[i].partition != p}
            if moved:
                touched |= self._follow(moved, {before[i].partition for i in moved})
        return touched

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
                stored = self.store.mirror(SCORE, old)
                scores = [r.data for r in stored if self._place(SCORE, r.data).lead_id in lead_ids]
                touched |= self.apply(SCORE, scores)
        return touched

    def remove(self, kind: str, ids: Iterable[str]) -> set[str]:
        """Delete rows of one kind; returns the partitions they were in. A removed contact's interactions go too."""
        wanted = [str(i).lower() for i in ids]
        before = self.store.mirror_rows(kind, wanted)
        if not before:
            return set()
        self.store.delete_mirror(kind, before)
        touched = {row.partition for row in before.values()}
        if kind == "contact":
            interactions = self.store.mirror("abm_interaction", touched)
            gone = [r.id for r in interactions if self._place("abm_interaction", r.data).contact_id in before]
            self.store.delete_mirror("abm_interaction", gone)
        return touched

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

    # ---- loading ----

    def rows(self, kind: str, scope: Scope = None) -> Iterator[MirrorRow]:
        """The mirrored rows of one kind in a scope: all (None), some partitions, or those a test accepts."""
        if scope is None or not callable(scope):
            yield from self.store.mirror(kind, None if scope is None else sorted(set(scope)))
        else:
            yield from (row for row in self.store.mirror(kind) if scope(row.partition))

    def load(self, scope: Scope = None) -> Snapshot:
        """The records of a scope (see `rows`). Every account is loaded whatever the scope: attribute paths may hop
        to a parent account in another partition, and accounts are few."""
        config = self.config
        by_email = None
        if config.consent_source == "contactpointconsent":
            by_email = mapping.consent_by_email((r.data for r in self.store.mirror(CONSENT)), config)
        accounts = [mapping.account(r.data) for r in self.store.mirror("account")]
        contacts = [mapping.contact(r.data, config, by_email) for r in self.rows("contact", scope)]
        leads = [mapping.lead(r.data) for r in self.rows("lead", scope)]
        key = table("abm_interaction").primary_key
        interactions = [mapping.interaction(r.data, key, config) for r in self.rows("abm_interaction", scope)]
        interactions.sort(key=lambda i: (i.occurred_on, i.id))
        opportunities = [mapping.opportunity(r.data) for r in self.rows("opportunity", scope)]
        stored = (score_record(r.data) for r in self.rows(SCORE, scope))
        scores = {(s.lead_id, s.model): s for s in stored}
        return Snapshot(accounts, contacts, leads, interactions, opportunities, scores)
