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

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from abm.jobs.workflows import WorkflowRun, start_workflows, workflow_problems
from dataverse.client import DataverseClient
from dataverse.query import Query, eq
from dataverse.tables import table
from scoring.engine import LeadScore, ScoringRun
from scoring.records import Lead
from statestore.port import StateStore

__all__ = [
    "HandoffCheckError",
    "ScoreWrites",
    "check_handoff_workflow",
    "existing_scores",
    "handoff_key",
    "mirror_rows",
    "score_rows",
    "write_scores",
]

SCORES = table("abm_leadscore")
COMPARED = (
    "abm_score",
    "abm_grade",
    "abm_salesready",
    "abm_modelversion",
    "abm_consentrule",
    "abm_fitforautomateddecisions",
    "abm_explanation",
)


PREDICTIVE = table("msdyn_predictivescore")
GRADE_CODES = {"A": 0, "B": 1, "C": 2, "D": 3}  # msdyn_grade; other grade names are written as no grade
IMPROVING, STEADY, DECLINING, NOT_ENOUGH_INFO = 0, 1, 2, 3  # msdyn_scoretrend


class HandoffCheckError(ValueError):
    """The configured sales-ready hand-off workflow cannot run in this org: the message names it and the reason."""


@dataclass(frozen=True)
class ScoreWrites:
    """What the write-back sent: score rows upserted, leads flagged sales-ready, predictive scores mirrored, hand-off
    workflows started (None when no hand-off workflow is configured)."""

    upserted: int
    leads_flagged: int
    mirrored: int | None = None
    handoffs: int | None = None

    def as_dict(self) -> dict[str, dict[str, int]]:
        writes = {"abm_leadscores": {"upserted": self.upserted}, "leads": {"updated": self.leads_flagged}}
        if self.mirrored is not None:
            writes["msdyn_predictivescores"] = {"upserted": self.mirrored}
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


def explanation_json(score: LeadScore) -> str:
    """The explanation as stored: stable JSON (sorted keys), so equal explanations compare equal as text."""
    items = [
        {
            "rule": c.rule,
            "group": c.group,
            "points": c.points,
            "occurrences": c.occurrences,
            "matched": list(c.matched),
        }
        for c in score.explanation
    ]
    return json.dumps(items, sort_keys=True, ensure_ascii=False)


def score_rows(scores: Iterable[LeadScore], now: datetime) -> list[dict[str, Any]]:
    """One `abm_leadscores` row per score, addressed by its alternate key (abm_leadid, abm_model)."""
    return [
        {
            "abm_leadid": s.lead_id,
            "abm_model": s.model,
            "abm_leadid@odata.bind": f"/leads({s.lead_id})",
            "abm_score": s.score,
            "abm_grade": s.grade,
            "abm_salesready": s.sales_ready,
            "abm_modelversion": s.model_version,
            "abm_consentrule": s.consent_rule,
            "abm_fitforautomateddecisions": s.fit_for_automated_decisions,
            "abm_explanation": explanation_json(s),
            "abm_scoredon": now,
        }
        for s in scores
    ]


def existing_scores(client: DataverseClient) -> dict[tuple[str, str], dict[str, Any]]:
    """The stored scores by (lead id, model name), with the columns a change is judged on."""
    query = Query(SCORES.entity_set).select("_abm_leadid_value", "abm_model", *COMPARED)
    return {
        (str(row["_abm_leadid_value"]).lower(), str(row["abm_model"])): row
        for row in client.iter_rows(query)
        if row.get("_abm_leadid_value")
    }


def _changed(row: Mapping[str, Any], stored: Mapping[str, Any] | None) -> bool:
    return stored is None or any(row[column] != stored.get(column) for column in COMPARED)


def mirror_rows(
    scores: Iterable[LeadScore], model: str, stored: Mapping[str, Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """`msdyn_predictivescores` rows (one per lead, by the key entity id + type) for one model's changed scores,
    with the trend against the stored score."""
    rows = []
    for score in scores:
        if score.model != model:
            continue
        grade = GRADE_CODES.get((score.grade or "").upper())
        previous = stored.get(score.lead_id)
        before = previous.get("msdyn_score") if previous else None
        if previous is not None and before == score.score and previous.get("msdyn_grade") == grade:
            continue
        if before is None:
            trend = NOT_ENOUGH_INFO
        else:
            trend = IMPROVING if score.score > before else DECLINING if score.score < before else STEADY
        rows.append(
            {
                "msdyn_entityid": score.lead_id,
                "msdyn_entitytype": "lead",
                "msdyn_score": score.score,
                "msdyn_grade": grade,
                "msdyn_scoretrend": trend,
            }
        )
    return rows


def _mirror(client: DataverseClient, run: ScoringRun, model: str) -> int:
    query = (
        Query(PREDICTIVE.entity_set)
        .select("msdyn_entityid", "msdyn_score", "msdyn_grade")
        .where(eq("msdyn_entitytype", "lead"))
    )
    stored = {str(row["msdyn_entityid"]).lower(): row for row in client.iter_rows(query)}
    rows = mirror_rows(run.scores, model, stored)
    if rows:
        client.upsert_multiple(PREDICTIVE, rows, key=("msdyn_entityid", "msdyn_entitytype"))
    return len(rows)


def write_scores(
    client: DataverseClient,
    run: ScoringRun,
    leads: Sequence[Lead],
    *,
    now: datetime,
    mirror_model: str | None = None,
    stored: Mapping[tuple[str, str], Mapping[str, Any]] | None = None,
    handoff_workflow: str | None = None,
    store: StateStore | None = None,
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
    stored = existing_scores(client) if stored is None else stored
    rows = [r for r in score_rows(run.scores, now) if _changed(r, stored.get((r["abm_leadid"], r["abm_model"])))]
    if rows:
        client.upsert_multiple(SCORES, rows, key=("abm_leadid", "abm_model"))
    handoffs: int | None = None
    if handoff_workflow:
        assert store is not None
        runs = [WorkflowRun(handoff_key(handoff_workflow, lead_id), handoff_workflow, lead_id) for lead_id in newly]
        handoffs = start_workflows(client, store, runs)[1] if runs else 0
    if newly:
        client.update_multiple(
            table("lead"), [{"leadid": lead_id, "abm_salesready": True, "abm_salesreadyon": now} for lead_id in newly]
        )
    mirrored = _mirror(client, run, mirror_model) if mirror_model else None
    return ScoreWrites(upserted=len(rows), leads_flagged=len(newly), mirrored=mirrored, handoffs=handoffs)
