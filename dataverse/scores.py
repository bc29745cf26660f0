"""The score write-back's tables, both ways: the product's score table (`abm_leadscores`), its optional copy in
`msdyn_predictivescores`, and the lead's sales-ready flag.

A score is written by its alternate key (lead, model) and compared, before it is written, with the row stored under
that key: `ScoreWrite.differs_from` judges exactly the columns written (score, grade, flags, model version, consent
rule, explanation), never the computed-on time, and compares them with the values as Dataverse answered them. The
explanation is stored as stable JSON (sorted keys), so equal explanations compare equal as text.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, cast

from dataverse.client import DataverseClient
from dataverse.mapping import when
from dataverse.query import Query, eq
from dataverse.tables import table
from scoring.engine import ConsentRule, Contribution, LeadScore
from scoring.records import Lead, StoredScore

__all__ = [
    "SCORE_SELECT",
    "PredictiveScore",
    "PredictiveWrite",
    "SalesReadyFlag",
    "ScoreRecord",
    "ScoreWrite",
    "flag_sales_ready",
    "flagged_lead",
    "flagged_lead_row",
    "read_lead_scores",
    "read_predictive",
    "read_scores",
    "score_document",
    "score_mirror_row",
    "score_record",
    "upsert_predictive",
    "upsert_scores",
]

SCORES = table("abm_leadscore")
PREDICTIVE = table("msdyn_predictivescore")
LEADS = table("lead")
_COMPARED = (
    "abm_score",
    "abm_grade",
    "abm_salesready",
    "abm_modelversion",
    "abm_consentrule",
    "abm_fitforautomateddecisions",
    "abm_explanation",
)
SCORE_SELECT = ("_abm_leadid_value", "abm_model", *_COMPARED)  # what a new score is compared with (and the mirror)
_SHOWN = ("abm_model", *_COMPARED, "abm_scoredon")  # one lead's scores as `abm score` shows them
_KEY = ("abm_leadid", "abm_model")
_PREDICTIVE_KEY = ("msdyn_entityid", "msdyn_entitytype")
GRADE_CODES = {"A": 0, "B": 1, "C": 2, "D": 3}  # msdyn_grade; other grade names are written as no grade
IMPROVING, STEADY, DECLINING, NOT_ENOUGH_INFO = 0, 1, 2, 3  # msdyn_scoretrend


@dataclass(frozen=True)
class ScoreRecord:
    """A row of the score table, with the values as stored (None where empty: a new score is compared with exactly
    what is there). `explanation` is the stored JSON text; `scored_on` is read only when asked for."""

    lead_id: str
    model: str
    score: int | None
    grade: str | None
    sales_ready: bool | None
    model_version: int | None
    consent_rule: str | None
    fit_for_automated_decisions: bool | None
    explanation: str | None
    scored_on: datetime | None = None

    def compared(self) -> tuple[Any, ...]:
        return (
            self.score,
            self.grade,
            self.sales_ready,
            self.model_version,
            self.consent_rule,
            self.fit_for_automated_decisions,
            self.explanation,
        )

    def as_stored(self) -> StoredScore:
        """The domain's view of it (insights): the score, grade and flag, empty values read as 0, None, False."""
        return StoredScore(self.lead_id, self.model, int(self.score or 0), self.grade or None, bool(self.sales_ready))

    def as_lead_score(self) -> LeadScore:
        """The score with its explanation decoded, as the engine computed it (what `scoring.explain` formats)."""
        items = json.loads(self.explanation or "[]")
        return LeadScore(
            lead_id=self.lead_id,
            model=self.model,
            model_version=int(self.model_version or 0),
            score=int(self.score or 0),
            grade=self.grade or None,
            sales_ready=bool(self.sales_ready),
            consent_rule=cast(ConsentRule, self.consent_rule or ""),
            fit_for_automated_decisions=bool(self.fit_for_automated_decisions),
            explanation=tuple(
                Contribution(i["rule"], i["group"], i["points"], i["occurrences"], tuple(i["matched"])) for i in items
            ),
        )


def score_record(row: Mapping[str, Any]) -> ScoreRecord:
    """A score row as read (or as `score_document` shows it: the explanation decoded)."""
    explanation = row.get("abm_explanation")
    if explanation is not None and not isinstance(explanation, str):
        explanation = json.dumps(explanation, sort_keys=True, ensure_ascii=False)
    scored_on = row.get("abm_scoredon")
    return ScoreRecord(
        lead_id=str(row.get("_abm_leadid_value") or "").lower(),
        model=str(row.get("abm_model") or ""),
        score=row.get("abm_score"),
        grade=row.get("abm_grade"),
        sales_ready=row.get("abm_salesready"),
        model_version=row.get("abm_modelversion"),
        consent_rule=row.get("abm_consentrule"),
        fit_for_automated_decisions=row.get("abm_fitforautomateddecisions"),
        explanation=explanation,
        scored_on=when(scored_on) if scored_on else None,
    )


def score_document(record: ScoreRecord) -> dict[str, Any]:
    """A lead's score as `abm score --json` prints it: the stored columns by logical name, the explanation decoded."""
    values = (record.model, *record.compared(), record.scored_on)
    document = dict(zip(_SHOWN, values, strict=True))
    document["abm_explanation"] = json.loads(record.explanation or "[]")
    if record.scored_on is not None:
        document["abm_scoredon"] = record.scored_on.strftime("%Y-%m-%dT%H:%M:%SZ")
    return document


def read_scores(client: DataverseClient) -> dict[tuple[str, str], ScoreRecord]:
    """Every stored score by (lead id, model name), with the columns a change is judged on (one paged read)."""
    records = (score_record(row) for row in client.iter_rows(Query(SCORES.entity_set).select(*SCORE_SELECT)))
    return {(r.lead_id, r.model): r for r in records if r.lead_id}


def read_lead_scores(client: DataverseClient, lead_id: uuid.UUID) -> list[ScoreRecord]:
    """One lead's stored scores, one per model, ordered by model name."""
    query = Query(SCORES.entity_set).select(*_SHOWN).where(eq("_abm_leadid_value", lead_id)).orderby("abm_model")
    return [replace(score_record(row), lead_id=str(lead_id).lower()) for row in client.iter_rows(query)]


@dataclass(frozen=True)
class ScoreWrite:
    """One score to upsert by its alternate key (lead, model), computed at `scored_on`."""

    score: LeadScore
    scored_on: datetime

    @property
    def key(self) -> tuple[str, str]:
        return (self.score.lead_id, self.score.model)

    @cached_property
    def explanation(self) -> str:
        """The explanation as stored: stable JSON (sorted keys), so equal explanations compare equal as text."""
        items = [
            {
                "rule": c.rule,
                "group": c.group,
                "points": c.points,
                "occurrences": c.occurrences,
                "matched": list(c.matched),
            }
            for c in self.score.explanation
        ]
        return json.dumps(items, sort_keys=True, ensure_ascii=False)

    def compared(self) -> tuple[Any, ...]:
        s = self.score
        return (
            s.score,
            s.grade,
            s.sales_ready,
            s.model_version,
            s.consent_rule,
            s.fit_for_automated_decisions,
            self.explanation,
        )

    def differs_from(self, stored: ScoreRecord | None) -> bool:
        """Whether writing it changes anything: nothing is stored under its key, or a compared column differs."""
        return stored is None or self.compared() != stored.compared()


def _score_row(write: ScoreWrite) -> dict[str, Any]:
    s = write.score
    return {
        "abm_leadid": s.lead_id,
        "abm_model": s.model,
        "abm_leadid@odata.bind": f"/{LEADS.entity_set}({s.lead_id})",
        "abm_score": s.score,
        "abm_grade": s.grade,
        "abm_salesready": s.sales_ready,
        "abm_modelversion": s.model_version,
        "abm_consentrule": s.consent_rule,
        "abm_fitforautomateddecisions": s.fit_for_automated_decisions,
        "abm_explanation": write.explanation,
        "abm_scoredon": write.scored_on,
    }


def score_mirror_row(write: ScoreWrite) -> dict[str, Any]:
    """A written score as the mirror keeps it (`SCORE_SELECT`'s columns as a read answers them), so that the run's
    own write, read back by change tracking, is no change."""
    s = write.score
    values = (s.score, s.grade, s.sales_ready, s.model_version, s.consent_rule, s.fit_for_automated_decisions)
    return {
        "_abm_leadid_value": s.lead_id,
        "abm_model": s.model,
        **dict(zip(_COMPARED, (*values, write.explanation), strict=True)),
    }


def flagged_lead_row(row: Mapping[str, Any], flag: SalesReadyFlag) -> dict[str, Any]:
    """A mirrored lead row with the sales-ready flag the run wrote (as `flag_sales_ready` writes it, and Dataverse
    keeps it: to the second)."""
    return {**row, "abm_salesready": True, "abm_salesreadyon": f"{_flag_time(flag):%Y-%m-%dT%H:%M:%SZ}"}


def flagged_lead(lead: Lead, flag: SalesReadyFlag) -> Lead:
    """A lead record as the mirror holds it once its flag is written (`flagged_lead_row`, mapped)."""
    return replace(lead, sales_ready=True, sales_ready_on=_flag_time(flag))


def _flag_time(flag: SalesReadyFlag) -> datetime:
    return flag.on.astimezone(UTC).replace(microsecond=0)


def upsert_scores(client: DataverseClient, writes: Sequence[ScoreWrite]) -> None:
    """UpsertMultiple by the alternate key (abm_leadid, abm_model): a rerun can never duplicate a score."""
    client.upsert_multiple(SCORES, [_score_row(w) for w in writes], key=_KEY)


@dataclass(frozen=True)
class SalesReadyFlag:
    """A lead an engine run found sales-ready, and when (the lead's `abm_salesready` and `abm_salesreadyon`)."""

    lead_id: str
    on: datetime


def flag_sales_ready(client: DataverseClient, flags: Iterable[SalesReadyFlag]) -> None:
    """UpdateMultiple of the leads' flags (never cleared: qualifying the lead is the seller's decision)."""
    rows = [{LEADS.primary_key: f.lead_id, "abm_salesready": True, "abm_salesreadyon": f.on} for f in flags]
    client.update_multiple(LEADS, rows)


@dataclass(frozen=True)
class PredictiveScore:
    """A lead's row of `msdyn_predictivescores` as stored: its score and its grade's option value."""

    lead_id: str
    score: int | None
    grade: int | None


@dataclass(frozen=True)
class PredictiveWrite:
    """A lead's score copied into `msdyn_predictivescores` (grades A to D; other grade names as no grade), with the
    copy stored before (None: none yet), which gives the trend."""

    lead_id: str
    score: int
    grade: str | None
    previous: PredictiveScore | None = None

    @property
    def grade_code(self) -> int | None:
        return GRADE_CODES.get((self.grade or "").upper())

    @property
    def unchanged(self) -> bool:
        """The stored copy has this score and grade already: nothing to write."""
        previous = self.previous
        return previous is not None and previous.score == self.score and previous.grade == self.grade_code

    @property
    def trend(self) -> int:
        before = self.previous.score if self.previous is not None else None
        if before is None:
            return NOT_ENOUGH_INFO
        return IMPROVING if self.score > before else DECLINING if self.score < before else STEADY


def read_predictive(client: DataverseClient) -> dict[str, PredictiveScore]:
    """The leads' predictive scores by lead id (one paged read)."""
    query = (
        Query(PREDICTIVE.entity_set)
        .select("msdyn_entityid", "msdyn_score", "msdyn_grade")
        .where(eq("msdyn_entitytype", "lead"))
    )
    records = (
        PredictiveScore(str(row["msdyn_entityid"]).lower(), row.get("msdyn_score"), row.get("msdyn_grade"))
        for row in client.iter_rows(query)
    )
    return {r.lead_id: r for r in records}


def upsert_predictive(client: DataverseClient, writes: Sequence[PredictiveWrite]) -> None:
    """UpsertMultiple by the key (entity id, entity type): one row per lead."""
    rows = [
        {
            "msdyn_entityid": w.lead_id,
            "msdyn_entitytype": "lead",
            "msdyn_score": w.score,
            "msdyn_grade": w.grade_code,
            "msdyn_scoretrend": w.trend,
        }
        for w in writes
    ]
    client.upsert_multiple(PREDICTIVE, rows, key=_PREDICTIVE_KEY)
