"""The distribution of current lead scores per scoring model: a histogram of equal-width bins and the grade counts."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from scoring.records import StoredScore

__all__ = ["ScoreDistribution", "score_distributions"]


@dataclass(frozen=True)
class ScoreDistribution:
    """One model's scores: `bins` as (from, to, count) with `to` exclusive, and the count of each grade."""

    model: str
    scored: int
    bins: tuple[tuple[int, int, int], ...]
    grades: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        return {
            "scored": self.scored,
            "bins": [{"from": low, "to": high, "count": count} for low, high, count in self.bins],
            "grades": dict(self.grades),
        }


def _bins(values: list[int], count: int) -> tuple[tuple[int, int, int], ...]:
    """`count` equal bins of whole-number width from the lowest score (0 when none is negative) past the highest."""
    low = min(0, *values)
    width = max(1, math.ceil((max(values) - low + 1) / count))
    tally = Counter((v - low) // width for v in values)
    return tuple((low + i * width, low + (i + 1) * width, tally[i]) for i in range(count))


def score_distributions(scores: Iterable[StoredScore], bins: int = 10) -> dict[str, ScoreDistribution]:
    """Per model (sorted by name): the histogram of its scores in `bins` bins and its grades (ungraded left out)."""
    if bins < 1:
        raise ValueError("a score histogram needs at least one bin")
    by_model: dict[str, list[StoredScore]] = {}
    for score in scores:
        by_model.setdefault(score.model, []).append(score)
    return {
        model: ScoreDistribution(
            model,
            len(rows),
            _bins([s.score for s in rows], bins),
            dict(sorted(Counter(s.grade for s in rows if s.grade).items())),
        )
        for model, rows in sorted(by_model.items())
    }
