"""Scoring in the main job: score every open lead with every live model, then write back only what changed.

Scores are upserted by the alternate key (lead, model) into `abm_leadscores` in bulk, so a rerun, a retry or a
replay can never duplicate one; a score whose value, grade, flags, model version, consent rule and explanation are
all unchanged is not written at all (the computed-on time alone does not make a change). A lead that any model
finds sales-ready gets `abm_salesready` (and when) on the lead itself; a later drop in score does not clear it,
as in Dynamics 365 Marketing: qualifying or disqualifying the lead is the seller's decision.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from scoring.engine import LeadScore, ScoringRun

from dataverse.client import DataverseClient
from dataverse.query import Query
from dataverse.tables import table
from scoring.records import Lead

__all__ = ["ScoreWrites", "existing_scores", "score_rows", "write_scores"]

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


@dataclass(frozen=True)
class ScoreWrites:
    """What the write-back sent: score rows upserted, leads flagged sales-ready."""

    upserted: int
    leads_flagged: int

    def as_dict(self) -> dict[str, dict[str, int]]:
        return {"abm_leadscores": {"upserted": self.upserted}, "leads": {"updated": self.leads_flagged}}


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


def write_scores(client: DataverseClient, run: ScoringRun, leads: Sequence[Lead], *, now: datetime) -> ScoreWrites:
    """Upsert the changed scores in bulk, then flag the leads that became sales-ready."""
    stored = existing_scores(client)
    rows = [r for r in score_rows(run.scores, now) if _changed(r, stored.get((r["abm_leadid"], r["abm_model"])))]
    if rows:
        client.upsert_multiple(SCORES, rows, key=("abm_leadid", "abm_model"))
    already = {lead.id for lead in leads if lead.sales_ready}
    newly = sorted(run.sales_ready_leads() - already)
    if newly:
        client.update_multiple(
            table("lead"), [{"leadid": lead_id, "abm_salesready": True, "abm_salesreadyon": now} for lead_id in newly]
        )
    return ScoreWrites(upserted=len(rows), leads_flagged=len(newly))
