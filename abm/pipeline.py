"""The main job: pull what the engine reasons over, evaluate the segments, score the leads, write back what
changed, report it all.

Each table is read once with `$select` (the columns every record needs plus those the definitions name) in 5,000-row
pages and mapped to domain records at the boundary. Later issues add segments and journeys to the same run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from abm.journeys_job import run_journeys
from abm.scoring_job import write_scores
from abm.segments_job import evaluate_segments, segment_report
from abm.state import SqliteStateStore, StateStore
from dataverse import mapping
from dataverse.client import DataverseClient
from dataverse.mapping import MappingConfig
from dataverse.query import Query
from dataverse.tables import table
from journeys.model import Journey
from journeys.model import columns_needed as journey_columns
from journeys.segments import Segment
from journeys.segments import columns_needed as segment_columns
from scoring.engine import score_run
from scoring.model import ScoringModel, columns_needed
from scoring.records import Account, Contact, Interaction, Lead

__all__ = ["RunReport", "Snapshot", "pull", "run_main_job"]


@dataclass(frozen=True)
class Snapshot:
    """The records one run reasons over, and the number of opportunities it saw."""

    accounts: list[Account]
    contacts: list[Contact]
    leads: list[Lead]
    interactions: list[Interaction]
    opportunities: int

    def counts(self) -> dict[str, int]:
        return {
            "accounts": len(self.accounts),
            "contacts": len(self.contacts),
            "leads": len(self.leads),
            "interactions": len(self.interactions),
            "opportunities": self.opportunities,
        }


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

    def as_dict(self) -> dict[str, Any]:
        return {
            "now": self.now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "tenant": self.tenant,
            "requests": self.requests,
            "writes": self.writes,
            "segments": self.segments,
            "journeys": self.journeys,
            "scoring": self.scoring,
        }


def _lead_query(models: Sequence[ScoringModel], needed: dict[str, set[str]] | None = None) -> Query:
    columns = (needed if needed is not None else columns_needed(models)).get("lead", set())
    return Query(table("lead").entity_set).select(*mapping.select_for("lead", columns))


def _merge(*writes: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """Writes per table from several steps, e.g. leads created by journeys and updated by scoring."""
    merged: dict[str, dict[str, int]] = {}
    for part in writes:
        for table_name, counts in part.items():
            merged.setdefault(table_name, {}).update(counts)
    return dict(sorted(merged.items()))


def pull(
    client: DataverseClient,
    models: Sequence[ScoringModel],
    config: MappingConfig,
    segments: Sequence[Segment] = (),
    journeys: Sequence[Journey] = (),
) -> Snapshot:
    """Read accounts, contacts, leads, interactions (and count opportunities), each table once, paged, with the
    columns the models and segments name (so the snapshot can serve as the mirror segments are evaluated on)."""
    needed = columns_needed(models)
    for extra in (segment_columns(segments), journey_columns(journeys)):
        for kind, columns in extra.items():
            needed[kind] = needed.get(kind, set()) | columns

    def rows(name: str, columns: Sequence[str], annotations: Sequence[str] = ()) -> Any:
        source = table(name)
        return client.iter_rows(Query(source.entity_set).select(*columns), annotations=annotations)

    accounts = [mapping.account(r) for r in rows("account", mapping.select_for("account", needed.get("account", ())))]
    by_email = None
    if config.consent_source == "contactpointconsent":
        consent_columns = ("msdynmkt_contactpointvalue", "msdynmkt_contactpointtype", "msdynmkt_value")
        by_email = mapping.consent_by_email(rows("msdynmkt_contactpointconsent4", consent_columns), config)
    contact_columns = mapping.select_for("contact", needed.get("contact", ()), config)
    contacts = [mapping.contact(r, config, by_email) for r in rows("contact", contact_columns, [mapping.LOOKUP_NAME])]
    leads = [mapping.lead(r) for r in client.iter_rows(_lead_query(models, needed))]
    interaction_table = table("abm_interaction")
    interaction_columns = mapping.interaction_select(config, needed.get("interaction", ()))
    interactions = [
        mapping.interaction(r, interaction_table.primary_key, config)
        for r in rows("abm_interaction", interaction_columns)
    ]
    opportunities = sum(1 for _ in rows("opportunity", ("statecode",)))
    return Snapshot(accounts, contacts, leads, interactions, opportunities)


def run_main_job(
    client: DataverseClient,
    *,
    now: datetime,
    models: Sequence[ScoringModel] = (),
    config: MappingConfig | None = None,
    mirror_model: str | None = None,
    segments: Sequence[Segment] = (),
    journeys: Sequence[Journey] = (),
    state: StateStore | None = None,
    send_emails: bool = False,
) -> RunReport:
    """Pull, score with every live model, write back the changes; report counts, writes and the request bill (the
    client's own count: give the job a client of its own so that nothing else is billed to the run)."""
    config = config or MappingConfig()
    snapshot = pull(client, models, config, segments, journeys)
    members = evaluate_segments(client, segments)
    journey_run = run_journeys(
        client,
        state or SqliteStateStore(),
        journeys,
        members,
        contacts=snapshot.contacts,
        accounts=snapshot.accounts,
        interactions=snapshot.interactions,
        now=now,
        send_emails=send_emails,
    )
    leads = snapshot.leads
    if journey_run.created["lead"]:  # score the leads the journeys just created in this run, not the next
        leads = [mapping.lead(r) for r in client.iter_rows(_lead_query(models))]
    run = score_run(models, leads, snapshot.contacts, snapshot.accounts, snapshot.interactions, now=now)
    writes = write_scores(client, run, leads, now=now, mirror_model=mirror_model)
    return RunReport(
        now=now,
        tenant=snapshot.counts(),
        requests=client.stats.as_dict(),
        writes=_merge(journey_run.writes(), writes.as_dict()),
        segments=segment_report(members),
        journeys=journey_run.journeys,
        scoring={"models": run.summary()},
    )
