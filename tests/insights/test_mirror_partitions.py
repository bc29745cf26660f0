"""Where the mirror files opportunities, so that one account's insights (its partition and the events its
evaluation saved) see all of them: like a lead, an opportunity sits in its parent account's partition, else in its
contact's, else its own; and a contact that moves to another account takes along the opportunities linked to it
alone."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from abm.jobs.mirror import Mirror
from abm.jobs.pipeline import RunSetup, evaluate
from abm.views.insights import account_insights
from dataverse.client import DataverseClient
from statestore.sqlite import SqliteStateStore
from tests.runtime_support import demo_setup

NOW = datetime(2026, 6, 1, tzinfo=UTC)
RANGE = {"from": "2026-01-01", "to": "2026-05-31"}


def contact(cid: str, account: str | None) -> dict[str, Any]:
    return {"contactid": cid, "_parentcustomerid_value": account, "donotbulkemail": False}


def opportunity(oid: str, account: str | None, contact_id: str | None, created: str = "2026-03-02") -> dict[str, Any]:
    return {
        "opportunityid": oid,
        "_parentaccountid_value": account,
        "_parentcontactid_value": contact_id,
        "_originatingleadid_value": None,
        "statecode": 0,
        "createdon": f"{created}T10:00:00Z",
        "actualclosedate": None,
        "modifiedon": f"{created}T10:00:00Z",
    }


@pytest.fixture
def mirror() -> Iterator[Mirror]:
    store = SqliteStateStore()
    try:
        mirror = Mirror(store)
        mirror.apply("account", [{"accountid": a, "name": a.upper()} for a in ("a1", "a2")])
        mirror.apply("contact", [contact("c1", "a1"), contact("c2", "a1"), contact("x1", None)])
        mirror.apply(
            "opportunity",
            [
                opportunity("o-account", "a2", "c1"),  # its own parent account wins over its contact's
                opportunity("o-contact", None, "C1"),  # the contact's account (lookups compared in lower case)
                opportunity("o-loner", None, "x1"),  # a contact without an account: the contact's partition
                opportunity("o-nobody", None, None),  # neither: a partition of its own
                opportunity("o-unknown", None, "c9"),  # a contact the mirror does not know: its own
            ],
        )
        yield mirror
    finally:
        store.close()


def partitions(mirror: Mirror) -> dict[str, str]:
    return {row.id: row.partition for row in mirror.store.mirror("opportunity")}


def test_an_opportunity_is_filed_under_its_account_else_its_contacts_else_its_own(mirror: Mirror) -> None:
    assert partitions(mirror) == {
        "o-account": "a2",
        "o-contact": "a1",
        "o-loner": "contact:x1",
        "o-nobody": "opportunity:o-nobody",
        "o-unknown": "opportunity:o-unknown",
    }


def test_an_opportunity_of_a_contact_applied_in_the_same_batch_finds_its_account() -> None:
    store = SqliteStateStore()
    try:
        mirror, batch = Mirror(store), dict[str, str]()
        mirror.apply("contact", [contact("c5", "a5")], batch)  # a sync passes one map through every kind
        assert mirror.apply("opportunity", [opportunity("o5", None, "c5")], batch) == {"a5"}
    finally:
        store.close()


def test_a_contact_moving_to_another_account_takes_its_contact_only_opportunities_along(mirror: Mirror) -> None:
    touched = mirror.apply("contact", [contact("c1", "a2")])
    # o-contact follows c1 to a2; o-account has a parent account of its own and stays there
    assert partitions(mirror)["o-contact"] == "a2"
    assert partitions(mirror)["o-account"] == "a2"
    assert {"a1", "a2"} <= touched
    mirror.apply("contact", [contact("x1", "a1")])  # the loner joins a1, its opportunity with it
    assert partitions(mirror)["o-loner"] == "a1"


def test_account_insights_count_the_opportunities_of_the_accounts_contacts(
    mirror: Mirror, client: DataverseClient
) -> None:
    setup = demo_setup()

    def created(account: str) -> tuple[int, int]:
        kpis = account_insights(mirror.store, setup, account, RANGE, NOW)["kpis"]
        return kpis["opportunities_created"], kpis["opportunities_open"]

    # The events come from the timeline an evaluation saves (no definitions here: nothing is written).
    evaluate(client, mirror.store, RunSetup(), now=NOW)
    assert created("a1") == (1, 1)  # o-contact, through c1
    assert created("a2") == (1, 1)  # o-account
    evaluate(client, mirror.store, RunSetup(), now=NOW, scope=mirror.apply("contact", [contact("c1", "a2")]))
    assert created("a1") == (0, 0)
    assert created("a2") == (2, 2)  # o-account and o-contact, which came along with c1
