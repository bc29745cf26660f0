"""Properties of the engine over random models and records: explanations add up, unused interactions change
nothing, and the same inputs (in any interaction order) give the same outputs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from scoring.engine import score_run
from scoring.model import ScoringModel, parse_model
from scoring.records import Account, Contact, Interaction, Lead

NOW = datetime(2026, 11, 23, tzinfo=UTC)
TYPES = ("EmailOpened", "EmailClicked", "WebsiteVisited")
CONTENT = ("whitepaper", "webinar", "pricing page", None)
CITIES = ("Amsterdam", "amsterdam", "Berlin", None)
PATHS = (
    ("lead.leadqualitycode", st.integers(1, 3)),
    ("lead.parentaccountid.address1_city", st.sampled_from(CITIES[:3])),
    ("lead.parentaccountid.revenue", st.integers(0, 2_000_000)),
    ("lead.parentcontactid.jobtitle", st.sampled_from(("purchas", "CFO", "Buyer"))),
    ("lead.parentcontactid.parentcustomerid.parentaccountid.address1_city", st.sampled_from(CITIES[:3])),
)
ACCOUNTS = tuple(f"a{i}" for i in range(3))
CONTACTS = tuple(f"c{i}" for i in range(6))

fast = settings(max_examples=30, deadline=None, database=None)  # fast, and leaves no files behind


@st.composite
def attribute_conditions(draw: st.DrawFn) -> dict[str, Any]:
    path, values = draw(st.sampled_from(PATHS))
    op = draw(st.sampled_from(("eq", "ne", "ge", "lt", "in", "is_null", "is_not_null")))
    if op.startswith("is_"):
        return {"attribute": path, "op": op}
    if op == "in":
        return {"attribute": path, "op": op, "value": draw(st.lists(values, min_size=1, max_size=3))}
    return {"attribute": path, "op": op, "value": draw(values)}


@st.composite
def behaviour_conditions(draw: st.DrawFn) -> dict[str, Any]:
    condition = {
        "interaction": draw(st.sampled_from(TYPES)),
        "frequency": draw(st.sampled_from(("each", "at_least_once", "none"))),
        "within_days": draw(st.integers(1, 120)),
    }
    if draw(st.booleans()):
        condition["where"] = [{"field": "content_type", "op": "eq", "value": draw(st.sampled_from(CONTENT[:3]))}]
    return condition


@st.composite
def models(draw: st.DrawFn, name: str) -> ScoringModel:
    conditions = st.one_of(attribute_conditions(), behaviour_conditions())
    groups = st.lists(st.lists(conditions, min_size=1, max_size=3), min_size=1, max_size=3)
    rules = draw(st.lists(st.tuples(st.integers(-20, 20), groups), min_size=1, max_size=5))
    return parse_model(
        {
            "name": name,
            "version": 1,
            "status": "live",
            "target": draw(st.sampled_from(("contact", "account"))),
            "minimum_consent": draw(st.integers(0, 5)),
            "consent_mode": draw(st.sampled_from(("all_contacts", "strict"))),
            "sales_ready_score": draw(st.integers(0, 40)),
            "grades": [{"name": "low", "from": -50, "to": 9}, {"name": "high", "from": 10}],
            "rules": [{"name": f"r{i}", "points": p, "when": when} for i, (p, when) in enumerate(rules)],
        }
    )


maybe = st.none() | st.sampled_from((*ACCOUNTS, "missing"))
accounts = st.builds(
    lambda parents, attrs: tuple(
        Account(a, parent_account_id=p, attributes=x) for a, p, x in zip(ACCOUNTS, parents, attrs, strict=True)
    ),
    st.lists(maybe, min_size=3, max_size=3),
    st.lists(
        st.fixed_dictionaries(
            {"address1_city": st.sampled_from(CITIES), "revenue": st.none() | st.integers(0, 2_000_000)}
        ),
        min_size=3,
        max_size=3,
    ),
)
contacts = st.builds(
    lambda rows: tuple(
        Contact(c, account_id=a, consent_level=level, attributes={"jobtitle": title})
        for c, (a, level, title) in zip(CONTACTS, rows, strict=True)
    ),
    st.lists(
        st.tuples(maybe, st.none() | st.integers(0, 5), st.sampled_from(("Purchaser", "CFO", None))),
        min_size=len(CONTACTS),
        max_size=len(CONTACTS),
    ),
)
leads = st.lists(
    st.builds(
        lambda i, c, a, is_open, quality: Lead(f"l{i}", c, a, is_open, attributes={"leadqualitycode": quality}),
        st.integers(0, 10_000),
        st.none() | st.sampled_from((*CONTACTS, "missing")),
        maybe,
        st.booleans(),
        st.none() | st.integers(1, 3),
    ),
    max_size=8,
    unique_by=lambda lead: lead.id,
)
interactions = st.lists(
    st.builds(
        lambda i, c, kind, days, content: Interaction(
            f"i{i}", c, kind, NOW - timedelta(days=days), {"content_type": content}
        ),
        st.integers(),
        st.none() | st.sampled_from(CONTACTS),
        st.sampled_from(TYPES),
        st.floats(-5, 150),
        st.sampled_from(CONTENT),
    ),
    max_size=40,
)
worlds = st.tuples(
    st.lists(st.sampled_from(("m1", "m2")), min_size=1, max_size=2, unique=True),
    leads,
    contacts,
    accounts,
    interactions,
)


@st.composite
def scenarios(
    draw: st.DrawFn,
) -> tuple[list[ScoringModel], list[Lead], tuple[Contact, ...], tuple[Account, ...], list[Interaction]]:
    names, lead_list, contact_list, account_list, interaction_list = draw(worlds)
    return [draw(models(name)) for name in names], lead_list, contact_list, account_list, interaction_list


@fast
@given(scenarios())
def test_every_score_is_the_sum_of_its_explanation(scenario: Any) -> None:
    models_, leads_, contacts_, accounts_, interactions_ = scenario
    result = score_run(models_, leads_, contacts_, accounts_, interactions_, now=NOW)
    assert len(result.scores) + len(result.skipped) == len(leads_) * len(models_)
    for score in result.scores:
        assert score.score == sum(c.points for c in score.explanation)
        assert all(c.points == c.occurrences * _points(models_, score.model, c.rule) for c in score.explanation)


def _points(models_: list[ScoringModel], model: str, rule: str) -> int:
    return next(r.points for m in models_ if m.name == model for r in m.rules if r.name == rule)


@fast
@given(scenarios(), st.sampled_from(CONTACTS), st.floats(0, 100))
def test_an_interaction_no_condition_uses_changes_no_score(scenario: Any, contact: str, days: float) -> None:
    models_, leads_, contacts_, accounts_, interactions_ = scenario
    before = score_run(models_, leads_, contacts_, accounts_, interactions_, now=NOW)
    unused = Interaction("extra", contact, "PhoneCallLogged", NOW - timedelta(days=days), {"content_type": "webinar"})
    after = score_run(models_, leads_, contacts_, accounts_, [*interactions_, unused], now=NOW)
    assert after == before


@fast
@given(scenarios(), st.randoms(use_true_random=False))
def test_scoring_is_deterministic_whatever_the_order_of_the_interactions(scenario: Any, rng: Any) -> None:
    models_, leads_, contacts_, accounts_, interactions_ = scenario
    first = score_run(models_, leads_, contacts_, accounts_, interactions_, now=NOW)
    shuffled = list(interactions_)
    rng.shuffle(shuffled)
    assert score_run(models_, leads_, contacts_, accounts_, interactions_, now=NOW) == first
    assert score_run(models_, leads_, contacts_, accounts_, shuffled, now=NOW) == first
