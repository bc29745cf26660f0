"""An emulator on a free loopback port with a small hand-made dataset, for raw-HTTP and client tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devtools.emulator.limits import GuardConfig
from devtools.emulator.schema import TABLES
from devtools.emulator.server import Emulator, EmulatorIdentity
from devtools.emulator.store import Store

CALLER = "a0a0a0a0-0000-4000-8000-000000000001"
REP = "a0a0a0a0-0000-4000-8000-000000000002"
CONTOSO = "b0b0b0b0-0000-4000-8000-000000000001"
FABRIKAM = "b0b0b0b0-0000-4000-8000-000000000002"
OBRIEN = "c0c0c0c0-0000-4000-8000-000000000001"
MULLER = "c0c0c0c0-0000-4000-8000-000000000002"
LONER = "c0c0c0c0-0000-4000-8000-000000000003"
WORKFLOW = "d0d0d0d0-0000-4000-8000-000000000001"
STAMP = "2026-01-01T00:00:00Z"


def seed(store: Store) -> None:
    """Two users, two accounts, three contacts (one without account), one on-demand contact workflow."""
    system = {"createdon": STAMP, "modifiedon": STAMP, "createdby": CALLER, "createdby__type": "systemuser"}
    owned = {**system, "ownerid": REP, "ownerid__type": "systemuser", "statecode": 0, "statuscode": 1}
    store.insert_many(
        TABLES["systemuser"],
        [
            {**system, "systemuserid": CALLER, "fullname": "ABM Engine", "applicationid": CALLER},
            {**system, "systemuserid": REP, "fullname": "Rita Rep", "firstname": "Rita", "lastname": "Rep"},
        ],
    )
    store.insert_many(
        TABLES["account"],
        [
            {
                **owned,
                "accountid": CONTOSO,
                "name": "Contoso",
                "address1_city": "Amsterdam",
                "revenue": 250000.0,
                "numberofemployees": 120,
                "industrycode": 7,
            },
            {
                **owned,
                "accountid": FABRIKAM,
                "name": "Fabrikam & Co",
                "address1_city": "Berlin",
                "revenue": 50000.0,
                "numberofemployees": 8,
                "industrycode": 16,
            },
        ],
    )
    store.insert_many(
        TABLES["contact"],
        [
            {
                **owned,
                "contactid": OBRIEN,
                "firstname": "Siobhán",
                "lastname": "O'Brien",
                "jobtitle": "Purchaser",
                "emailaddress1": "siobhan@contoso.example.com",
                "parentcustomerid": CONTOSO,
                "parentcustomerid__type": "account",
                "donotbulkemail": 0,
                "msgdpr_gdprconsent": 587030003,
            },
            {
                **owned,
                "contactid": MULLER,
                "firstname": "Jürgen",
                "lastname": "Müller",
                "jobtitle": "CTO",
                "emailaddress1": "juergen@fabrikam.example.com",
                "parentcustomerid": FABRIKAM,
                "parentcustomerid__type": "account",
                "donotbulkemail": 1,
                "msgdpr_gdprconsent": 587030001,
            },
            {**owned, "contactid": LONER, "firstname": "Zoë", "lastname": "Loner", "jobtitle": "50% Purchaser"},
        ],
    )
    store.insert_many(
        TABLES["workflow"],
        [
            {
                **owned,
                "workflowid": WORKFLOW,
                "name": "Welcome contact",
                "primaryentity": "contact",
                "category": 0,
                "type": 1,
                "ondemand": 1,
                "statecode": 1,
                "statuscode": 2,
            }
        ],
    )


@pytest.fixture
def store() -> Iterator[Store]:
    store = Store()
    seed(store)
    yield store
    store.close()


@pytest.fixture
def emulator(store: Store) -> Iterator[Emulator]:
    with Emulator(store, EmulatorIdentity(CALLER), guard=GuardConfig(dop_hint=4)) as emu:
        yield emu
