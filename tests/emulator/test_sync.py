"""The timer's sync against the emulator: full then incremental, delta links saved only after the writes, a sync
killed mid-run and run again, fan-out by account shard with its completion barrier."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from datetime import timedelta
from typing import Any

import pytest

from abm.jobs import sync as sync_module
from abm.jobs.interactions import InteractionEvent, ingest
from abm.jobs.mirror import CONSENT, EVALUATED, Mirror
from abm.jobs.pipeline import RunSetup
from abm.jobs.sync import COLUMNS, ShardMessage, run_shard, sync
from abm.jobs.workflows import CLAIM_LEASE
from dataverse.client import DataverseClient
from dataverse.query import Query, eq
from dataverse.tables import table
from statestore.port import MirrorRow, StateStore, bucket_of
from statestore.sqlite import SqliteStateStore
from tests.runtime_support import (
    NOW,
    Clock,
    dataverse_state,
    demo_setup,
    fresh_client,
    mirror_contents,
    outsider_contact,
    tenant,
)
from tests.state_stores import fresh_store


def checkpoints(store: SqliteStateStore) -> dict[str, str | None]:
    return {k: store.checkpoint(k) for k in ("delta:contact", "delta:lead", "delta:abm_interaction", COLUMNS)}


def test_the_first_sync_is_full_the_next_incremental_and_writes_nothing_new() -> None:
    setup = demo_setup()
    with tenant() as (emulator, _):
        store = SqliteStateStore()
        first = sync(fresh_client(emulator), store, setup, now=NOW)
        assert first.sync["mode"] == "full"
        assert first.writes["tasks"]["created"] > 0 and first.writes["abm_leadscores"]["upserted"] > 0
        assert all(checkpoints(store).values())
        again = fresh_client(emulator)
        second = sync(again, store, setup, now=NOW)
        assert second.sync["mode"] == "incremental"
        assert second.sync["changes"] > 0  # the first run's own writes come back through change tracking
        created = {t: c.get("created", 0) for t, c in second.writes.items() if t != "abm_leadscores"}
        assert not any(created.values()), created
        assert second.writes["abm_leadscores"]["upserted"] == 0
        # one change read per mirrored table, a few queries (workflows, system jobs), no page through Dataverse
        assert second.requests["total"] < first.requests["total"] / 2
        assert second.requests["by_method"].get("POST", 0) == 0


def test_a_change_in_dataverse_reaches_the_journeys_and_scores_in_the_next_sync() -> None:
    setup = demo_setup()
    with tenant() as (emulator, client):
        store = SqliteStateStore()
        sync(fresh_client(emulator), store, setup, now=NOW)
        contacts = table("contact")
        outsider = next(
            row
            for row in client.iter_rows(
                Query(contacts.entity_set).select("contactid", "jobtitle", "msgdpr_gdprconsent")
            )
            if row.get("jobtitle") not in ("CEO", "CFO", "CTO")
            and not str(row.get("jobtitle") or "").startswith("Head")
            and row.get("msgdpr_gdprconsent") == 587030005
        )
        contact_id = str(outsider["contactid"])
        welcomed = (
            Query(table("task").entity_set)
            .select("subject")
            .where(eq("_regardingobjectid_value", uuid.UUID(contact_id)))
        )
        before = len(list(client.iter_rows(welcomed)))
        client.update(contacts, uuid.UUID(contact_id), {"jobtitle": "CEO"})
        report = sync(fresh_client(emulator), store, setup, now=NOW)
        assert report.sync == {"mode": "incremental", "changes": report.sync["changes"], "evaluated": 1}  # its account
        assert Mirror(store).store.mirror_rows("contact", [contact_id])[contact_id].data["jobtitle"] == "CEO"
        assert len(list(client.iter_rows(welcomed))) == before + 1


def test_an_expired_delta_link_falls_back_to_a_full_read() -> None:
    setup = demo_setup()
    with tenant() as (emulator, _):
        store = SqliteStateStore()
        sync(fresh_client(emulator), store, setup, now=NOW)
        link = store.checkpoint("delta:contact")
        assert link is not None
        store.save_checkpoints({"delta:contact": link.split("$deltatoken=")[0] + "$deltatoken=999999999"})
        report = sync(fresh_client(emulator), store, setup, now=NOW)
        assert report.sync["mode"] == "full"
        assert store.checkpoint("delta:contact") != link


def test_a_delta_link_expiring_mid_run_costs_a_full_read_of_that_table_not_the_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The journeys' new leads are read through the lead delta link the run's own read just took; should it have
    expired meanwhile, the lead table is read again whole and the run goes on, ending as an uninterrupted one."""
    setup = demo_setup()
    with tenant() as (emulator, client):
        sync(fresh_client(emulator), SqliteStateStore(), setup, now=NOW)
        expected = dataverse_state(client)
    real = sync_module.read_into_mirror

    def expiring(*args: Any, **kwargs: Any) -> Any:
        read = real(*args, **kwargs)
        link = read.checkpoints["delta:lead"]
        read.checkpoints["delta:lead"] = link.split("$deltatoken=")[0] + "$deltatoken=999999999"
        return read

    monkeypatch.setattr(sync_module, "read_into_mirror", expiring)
    with tenant() as (emulator, client):
        store = SqliteStateStore()
        report = sync(fresh_client(emulator), store, setup, now=NOW)
        assert report.writes["leads"]["created"] > 0  # the journeys made leads, and this run scored them
        assert dataverse_state(client) == expected
        assert "999999999" not in str(store.checkpoint("delta:lead"))
        leads = {str(row["leadid"]) for row in client.iter_rows(Query(table("lead").entity_set).select("leadid"))}
        assert {row.id for row in store.mirror("lead")} == leads


def test_definitions_naming_other_columns_force_a_full_read() -> None:
    setup = demo_setup()
    with tenant() as (emulator, _):
        store = SqliteStateStore()
        sync(fresh_client(emulator), store, setup, now=NOW)
        store.save_checkpoints({COLUMNS: "another-select"})
        assert sync(fresh_client(emulator), store, setup, now=NOW).sync["mode"] == "full"


class Killed(Exception):
    pass


def killed_after(client: DataverseClient, writes: int) -> DataverseClient:
    """A client whose process dies (an exception nothing catches) before its `writes`+1-th write request."""
    send = client.transport.send
    count = {"n": 0}

    def dying(method: str, path: str, **kwargs: Any) -> Any:
        if method != "GET":
            count["n"] += 1
            if count["n"] > writes:
                raise Killed(f"killed before write {count['n']}")
        return send(method, path, **kwargs)

    client.transport.send = dying  # type: ignore[method-assign]
    return client


@pytest.mark.parametrize(
    ("when", "kind"), [("first", "sqlite"), ("middle", "sqlite"), ("last", "sqlite"), ("middle", "azure")]
)
def test_a_sync_killed_mid_run_and_run_again_ends_as_an_uninterrupted_one(
    when: str, kind: str, request: pytest.FixtureRequest
) -> None:
    setup = demo_setup()
    with tenant() as (emulator, client):
        store: StateStore = SqliteStateStore()
        counting = fresh_client(emulator)
        sync(counting, store, setup, now=NOW)
        expected = dataverse_state(client)
        progress = {j.name: store.progress(j.name) for j in setup.journeys}
    by_method = counting.stats.as_dict()["by_method"]
    total = sum(n for method, n in by_method.items() if method != "GET")  # the run's write requests
    writes = {"first": 1, "middle": total // 2, "last": total - 1}[when]  # killed before that many + 1
    with tenant() as (emulator, client):
        store = fresh_store(kind, request)
        with pytest.raises(Killed):
            sync(killed_after(fresh_client(emulator), writes), store, setup, now=NOW)
        assert store.checkpoint(COLUMNS) is None  # no delta link saved for writes that did not all happen
        again = sync(fresh_client(emulator), store, setup, now=NOW)
        assert again.sync["mode"] == "full"
        assert dataverse_state(client) == expected
        assert {j.name: store.progress(j.name) for j in setup.journeys} == progress


def change_the_tenant(client: DataverseClient) -> str:
    """Changes made in Dataverse between two syncs, the same on every tenant of one seed: a contact becomes a CEO
    (the welcome journey: a task, an email, a workflow) and a lead's contact asks for a demo and registers for an
    event (its engagement score goes up). Returns that lead's id."""
    contact = outsider_contact(client)
    client.update(table("contact"), uuid.UUID(contact), {"jobtitle": "CEO"})
    scores = Query(table("abm_leadscore").entity_set).select("_abm_leadid_value", "abm_model", "abm_score")
    lead = min(
        str(row["_abm_leadid_value"])
        for row in client.iter_rows(scores)
        if row["abm_model"] == "contact-engagement" and row["abm_score"] < 30
    )
    parent = client.get(table("lead"), uuid.UUID(lead), select=["_parentcontactid_value"])["_parentcontactid_value"]
    ingest(
        client,
        [
            InteractionEvent("kill-1", "test", "FormSubmitted", parent, NOW - timedelta(days=2), "Demo request form"),
            InteractionEvent("kill-2", "test", "EventRegistered", parent, NOW - timedelta(days=3)),
        ],
        now=NOW,
    )
    return lead


def all_checkpoints(store: SqliteStateStore) -> dict[str, str]:
    return dict(store.conn.execute("SELECT name, value FROM checkpoints").fetchall())


def engine_state(client: DataverseClient, store: SqliteStateStore, setup: RunSetup) -> dict[str, Any]:
    """What a run leaves behind: the rows written in Dataverse, the journeys' progress and tile counts, the mirror."""
    return {
        "dataverse": dataverse_state(client),
        "progress": {j.name: store.progress(j.name) for j in setup.journeys},
        "tile_counts": {j.name: store.tile_counts(j.name) for j in setup.journeys},
        "mirror": mirror_contents(store),
    }


@pytest.fixture(scope="module")
def uninterrupted_incremental() -> dict[str, Any]:
    """A full sync, the changes, then an incremental sync that runs to its end: the state to end in."""
    setup = demo_setup()
    with tenant() as (emulator, client):
        clock = Clock(NOW)
        store = SqliteStateStore(clock=clock)
        sync(fresh_client(emulator), store, setup, now=NOW)
        before = dataverse_state(client)
        lead = change_the_tenant(client)
        links = all_checkpoints(store)
        run = fresh_client(emulator)
        report = sync(run, store, setup, now=NOW)
        assert report.sync["mode"] == "incremental"
        state = engine_state(client, store, setup)
        # the changes are worth a test: an activity, a workflow and a new score written in this one run
        assert len(state["dataverse"]["task"]) == len(before["task"]) + 1
        assert len(state["dataverse"]["workflow_runs"]) == len(before["workflow_runs"]) + 1
        score = {(s[0], s[1]): s[2] for s in state["dataverse"]["scores"]}
        was = {(s[0], s[1]): s[2] for s in before["scores"]}
        assert score[(lead, "contact-engagement")] > was[(lead, "contact-engagement")]
        assert all_checkpoints(store) != links
        writes = run.stats.as_dict()["by_method"]["POST"]
        clock.advance(CLAIM_LEASE)
        sync(fresh_client(emulator), store, setup, now=LATER)
        return {"state": state, "writes": writes, "later": engine_state(client, store, setup)}


# Write requests of that incremental run, in order: the welcome tasks, the welcome emails, the workflows' $batch,
# the scores' UpsertMultiple.
INCREMENTAL_WRITES = 4
WORKFLOW_WRITE = 2  # killed after this many writes, the run has claimed the workflow and not started it
LATER = NOW + CLAIM_LEASE  # the next sync, when a dead run's claim has expired


@pytest.mark.parametrize("writes", range(INCREMENTAL_WRITES))
def test_an_incremental_sync_killed_mid_run_keeps_its_delta_links_and_run_again_ends_as_an_uninterrupted_one(
    writes: int, uninterrupted_incremental: dict[str, Any]
) -> None:
    assert uninterrupted_incremental["writes"] == INCREMENTAL_WRITES
    setup = demo_setup()
    with tenant() as (emulator, client):
        clock = Clock(NOW)
        store = SqliteStateStore(clock=clock)
        sync(fresh_client(emulator), store, setup, now=NOW)
        change_the_tenant(client)
        links = all_checkpoints(store)
        assert {f"delta:{kind}" for kind in ("account", "contact", "lead", "abm_interaction")} <= links.keys()
        dying = killed_after(fresh_client(emulator), writes)
        with pytest.raises(Killed):
            sync(dying, store, setup, now=NOW)
        assert dying.stats.as_dict()["by_method"].get("POST", 0) == writes  # it died part-way, after these writes
        assert all_checkpoints(store) == links  # no delta link moved past writes that did not all happen
        again = sync(fresh_client(emulator), store, setup, now=NOW)
        assert again.sync["mode"] == "incremental"
        assert all_checkpoints(store) != links
        state = engine_state(client, store, setup)
        expected = uninterrupted_incremental["state"]
        if writes == WORKFLOW_WRITE:  # died holding the workflow's claim: the rerun leaves it for the claim's lease
            missing = set(expected["dataverse"]["workflow_runs"]) - set(state["dataverse"]["workflow_runs"])
            assert len(missing) == 1
            state["dataverse"]["workflow_runs"] = expected["dataverse"]["workflow_runs"]
        assert state["dataverse"] == expected["dataverse"]
        assert state["progress"] == expected["progress"]
        assert state["tile_counts"] == expected["tile_counts"]
        assert state["mirror"] == expected["mirror"]
        clock.advance(CLAIM_LEASE)
        sync(fresh_client(emulator), store, setup, now=LATER)  # the next tick, after the lease: the same end
        assert engine_state(client, store, setup) == uninterrupted_incremental["later"]


def test_a_fanned_out_sync_saves_its_delta_links_when_the_last_shard_is_done() -> None:
    setup = demo_setup()
    with tenant() as (emulator, client):
        store = SqliteStateStore()
        sync(fresh_client(emulator), store, setup, now=NOW)
        expected = dataverse_state(client)
    with tenant() as (emulator, client):
        store = SqliteStateStore()
        queue: list[str] = []
        started = sync(fresh_client(emulator), store, setup, now=NOW, shards=3, enqueue=queue.extend)
        assert started.sync["shards"] == 3 and len(queue) == 3
        assert store.checkpoint(COLUMNS) is None
        messages = [ShardMessage.from_json(m) for m in queue]
        run_shard(fresh_client(emulator), store, setup, messages[0])
        run_shard(fresh_client(emulator), store, setup, messages[0])  # a redelivered shard counts once
        run_shard(fresh_client(emulator), store, setup, messages[1])
        assert store.checkpoint(COLUMNS) is None
        waiting = sync(fresh_client(emulator), store, setup, now=NOW, shards=3, enqueue=queue.extend)
        assert waiting.sync["mode"] == "waiting" and len(queue) == 3  # nothing read, nothing sent again
        run_shard(fresh_client(emulator), store, setup, messages[2])
        assert store.checkpoint(COLUMNS) is not None and store.open_run() is None
        state = dataverse_state(client)
        # the journeys' leads are scored by the next run when fanned out; everything else is the same
        assert {k: v for k, v in state.items() if k != "scores"} == {k: v for k, v in expected.items() if k != "scores"}
        sync(fresh_client(emulator), store, setup, now=NOW, shards=3, enqueue=queue.extend)
        for message in queue[3:]:
            run_shard(fresh_client(emulator), store, setup, ShardMessage.from_json(message))
        assert dataverse_state(client) == expected


def test_a_shard_lost_for_longer_than_the_lease_is_sent_again() -> None:
    setup = demo_setup()
    with tenant() as (emulator, _):
        store = SqliteStateStore()
        queue: list[str] = []
        sync(fresh_client(emulator), store, setup, now=NOW, shards=2, enqueue=queue.extend)
        run_shard(fresh_client(emulator), store, setup, ShardMessage.from_json(queue[0]))
        later = NOW.replace(hour=2)
        resent = sync(fresh_client(emulator), store, setup, now=later, shards=2, enqueue=queue.extend)
        assert resent.sync["mode"] == "resent" and [ShardMessage.from_json(m).shard for m in queue[2:]] == [1]
        run_shard(fresh_client(emulator), store, setup, ShardMessage.from_json(queue[2]))
        assert store.open_run() is None and store.checkpoint(COLUMNS) is not None


def test_a_new_mirror_layout_reads_every_table_again(monkeypatch: pytest.MonkeyPatch) -> None:
    setup = demo_setup()
    with tenant() as (emulator, _):
        store = SqliteStateStore()
        sync(fresh_client(emulator), store, setup, now=NOW)
        assert sync(fresh_client(emulator), store, setup, now=NOW).sync["mode"] == "incremental"
        monkeypatch.setattr(sync_module, "MIRROR_LAYOUT", sync_module.MIRROR_LAYOUT + 1)  # an upgrade files rows anew
        assert sync(fresh_client(emulator), store, setup, now=NOW).sync["mode"] == "full"
        assert sync(fresh_client(emulator), store, setup, now=NOW).sync["mode"] == "incremental"


class ReadRecorder(SqliteStateStore):
    """A state store that notes the partitions each read of the mirror asks for (`None`: every partition)."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[tuple[str, list[str] | None]] = []

    def mirror(self, kind: str, partitions: Iterable[str] | None = None) -> Iterator[MirrorRow]:
        wanted = None if partitions is None else list(partitions)
        self.reads.append((kind, wanted))
        return super().mirror(kind, wanted)


def test_a_shard_reads_and_evaluates_only_the_partitions_of_its_buckets() -> None:
    setup = demo_setup()
    with tenant() as (emulator, _):
        store = ReadRecorder()
        queue: list[str] = []
        sync(fresh_client(emulator), store, setup, now=NOW, shards=4, enqueue=queue.extend)
        everything = store.mirror_partitions(EVALUATED)
        store.reads.clear()
        message = ShardMessage.from_json(queue[1])
        report = run_shard(fresh_client(emulator), store, setup, message)
        mine = {p for p in everything if bucket_of(p) % 4 == 1}
        read = {p for kind, parts in store.reads if kind != CONSENT for p in (parts or ["<every partition>"])}
        assert read == mine  # every read names its partitions, all of them this shard's
        assert 0.15 < len(mine) / len(everything) < 0.35  # about a quarter (1,024 buckets over 4 shards)
        assert report.tenant["accounts"] == sum(1 for p in mine if not p.startswith(("contact:", "lead:")))
