"""The production client against the emulator over real sockets: reads, writes, bulk, changes, actions, retries."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from dataverse.auth import NoAuth
from dataverse.batch import BatchRequest, ChangeSet
from dataverse.client import DataverseClient, Removed, Upserted
from dataverse.errors import DataverseDuplicate, DataverseNotFound, DataversePreconditionFailed
from dataverse.query import Query, contains, eq, in_, is_null
from dataverse.tables import table
from dataverse.transport import Transport, TransportConfig
from devtools.emulator.limits import Faults, GuardConfig
from devtools.emulator.server import Emulator, EmulatorIdentity
from devtools.emulator.store import Store
from tests.conftest import FakeSleep
from tests.emulator.conftest import CALLER, CONTOSO, LONER, MULLER, OBRIEN, WORKFLOW


def client_for(emulator: Emulator, sleep: Callable[[float], None], **config: int) -> DataverseClient:
    transport = Transport(TransportConfig(org_url=emulator.org_url, **config), NoAuth(), sleep=sleep)
    return DataverseClient(transport.config, transport=transport)


@pytest.fixture
def client(emulator: Emulator, sleeps: FakeSleep) -> Iterator[DataverseClient]:
    with client_for(emulator, sleeps) as c:
        yield c


def test_who_am_i(client: DataverseClient) -> None:
    assert str(client.who_am_i().user_id) == CALLER


def test_paging_through_the_emulator_reads_every_row_once(client: DataverseClient) -> None:
    leads = [{"subject": f"lead {i}"} for i in range(25)]
    client.create_multiple(table("lead"), leads)
    pages = list(client.iter_pages(Query("leads").select("subject"), page_size=10))
    assert [len(p.rows) for p in pages] == [10, 10, 5]
    assert sorted(r["subject"] for p in pages for r in p.rows) == sorted(lead["subject"] for lead in leads)
    assert client.stats.by_table["leads"] == 4  # one CreateMultiple, three pages


def test_builder_filters_mean_the_same_on_the_server(client: DataverseClient) -> None:
    def found(*filters: object) -> list[str]:
        query = Query("contacts").select("lastname").where(*filters).orderby("lastname")  # type: ignore[arg-type]
        return [r["lastname"] for r in client.iter_rows(query)]

    assert found(eq("lastname", "O'Brien")) == ["O'Brien"]
    assert found(contains("jobtitle", "50%")) == ["Loner"]  # the % is literal, not a wildcard
    assert found(contains("jobtitle", "%")) == ["Loner"]
    assert found(eq("parentcustomerid_account/address1_city", "Amsterdam")) == ["O'Brien"]
    assert found(in_("contactid", [uuid.UUID(OBRIEN), uuid.UUID(MULLER)])) == ["Müller", "O'Brien"]
    assert found(is_null("_parentcustomerid_value")) == ["Loner"]
    assert found(eq("lastname", "x' or lastname ne 'y")) == []


def test_create_update_upsert_delete_round_trip(client: DataverseClient) -> None:
    leads = table("lead")
    lead_id = client.create(leads, {"subject": "A", "parentaccountid@odata.bind": f"/accounts({CONTOSO})"})
    client.update(leads, lead_id, {"subject": "B"})
    row = client.get(leads, lead_id, select=["subject", "_parentaccountid_value"])
    assert (row["subject"], row["_parentaccountid_value"]) == ("B", CONTOSO)
    with pytest.raises(DataversePreconditionFailed):
        client.update(leads, lead_id, {"subject": "C"}, etag='W/"1"')
    client.delete(leads, lead_id)
    with pytest.raises(DataverseNotFound):
        client.get(leads, lead_id)


def test_a_create_with_an_id_is_idempotent_only_on_retry(client: DataverseClient) -> None:
    task_id = uuid.uuid4()
    assert client.create(table("task"), {"subject": "once"}, id=task_id) == task_id
    with pytest.raises(DataverseDuplicate):
        client.create(table("task"), {"subject": "once"}, id=task_id)


def test_upsert_multiple_by_alternate_key_is_idempotent(client: DataverseClient) -> None:
    lead_id = client.create(table("lead"), {"subject": "scored"})
    scores = table("abm_leadscore")
    for score in (10, 20):
        rows = [{"abm_leadid": lead_id, "abm_model": "fit", "abm_score": score}]
        client.upsert_multiple(scores, rows, key=("abm_leadid", "abm_model"))
    found = list(client.iter_rows(Query("abm_leadscores").select("abm_score").where(eq("_abm_leadid_value", lead_id))))
    assert [r["abm_score"] for r in found] == [20]


def test_change_feed_from_the_emulator(client: DataverseClient) -> None:
    feed = client.read_changes(Query("contacts").select("lastname"))
    assert len(list(feed)) == 3 and feed.delta_link
    client.update(table("contact"), uuid.UUID(MULLER), {"jobtitle": "CEO"})
    client.delete(table("contact"), uuid.UUID(LONER))
    delta = client.read_changes(feed.delta_link)
    changes = list(delta)
    assert [c.row["contactid"] for c in changes if isinstance(c, Upserted)] == [MULLER]
    assert [str(c.id) for c in changes if isinstance(c, Removed)] == [LONER]


def test_execute_workflow_returns_the_system_job(client: DataverseClient) -> None:
    job = client.execute_workflow(uuid.UUID(WORKFLOW), uuid.UUID(OBRIEN))
    assert job is not None
    row = client.get(table("asyncoperation"), job, select=["_regardingobjectid_value"])
    assert row["_regardingobjectid_value"] == OBRIEN


def test_the_client_waits_out_the_limit_and_succeeds(store: Store, sleeps: FakeSleep) -> None:
    with Emulator(store, EmulatorIdentity(CALLER), guard=GuardConfig(limit_requests=2, limit_window=0.5)) as emu:
        real = client_for(emu, time.sleep)  # type: ignore[arg-type]  # the window must really pass
        for _ in range(4):
            assert str(real.who_am_i().user_id) == CALLER
        assert real.stats.total >= 5  # at least one 429 was answered and retried


def test_faults_do_not_change_what_the_client_reads(store: Store, sleeps: FakeSleep) -> None:
    def read_all(spec: str | None) -> list[str]:
        guard = GuardConfig(faults=Faults.parse(spec), fault_retry_after=0)
        with Emulator(store, EmulatorIdentity(CALLER), guard=guard) as emu:
            c = client_for(emu, sleeps, max_attempts=10)
            return sorted(r["lastname"] for r in c.iter_rows(Query("contacts").select("lastname"), page_size=1))

    assert read_all("503=0.3,429=0.2,reset=0.1,lost=0.1,seed=3") == read_all(None)
    assert sleeps.calls  # the faulty run did retry


def test_a_batch_change_set_with_a_content_id_reference_commits_together(client: DataverseClient) -> None:
    lead = uuid.uuid4()
    outcomes = client.batch(
        [
            ChangeSet(
                [
                    BatchRequest("POST", "leads", {"leadid": lead, "subject": "from batch"}, content_id="1"),
                    BatchRequest("POST", "tasks", {"subject": "call", "regardingobjectid_lead_task@odata.bind": "$1"}),
                ]
            ),
            BatchRequest("GET", f"leads({lead})?$select=subject"),
        ]
    )
    assert [o.status for o in outcomes] == ["ok", "ok"]
    assert outcomes[1].responses[0].body["subject"] == "from batch"
    tasks = list(client.iter_rows(Query("tasks").select("subject").where(eq("_regardingobjectid_value", lead))))
    assert [t["subject"] for t in tasks] == ["call"]


def test_a_failing_part_rolls_its_change_set_back_and_stops_the_batch(client: DataverseClient) -> None:
    lead = uuid.uuid4()
    outcomes = client.batch(
        [
            ChangeSet(
                [
                    BatchRequest("POST", "leads", {"leadid": lead, "subject": "rolled back"}),
                    BatchRequest("PATCH", f"leads({uuid.uuid4()})", {"subject": "x"}, headers={"If-Match": "*"}),
                ]
            ),
            BatchRequest("POST", "leads", {"subject": "never sent"}),
        ]
    )
    assert [o.status for o in outcomes] == ["failed", "not_executed"]
    assert isinstance(outcomes[0].error, DataverseNotFound)
    assert list(client.iter_rows(Query("leads").select("subject").where(eq("leadid", lead)))) == []


def test_continue_on_error_runs_the_rest(client: DataverseClient) -> None:
    outcomes = client.batch(
        [
            BatchRequest("DELETE", f"leads({uuid.uuid4()})"),
            BatchRequest("POST", "leads", {"subject": "still made"}),
        ],
        continue_on_error=True,
    )
    assert [o.status for o in outcomes] == ["failed", "ok"]
    assert outcomes[1].responses[0].entity_id is not None


def test_update_multiple_changes_every_row_and_fails_whole_on_a_missing_one(client: DataverseClient) -> None:
    leads = table("lead")
    ids = client.create_multiple(leads, [{"subject": f"s{i}"} for i in range(3)])
    assert client.update_multiple(leads, [{"leadid": str(i), "subject": "updated"} for i in ids]) == 3
    subjects = {r["subject"] for r in client.iter_rows(Query("leads").select("subject").where(in_("leadid", ids)))}
    assert subjects == {"updated"}
    with pytest.raises(DataverseNotFound):
        client.update_multiple(
            leads, [{"leadid": str(ids[0]), "subject": "again"}, {"leadid": str(uuid.uuid4()), "subject": "x"}]
        )
    assert client.get(leads, ids[0], select=["subject"])["subject"] == "updated"  # the chunk rolled back
