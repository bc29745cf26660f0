"""The timer's sync against the emulator: full then incremental, delta links saved only after the writes, a sync
killed mid-run and run again, fan-out by account shard with its completion barrier."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from abm.mirror import Mirror
from abm.state import SqliteStateStore
from abm.sync import COLUMNS, ShardMessage, run_shard, sync
from dataverse.client import DataverseClient
from dataverse.query import Query, eq
from dataverse.tables import table
from tests.runtime_support import NOW, dataverse_state, demo_engine, fresh_client, tenant


def checkpoints(store: SqliteStateStore) -> dict[str, str | None]:
    return {k: store.checkpoint(k) for k in ("delta:contact", "delta:lead", "delta:abm_interaction", COLUMNS)}


def test_the_first_sync_is_full_the_next_incremental_and_writes_nothing_new() -> None:
    engine = demo_engine()
    with tenant() as (emulator, _):
        store = SqliteStateStore()
        first = sync(fresh_client(emulator), store, engine, now=NOW)
        assert first.sync["mode"] == "full"
        assert first.writes["tasks"]["created"] > 0 and first.writes["abm_leadscores"]["upserted"] > 0
        assert all(checkpoints(store).values())
        again = fresh_client(emulator)
        second = sync(again, store, engine, now=NOW)
        assert second.sync["mode"] == "incremental"
        assert second.sync["changes"] > 0  # the first run's own writes come back through change tracking
        created = {t: c.get("created", 0) for t, c in second.writes.items() if t != "abm_leadscores"}
        assert not any(created.values()), created
        assert second.writes["abm_leadscores"]["upserted"] == 0
        # one change read per mirrored table, a few queries (workflows, system jobs), no page through Dataverse
        assert second.requests["total"] < first.requests["total"] / 2
        assert second.requests["by_method"].get("POST", 0) == 0


def test_a_change_in_dataverse_reaches_the_journeys_and_scores_in_the_next_sync() -> None:
    engine = demo_engine()
    with tenant() as (emulator, client):
        store = SqliteStateStore()
        sync(fresh_client(emulator), store, engine, now=NOW)
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
        report = sync(fresh_client(emulator), store, engine, now=NOW)
        assert report.sync == {"mode": "incremental", "changes": report.sync["changes"]}
        assert Mirror(store).store.mirror_rows("contact", [contact_id])[contact_id].data["jobtitle"] == "CEO"
        assert len(list(client.iter_rows(welcomed))) == before + 1


def test_an_expired_delta_link_falls_back_to_a_full_read() -> None:
    engine = demo_engine()
    with tenant() as (emulator, _):
        store = SqliteStateStore()
        sync(fresh_client(emulator), store, engine, now=NOW)
        link = store.checkpoint("delta:contact")
        assert link is not None
        store.save_checkpoints({"delta:contact": link.split("$deltatoken=")[0] + "$deltatoken=999999999"})
        report = sync(fresh_client(emulator), store, engine, now=NOW)
        assert report.sync["mode"] == "full"
        assert store.checkpoint("delta:contact") != link


def test_definitions_naming_other_columns_force_a_full_read() -> None:
    engine = demo_engine()
    with tenant() as (emulator, _):
        store = SqliteStateStore()
        sync(fresh_client(emulator), store, engine, now=NOW)
        store.save_checkpoints({COLUMNS: "another-select"})
        assert sync(fresh_client(emulator), store, engine, now=NOW).sync["mode"] == "full"


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


@pytest.mark.parametrize("writes", [1, 4, 9])
def test_a_sync_killed_mid_run_and_run_again_ends_as_an_uninterrupted_one(writes: int) -> None:
    engine = demo_engine()
    with tenant() as (emulator, client):
        store = SqliteStateStore()
        sync(fresh_client(emulator), store, engine, now=NOW)
        expected = dataverse_state(client)
        progress = {j.name: store.progress(j.name) for j in engine.journeys}
    with tenant() as (emulator, client):
        store = SqliteStateStore()
        with pytest.raises(Killed):
            sync(killed_after(fresh_client(emulator), writes), store, engine, now=NOW)
        assert store.checkpoint(COLUMNS) is None  # no delta link saved for writes that did not all happen
        again = sync(fresh_client(emulator), store, engine, now=NOW)
        assert again.sync["mode"] == "full"
        assert dataverse_state(client) == expected
        assert {j.name: store.progress(j.name) for j in engine.journeys} == progress


def test_a_fanned_out_sync_saves_its_delta_links_when_the_last_shard_is_done() -> None:
    engine = demo_engine()
    with tenant() as (emulator, client):
        store = SqliteStateStore()
        sync(fresh_client(emulator), store, engine, now=NOW)
        expected = dataverse_state(client)
    with tenant() as (emulator, client):
        store = SqliteStateStore()
        queue: list[str] = []
        started = sync(fresh_client(emulator), store, engine, now=NOW, shards=3, enqueue=queue.extend)
        assert started.sync["shards"] == 3 and len(queue) == 3
        assert store.checkpoint(COLUMNS) is None
        messages = [ShardMessage.from_json(m) for m in queue]
        run_shard(fresh_client(emulator), store, engine, messages[0])
        run_shard(fresh_client(emulator), store, engine, messages[0])  # a redelivered shard counts once
        run_shard(fresh_client(emulator), store, engine, messages[1])
        assert store.checkpoint(COLUMNS) is None
        waiting = sync(fresh_client(emulator), store, engine, now=NOW, shards=3, enqueue=queue.extend)
        assert waiting.sync["mode"] == "waiting" and len(queue) == 3  # nothing read, nothing sent again
        run_shard(fresh_client(emulator), store, engine, messages[2])
        assert store.checkpoint(COLUMNS) is not None and store.open_run() is None
        state = dataverse_state(client)
        # the journeys' leads are scored by the next run when fanned out; everything else is the same
        assert {k: v for k, v in state.items() if k != "scores"} == {k: v for k, v in expected.items() if k != "scores"}
        sync(fresh_client(emulator), store, engine, now=NOW, shards=3, enqueue=queue.extend)
        for message in queue[3:]:
            run_shard(fresh_client(emulator), store, engine, ShardMessage.from_json(message))
        assert dataverse_state(client) == expected


def test_a_shard_lost_for_longer_than_the_lease_is_sent_again() -> None:
    engine = demo_engine()
    with tenant() as (emulator, _):
        store = SqliteStateStore()
        queue: list[str] = []
        sync(fresh_client(emulator), store, engine, now=NOW, shards=2, enqueue=queue.extend)
        run_shard(fresh_client(emulator), store, engine, ShardMessage.from_json(queue[0]))
        later = NOW.replace(hour=2)
        resent = sync(fresh_client(emulator), store, engine, now=later, shards=2, enqueue=queue.extend)
        assert resent.sync["mode"] == "resent" and [ShardMessage.from_json(m).shard for m in queue[2:]] == [1]
        run_shard(fresh_client(emulator), store, engine, ShardMessage.from_json(queue[2]))
        assert store.open_run() is None and store.checkpoint(COLUMNS) is not None
