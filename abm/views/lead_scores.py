"""One lead's stored scores with their explanations: what `abm score --lead ID` shows support and sellers."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from dataverse.client import DataverseClient
from dataverse.scores import read_lead_scores, score_document, score_record
from scoring.explain import explain

__all__ = ["format_scores", "lead_scores"]


def lead_scores(client: DataverseClient, lead_id: uuid.UUID) -> list[dict[str, Any]]:
    """The lead's scores, one per model in name order, as `abm score --json` prints them: the stored columns by
    logical name, the explanation decoded (one read)."""
    return [score_document(record) for record in read_lead_scores(client, lead_id)]


def format_scores(lead_id: uuid.UUID, scores: Sequence[Mapping[str, Any]]) -> str:
    """Readable lines, per model (`scoring.explain`): the score, grade and consent rule, when it was scored, then
    each rule that fired and why. `scores` as `lead_scores` answers them."""
    if not scores:
        return f"lead {lead_id}: no scores (not open, not targeted, below consent, or not scored yet)"
    records = [replace(score_record(score), lead_id=str(lead_id)) for score in scores]
    return "\n".join(explain(r.as_lead_score(), scored_on=r.scored_on) for r in records)
