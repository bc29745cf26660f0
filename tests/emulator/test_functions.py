"""The runtime functions called as the worker calls them (HttpRequest, TimerRequest, QueueMessage, an Out binding),
wired to an emulator and an SQLite state store through the app settings."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
from azure.functions.timer import TimerRequest

from abm import bootstrap
from abm.jobs.sync import COLUMNS
from dataverse.client import DataverseClient
from dataverse.tables import table
from devtools.emulator.server import Emulator
from function_app.queues import WorkFailed
from function_app.replay import replay_events
from function_app.sync import dead_letter_shard, scheduled_sync, sync_shard
from function_app.webhook import dataverse_webhook, dead_letter_event_message, process_event_message
from tests.loopback import loopback_dataverse, url_of
from tests.runtime_support import outsider_contact, tenant, webhook_body

OPERATION = "5f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b"


class Out:
    """The worker's output binding: what the function set."""

    def __init__(self) -> None:
        self.value: Any = None

    def set(self, value: Any) -> None:
        self.value = value

    def get(self) -> Any:
        return self.value


@pytest.fixture
def app_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[tuple[Emulator, DataverseClient]]:
    with tenant() as (emulator, client):
        for name, value in {
            "DATAVERSE_URL": emulator.org_url,
            "DATAVERSE_AUTH": "none",
            "ABM_STATE_STORE": "sqlite",
            "ABM_SQLITE_PATH": str(tmp_path / "state.sqlite"),
            "ABM_CONSENT_LEVELS": "587030000=0,587030001=1,587030002=2,587030003=3,587030004=4,587030005=5",
        }.items():
            monkeypatch.setenv(name, value)
        bootstrap.reset()
        yield emulator, client
        bootstrap.reset()


def post(url: str, body: bytes, **params: str) -> func.HttpRequest:
    return func.HttpRequest("POST", url, params=params, body=body)


def test_timer_then_webhook_then_queue_worker(app_env: tuple[Emulator, DataverseClient]) -> None:
    _, client = app_env
    scheduled_sync(TimerRequest(past_due=False), Out())
    store = bootstrap.shared_runtime().store
    assert store.checkpoint(COLUMNS) is not None
    contact = outsider_contact(client)
    client.update(table("contact"), uuid.UUID(contact), {"jobtitle": "CEO"})
    out = Out()
    answer = dataverse_webhook(
        post("/api/dataverse/webhook", webhook_body("Update", "contact", contact, OPERATION)), out
    )
    assert answer.status_code == 202 and out.value
    again = Out()
    duplicate = dataverse_webhook(
        post("/api/dataverse/webhook", webhook_body("Update", "contact", contact, OPERATION)), again
    )
    assert duplicate.status_code == 202 and json.loads(duplicate.get_body())["status"] == "requeued"
    assert again.value == out.value  # still pending: its first queue message may be lost, so it is queued again
    process_event_message(func.QueueMessage(id="m1", body=out.value.encode()))
    event = store.event(out.value)
    assert event is not None and event.status == "done"
    late_out = Out()
    late = dataverse_webhook(
        post("/api/dataverse/webhook", webhook_body("Update", "contact", contact, OPERATION)), late_out
    )
    assert late.status_code == 200 and json.loads(late.get_body())["status"] == "duplicate"
    assert late_out.value is None  # a redelivery of a processed event is not queued again


def test_the_webhook_refuses_bad_input_with_4xx_and_a_json_reason(app_env: Any) -> None:
    for body, status in [(b"{", 400), (b"{}", 400), (b"x" * (1024 * 1024 + 1), 413)]:
        out = Out()
        answer = dataverse_webhook(post("/api/dataverse/webhook", body), out)
        assert answer.status_code == status and json.loads(answer.get_body())["error"]
        assert out.value is None


def test_a_missing_setting_is_a_503_naming_it_not_a_500(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATAVERSE_AUTH", "client_secret")
    monkeypatch.delenv("DATAVERSE_URL", raising=False)
    bootstrap.reset()
    try:
        answer = dataverse_webhook(post("/api/dataverse/webhook", b"{}"), Out())
    finally:
        bootstrap.reset()
    assert answer.status_code == 503 and "DATAVERSE_URL" in json.loads(answer.get_body())["error"]


def test_a_fanned_out_timer_enqueues_shards_and_the_workers_complete_the_run(
    app_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ABM_SHARDS", "2")
    bootstrap.reset()
    shards = Out()
    scheduled_sync(TimerRequest(past_due=True), shards)
    assert isinstance(shards.value, list) and len(shards.value) == 2
    store = bootstrap.shared_runtime().store
    assert store.checkpoint(COLUMNS) is None
    for n, message in enumerate(shards.value):
        sync_shard(func.QueueMessage(id=f"s{n}", body=message.encode()))
    assert store.checkpoint(COLUMNS) is not None and store.open_run() is None


def test_poison_messages_become_dead_letters(app_env: Any) -> None:
    out = Out()
    contact = str(uuid.uuid4())
    dataverse_webhook(
        post("/api/dataverse/webhook", webhook_body("Update", "contact", contact, str(uuid.uuid4()))), out
    )
    dead_letter_event_message(func.QueueMessage(id="p1", body=out.value.encode()))
    shard = json.dumps({"run": "r1", "shard": 1, "shards": 2, "now": "2026-11-23T00:00:00Z"})
    dead_letter_shard(func.QueueMessage(id="p2", body=shard.encode()))
    letters = bootstrap.shared_runtime().store.dead_letters()
    assert sorted((d.kind, d.record_id) for d in letters) == [("event", contact), ("shard", "")]


def test_replay_over_the_function_dry_run_and_bad_requests(app_env: tuple[Emulator, DataverseClient]) -> None:
    _, client = app_env
    scheduled_sync(TimerRequest(past_due=False), Out())
    contact = outsider_contact(client)
    client.update(table("contact"), uuid.UUID(contact), {"jobtitle": "CEO"})
    body = json.dumps({"table": "contact", "id": contact, "dry_run": True}).encode()
    answer = replay_events(post("/api/replay", body))
    result = json.loads(answer.get_body())
    assert answer.status_code == 200 and result["dry_run"] and result["writes"]
    for bad in [
        b"[]",
        b'{"table": "invoice", "id": "x"}',
        b'{"since": "yesterday", "until": "now"}',
        b'{"event": "nope"}',
    ]:
        refused = replay_events(post("/api/replay", bad))
        assert refused.status_code in (400, 404) and json.loads(refused.get_body())["error"]


def test_a_dataverse_error_leaves_a_worker_without_dataverses_message(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    quoted = "A record with Full Name 'Jane Roe' and E-mail jane.roe@example.com already exists"
    with loopback_dataverse() as server:
        server.fail_with = (400, {"error": {"code": "0x80040333", "message": quoted}})
        for name, value in {
            "DATAVERSE_URL": url_of(server),
            "DATAVERSE_AUTH": "none",
            "DATAVERSE_MAX_ATTEMPTS": "1",
            "ABM_STATE_STORE": "sqlite",
            "ABM_SQLITE_PATH": str(tmp_path / "state.sqlite"),
        }.items():
            monkeypatch.setenv(name, value)
        bootstrap.reset()
        try:
            out = Out()
            delivery = webhook_body("Update", "contact", str(uuid.uuid4()), OPERATION)
            dataverse_webhook(post("/api/dataverse/webhook", delivery), out)
            with pytest.raises(WorkFailed) as failed:
                process_event_message(func.QueueMessage(id="m1", body=out.value.encode()))
            event = bootstrap.shared_runtime().store.event(out.value)
        finally:
            bootstrap.reset()
    assert str(failed.value).startswith(f"event {OPERATION}: Dataverse")
    assert "0x80040333" in str(failed.value) and "status 400" in str(failed.value)
    assert event is not None and event.status == "pending" and event.error is not None
    for text in (str(failed.value), event.error):
        assert "Jane" not in text and "example.com" not in text
