"""Scoring in the main job: score every open lead with every live model, then write back only what changed.

Scores are upserted by the alternate key (lead, model) into `abm_leadscores` in bulk, so a rerun, a retry or a
replay can never duplicate one; a score whose value, grade, flags, model version, consent rule and explanation are
all unchanged is not written at all (the computed-on time alone does not make a change). A lead that any model
finds sales-ready gets `abm_salesready` (and when) on the lead itself; a later drop in score does not clear it,
as in Dynamics 365 Marketing: qualifying or disqualifying the lead is the seller's decision.

Hand-off to sales: when configured, an on-demand workflow (primary table lead) is started once for each lead that
becomes sales-ready, as outbound marketing did on the lead's transition. It goes through
`abm.jobs.workflows.start_workflows` (key `salesready/<workflow>/<lead>`), so a rerun, a replay or an overlapping run
never starts it twice; it is started before the flag is written, so a crash between the two cannot lose it (the
next run finds the lead still unflagged and the workflow already started). The workflow runs asynchronously and
the flag follows in the same run: a workflow should not rely on reading the flag.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from abm.errors import NotConfigured
from abm.jobs.workflows import WorkflowRun, start_workflows, workflow_problems
from dataverse.client import DataverseClient
from dataverse.scores import (
    PredictiveScore,
    PredictiveWrite,
    SalesReadyFlag,
    ScoreRecord,
    ScoreWrite,
    flag_sales_ready,
    read_predictive,
    read_scores,
    upsert_predictive,
    upsert_scores,
)
from scoring.engine import LeadScore, ScoringRun
from scoring.records import Lead
from statestore.port import EffectLedger

__all__ = [
    "HandoffCheckError",
    "ScoreWrites",
    "check_handoff_workflow",
    "handoff_key",
    "predictive_writes",
    "write_scores",
]


class HandoffCheckError(NotConfigured):
    """The configured sales-ready hand-off workflow cannot run in this org: the message names it and the reason."""


@dataclass(frozen=True)
class ScoreWrites:
    """What the write-back sent: score rows upserted, leads flagged sales-ready, predictive scores mirrored, hand-off
    workflows started (None when no hand-off workflow is configured)."""

    upserted: int
    leads_flagged: int
    predictive_copied: int | None = None
    handoffs: int | None = None

    def as_dict(self) -> dict[str, dict[str, int]]:
        writes = {"abm_leadscores": {"upserted": self.upserted}, "leads": {"updated": self.leads_flagged}}
        if self.predictive_copied is not None:
            writes["msdyn_predictivescores"] = {"upserted": self.predictive_copied}
        if self.handoffs is not None:
            writes["handoffs"] = {"started": self.handoffs}
        return writes


def handoff_key(workflow_id: str, lead_id: str) -> str:
    """The idempotency key of one lead's hand-off: one start per workflow and lead, ever."""
    return f"salesready/{workflow_id.lower()}/{lead_id.lower()}"


def check_handoff_workflow(client: DataverseClient, workflow_id: str) -> None:
    """The hand-off workflow must exist and be an activated on-demand workflow whose primary table is lead (one
    read); raises `HandoffCheckError` otherwise."""
    problem = workflow_problems(client, {workflow_id: "lead"}).get(workflow_id.lower())
    if problem is not None:
        raise HandoffCheckError(f"sales-ready hand-off workflow {workflow_id} {problem}")


def predictive_writes(
    scores: Iterable[LeadScore], model: str, stored: Mapping[str, PredictiveScore]
) -> list[PredictiveWrite]:
    """One model's scores to copy into `msdyn_predictivescores` (one row per lead): those whose score or grade
    differs from the stored copy, each with that copy for the trend."""
    writes = (PredictiveWrite(s.lead_id, s.score, s.grade, stored.get(s.lead_id)) for s in scores if s.model == model)
    return [w for w in writes if not w.unchanged]


def _copy_to_predictive(client: DataverseClient, run: ScoringRun, model: str) -> int:
    writes = predictive_writes(run.scores, model, read_predictive(client))
    if writes:
        upsert_predictive(client, writes)
    return len(writes)


def write_scores(
    client: DataverseClient,
    run: ScoringRun,
    leads: Sequence[Lead],
    *,
    now: datetime,
    predictive_model: str | None = None,
    stored: Mapping[tuple[str, str], ScoreRecord] | None = None,
    handoff_workflow: str | None = None,
    store: EffectLedger | None = None,
) -> ScoreWrites:
    """Upsert the changed scores in bulk, start the hand-off workflow for the leads that became sales-ready (when
    configured; it needs `store`), flag those leads, and mirror one model into `msdyn_predictivescores` when asked
    (Dynamics 365 Sales shows those on the lead). `stored`: the scores as stored, by (lead, model), when the caller
    has them (the mirror); otherwise they are read. The hand-off workflow is checked before anything is written."""
    if handoff_workflow and store is None:
        raise ValueError("a sales-ready hand-off workflow needs a state store (its starts are recorded there)")
    already = {lead.id for lead in leads if lead.sales_ready}
    newly = sorted(run.sales_ready_leads() - already)
    if handoff_workflow and newly:
        check_handoff_workflow(client, handoff_workflow)
    stored = read_scores(client) if stored is None else stored
    writes = [w for w in (ScoreWrite(s, now) for s in run.scores) if w.differs_from(stored.get(w.key))]
    if writes:
        upsert_scores(client, writes)
    handoffs: int | None = None
    if handoff_workflow:
        assert store is not None
        runs = [WorkflowRun(handoff_key(handoff_workflow, lead_id), handoff_workflow, lead_id) for lead_id in newly]
        handoffs = start_workflows(client, store, runs)[1] if runs else 0
    if newly:
        flag_sales_ready(client, [SalesReadyFlag(lead_id, now) for lead_id in newly])
    predictive_copied = _copy_to_predictive(client, run, predictive_model) if predictive_model else None
    return ScoreWrites(
        upserted=len(writes), leads_flagged=len(newly), predictive_copied=predictive_copied, handoffs=handoffs
    )
