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

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from abm.errors import NotConfigured
from abm.jobs.outbox import BULK, WORKFLOW_BATCH, Outbox
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
    "ScoreWriter",
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


class ScoreWriter:
    """The write-back through an outbox, over a run's batches: changed scores upserted in bulk, hand-off workflows
    started once each (before the flag), leads flagged sales-ready, one model copied to `msdyn_predictivescores`.
    `written` is told each score row and flag that went out (the mirror keeps what the run wrote)."""

    def __init__(
        self,
        client: DataverseClient,
        outbox: Outbox,
        *,
        now: datetime,
        predictive_model: str | None = None,
        handoff_workflow: str | None = None,
        store: EffectLedger | None = None,
        written: Callable[[Sequence[ScoreWrite], Sequence[SalesReadyFlag]], None] | None = None,
    ) -> None:
        if handoff_workflow and store is None:
            raise ValueError("a sales-ready hand-off workflow needs a state store (its starts are recorded there)")
        self.client, self.outbox, self.now, self.store = client, outbox, now, store
        self.predictive_model, self.handoff_workflow = predictive_model, handoff_workflow
        self.written = written
        self.upserted = self.flagged = self.copied = self.handoffs = 0
        self._checked = False
        self._predictive: dict[str, PredictiveScore] | None = None
        outbox.open("scores", BULK, self._upsert)
        outbox.open("handoffs", WORKFLOW_BATCH, self._start)
        outbox.open("flags", BULK, self._flag, after=("handoffs",))
        outbox.open("predictive", BULK, self._copy)

    def queue(
        self, run: ScoringRun, leads: Sequence[Lead], stored: Mapping[tuple[str, str], ScoreRecord]
    ) -> list[SalesReadyFlag]:
        """Queue what one batch's scoring changes, and answer the sales-ready flags queued. The hand-off workflow is
        checked before anything is queued."""
        already = {lead.id for lead in leads if lead.sales_ready}
        newly = sorted(run.sales_ready_leads() - already)
        if self.handoff_workflow and newly and not self._checked:
            check_handoff_workflow(self.client, self.handoff_workflow)
            self._checked = True
        writes = (ScoreWrite(s, self.now) for s in run.scores)
        self.outbox.put("scores", (w for w in writes if w.differs_from(stored.get(w.key))))
        if self.handoff_workflow:
            workflow = self.handoff_workflow
            self.outbox.put("handoffs", (WorkflowRun(handoff_key(workflow, lead), workflow, lead) for lead in newly))
        flags = [SalesReadyFlag(lead, self.now) for lead in newly]
        self.outbox.put("flags", flags)
        if self.predictive_model:
            if self._predictive is None:
                self._predictive = read_predictive(self.client)
            self.outbox.put("predictive", predictive_writes(run.scores, self.predictive_model, self._predictive))
        return flags

    def _upsert(self, writes: list[ScoreWrite]) -> None:
        upsert_scores(self.client, writes)
        self.upserted += len(writes)
        if self.written is not None:
            self.written(writes, ())

    def _start(self, runs: list[WorkflowRun]) -> None:
        assert self.store is not None
        self.handoffs += start_workflows(self.client, self.store, runs)[1]

    def _flag(self, flags: list[SalesReadyFlag]) -> None:
        flag_sales_ready(self.client, flags)
        self.flagged += len(flags)
        if self.written is not None:
            self.written((), flags)

    def _copy(self, writes: list[PredictiveWrite]) -> None:
        upsert_predictive(self.client, writes)
        self.copied += len(writes)

    def result(self) -> ScoreWrites:
        """What went out (call after the outbox is flushed)."""
        return ScoreWrites(
            upserted=self.upserted,
            leads_flagged=self.flagged,
            predictive_copied=self.copied if self.predictive_model else None,
            handoffs=self.handoffs if self.handoff_workflow else None,
        )


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
    """Write back one scoring run now (see `ScoreWriter`). `stored`: the scores as stored, by (lead, model), when
    the caller has them (the mirror); otherwise they are read."""
    outbox = Outbox()
    writer = ScoreWriter(
        client, outbox, now=now, predictive_model=predictive_model, handoff_workflow=handoff_workflow, store=store
    )
    writer.queue(run, leads, read_scores(client) if stored is None else stored)
    outbox.flush()
    return writer.result()
