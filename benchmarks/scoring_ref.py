"""Benchmark: scoring the reference tenant (10,000 leads, 40,000 contacts, 400,000 interactions, 2 models of 20
conditions each) in memory. Target: under 2 s and under 300 MB on a 2-core machine.

Records are built directly with a seeded `random.Random` (no emulator, no Dataverse mapping), timed apart from
scoring. Scoring is timed without tracemalloc (best of `--repeat` runs); its heap peak is then measured in a run of
its own under tracemalloc, above the records already in memory. Prints one JSON object. Run:

    .venv/bin/python benchmarks/scoring_ref.py
"""

from __future__ import annotations

import argparse
import json
import resource
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from random import Random
from typing import Any

from scoring.engine import score_run
from scoring.model import ScoringModel, parse_model
from scoring.records import Account, Contact, Interaction, Lead

NOW = datetime(2026, 11, 23, tzinfo=UTC)
CITIES = ("Amsterdam", "Rotterdam", "Utrecht", "Berlin", "München", "London", "Paris", "Zürich", "Kraków", "Wien")
TITLES = ("Purchaser", "Purchasing Manager", "Buyer", "CFO", "Controller", "Engineer", "Analyst", "CEO", None)
TYPES = (  # type, weight: an e-mail funnel plus web visits
    ("EmailSent", 30),
    ("EmailDelivered", 28),
    ("EmailOpened", 10),
    ("EmailClicked", 4),
    ("WebsiteVisited", 25),
    ("FormSubmitted", 2),
    ("EventRegistered", 1),
)
CONTENT = ("whitepaper", "webinar", "case study", "pricing page", "blog", "product page", "event")
CAMPAIGNS = ("Spring launch", "Newsletter March", "Procurement Summit", "TCO Guide", "Pricing Update", None)


def records(
    seed: int, accounts: int, contacts: int, leads: int, interactions: int
) -> tuple[list[Account], list[Contact], list[Lead], list[Interaction]]:
    """A synthetic tenant: contacts spread over accounts (5 % without one), leads 40/25/25/10 % contact only, account
    only, both, neither (70 % open), interactions over the last 365 days with skewed engagement per contact."""
    rng = Random(seed)  # noqa: S311 (synthetic data, reproducible by seed)
    account_rows = [
        Account(
            f"a{i}",
            parent_account_id=f"a{rng.randrange(i)}" if i and rng.random() < 0.06 else None,
            attributes={
                "address1_city": rng.choice(CITIES),
                "revenue": None if rng.random() < 0.08 else round(rng.lognormvariate(14, 1.5), -3),
                "numberofemployees": None if rng.random() < 0.05 else int(rng.lognormvariate(4, 1.6)) + 1,
                "industrycode": rng.randint(1, 33),
            },
        )
        for i in range(accounts)
    ]
    contact_rows = [
        Contact(
            f"c{k}",
            account_id=None if rng.random() < 0.05 else f"a{rng.randrange(accounts)}",
            consent_level=rng.choice((None, 0, 1, 2, 3, 3, 4, 4, 4, 5, 5)),
            attributes={"jobtitle": rng.choice(TITLES), "address1_city": rng.choice(CITIES)},
        )
        for k in range(contacts)
    ]
    lead_rows = []
    for i in range(leads):
        contact, kind = rng.choice(contact_rows), rng.random()
        if kind < 0.4:
            contact_id, account_id = contact.id, None
        elif kind < 0.65:
            contact_id, account_id = None, f"a{rng.randrange(accounts)}"
        elif kind < 0.9:
            contact_id, account_id = contact.id, contact.account_id
        else:
            contact_id, account_id = None, None
        attributes = {"leadqualitycode": rng.choice((1, 2, 3, None)), "leadsourcecode": rng.randint(1, 10)}
        lead_rows.append(Lead(f"l{i}", contact_id, account_id, rng.random() < 0.7, attributes=attributes))
    weights = [rng.paretovariate(1.5) for _ in contact_rows]
    chosen = rng.choices(contact_rows, weights=weights, k=interactions)
    kinds = rng.choices([t for t, _ in TYPES], weights=[w for _, w in TYPES], k=interactions)
    interaction_rows = [
        Interaction(
            f"i{j}",
            contact.id,
            kind,
            NOW - timedelta(seconds=rng.randrange(365 * 86_400)),
            {
                "asset": f"Asset {rng.randrange(40)}",
                "campaign": rng.choice(CAMPAIGNS),
                "content_type": rng.choice(CONTENT),
            },
        )
        for j, (contact, kind) in enumerate(zip(chosen, kinds, strict=True))
    ]
    return account_rows, contact_rows, lead_rows, interaction_rows


def _behaviour(kind: str, frequency: str, days: int, field: str | None = None, value: Any = None) -> dict[str, Any]:
    where = [] if field is None else [{"field": field, "op": "in" if isinstance(value, list) else "eq", "value": value}]
    return {"interaction": kind, "frequency": frequency, "within_days": days} | ({"where": where} if where else {})


def models() -> list[ScoringModel]:
    """Two models of 20 conditions each, as marketing operations would write them."""
    behaviour = [
        _behaviour("EmailOpened", "each", 90),
        _behaviour("EmailClicked", "each", 90),
        _behaviour("EmailClicked", "at_least_once", 30, "campaign", "Spring launch"),
        _behaviour("WebsiteVisited", "each", 60),
        _behaviour("WebsiteVisited", "at_least_once", 30, "content_type", ["pricing page", "product page"]),
        _behaviour("FormSubmitted", "each", 180, "content_type", ["whitepaper", "case study"]),
        _behaviour("FormSubmitted", "at_least_once", 90, "asset", "Asset 7"),
        _behaviour("EventRegistered", "at_least_once", 120),
        _behaviour("EventRegistered", "each", 365, "content_type", "webinar"),
        _behaviour("EmailDelivered", "at_least_once", 30),
        _behaviour("EmailOpened", "none", 60),
        _behaviour("WebsiteVisited", "none", 60),
        _behaviour("EmailSent", "each", 30),
        _behaviour("WebsiteVisited", "each", 14, "content_type", "blog"),
    ]
    account: list[dict[str, Any]] = [
        {"attribute": "lead.parentaccountid.address1_city", "op": "eq", "value": "Amsterdam"},
        {"attribute": "lead.parentaccountid.revenue", "op": "ge", "value": 1_000_000},
        {"attribute": "lead.parentaccountid.numberofemployees", "op": "ge", "value": 250},
        {"attribute": "lead.parentaccountid.industrycode", "op": "in", "value": [6, 7, 12, 30, 33]},
        {"attribute": "lead.parentaccountid.parentaccountid.revenue", "op": "is_not_null"},
        {"attribute": "lead.leadqualitycode", "op": "eq", "value": 1},
    ]
    contact: list[dict[str, Any]] = [
        {"attribute": "lead.parentcontactid.jobtitle", "op": "contains", "value": "purchas"},
        {"attribute": "lead.parentcontactid.jobtitle", "op": "in", "value": ["Buyer", "CFO"]},
        {"attribute": "lead.parentcontactid.parentcustomerid.address1_city", "op": "eq", "value": "Amsterdam"},
        {"attribute": "lead.parentcontactid.parentcustomerid.numberofemployees", "op": "ge", "value": 250},
        {"attribute": "lead.leadqualitycode", "op": "eq", "value": 1},
        {"attribute": "lead.leadsourcecode", "op": "in", "value": [8, 9]},
    ]
    grades = [{"name": "C", "from": -1000, "to": 19}, {"name": "B", "from": 20, "to": 59}, {"name": "A", "from": 60}]

    def model(name: str, target: str, attributes: list[dict[str, Any]]) -> ScoringModel:
        conditions = [*behaviour, *attributes]
        rules = [{"name": f"r{i}", "points": 5 - i % 7, "when": [[c]]} for i, c in enumerate(conditions)]
        document = {"name": name, "version": 1, "status": "live", "target": target, "minimum_consent": 3}
        return parse_model(document | {"sales_ready_score": 60, "grades": grades, "rules": rules})

    return [model("contact-engagement", "contact", contact), model("account-fit", "account", account)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--leads", type=int, default=10_000)
    parser.add_argument("--contacts", type=int, default=40_000)
    parser.add_argument("--accounts", type=int, default=2_000)
    parser.add_argument("--interactions", type=int, default=400_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    started = time.perf_counter()
    accounts, contacts, leads, interactions = records(
        args.seed, args.accounts, args.contacts, args.leads, args.interactions
    )
    scoring_models = models()
    generated = time.perf_counter() - started
    timings = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        run = score_run(scoring_models, leads, contacts, accounts, interactions, now=NOW)
        timings.append(time.perf_counter() - started)
    del run
    tracemalloc.start()
    baseline, _ = tracemalloc.get_traced_memory()
    run = score_run(scoring_models, leads, contacts, accounts, interactions, now=NOW)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    seconds = min(timings)
    print(
        json.dumps(
            {
                "leads": len(leads),
                "contacts": len(contacts),
                "accounts": len(accounts),
                "interactions": len(interactions),
                "conditions_per_model": [sum(len(g) for r in m.rules for g in r.when) for m in scoring_models],
                "generate_seconds": round(generated, 2),
                "seconds": round(seconds, 3),
                "seconds_all_runs": [round(t, 3) for t in timings],
                "leads_per_second": round(len(leads) / seconds),
                "peak_mib": round((peak - baseline) / 2**20, 1),
                "max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                "scores": len(run.scores),
                "skipped": len(run.skipped),
                "sales_ready": len(run.sales_ready_leads()),
            }
        )
    )


if __name__ == "__main__":
    main()
