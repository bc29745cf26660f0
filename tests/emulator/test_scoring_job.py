"""Scoring write-back against the emulator: only changes are written, sales-ready sticks, the optional mirror."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from abm.jobs.sync import run_main_job
from dataverse.auth import NoAuth
from dataverse.client import DataverseClient
from dataverse.mapping import MappingConfig
from dataverse.query import Query
from dataverse.transport import TransportConfig
from devtools.emulator.schema import TABLES
from devtools.emulator.server import Emulator
from devtools.emulator.store import Store
from scoring.model import parse_model
from statestore.sqlite import SqliteStateStore
from tests.emulator.conftest import CONTOSO, MULLER, OBRIEN

NOW = datetime(2026, 11, 23, tzinfo=UTC)
MODEL: dict[str, Any] = {
    "name": "purchasers",
    "version": 2,
    "status": "live",
    "target": "contact",
    "minimum_consent": 3,
    "sales_ready_score": 20,
    "grades": [{"name": "D", "from": -100, "to": 9}, {"name": "A", "from": 10}],
    "rules": [
        {
            "name": "purchaser",
            "points": 20,
            "when": [[{"attribute": "lead.parentcontactid.jobtitle", "op": "contains", "value": "purchas"}]],
        }
    ],
}
CONFIG = MappingConfig(consent_levels={587030001: 1, 587030003: 3})


def add_leads(store: Store) -> None:
    base = {"createdon": "2026-01-01T00:00:00Z", "statecode": 0, "statuscode": 1}
    store.insert_many(
        TABLES["lead"],
        [
            {
                **base,
                "leadid": "f0000000-0000-4000-8000-000000000001",
                "subject": "purchaser",
                "parentcontactid": OBRIEN,
                "parentcontactid__type": "contact",
            },
            {
                **base,
                "leadid": "f0000000-0000-4000-8000-000000000002",
                "subject": "low consent",
                "parentcontactid": MULLER,
                "parentcontactid__type": "contact",
            },
            {
                **base,
                "leadid": "f0000000-0000-4000-8000-000000000003",
                "subject": "account only",
                "parentaccountid": CONTOSO,
                "parentaccountid__type": "account",
            },
        ],
    )


def run(emulator: Emulator, **options: Any) -> dict[str, Any]:
    with DataverseClient(TransportConfig(org_url=emulator.org_url), NoAuth()) as client:
        state = SqliteStateStore()
        report = run_main_job(client, state, now=NOW, models=[parse_model(MODEL)], config=CONFIG, **options)
    return report.as_dict()


def test_scores_are_written_once_and_sales_ready_is_flagged(store: Store, emulator: Emulator) -> None:
    add_leads(store)
    first = run(emulator)
    summary = first["scoring"]["models"]["purchasers"]
    assert (summary["scored"], summary["below_consent"], summary["not_targeted"]) == (1, 1, 1)
    assert first["writes"] == {"abm_leadscores": {"upserted": 1}, "leads": {"updated": 1}}
    lead = store.get(TABLES["lead"], "f0000000-0000-4000-8000-000000000001")
    assert lead is not None and lead["abm_salesready"] == 1
    again = run(emulator)
    assert again["writes"] == {"abm_leadscores": {"upserted": 0}, "leads": {"updated": 0}}


def test_a_score_that_drops_is_rewritten_but_sales_ready_stays(store: Store, emulator: Emulator) -> None:
    add_leads(store)
    run(emulator)
    store.update(TABLES["contact"], OBRIEN, {"jobtitle": "Engineer"})
    after = run(emulator)
    assert after["writes"]["abm_leadscores"] == {"upserted": 1}
    row = store.select("SELECT abm_score, abm_grade FROM abm_leadscore")[0]
    assert (row["abm_score"], row["abm_grade"]) == (0, "D")
    lead = store.get(TABLES["lead"], "f0000000-0000-4000-8000-000000000001")
    assert lead is not None and lead["abm_salesready"] == 1  # a later drop does not clear it


def test_mirroring_one_model_into_predictive_scores(store: Store, emulator: Emulator) -> None:
    add_leads(store)
    first = run(emulator, predictive_model="purchasers")
    assert first["writes"]["msdyn_predictivescores"] == {"upserted": 1}
    with DataverseClient(TransportConfig(org_url=emulator.org_url), NoAuth()) as client:
        rows = list(
            client.iter_rows(
                Query("msdyn_predictivescores").select(
                    "msdyn_entityid", "msdyn_score", "msdyn_grade", "msdyn_scoretrend"
                )
            )
        )
    assert [(r["msdyn_entityid"], r["msdyn_score"], r["msdyn_grade"], r["msdyn_scoretrend"]) for r in rows] == [
        ("f0000000-0000-4000-8000-000000000001", 20, 0, 3)
    ]
    assert run(emulator, predictive_model="purchasers")["writes"]["msdyn_predictivescores"] == {"upserted": 0}
    store.update(TABLES["contact"], OBRIEN, {"jobtitle": "Engineer"})
    run(emulator, predictive_model="purchasers")
    trend = store.select("SELECT msdyn_score, msdyn_scoretrend FROM msdyn_predictivescore")[0]
    assert (trend["msdyn_score"], trend["msdyn_scoretrend"]) == (0, 2)  # declining


def test_consent_can_come_from_contact_point_consent_rows(store: Store, emulator: Emulator) -> None:
    add_leads(store)
    store.insert_many(
        TABLES["msdynmkt_contactpointconsent4"],
        [
            {
                "msdynmkt_contactpointconsent4id": "e1000000-0000-4000-8000-000000000001",
                "createdon": "2026-01-01T00:00:00Z",
                "msdynmkt_contactpointvalue": "Siobhan@contoso.example.com",
                "msdynmkt_contactpointtype": 534120000,
                "msdynmkt_value": 534120001,
            },
        ],
    )
    config = MappingConfig(consent_source="contactpointconsent", contactpoint_levels={534120001: 5, 534120002: 0})
    with DataverseClient(TransportConfig(org_url=emulator.org_url), NoAuth()) as client:
        state = SqliteStateStore()
        report = run_main_job(client, state, now=NOW, models=[parse_model(MODEL)], config=config).as_dict()
    summary = report["scoring"]["models"]["purchasers"]
    assert (summary["scored"], summary["below_consent"]) == (1, 1)  # O'Brien opted in; Müller has no consent row
    assert report["requests"]["by_table"]["msdynmkt_contactpointconsent4s"] == 1
