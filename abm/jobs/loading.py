"""Loading a batch of partitions from the mirror: the records a run evaluates together, and what they read elsewhere.

A partition holds an account with its contacts, leads, interactions, opportunities and stored scores, so most of
what evaluating it needs is inside it. Not all: a scoring rule's path may hop to a parent account or an account's
primary contact in another partition, a lead may name a contact of another account (whose interactions score it),
and with contact point consent a contact's level sits in its address's consent rows. The loader follows those
references from the batch's records, up to `scoring.model.MAX_HOPS` hops, reads the records it reaches, and names
them per partition (`refs`, e.g. `account:<id>`): the agenda keeps them, so that a change to one of those records
makes the partitions that read it due too.

Journeys and segments see the batch's own contacts only (a contact is evaluated with its own account); scoring
also sees the related contacts and their interactions.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from operator import attrgetter

from abm.jobs.mirror import CONSENT, SCORE, Snapshot, record_ref
from dataverse import mapping
from dataverse.mapping import MappingConfig
from dataverse.scores import score_record
from dataverse.tables import table
from scoring.model import MAX_HOPS
from scoring.records import Account, Contact, Interaction
from statestore.port import MirrorRow, MirrorStore

__all__ = ["Batch", "load_batch"]

_TIME_ORDER = attrgetter("occurred_on", "id")  # the order interactions are evaluated in


@dataclass(frozen=True)
class Batch(Snapshot):
    """A snapshot of some partitions (their own records), plus the records they read from other partitions
    (`related_*`), the partition of each of its own records (contacts, leads, opportunities, interactions), and each
    partition's refs."""

    related_accounts: list[Account] = field(default_factory=list)
    related_contacts: list[Contact] = field(default_factory=list)
    related_interactions: list[Interaction] = field(default_factory=list)
    partition_of: dict[str, str] = field(default_factory=dict)  # ids of the batch's own records -> partition
    refs: dict[str, frozenset[str]] = field(default_factory=dict)


class _Related:
    """Records outside the batch, read by id as the references reach them."""

    def __init__(self, store: MirrorStore, config: MappingConfig) -> None:
        self.store, self.config = store, config
        self.accounts: dict[str, Account | None] = {}
        self.contacts: dict[str, MirrorRow | None] = {}

    def fetch(self, accounts: Collection[str], contacts: Collection[str]) -> None:
        new_accounts = [a for a in accounts if a not in self.accounts]
        if new_accounts:
            found = self.store.mirror_rows("account", new_accounts)
            for id in new_accounts:
                self.accounts[id] = mapping.account(found[id].data) if id in found else None
        new_contacts = [c for c in contacts if c not in self.contacts]
        if new_contacts:
            rows = self.store.mirror_rows("contact", new_contacts)
            for id in new_contacts:
                self.contacts[id] = rows.get(id)


def load_batch(store: MirrorStore, config: MappingConfig, partitions: Sequence[str]) -> Batch:
    """The records of these partitions and what they read from others (see the module docstring)."""
    wanted = sorted(set(partitions))
    rows = {kind: list(store.mirror(kind, wanted)) for kind in ("account", "contact", "lead", "opportunity")}
    local_accounts = {r.id: mapping.account(r.data) for r in rows["account"]}
    partition_of = {r.id: r.partition for r in (*rows["contact"], *rows["lead"])}
    leads = [mapping.lead(r.data) for r in rows["lead"]]

    # Follow the references, one hop per round, each round reading what it reached for the whole batch. A record in
    # another partition is a ref of the partition that reached it, even when the batch holds it too.
    related = _Related(store, config)
    related.accounts.update(local_accounts)
    related.contacts.update({r.id: r for r in rows["contact"]})
    reached: dict[str, set[str]] = {p: set() for p in wanted}  # partition -> refs
    frontier: dict[str, set[tuple[str, str]]] = {p: set() for p in wanted}  # partition -> (kind, id) to visit
    for row in rows["account"]:
        _reach(frontier[row.partition], local_accounts[row.id])
    for lead, row in zip(leads, rows["lead"], strict=True):
        frontier[row.partition] |= {("account", lead.account_id or ""), ("contact", lead.contact_id or "")}
    for _ in range(MAX_HOPS):
        for partition, refs in frontier.items():
            frontier[partition] = {
                (kind, id) for kind, id in refs
                if id and _home(kind, id, related) != partition and record_ref(kind, id) not in reached[partition]
            }  # fmt: skip
        todo = {ref for refs in frontier.values() for ref in refs}
        if not todo:
            break
        related.fetch({id for kind, id in todo if kind == "account"}, {id for kind, id in todo if kind == "contact"})
        for partition, refs in frontier.items():
            following: set[tuple[str, str]] = set()
            for kind, id in refs:
                reached[partition].add(record_ref(kind, id))
                if kind == "account" and (account := related.accounts.get(id)) is not None:
                    _reach(following, account)
                elif kind == "contact" and (contact := related.contacts.get(id)) is not None:
                    following.add(("account", mapping.placement("contact", contact.data, config).account_id or ""))
            frontier[partition] = following
    local_contacts = {r.id for r in rows["contact"]}
    related_rows = [r for id, r in related.contacts.items() if r is not None and id not in local_contacts]

    by_email = _consent(store, config, [*rows["contact"], *related_rows], reached)
    contacts = [mapping.contact(r.data, config, by_email) for r in rows["contact"]]
    related_contacts = [mapping.contact(r.data, config, by_email) for r in related_rows]
    key = table("abm_interaction").primary_key
    interaction_rows = list(store.mirror("abm_interaction", wanted))
    interactions = mapping.interactions((r.data for r in interaction_rows), key, config)
    interactions.sort(key=_TIME_ORDER)
    partition_of |= {r.id: r.partition for r in (*rows["opportunity"], *interaction_rows)}
    lead_contacts = {lead.contact_id for lead in leads if lead.contact_id and lead.contact_id not in local_contacts}
    related_interactions = _interactions_of(store, config, lead_contacts, related) if lead_contacts else []
    related_accounts = [a for id, a in related.accounts.items() if a is not None and id not in local_accounts]
    opportunities = [mapping.opportunity(r.data) for r in rows["opportunity"]]
    scores = {(s.lead_id, s.model): s for s in (score_record(r.data) for r in store.mirror(SCORE, wanted))}
    return Batch(
        list(local_accounts.values()),
        contacts,
        leads,
        interactions,
        opportunities,
        scores,
        related_accounts=related_accounts,
        related_contacts=related_contacts,
        related_interactions=related_interactions,
        partition_of=partition_of,
        refs={p: frozenset(refs) for p, refs in reached.items()},
    )


def _consent(
    store: MirrorStore, config: MappingConfig, contacts: Sequence[MirrorRow], reached: dict[str, set[str]]
) -> dict[str, int] | None:
    """With contact point consent, the levels of these contacts' addresses, each address a ref of the partitions
    whose contacts (their own or reached) have it; None when consent is a contact column."""
    if config.consent_source != "contactpointconsent":
        return None
    address_of = {r.id: mapping.email_address(r.data) for r in contacts}
    wanted = [record_ref("consent", a) for a in sorted(set(address_of.values())) if a]
    by_ref = {record_ref("contact", id): address for id, address in address_of.items() if address}
    for r in contacts:
        if address_of[r.id] and r.partition in reached:
            reached[r.partition].add(record_ref("consent", address_of[r.id]))
    for refs in reached.values():
        refs |= {record_ref("consent", by_ref[ref]) for ref in refs & by_ref.keys()}
    return mapping.consent_by_email((r.data for r in store.mirror(CONSENT, wanted)), config)


def _interactions_of(
    store: MirrorStore, config: MappingConfig, contacts: Collection[str], related: _Related
) -> list[Interaction]:
    """The interactions of contacts outside the batch (a lead's contact in another account: they score the lead)."""
    key = table("abm_interaction").primary_key
    where = {r.partition for id in contacts if (r := related.contacts.get(id)) is not None}
    rows = store.mirror("abm_interaction", where)
    found = [i for i in mapping.interactions((r.data for r in rows), key, config) if i.contact_id in contacts]
    found.sort(key=_TIME_ORDER)
    return found


def _home(kind: str, id: str, known: _Related) -> str | None:
    """The partition a record sits in, when known (an account's is its own id)."""
    if kind == "account":
        return id
    row = known.contacts.get(id)
    return row.partition if row is not None else None


def _reach(into: set[tuple[str, str]], account: Account) -> None:
    """The records an account's hops lead to: its parent account and its primary contact."""
    into.add(("account", account.parent_account_id or ""))
    into.add(("contact", account.primary_contact_id or ""))
