"""One evaluation of a run setup over a scope of the mirror: segments, journeys, scoring, write-back, report.

The timer's sync evaluates every account (or one shard of them), a webhook or a replay only the accounts a change
touched; all run this one function. It reads the records of its scope from the mirror (abm/mirror.py), evaluates the
segments (server-side queries on a full run, the mirror evaluator otherwise: one definition, two evaluators, tested to
agree), advances the journeys and writes their effects exactly once, scores the open leads and writes back only the
scores that changed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from abm.jobs.journeys import run_journeys
from abm.jobs.mirror import Mirror, Scope
from abm.jobs.scoring import write_scores
from abm.jobs.segments import evaluate_segments, segment_report
from dataverse.client import DataverseClient
from dataverse.mapping import MappingConfig
from journeys.model import Journey
from journeys.segments import Member, Segment, members
from scoring.engine import score_run
from scoring.model import ScoringModel
from statestore.port import Evaluation

__all__ = ["RunReport", "RunSetup", "Scope", "evaluate", "merge_writes"]


@dataclass(frozen=True)
class RunSetup:
    """What a run evaluates and how it writes: the definitions and the org-specific options."""

    models: Sequence[ScoringModel] = ()
    segments: Sequence[Segment] = ()
    journeys: Sequence[Journey] = ()
    config: MappingConfig = field(default_factory=MappingConfig)
    predictive_model: str | None = None
    send_emails: bool = False
    handoff_workflow: str | None = None


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
    sync: dict[str, Any] = field(default_factory=dict)
    report: str | None = None  # the HTML insights report written after the run (abm demo)

    def as_dict(self) -> dict[str, Any]:
        report = {
            "now": self.now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "tenant": self.tenant,
            "requests": self.requests,
            "writes": self.writes,
            "segments": self.segments,
            "journeys": self.journeys,
            "scoring": self.scoring,
        }
        if self.sync:
            report["sync"] = self.sync
        if self.report is not None:
            report["report"] = self.report
        return report


def merge_writes(*writes: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """Writes per table from several steps (leads created by journeys and updated by scoring), counts added."""
    merged: dict[str, dict[str, int]] = {}
    for part in writes:
        for table_name, counts in part.items():
            into = merged.setdefault(table_name, {})
            for kind, count in counts.items():
                into[kind] = into.get(kind, 0) + count
    return dict(sorted(merged.items()))


def evaluate(
    client: DataverseClient,
    store: Evaluation,
    setup: RunSetup,
    *,
    now: datetime,
    scope: Scope = None,
    server_segments: bool = False,
    refresh_leads: Callable[[], object] | None = None,
) -> RunReport:
    """Evaluate the scope and write back; `refresh_leads` brings leads created by the journeys into the mirror so
    that this run scores them too. The report's `requests` is the client's count (give the run a client of its own)."""
    mirror = Mirror(store, setup.config)
    snapshot = mirror.load(scope)
    found: dict[str, list[Member]]
    if server_segments:
        found = evaluate_segments(client, setup.segments)
    else:
        found = {s.name: members(s, snapshot.contacts, snapshot.accounts) for s in setup.segments}
    journey_run = run_journeys(
        client,
        store,
        setup.journeys,
        found,
        contacts=snapshot.contacts,
        accounts=snapshot.accounts,
        interactions=snapshot.interactions,
        now=now,
        send_emails=setup.send_emails,
        scoped=scope is not None,
    )
    leads = snapshot.leads
    if journey_run.created["lead"] and refresh_leads is not None:  # score the leads just created, in this run
        refresh_leads()
        leads = mirror.load(scope).leads
    run = score_run(setup.models, leads, snapshot.contacts, snapshot.accounts, snapshot.interactions, now=now)
    writes = write_scores(
        client,
        run,
        leads,
        now=now,
        predictive_model=setup.predictive_model,
        stored=snapshot.scores,
        store=store,
        handoff_workflow=setup.handoff_workflow,
    )
    return RunReport(
        now=now,
        tenant=snapshot.counts(),
        requests=client.stats.as_dict(),
        writes=merge_writes(journey_run.writes(), writes.as_dict()),
        segments=segment_report(found),
        journeys=journey_run.journeys,
        scoring={"models": run.summary()},
    )
