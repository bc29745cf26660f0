"""A small tenant with hand-computed insights: three accounts over January to April 2026.

Account A (Contoso <Ltd> & Co): contacts a1, a2. Emails, a whitepaper form on Jan 10, a lead on Jan 12 that became
marketing qualified on Feb 10, an opportunity created Feb 20 and won Apr 2.
Account B (Fabrikam): contact b1. A lead created Feb 10 (before its form on Feb 15) and qualified Mar 5; an
opportunity created Mar 10, still open.
Account C (Northwind): contact c1. An opportunity created Jan 15 and lost Feb 1; one visit in April.
Account D (Tailspin): contact d1 only, nothing from January to April. An opportunity created May 5, still open,
linked to d1 alone (no parent account): the mirror files it in D's partition, so D's own insights count it.
Contact x1 has no account: its form on Feb 1 is left out of every account container.

The expected numbers are worked out by hand next to the tests that use them.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from abm.jobs.pipeline import RunSetup, evaluate
from abm.jobs.sync import read_into_mirror
from dataverse.auth import NoAuth
from dataverse.client import DataverseClient
from dataverse.transport import TransportConfig
from devtools.emulator.schema import TABLES
from devtools.emulator.server import Emulator, EmulatorIdentity
from devtools.emulator.store import Store
from devtools.tenant import CALLER_USER_ID
from statestore.port import Progress, StateStore

_NS = uuid.UUID("6f1c3c1e-8d0a-4c36-9d59-2f1f0f6a1b7e")


def guid(name: str) -> str:
    return str(uuid.uuid5(_NS, name))


A, B, C, D = guid("account:A"), guid("account:B"), guid("account:C"), guid("account:D")
A1, A2, B1, C1, D1, X1 = (guid(f"contact:{n}") for n in ("a1", "a2", "b1", "c1", "d1", "x1"))
LEAD_A, LEAD_B = guid("lead:A"), guid("lead:B")
OPP_A, OPP_B, OPP_C = guid("opportunity:A"), guid("opportunity:B"), guid("opportunity:C")
OPP_D = guid("opportunity:D")  # linked to contact d1 only
NAMES = {A: "Contoso <Ltd> & Co", B: "Fabrikam", C: "Northwind", D: "Tailspin"}


def _lookup(name: str, target: str, value: str | None) -> dict[str, Any]:
    return {name: value, f"{name}__type": target if value else None}


def _when(day: str, hour: int = 9) -> str:
    return f"2026-{day}T{hour:02d}:00:00Z"


def _interaction(i: int, contact: str, kind: str, day: str, hour: int, content: str | None) -> dict[str, Any]:
    return {
        "abm_interactionid": guid(f"interaction:{i}"),
        "abm_name": kind,
        "abm_type": kind,
        "abm_occurredon": _when(day, hour),
        "abm_asset": None,
        "abm_campaign": "spring",
        "abm_contenttype": content,
        **_lookup("abm_contactid", "contact", contact),
        "createdon": _when(day, hour),
        "modifiedon": _when(day, hour),
    }


INTERACTIONS = [
    (A1, "EmailSent", "01-05", 8, "newsletter"),
    (A2, "EmailSent", "01-05", 9, "newsletter"),
    (A1, "EmailOpened", "01-06", 9, "newsletter"),
    (A2, "EmailClicked", "01-07", 9, "webinar"),
    (A1, "FormSubmitted", "01-10", 9, "whitepaper"),
    (A1, "WebsiteVisited", "02-02", 9, "pricing page"),
    (A2, "EventRegistered", "03-01", 9, "webinar"),
    (B1, "FormSubmitted", "02-15", 9, "whitepaper"),
    (B1, "WebsiteVisited", "03-03", 9, "pricing page"),
    (C1, "WebsiteVisited", "04-10", 9, "product page"),
    (X1, "FormSubmitted", "02-01", 9, "whitepaper"),
]


def rows() -> dict[str, list[dict[str, Any]]]:
    """The tenant's rows by table, in the emulator store's format (lookups as `name` and `name__type`)."""
    accounts = [{"accountid": a, "name": NAMES[a], "createdon": _when("01-01", 0)} for a in (A, B, C, D)]
    people = ((A1, "Ann", A), (A2, "Aad", A), (B1, "Bea", B), (C1, "Cas", C), (D1, "Dee", D), (X1, "Xi", None))
    contacts = [
        {"contactid": c, "firstname": name, "lastname": "Test", **_lookup("parentcustomerid", "account", account)}
        for c, name, account in people
    ]
    leads = [
        {
            "leadid": LEAD_A,
            "subject": "Lead A",
            **_lookup("parentaccountid", "account", A),
            **_lookup("parentcontactid", "contact", A1),
            "statecode": 0,
            "statuscode": 1,
            "abm_salesready": True,
            "abm_salesreadyon": _when("02-10"),
            "createdon": _when("01-12"),
            "modifiedon": _when("02-10"),
        },
        {
            "leadid": LEAD_B,
            "subject": "Lead B",
            **_lookup("parentaccountid", "account", B),
            **_lookup("parentcontactid", "contact", B1),
            "statecode": 1,
            "statuscode": 3,
            "abm_salesready": False,
            "abm_salesreadyon": None,
            "createdon": _when("02-10"),
            "modifiedon": _when("03-05"),
        },
    ]

    def opportunity(
        oid: str, account: str | None, contact: str | None, created: str, state: int, closed: str | None
    ) -> Any:
        customer = ("account", account) if account else ("contact", contact)
        return {
            "opportunityid": oid,
            "name": f"Deal {oid[:8]}",
            **_lookup("parentaccountid", "account", account),
            **_lookup("customerid", *customer),
            **_lookup("parentcontactid", "contact", contact),
            "statecode": state,
            "statuscode": {0: 1, 1: 3, 2: 4}[state],
            "actualclosedate": closed,
            "createdon": _when(created),
            "modifiedon": _when(closed[5:] if closed else created),
        }

    opportunities = [
        opportunity(OPP_A, A, A1, "02-20", 1, "2026-04-02"),
        opportunity(OPP_B, B, B1, "03-10", 0, None),
        opportunity(OPP_C, C, None, "01-15", 2, "2026-02-01"),
        opportunity(OPP_D, None, D1, "05-05", 0, None),
    ]
    scores = [
        {
            "abm_leadscoreid": guid(f"score:{model}"),
            "abm_model": model,
            **_lookup("abm_leadid", "lead", LEAD_A),
            "abm_score": score,
            "abm_grade": grade,
            "abm_salesready": model == "account-fit",
        }
        for model, score, grade in (("account-fit", 75, "A"), ("contact-engagement", 40, "C"))
    ]
    interactions = [_interaction(i, *spec) for i, spec in enumerate(INTERACTIONS)]
    return {
        "account": accounts,
        "contact": contacts,
        "lead": leads,
        "opportunity": opportunities,
        "abm_interaction": interactions,
        "abm_leadscore": scores,
    }


JOURNEY_ENTRY = datetime(2026, 2, 3, tzinfo=UTC)  # a1 and a2 entered abm-nurture then


def mirror_into(state: StateStore, setup: RunSetup) -> None:
    """Fill a state store as a full sync of this tenant would (through an emulator on loopback; the timeline saved
    by an evaluation that writes nothing), plus journey
    progress: a1 and a2 in abm-nurture since Feb 3; tile counts A: opened entered 2, B: opened entered 1, false 1."""
    store = Store()
    try:
        for name, table_rows in rows().items():
            store.insert_many(TABLES[name], table_rows)
        with (
            Emulator(store, EmulatorIdentity(CALLER_USER_ID)) as emulator,
            DataverseClient(TransportConfig(org_url=emulator.org_url), NoAuth()) as client,
        ):
            state.save_checkpoints(read_into_mirror(client, state, setup, full=True).checkpoints)
            # An evaluation with no definitions writes nothing and saves the insights' timeline, as a sync's would.
            evaluate(client, state, RunSetup(config=setup.config), now=JOURNEY_ENTRY)
    finally:
        store.close()
    progress = [Progress(c, "opened", JOURNEY_ENTRY, False, JOURNEY_ENTRY) for c in (A1, A2)]
    counts = {A: {"opened": {"entered": 2}}, B: {"opened": {"entered": 1, "false": 1}}}
    state.save_journey("abm-nurture", progress, [], counts)
