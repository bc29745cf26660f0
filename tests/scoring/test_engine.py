"""The scoring engine: classification, consent, behaviour frequencies and windows, hops, operators, run summary."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from scoring.engine import LeadScore, ScoringRun, Skipped, score_run
from scoring.explain import explain
from scoring.model import ScoringModel, parse_model
from scoring.records import Account, Contact, Interaction, Lead

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
GRADES = [{"name": "C", "from": -100, "to": 9}, {"name": "B", "from": 10, "to": 29}, {"name": "A", "from": 30}]


def model(*rules: dict[str, Any], target: str = "contact", name: str = "m", **fields: Any) -> ScoringModel:
    return parse_model(
        {
            "name": name,
            "version": 2,
            "status": "live",
            "target": target,
            "minimum_consent": 3,
            "sales_ready_score": 30,
            "grades": GRADES,
            "rules": list(rules) or [rule("base", 1, attr("lead.id", "is_not_null"))],
        }
        | fields
    )


def rule(
    name: str, points: int, *group: dict[str, Any], alternatives: Sequence[list[dict[str, Any]]] = ()
) -> dict[str, Any]:
    return {"name": name, "points": points, "when": [list(group), *alternatives] if group else list(alternatives)}


def attr(path: str, op: str, *value: Any) -> dict[str, Any]:
    return {"attribute": path, "op": op} | ({"value": value[0]} if value else {})


def did(kind: str, frequency: str, days: int = 90, *where: dict[str, Any]) -> dict[str, Any]:
    return {"interaction": kind, "frequency": frequency, "within_days": days} | (
        {"where": list(where)} if where else {}
    )


def event(contact: str | None, kind: str = "EmailClicked", days_ago: float = 1, **attributes: Any) -> Interaction:
    return Interaction(f"i-{contact}-{kind}-{days_ago}", contact, kind, NOW - timedelta(days=days_ago), attributes)


ACCOUNTS = (
    Account(
        "a1",
        primary_contact_id="c2",
        attributes={"address1_city": "Amsterdam", "revenue": 250_000.0, "name": "Polder B.V."},
    ),
    Account("a2", parent_account_id="a1", primary_contact_id="c2", attributes={"address1_city": "Berlin"}),
)
CONTACTS = (
    Contact("c1", "a1", consent_level=5, attributes={"jobtitle": "Head of Purchasing"}),
    Contact("c2", "a1", consent_level=0, attributes={"jobtitle": "CFO"}),
    Contact("c3", "a2", consent_level=None),
    Contact("c4", None, consent_level=3),
    Contact("c5", "a2", consent_level=4),
    Contact("c6", "nowhere", consent_level=4),
)


def run(
    models: Sequence[ScoringModel],
    leads: Sequence[Lead],
    interactions: Sequence[Interaction] = (),
    *,
    now: datetime = NOW,
    contacts: Sequence[Contact] = CONTACTS,
) -> ScoringRun:
    return score_run(models, leads, contacts, ACCOUNTS, interactions, now=now)


def only(result: ScoringRun) -> LeadScore | Skipped:
    outcomes: list[LeadScore | Skipped] = [*result.scores, *result.skipped]
    assert len(outcomes) == 1
    return outcomes[0]


def score_of(result: ScoringRun) -> int:
    outcome = only(result)
    assert isinstance(outcome, LeadScore), outcome
    return outcome.score


# --- classification --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lead", "target", "expected"),
    [
        (Lead("l", contact_id="c1"), "contact", "contact"),
        (Lead("l", contact_id="c1"), "account", "not_targeted"),
        (Lead("l", account_id="a1"), "account", "all_contacts"),
        (Lead("l", account_id="a1"), "contact", "not_targeted"),
        (Lead("l", contact_id="c1", account_id="a1"), "contact", "contact"),
        (Lead("l", contact_id="c1", account_id="a1"), "account", "not_targeted"),
        (Lead("l"), "contact", "no_contact_no_account"),
        (Lead("l"), "account", "no_contact_no_account"),
        (Lead("l", contact_id="gone"), "contact", "contact_not_found"),
        (Lead("l", contact_id="gone"), "account", "not_targeted"),
        (Lead("l", account_id="gone"), "account", "account_not_found"),
        (Lead("l", contact_id="gone", account_id="a1"), "contact", "contact_not_found"),
        (Lead("l", contact_id="c1", is_open=False), "contact", "not_open"),
        (Lead("l", account_id="a1", is_open=False), "account", "not_open"),
        (Lead("l", is_open=False), "contact", "not_open"),
    ],
)
def test_each_lead_gets_exactly_one_outcome_per_model(lead: Lead, target: str, expected: str) -> None:
    outcome = only(run([model(target=target)], [lead]))
    got = outcome.consent_rule if isinstance(outcome, LeadScore) else outcome.reason
    assert got == expected


def test_a_lead_with_both_scores_on_its_contact_alone_but_still_reads_its_account() -> None:
    rules = [
        rule("clicks", 1, did("EmailClicked", "each")),
        rule("amsterdam", 10, attr("lead.parentaccountid.address1_city", "eq", "amsterdam")),
    ]
    interactions = [event("c1"), event("c2"), event("c2", days_ago=2)]
    outcome = only(run([model(*rules)], [Lead("l", contact_id="c1", account_id="a1")], interactions))
    assert isinstance(outcome, LeadScore)
    assert [(c.rule, c.points) for c in outcome.explanation] == [("clicks", 1), ("amsterdam", 10)]
    assert (outcome.consent_rule, outcome.fit_for_automated_decisions) == ("contact", True)


# --- behaviour: frequency and date window ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frequency", "ages", "points"),
    [
        ("each", [1, 2, 3], 15),
        ("each", [], 0),
        ("each", [1, 90, 90.01, 200], 10),  # within 90 days: 90 counts, a little more does not
        ("each", [-1], 0),  # after now: not counted
        ("at_least_once", [1, 2, 3], 5),
        ("at_least_once", [], 0),
        ("at_least_once", [91], 0),
        ("none", [], 5),
        ("none", [91, 300], 5),
        ("none", [3], 0),
    ],
)
def test_frequency_decides_how_often_the_points_count(frequency: str, ages: list[float], points: int) -> None:
    interactions = [event("c1", days_ago=age) for age in ages]
    result = run([model(rule("r", 5, did("EmailClicked", frequency)))], [Lead("l", contact_id="c1")], interactions)
    assert score_of(result) == points


def test_a_none_rule_with_negative_points_lowers_the_score_only_without_occurrences() -> None:
    silent = model(rule("base", 20, attr("lead.id", "is_not_null")), rule("silent", -10, did("EmailOpened", "none")))
    lead = [Lead("l", contact_id="c1")]
    assert score_of(run([silent], lead)) == 10
    assert score_of(run([silent], lead, [event("c1", "EmailOpened", 5)])) == 20


def test_a_score_falls_when_an_interaction_ages_out_of_the_window() -> None:
    clicks = model(rule("clicks", 5, did("EmailClicked", "each", 90)))
    interactions = [event("c1", days_ago=89), event("c1", days_ago=10)]
    lead = [Lead("l", contact_id="c1")]
    assert score_of(run([clicks], lead, interactions)) == 10
    assert score_of(run([clicks], lead, interactions, now=NOW + timedelta(days=2))) == 5  # the first is 91 days old


def test_each_multiplies_the_points_by_the_product_of_the_groups_counts() -> None:
    both = model(rule("r", 2, did("EmailClicked", "each"), did("EmailOpened", "each")))
    interactions = [event("c1", "EmailClicked", d) for d in (1, 2)] + [event("c1", "EmailOpened", d) for d in (1, 2, 3)]
    outcome = only(run([both], [Lead("l", contact_id="c1")], interactions))
    assert isinstance(outcome, LeadScore)
    assert [(c.points, c.occurrences) for c in outcome.explanation] == [(12, 6)]


def test_where_tests_pick_the_interactions_that_count_case_insensitively() -> None:
    spring = model(
        rule("clicks", 5, did("EmailClicked", "each", 90, {"field": "campaign", "op": "contains", "value": "SPRING"}))
    )
    interactions = [
        event("c1", days_ago=1, campaign="Spring sale"),
        event("c1", days_ago=2, campaign="big spring event"),
        event("c1", days_ago=3, campaign="Autumn"),
        event("c1", days_ago=4),
    ]
    outcome = only(run([spring], [Lead("l", contact_id="c1")], interactions))
    assert isinstance(outcome, LeadScore)
    assert outcome.explanation[0].matched == ("EmailClicked each within 90 days where campaign contains 'SPRING' (2)",)
    assert outcome.score == 10


def test_interactions_without_a_contact_or_of_other_contacts_never_count() -> None:
    clicks = model(rule("clicks", 1, did("EmailClicked", "each")))
    interactions = [event(None), event("c2"), event("c4"), event("nobody")]
    assert score_of(run([clicks], [Lead("l", contact_id="c1")], interactions)) == 0


# --- OR groups and the explanation ----------------------------------------------------------------------------------


def test_a_rule_fires_once_through_the_group_with_the_most_occurrences() -> None:
    either = rule(
        "engaged",
        3,
        alternatives=[
            [attr("lead.parentcontactid.jobtitle", "contains", "purchas")],
            [did("EmailOpened", "each")],
            [did("EmailClicked", "each")],
        ],
    )
    interactions = [event("c1", "EmailOpened", d) for d in (1, 2)] + [event("c1", "EmailClicked", 1)]
    outcome = only(run([model(either)], [Lead("l", contact_id="c1")], interactions))
    assert isinstance(outcome, LeadScore)
    assert [(c.group, c.points, c.occurrences) for c in outcome.explanation] == [(1, 6, 2)]
    tie = only(run([model(either)], [Lead("l", contact_id="c1")], interactions[2:]))
    assert isinstance(tie, LeadScore)
    assert [(c.group, c.points, c.matched) for c in tie.explanation] == [
        (0, 3, ("lead.parentcontactid.jobtitle contains 'purchas'",))
    ]


def test_a_score_is_the_sum_of_the_fired_rules_and_explains_each_one() -> None:
    rules = [
        rule(
            "big-amsterdam",
            20,
            attr("lead.parentaccountid.address1_city", "eq", "Amsterdam"),
            attr("lead.parentaccountid.revenue", "ge", 100000),
        ),
        rule("clicks", 5, did("EmailClicked", "each", 90)),
        rule("not-fired", 50, attr("lead.parentaccountid.address1_city", "eq", "Paris")),
        rule("quiet", -10, alternatives=[[did("EmailOpened", "none", 60)], [attr("lead.leadqualitycode", "eq", 3)]]),
    ]
    lead = Lead("l", contact_id="c1", account_id="a1", attributes={"leadqualitycode": 3})
    outcome = only(run([model(*rules)], [lead], [event("c1", days_ago=d) for d in (1, 2, 3)]))
    assert isinstance(outcome, LeadScore)
    assert outcome.explanation[0].matched == (
        "lead.parentaccountid.address1_city eq 'Amsterdam'",
        "lead.parentaccountid.revenue ge 100000",
    )
    assert outcome.explanation[1].matched == ("EmailClicked each within 90 days (3)",)
    assert outcome.explanation[2].matched == ("EmailOpened none within 60 days (0)",)
    assert [c.rule for c in outcome.explanation] == ["big-amsterdam", "clicks", "quiet"]
    assert outcome.score == 20 + 15 - 10 == sum(c.points for c in outcome.explanation)
    assert (outcome.grade, outcome.sales_ready, outcome.model, outcome.model_version) == ("B", False, "m", 2)
    text = explain(outcome)
    assert "25 points, grade B, not sales-ready" in text
    assert "+15  clicks x3 (when[0]): EmailClicked each within 90 days (3)" in text
    assert "-10  quiet (when[0])" in text


# --- consent ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("contact", "minimum", "expected"),
    [
        ("c1", 3, "scored"),
        ("c1", 5, "scored"),
        ("c2", 3, "below_consent"),
        ("c3", 0, "below_consent"),
        ("c4", 3, "scored"),
        ("c4", 4, "below_consent"),
    ],
)
def test_a_contact_based_lead_needs_its_contacts_minimum_consent(contact: str, minimum: int, expected: str) -> None:
    outcome = only(run([model(minimum_consent=minimum)], [Lead("l", contact_id=contact)]))
    assert (outcome.reason if isinstance(outcome, Skipped) else "scored") == expected


@pytest.mark.parametrize(
    ("mode", "points", "rule_label", "fit"),
    [("all_contacts", 3, "all_contacts", False), ("strict", 1, "consenting_contacts", True)],
)
def test_an_account_lead_counts_its_contacts_by_the_consent_mode(
    mode: str, points: int, rule_label: str, fit: bool
) -> None:
    clicks = model(rule("clicks", 1, did("EmailClicked", "each")), target="account", consent_mode=mode)
    # c1 consents (5), c2 does not (0); c3 (no consent) belongs to a2, c4 to no account
    interactions = [event("c1"), event("c2"), event("c2", days_ago=2), event("c3"), event("c4")]
    outcome = only(run([clicks], [Lead("l", account_id="a1")], interactions))
    assert isinstance(outcome, LeadScore)
    assert (outcome.score, outcome.consent_rule, outcome.fit_for_automated_decisions) == (points, rule_label, fit)


def test_strict_mode_excludes_contacts_without_any_consent_level() -> None:
    clicks = model(
        rule("clicks", 1, did("EmailClicked", "each")), target="account", consent_mode="strict", minimum_consent=0
    )
    assert score_of(run([clicks], [Lead("l", account_id="a2")], [event("c3")])) == 0


# --- attribute paths and operators ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "op", "value", "lead", "points"),
    [
        # c5 -> a2 -> parent a1 -> primary contact c2 (4 hops), -> its account a1 (5 hops)
        ("lead.parentcontactid.parentcustomerid.parentaccountid.primarycontactid.jobtitle", "eq", "cfo", "c5", 7),
        (
            "lead.parentcontactid.parentcustomerid.parentaccountid.primarycontactid.parentcustomerid.name",
            "startswith",
            "polder",
            "c5",
            7,
        ),
        (
            "lead.parentcontactid.parentcustomerid.parentaccountid.primarycontactid.parentcustomerid.name",
            "eq",
            "Polder B.V.",
            "c1",
            0,
        ),
        # a missing record on the way: c1 -> a1 has no parent; c6's account is not among the records
        ("lead.parentcontactid.parentcustomerid.parentaccountid.name", "is_null", None, "c1", 7),
        ("lead.parentcontactid.parentcustomerid.parentaccountid.name", "ne", "x", "c1", 7),
        ("lead.parentcontactid.parentcustomerid.parentaccountid.name", "eq", "x", "c1", 0),
        ("lead.parentcontactid.parentcustomerid.parentaccountid.name", "is_not_null", None, "c1", 0),
        ("lead.parentcontactid.parentcustomerid.address1_city", "is_null", None, "c6", 7),
        ("lead.parentcontactid.parentcustomerid.address1_city", "lt", "zzz", "c6", 0),
        ("lead.parentcontactid.parentcustomerid.address1_city", "contains", "a", "c6", 0),
        # typed columns: ids and lookups
        ("lead.parentcontactid.id", "eq", "c5", "c5", 7),
        ("lead.parentcontactid.parentcustomerid", "eq", "a2", "c5", 7),
        ("lead.parentaccountid", "is_null", None, "c5", 7),
    ],
)
def test_attribute_paths_follow_up_to_five_lookups_and_a_missing_record_is_null(
    path: str, op: str, value: Any, lead: str, points: int
) -> None:
    test = attr(path, op) if value is None else attr(path, op, value)
    assert score_of(run([model(rule("r", 7, test))], [Lead("l", contact_id=lead)])) == points


LEAD_ATTRIBUTES = {"jobtitle": "Senior Purchaser", "revenue": 5000, "city": "Amsterdam", "vip": True, "empty": None}


@pytest.mark.parametrize(
    ("column", "op", "value", "matches"),
    [
        ("city", "eq", "AMSTERDAM", True),
        ("city", "ne", "amsterdam", False),
        ("city", "ne", "Berlin", True),
        ("empty", "ne", "Berlin", True),
        ("missing", "ne", 3, True),
        ("revenue", "eq", 5000.0, True),
        ("revenue", "eq", "5000", False),
        ("revenue", "ne", "5000", True),
        ("revenue", "gt", 4999.5, True),
        ("revenue", "ge", 5000, True),
        ("revenue", "lt", 5000, False),
        ("revenue", "le", 5000, True),
        ("revenue", "gt", "a", False),
        ("city", "gt", "AMS", True),
        ("empty", "lt", 1, False),
        ("jobtitle", "contains", "PURCHAS", True),
        ("jobtitle", "contains", "procure", False),
        ("jobtitle", "startswith", "senior", True),
        ("jobtitle", "startswith", "purchaser", False),
        ("revenue", "contains", "50", False),
        ("city", "in", ["Berlin", "amsterdam"], True),
        ("city", "in", ["Berlin", "Paris"], False),
        ("revenue", "in", [1, 5000], True),
        ("empty", "in", ["x"], False),
        ("vip", "eq", True, True),
        ("vip", "eq", 1, False),
        ("empty", "is_null", None, True),
        ("missing", "is_null", None, True),
        ("city", "is_null", None, False),
        ("city", "is_not_null", None, True),
        ("empty", "is_not_null", None, False),
    ],
)
def test_operators_compare_like_dataverse(column: str, op: str, value: Any, matches: bool) -> None:
    test = attr(f"lead.{column}", op) if op.startswith("is_") else attr(f"lead.{column}", op, value)
    lead = Lead("l", contact_id="c1", attributes=LEAD_ATTRIBUTES)
    assert score_of(run([model(rule("r", 1, test))], [lead])) == int(matches)


# --- the run: live models, sales-ready, summary ---------------------------------------------------------------------


def test_a_lead_is_sales_ready_when_any_live_model_says_so() -> None:
    ready = rule("ready", 30, attr("lead.leadqualitycode", "eq", 1))
    contact_model = model(ready, name="engagement")
    account_model = model(ready, name="fit", target="account")
    other_model = model(rule("never", 1, attr("lead.leadqualitycode", "eq", 99)), name="other")
    leads = [
        Lead("hot-contact", contact_id="c1", attributes={"leadqualitycode": 1}),
        Lead("hot-account", account_id="a1", attributes={"leadqualitycode": 1}),
        Lead("cold", contact_id="c1", attributes={"leadqualitycode": 2}),
    ]
    result = run([contact_model, account_model, other_model], leads)
    assert result.sales_ready_leads() == {"hot-contact", "hot-account"}
    assert {(s.lead_id, s.model) for s in result.scores if s.sales_ready} == {
        ("hot-contact", "engagement"),
        ("hot-account", "fit"),
    }


def test_draft_models_are_not_run() -> None:
    draft = model(name="draft", status="draft")
    result = run([draft, model(name="live")], [Lead("l", contact_id="c1")])
    assert {s.model for s in result.scores} == {"live"}
    assert list(result.summary()) == ["live"]


def test_the_summary_counts_every_outcome_per_model() -> None:
    grades = rule("points", 15, attr("lead.leadqualitycode", "eq", 1))
    contact_model = model(
        grades,
        rule("ready", 20, attr("lead.leadqualitycode", "eq", 1), attr("lead.subject", "contains", "demo")),
        name="engagement",
    )
    account_model = model(
        rule("minus", -200, attr("lead.parentaccountid.address1_city", "eq", "Berlin")), name="fit", target="account"
    )
    hot = {"leadqualitycode": 1}
    leads = [
        Lead("1", contact_id="c1", attributes=hot | {"subject": "Demo please"}),  # 35: A, sales-ready
        Lead("2", contact_id="c4", attributes=hot),  # 15: B
        Lead("3", contact_id="c1", account_id="a1"),  # 0: C
        Lead("4", contact_id="c2"),  # below consent
        Lead("5", contact_id="gone"),
        Lead("6"),
        Lead("7", contact_id="c1", is_open=False),
        Lead("8", account_id="a1"),  # 0: C
        Lead("9", account_id="a2"),  # -200: no grade
        Lead("10", account_id="gone"),
    ]
    summary = run([contact_model, account_model], leads).summary()
    assert summary == {
        "engagement": {
            "target": "contact",
            "scored": 3,
            "not_targeted": 3,
            "unscorable": {"contact_not_found": 1, "no_contact_no_account": 1},
            "below_consent": 1,
            "not_open": 1,
            "sales_ready": 1,
            "grades": {"A": 1, "B": 1, "C": 1},
        },
        "fit": {
            "target": "account",
            "scored": 2,
            "not_targeted": 5,
            "unscorable": {"no_contact_no_account": 1, "account_not_found": 1},
            "below_consent": 0,
            "not_open": 1,
            "sales_ready": 0,
            "grades": {"A": 0, "B": 0, "C": 1, "none": 1},
        },
    }


def test_outcomes_come_in_lead_order_then_model_order() -> None:
    a, b = model(name="a"), model(name="b")
    result = run([a, b], [Lead("2", contact_id="c1"), Lead("1", contact_id="c1")])
    assert [(s.lead_id, s.model) for s in result.scores] == [("2", "a"), ("2", "b"), ("1", "a"), ("1", "b")]


def test_a_run_needs_an_aware_now_and_unique_live_model_names() -> None:
    with pytest.raises(ValueError, match="aware"):
        run([model()], [], now=datetime(2026, 11, 23))
    with pytest.raises(ValueError, match="unique names"):
        run([model(), model()], [])
