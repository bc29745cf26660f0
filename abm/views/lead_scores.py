"""One lead's stored scores with their explanations: what `abm score --lead ID` shows support and sellers."""

from __future__ import annotations

import json
import uuid
from typing import Any

from abm.jobs.scoring import COMPARED, SCORES
from dataverse.client import DataverseClient
from dataverse.query import Query, eq

__all__ = ["format_scores", "lead_scores"]

COLUMNS = ("abm_model", *COMPARED, "abm_scoredon")


def lead_scores(client: DataverseClient, lead_id: uuid.UUID) -> list[dict[str, Any]]:
    """The lead's score rows, one per model, with the explanation decoded; ordered by model name."""
    query = Query(SCORES.entity_set).select(*COLUMNS).where(eq("_abm_leadid_value", lead_id))
    rows = []
    for row in client.iter_rows(query.orderby("abm_model")):
        explanation = json.loads(row.get("abm_explanation") or "[]")
        rows.append({column: row.get(column) for column in COLUMNS} | {"abm_explanation": explanation})
    return rows


def format_scores(lead_id: uuid.UUID, rows: list[dict[str, Any]]) -> str:
    """Readable lines: per model the score, grade and flags, then each rule that fired and why."""
    if not rows:
        return f"lead {lead_id}: no scores (not open, not targeted, below consent, or not scored yet)"
    lines = [f"lead {lead_id}"]
    for row in rows:
        ready = "sales-ready" if row["abm_salesready"] else "not sales-ready"
        fit = "" if row["abm_fitforautomateddecisions"] else "; not fit for automated decisions about individuals"
        lines.append(
            f"  {row['abm_model']} (v{row['abm_modelversion']}): {row['abm_score']} points, grade "
            f"{row['abm_grade'] or '-'}, {ready}; consent rule {row['abm_consentrule']}{fit}; "
            f"scored {row['abm_scoredon']}"
        )
        for item in row["abm_explanation"]:
            occurrences = f" x{item['occurrences']}" if item["occurrences"] > 1 else ""
            lines.append(f"    {item['points']:+d}  {item['rule']}{occurrences}: {'; '.join(item['matched'])}")
    return "\n".join(lines)
