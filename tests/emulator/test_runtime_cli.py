"""`abm sync`, `abm deadletters` and `abm replay` from a shell, with settings from a local.settings.json file."""

from __future__ import annotations

import json
import socket
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest

from abm import bootstrap
from abm.jobs.events import dead_letter_event, describe_error, process_event, receive_webhook
from abm.jobs.sync import COLUMNS, ShardMessage, run_shard, sync
from abm_command.main import main
from dataverse.auth import NoAuth
from dataverse.client import DataverseClient
from dataverse.errors import DataverseConnectionError
from dataverse.query import Query, eq
from dataverse.tables import table
from dataverse.transport import TransportConfig
from devtools.emulator.server import Emulator
from function_app.sync import dead_letter_shard
from statestore.sqlite import SqliteStateStore
from tests.runtime_support import (
    NOW,
    dataverse_state,
    demo_setup,
    fresh_client,
    outsider_contact,
    tenant,
    webhook_body,
)

# What a webhook body may carry about a person: never shown by `abm deadletters`.
PERSONAL = {"fullname": "Siobhán O'Brien", "emailaddress1": "siobhan@contoso.example.com"}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def local_settings(tmp_path: Path, emulator: Emulator) -> tuple[str, Path]:
    """A local.settings.json naming the emulator and an SQLite state file; returns the file and the state path."""
    settings, state = tmp_path / "local.settings.json", tmp_path / "state.sqlite"
    values = {
        "DATAVERSE_URL": emulator.org_url,
        "DATAVERSE_AUTH": "none",
        "ABM_STATE_STORE": "sqlite",
        "ABM_SQLITE_PATH": str(state),
    }
    settings.write_text(json.dumps({"IsEncrypted": False, "Values": values}))
    return str(settings), state


def state_dump(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of the SQLite state store (checkpoints, progress, mirror, effects, runs, ...)."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {n: sorted(conn.execute(f'SELECT * FROM "{n}"').fetchall(), key=repr) for n in names}


def unreachable_client() -> DataverseClient:
    """A client of an org that refuses connections (a loopback port nobody listens on), one attempt per request."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = TransportConfig(org_url=f"http://127.0.0.1:{port}", max_attempts=1, backoff_initial=0.01)
    return DataverseClient(config, NoAuth())


def tasks_about(client: DataverseClient, contact: str) -> int:
    query = Query(table("task").entity_set).select("subject").where(eq("_regardingobjectid_value", uuid.UUID(contact)))
    return sum(1 for _ in client.iter_rows(query))


def test_sync_then_incremental_then_deadletters_and_a_dry_replay(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with tenant() as (emulator, client):
        settings, state = local_settings(tmp_path, emulator)
        before = dataverse_state(client)
        dry = run(capsys, "--settings", settings, "sync", "--dry-run", "--json")
        assert dry["sync"]["mode"] == "full" and dry["dry_run_writes"]
        assert dataverse_state(client) == before  # a dry sync writes nothing, not even the state:
        dumped = state_dump(state)
        assert {"checkpoints", "progress", "mirror", "effects"} <= dumped.keys()
        assert not any(dumped.values()), {name: len(rows) for name, rows in dumped.items()}
        first = run(capsys, "--settings", settings, "sync", "--json")
        assert first["sync"]["mode"] == "full" and first["writes"]["tasks"]["created"] > 0
        second = run(capsys, "--settings", settings, "sync", "--json")
        assert second["sync"]["mode"] == "incremental"
        assert run(capsys, "--settings", settings, "deadletters", "--json") == {"dead_letters": []}
        contact = outsider_contact(client)
        replayed = run(capsys, "--settings", settings, "replay", "--record", "contact", contact, "--dry-run", "--json")
        assert replayed["dry_run"] is True and replayed["records"][0]["id"] == contact


def test_a_dry_incremental_sync_leaves_dataverse_and_the_state_store_as_they_were(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with tenant() as (emulator, client):
        settings, state = local_settings(tmp_path, emulator)
        run(capsys, "--settings", settings, "sync", "--json")
        contact = outsider_contact(client)
        client.update(table("contact"), uuid.UUID(contact), {"jobtitle": "CEO"})  # enters a journey: a task
        dataverse_before, state_before = dataverse_state(client), state_dump(state)
        assert state_before["checkpoints"] and state_before["progress"] and state_before["mirror"]
        dry = run(capsys, "--settings", settings, "sync", "--dry-run", "--json")
        assert dry["sync"]["mode"] == "incremental"
        assert any(w["target"] == "tasks" for w in dry["dry_run_writes"])
        assert dataverse_state(client) == dataverse_before
        assert state_dump(state) == state_before  # checkpoints, progress, mirror, effects: all unchanged
        real = run(capsys, "--settings", settings, "sync", "--json")  # what the dry run showed, now written
        assert real["writes"]["tasks"]["created"] >= 1 and state_dump(state) != state_before


def test_a_failing_event_is_listed_as_a_dead_letter_without_its_payload_then_replayed_by_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with tenant() as (emulator, client):
        settings, state = local_settings(tmp_path, emulator)
        run(capsys, "--settings", settings, "sync", "--json")
        contact = outsider_contact(client)
        client.update(table("contact"), uuid.UUID(contact), {"jobtitle": "CEO"})
        store = SqliteStateStore(str(state))
        body = webhook_body("Update", "contact", contact, str(uuid.uuid4()), jobtitle="CEO", **PERSONAL)
        receipt = receive_webhook(store, body, {}, now=NOW)
        assert receipt.queued and receipt.event_id is not None
        event_id = receipt.event_id
        for _ in range(2):  # the queue's tries, Dataverse unreachable each time
            with pytest.raises(DataverseConnectionError) as failed:
                process_event(unreachable_client(), store, demo_setup(), event_id, now=NOW)
        dead_letter_event(store, event_id, now=NOW)  # what the poison queue's worker does

        listed = run(capsys, "--settings", settings, "deadletters", "--json")["dead_letters"]
        assert [(d["id"], d["kind"], d["record_id"], d["attempts"]) for d in listed] == [
            (event_id, "event", contact, 2)
        ]
        error = describe_error(failed.value)  # the last try's error: its kind and status, no row values
        assert listed[0]["error"] == error
        assert main(["--settings", settings, "deadletters"]) == 0
        text = capsys.readouterr().out
        assert event_id in text and " event " in text and error in text
        for value in (*PERSONAL.values(), "O'Brien", "siobhan", "payload"):
            assert value not in json.dumps(listed) and value not in text

        before = tasks_about(client, contact)
        dry = run(capsys, "--settings", settings, "replay", "--event", event_id, "--dry-run", "--json")
        assert dry["dry_run"] is True and dry["records"] == [{"table": "contact", "id": contact, "message": "Update"}]
        assert any(w["target"] == "tasks" for w in dry["writes"])
        assert tasks_about(client, contact) == before
        assert [d["id"] for d in run(capsys, "--settings", settings, "deadletters", "--json")["dead_letters"]] == [
            event_id
        ]

        real = run(capsys, "--settings", settings, "replay", "--event", event_id, "--json")
        assert real["dry_run"] is False and real["records"] == dry["records"]
        assert tasks_about(client, contact) == before + 1
        assert run(capsys, "--settings", settings, "deadletters", "--json") == {"dead_letters": []}
        replayed = store.event(event_id)
        assert replayed is not None and replayed.status == "done"


@pytest.fixture
def app_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """The functions build their runtime from the environment: a fresh one for the test, and none left after."""
    bootstrap.reset()
    yield monkeypatch
    bootstrap.reset()


def test_a_dead_lettered_shard_replays_dry_without_writing_then_for_real_completing_its_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], app_settings: pytest.MonkeyPatch
) -> None:
    setup = demo_setup()
    with tenant() as (emulator, client):
        sync(fresh_client(emulator), SqliteStateStore(), setup, now=NOW)
        expected = dataverse_state(client)  # an uninterrupted, unsharded run on an identical tenant
    with tenant() as (emulator, client):
        settings, state = local_settings(tmp_path, emulator)
        for name, value in json.loads(Path(settings).read_text())["Values"].items():
            app_settings.setenv(name, value)
        store = SqliteStateStore(str(state))
        queue: list[str] = []
        sync(fresh_client(emulator), store, setup, now=NOW, shards=2, enqueue=queue.extend)
        assert len(queue) == 2
        run_shard(fresh_client(emulator), store, setup, ShardMessage.from_json(queue[0]))
        lost = ShardMessage.from_json(queue[1])
        dead_letter_shard(func.QueueMessage(id="poison-1", body=queue[1].encode()))  # the poison queue's worker
        letter_id = f"shard:{lost.run_id}:{lost.shard}"
        listed = run(capsys, "--settings", settings, "deadletters", "--json")["dead_letters"]
        assert [(d["id"], d["kind"]) for d in listed] == [(letter_id, "shard")] and listed[0]["error"]
        assert store.checkpoint(COLUMNS) is None and store.open_run() is not None  # the run waits for its shard

        dataverse_before, state_before = dataverse_state(client), state_dump(state)
        dry = run(capsys, "--settings", settings, "replay", "--event", letter_id, "--dry-run", "--json")
        assert dry["dry_run"] is True and dry["writes"]
        assert dataverse_state(client) == dataverse_before
        assert state_dump(state) == state_before  # still dead-lettered, the run still open, no delta link saved

        real = run(capsys, "--settings", settings, "replay", "--event", letter_id, "--json")
        assert real["dry_run"] is False and real["summary"]["writes"]
        assert run(capsys, "--settings", settings, "deadletters", "--json") == {"dead_letters": []}
        assert store.open_run() is None and store.checkpoint(COLUMNS) is not None  # its last shard done
        state_after = dataverse_state(client)
        # a fanned-out run scores the leads its journeys created in the next run; everything else is the same
        assert {k: v for k, v in state_after.items() if k != "scores"} == {
            k: v for k, v in expected.items() if k != "scores"
        }


def test_replay_refuses_a_bad_record_id_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = tmp_path / "local.settings.json"
    settings.write_text(json.dumps({"Values": {"DATAVERSE_AUTH": "none", "ABM_SQLITE_PATH": str(tmp_path / "s")}}))
    assert main(["--settings", str(settings), "replay", "--record", "contact", "not-a-guid"]) == 2
    assert "GUID" in capsys.readouterr().err
