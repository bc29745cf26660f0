"""Records to rows, once, at the boundary: typed write requests become the rows the service writes (lookups bound,
text fitted, ids and idempotency keys set), and score rows read back become typed records compared column by column."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

from dataverse.mapping import InteractionColumns
from dataverse.rows import ActivityWrite, InteractionWrite, LeadWrite, activity_row, interaction_row, lead_row
from dataverse.scores import PredictiveScore, PredictiveWrite, ScoreWrite, score_document, score_record
from scoring.engine import Contribution, LeadScore
from scoring.explain import explain
from scoring.records import Account, Contact

ID = uuid.UUID("00000000-0000-4000-8000-000000000001")
NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
SCORE = LeadScore(
    lead_id="l1",
    model="fit",
    model_version=2,
    score=25,
    grade="B",
    sales_ready=False,
    consent_rule="all_contacts",
    fit_for_automated_decisions=False,
    explanation=(Contribution("clicks", 0, 15, 3, ("EmailClicked each within 90 days (3)",)),),
)


def test_an_activity_is_bound_to_its_owner_and_regarding_row_and_fitted() -> None:
    write = ActivityWrite("task", ID, "j/t/contact/c1", "x" * 250, "call them", "u1", ("contact", "c1"))
    assert activity_row(write) == {
        "subject": "x" * 199 + "…",
        "abm_idempotencykey": "j/t/contact/c1",
        "ownerid@odata.bind": "/systemusers(u1)",
        "description": "call them",
        "regardingobjectid_contact_task@odata.bind": "/contacts(c1)",
        "activityid": str(ID),
    }
    assert list(activity_row(ActivityWrite("email", ID, "k", "s"))) == ["subject", "abm_idempotencykey", "activityid"]


def test_a_lead_copies_its_contacts_details_and_its_accounts_name() -> None:
    contact = Contact("c1", attributes={"firstname": "Ada", "lastname": "", "jobtitle": "CTO"})
    account = Account("a1", attributes={"name": "Contoso"})
    assert lead_row(LeadWrite(ID, "k", "Follow up", owner_id="u1", contact=contact, account=account)) == {
        "subject": "Follow up",
        "abm_idempotencykey": "k",
        "ownerid@odata.bind": "/systemusers(u1)",
        "parentcontactid@odata.bind": "/contacts(c1)",
        "firstname": "Ada",
        "jobtitle": "CTO",
        "parentaccountid@odata.bind": "/accounts(a1)",
        "companyname": "Contoso",
        "leadid": str(ID),
    }


def test_an_interaction_row_uses_the_configured_columns_and_whole_utc_seconds() -> None:
    columns = InteractionColumns(contact="new_personid", type="new_kind", attributes={"campaign": "new_campaign"})
    moment = datetime(2026, 11, 22, 10, 15, 30, 123456, tzinfo=timezone(timedelta(hours=1)))
    write = InteractionWrite(ID, "web/1", "Visited: Spring", "c1", "Visited", moment, {"campaign": "Spring"})
    assert interaction_row(write, columns) == {
        "abm_interactionid": str(ID),
        "abm_name": "Visited: Spring",
        "abm_idempotencykey": "web/1",
        "new_personid@odata.bind": "/contacts(c1)",
        "new_kind": "Visited",
        "abm_occurredon": datetime(2026, 11, 22, 9, 15, 30, tzinfo=UTC),
        "new_campaign": "Spring",
    }


def stored_row(**changes: object) -> dict[str, object]:
    write = ScoreWrite(SCORE, NOW)
    row = {
        "_abm_leadid_value": "L1",
        "abm_model": "fit",
        "abm_score": 25,
        "abm_grade": "B",
        "abm_salesready": False,
        "abm_modelversion": 2,
        "abm_consentrule": "all_contacts",
        "abm_fitforautomateddecisions": False,
        "abm_explanation": write.explanation,
    }
    return row | changes


def test_a_score_is_written_only_when_a_compared_column_differs() -> None:
    write = ScoreWrite(SCORE, NOW)
    assert write.key == ("l1", "fit")
    assert not write.differs_from(score_record(stored_row()))
    assert not write.differs_from(score_record(stored_row(abm_scoredon="2020-01-01T00:00:00Z")))
    assert write.differs_from(None)
    assert write.differs_from(score_record(stored_row(abm_grade="A")))
    assert write.differs_from(score_record(stored_row(abm_explanation="[]")))
    assert write.differs_from(score_record({k: v for k, v in stored_row().items() if k != "abm_modelversion"}))


def test_a_stored_score_reads_back_as_the_engines_score_and_prints_alike() -> None:
    record = score_record(stored_row(abm_scoredon="2026-11-23T08:00:00Z"))
    assert record.as_lead_score() == SCORE
    assert record.as_stored().score == 25 and record.scored_on == NOW
    document = score_document(record)
    assert document["abm_explanation"][0]["points"] == 15 and document["abm_scoredon"] == "2026-11-23T08:00:00Z"
    assert score_record(json.loads(json.dumps(document))) == replace(record, lead_id="")  # the lead is asked for
    text = explain(record.as_lead_score(), scored_on=record.scored_on)
    assert "25 points, grade B, not sales-ready" in text and "  scored 2026-11-23T08:00:00Z" in text


def test_the_predictive_copy_is_written_when_score_or_grade_moved_with_its_trend() -> None:
    first = PredictiveWrite("l1", 25, "b")
    assert (first.grade_code, first.trend, first.unchanged) == (1, 3, False)
    assert PredictiveWrite("l1", 25, "B", PredictiveScore("l1", 25, 1)).unchanged
    assert PredictiveWrite("l1", 30, "B", PredictiveScore("l1", 25, 1)).trend == 0  # improving
    assert PredictiveWrite("l1", 20, "E", PredictiveScore("l1", 25, 1)).grade_code is None
    assert PredictiveWrite("l1", 20, None, PredictiveScore("l1", 25, None)).trend == 2  # declining
