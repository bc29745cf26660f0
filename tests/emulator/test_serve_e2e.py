"""End to end over real HTTP: `abm serve`'s host in front of the real Function app, the emulator behind it.

Keys are checked as the Functions host checks them; webhook deliveries go through the events queue to the worker;
a replay's dry run writes nothing; interactions from another system are written once and re-score their account."""

from __future__ import annotations

import json
import logging
import random
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

import function_app
from abm import bootstrap
from abm.jobs.sync import sync
from abm.settings import Settings, function_keys
from abm_command.localhost import LocalHost
from dataverse.client import DataverseClient
from dataverse.query import Query, eq
from dataverse.tables import table
from tests.runtime_support import NOW, dataverse_state, outsider_contact, tenant, webhook_body

ROOT = Path(__file__).resolve().parents[2]
WEBHOOK_KEY, REPLAY_KEY, API_KEY = "hook-key-1", "replay-key-2", "api-key-3"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalHost, DataverseClient]]:
    path = str(tmp_path_factory.mktemp("serve") / "state.sqlite")
    with tenant() as (emulator, client), pytest.MonkeyPatch.context() as env:
        values = {
            "DATAVERSE_URL": emulator.org_url,
            "DATAVERSE_AUTH": "none",
            "ABM_STATE_STORE": "sqlite",
            "ABM_SQLITE_PATH": path,
            "ABM_WEBHOOK_KEY": WEBHOOK_KEY,
            "ABM_REPLAY_KEY": REPLAY_KEY,
            "ABM_API_KEY": API_KEY,
        }
        for name, value in values.items():
            env.setenv(name, value)
        bootstrap.reset()
        runtime = bootstrap.shared_runtime()
        sync(runtime.client, runtime.store, runtime.setup, now=NOW)
        keys = function_keys(Settings.from_env(values))
        with LocalHost(function_app.app, keys=keys, app_root=ROOT, retry_delay=0.01, settings=values) as host:
            yield host, client
        bootstrap.reset()


def post(host: LocalHost, route: str, body: bytes, key: str | None) -> requests.Response:
    params = {"code": key} if key else {}
    return requests.post(f"{host.url}/api/{route}", data=body, params=params, timeout=30)


def tasks_about(client: DataverseClient, contact: str) -> int:
    query = Query(table("task").entity_set).select("subject").where(eq("_regardingobjectid_value", uuid.UUID(contact)))
    return sum(1 for _ in client.iter_rows(query))


def test_keys_are_checked_per_function_and_the_replay_key_is_not_the_webhooks(served: Any) -> None:
    host, _ = served
    body = webhook_body("Update", "contact", str(uuid.uuid4()), str(uuid.uuid4()))
    assert post(host, "dataverse/webhook", body, None).status_code == 401
    assert post(host, "dataverse/webhook", body, "wrong").status_code == 401
    assert post(host, "dataverse/webhook", body, REPLAY_KEY).status_code == 401
    assert post(host, "replay", b'{"event": "x"}', WEBHOOK_KEY).status_code == 401
    header = requests.post(
        f"{host.url}/api/dataverse/webhook", data=body, headers={"x-functions-key": WEBHOOK_KEY}, timeout=30
    )
    assert header.status_code == 202
    assert requests.get(f"{host.url}/api/health", timeout=30).status_code in (200, 503)  # anonymous
    assert host.drain(30)


def test_a_webhook_delivered_three_times_out_of_order_over_http_has_exactly_one_effect(served: Any) -> None:
    host, client = served
    contact = outsider_contact(client)
    before = tasks_about(client, contact)
    client.update(table("contact"), uuid.UUID(contact), {"jobtitle": "CEO"})
    update = webhook_body("Update", "contact", contact, str(uuid.uuid4()), jobtitle="CEO")
    older = webhook_body("Update", "contact", contact, str(uuid.uuid4()), jobtitle="Clerk")
    deliveries = [update, older, update, update, older]
    random.Random(3).shuffle(deliveries)
    answers = [post(host, "dataverse/webhook", body, WEBHOOK_KEY) for body in deliveries]
    assert [a.json()["status"] for a in answers].count("accepted") == 2
    assert {a.json()["status"] for a in answers} <= {"accepted", "requeued", "duplicate"}  # requeued while pending
    assert all(a.status_code == (202 if a.json()["status"] != "duplicate" else 200) for a in answers)
    assert host.drain(60)
    assert tasks_about(client, contact) == before + 1


def test_bad_input_over_http_is_a_4xx_with_a_json_reason_never_a_500(served: Any) -> None:
    host, _ = served
    for route, key, body, status in [
        ("dataverse/webhook", WEBHOOK_KEY, b"{", 400),
        ("dataverse/webhook", WEBHOOK_KEY, b"x" * (1024 * 1024 + 10), 413),
        ("interactions", API_KEY, b"x" * (1024 * 1024 + 10), 413),
        ("replay", REPLAY_KEY, b'{"table": "contact", "id": "nope"}', 400),
        ("interactions", API_KEY, b'{"events": [{"id": 1}]}', 400),
    ]:
        answer = post(host, route, body, key)
        assert answer.status_code == status, (route, answer.text)
        assert answer.json()["error"]


def test_an_unwatched_table_or_message_over_http_is_ignored_and_logged_without_the_body(
    served: Any, caplog: pytest.LogCaptureFixture
) -> None:
    host, _ = served
    caplog.set_level(logging.INFO, logger="abm.events")
    personal = {"fullname": "Siobhán O'Brien", "emailaddress1": "siobhan@contoso.example.com"}
    record = str(uuid.uuid4())
    for message, name in [("Assign", "contact"), ("Create", "invoice")]:
        body = webhook_body(message, name, record, str(uuid.uuid4()), **personal)
        answer = post(host, "dataverse/webhook", body, WEBHOOK_KEY)
        assert answer.status_code == 200 and answer.json()["status"] == "ignored", answer.text
    ignored = [r.getMessage() for r in caplog.records if r.name == "abm.events" and "webhook ignored" in r.getMessage()]
    assert len(ignored) == 2, ignored
    assert "Assign" in ignored[0] and "contact" in ignored[0]
    assert "Create" in ignored[1] and "invoice" in ignored[1]
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for value in (*personal.values(), "O'Brien", "siobhan"):
        assert value not in logged


def test_a_dry_run_replay_over_http_writes_nothing_then_a_real_one_writes_it(served: Any) -> None:
    host, client = served
    contact = outsider_contact(client)
    client.update(table("contact"), uuid.UUID(contact), {"jobtitle": "CFO"})
    before = dataverse_state(client)
    body = json.dumps({"table": "contact", "id": contact, "dry_run": True}).encode()
    dry = post(host, "replay", body, REPLAY_KEY)
    assert dry.status_code == 200 and dry.json()["writes"]
    assert dataverse_state(client) == before
    real = post(host, "replay", json.dumps({"table": "contact", "id": contact}).encode(), REPLAY_KEY)
    assert real.status_code == 200 and "writes" not in real.json()
    assert dataverse_state(client)["task"] - before["task"]


def test_interactions_over_http_are_written_once_and_rescore(served: Any) -> None:
    host, client = served
    contact = outsider_contact(client)
    events = [
        {
            "id": f"web-{n}",
            "source": "website",
            "type": "WebsiteVisited",
            "contact_id": contact,
            "occurred_on": "2026-11-22T10:00:00+00:00",
        }
        for n in range(3)
    ]
    body = json.dumps({"events": events}).encode()
    first = post(host, "interactions", body, API_KEY)
    assert first.status_code == 200, first.text
    assert first.json()["created"] == 3
    again = post(host, "interactions", body, API_KEY)
    assert again.status_code == 200 and again.json()["created"] == 0 and again.json()["duplicates"] == 3
    assert host.drain(60)
    mirrored = bootstrap.shared_runtime().store.mirror("abm_interaction")
    assert sum(1 for r in mirrored if str(r.data.get("_abm_contactid_value")).lower() == contact) >= 3
