"""The mirror: the Dataverse rows the engine reasons over, kept in the state store and partitioned by account.

An account-based score or trigger needs every contact and interaction of one account, so one account's rows sit
together: an account in its own partition, a contact in its company's, a lead or an opportunity in its parent
account's (or its contact's), an interaction in its contact's, a score in its lead's. Rows without an account get
a partition of their own (`contact:<id>`, ...). A full sync fills the mirror from 5,000-row pages; change tracking
and webhooks keep it current, and every change reports the partitions it touched, so that only those accounts are
evaluated again.

Rows are kept as Dataverse returned them (the selected columns, lookups as `_x_value`); `dataverse.mapping` turns
them into domain records when a run loads a scope, so the mapping stays in one place.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from abm.jobs.scoring import COMPARED
from dataverse import mapping
from dataverse.mapping import MappingConfig
from dataverse.query import Query
from dataverse.tables import table
from journeys.model import Journey
from journeys.model import columns_needed as journey_columns
from journeys.segments import Segment
from journeys.segments import columns_needed as segment_columns
from scoring.model import ScoringModel, columns_needed
from scoring.records import Account, Contact, Interaction, Lead, Opportunity
from statestore.port import MirrorRow, StateStore

__all__ = ["CONSENT", "KINDS", "Mirror", "Scope", "Snapshot", "mirror_queries"]

CONSENT = "msdynmkt_contactpointconsent4"
SCORE = "abm_leadscore"
# The order changes are applied in: a contact's partition needs its account, a lead's and an interaction's need
# the contact's.
KINDS = ("account", "contact", "lead", "abm_interaction", "opportunity", SCORE, CONSENT)
_CONSENT_PARTITION = "~consent"
_OWN_ACCOUNT = ("lead", "opportunity")  # kinds with a parent account lookup of their own, before their contact's
# The accounts an evaluation covers: every partition (None), a set of partitions, or a test on a partition (a shard).
Scope = Collection[str] | Callable[[str], bool] | None
SCORE_COLUMNS = ("_abm_leadid_value", "abm_model", *COMPARED)  # what the write-back compares a new score with


@dataclass(frozen=True)
class Snapshot:
    """The records one evaluation reasons over, the stored scores of its leads, and the opportunities it saw."""

    accounts: list[Account]
    contacts: list[Contact]
    leads: list[Lead]
    interactions: list[Interaction]
    opportunities: list[Opportunity]
    scores: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

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
        SCORE: query(SCORE, SCORE_COLUMNS),
    }
    if config.consent_source == "contactpointconsent":
        queries[CONSENT] = query(CONSENT, ("msdynmkt_contactpointvalue", "msdynmkt_contactpointtype", "msdynmkt_value"))
    return queries


def _lower(value: Any) -> str | None:
    return str(value).lower() if value else None


class Mirror:
    """Reads and writes the mirror in one state store: applies changes (reporting the partitions they touched) and
    loads the records of a scope."""

    def __init__(self, store: StateStore, config: MappingConfig | None = None) -> None:
        self.store = store
        self.config = config or MappingConfig()
        self._keys = {name: table(name).primary_key for name in KINDS}

    def row_id(self, kind: str, row: Mapping[str, Any]) -> str:
        return str(row[self._keys[kind]]).lower()

    # ---- partitions ----

    def _contact_partitions(self, ids: Collection[str], batch: Mapping[str, str]) -> dict[str, str]:
        """Partitions of contacts: from the rows being applied, else from the mirror."""
        found = {i: batch[i] for i in ids if i in batch}
        missing = [i for i in ids if i not in found]
        found |= {i: row.partition for i, row in self.store.mirror_rows("contact", missing).items()}
        return found

    def _contact_column(self, kind: str) -> str:
        """The lookup to the contact of a lead, an opportunity or an interaction."""
        return f"_{self.config.interactions.contact}_value" if kind == "abm_interaction" else "_parentcontactid_value"

    def partitions_of(self, kind: str, rows: Sequence[Mapping[str, Any]], contacts: Mapping[str, str]) -> list[str]:
        """The partition of each row (contacts: the partitions of contacts applied in the same batch). A lead or an
        opportunity sits in its parent account's, else its contact's (so an account's insights see it), else its
        own; an interaction in its contact's."""
        ids = [self.row_id(kind, row) for row in rows]
        if kind == "account":
            return ids
        if kind == "contact":
            return [mapping.company_account(row) or f"contact:{i}" for i, row in zip(ids, rows, strict=True)]
        if kind == CONSENT:
            return [_CONSENT_PARTITION] * len(rows)
        if kind == SCORE:
            leads = self.store.mirror_rows("lead", {_lower(r.get("_abm_leadid_value")) or "" for r in rows})
            return [
                leads[lead].partition if (lead := _lower(r.get("_abm_leadid_value"))) in leads else f"lead:{lead}"
                for r in rows
            ]
        column = self._contact_column(kind)
        owners = self._contact_partitions({c for r in rows if (c := _lower(r.get(column)))}, contacts)
        result = []
        for i, row in zip(ids, rows, strict=True):
            account = _lower(row.get("_parentaccountid_value")) if kind in _OWN_ACCOUNT else None
            contact = _lower(row.get(column))
            result.append(account or (owners.get(contact) if contact else None) or f"{kind}:{i}")
        return result

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
            column = self._contact_column(kind)
            rows = [r for r in self.store.mirror(kind, old) if (_lower(r.data.get(column)) or "") in moved]
            if kind in _OWN_ACCOUNT:
                rows = [r for r in rows if not r.data.get("_parentaccountid_value")]
            if rows:
                touched |= self.apply(kind, [r.data for r in rows], dict(moved))
            if kind == "lead" and rows:
                lead_ids = {r.id for r in rows}
                scores = [
                    r.data for r in self.store.mirror(SCORE, old) if _lower(r.data.get("_abm_leadid_value")) in lead_ids
                ]
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
            column = f"_{self.config.interactions.contact}_value"
            gone = [r.id for r in self.store.mirror("abm_interaction", touched) if _lower(r.data.get(column)) in before]
            self.store.delete_mirror("abm_interaction", gone)
        return touched

    def interactions_of(self, contact_id: str) -> list[str]:
        """Ids of a contact's mirrored interactions (read before the contact is removed)."""
        row = self.store.mirror_rows("contact", [contact_id]).get(contact_id)
        if row is None:
            return []
        column = f"_{self.config.interactions.contact}_value"
        return [
            r.id
            for r in self.store.mirror("abm_interaction", [row.partition])
            if _lower(r.data.get(column)) == contact_id
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
        scores = {
            (str(r.data.get("_abm_leadid_value")).lower(), str(r.data.get("abm_model"))): r.data
            for r in self.rows(SCORE, scope)
        }
        return Snapshot(accounts, contacts, leads, interactions, opportunities, scores)
