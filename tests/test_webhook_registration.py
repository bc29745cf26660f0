"""`abm register-webhook` against the emulator over real HTTP: one endpoint and twelve steps written in one change set,
nothing new on a second run, hand-made drift corrected, the key never shown."""

from __future__ import annotations

import argparse
import json
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from abm.admin.webhooks import (
    MESSAGES,
    WEBHOOK_TABLES,
    RegistrationError,
    RegistrationReport,
    filtering_from_selects,
    register_webhook,
    step_name,
)
from abm.definitions import APP_ROOT
from abm.jobs.mirror import mirror_queries
from abm.settings import Settings
from abm_command import admin as cli_admin
from dataverse.auth import NoAuth, Secret
from dataverse.client import DataverseClient
from dataverse.mapping import MappingConfig
from dataverse.query import Query
from dataverse.transport import Transport, TransportConfig
from devtools.emulator.schema import TABLES
from devtools.emulator.server import Emulator, EmulatorIdentity
from devtools.emulator.store import Store
from tests.emulator.conftest import CALLER, seed

URL = "https://abm-func.azurewebsites.net/api/dataverse/webhook"
KEY = "webhook-key-0123456789-do-not-show"
FILTERING = {
    "contact": ("donotbulkemail", "msgdpr_gdprconsent", "parentcustomerid"),
    "lead": ("abm_salesready", "parentaccountid", "parentcontactid", "statecode"),
    "account": ("parentaccountid", "primarycontactid"),
    "abm_interaction": ("abm_contactid", "abm_occurredon", "abm_type"),
}


@contextmanager
def running() -> Iterator[tuple[Emulator, DataverseClient]]:
    store = Store()
    seed(store)
    try:
        with Emulator(store, EmulatorIdentity(CALLER)) as emu:
            transport = Transport(TransportConfig(org_url=emu.org_url, max_attempts=2), NoAuth(), sleep=lambda s: None)
            with DataverseClient(transport.config, transport=transport) as client:
                yield emu, client
    finally:
        store.close()


def register(client: DataverseClient, **options: Any) -> RegistrationReport:
    arguments: dict[str, Any] = {"url": URL, "key": Secret(KEY), "filtering_attributes": FILTERING} | options
    return register_webhook(client, **arguments)


def rows(emu: Emulator, logical_name: str) -> list[dict[str, Any]]:
    return emu.store.select(f'SELECT * FROM "{logical_name}"')


def test_the_first_registration_writes_the_endpoint_and_every_step_in_one_change_set() -> None:
    with running() as (emu, client):
        report = register(client)
        # Four reads (messages, filters, the endpoint, the steps by name), then one $batch.
        assert report.requests["by_method"] == {"GET": 4, "POST": 1}
        assert report.requests["by_table"]["$batch"] == 1
        assert report.endpoint_action == "create" and report.counts() == {"create": 12, "update": 0, "unchanged": 0}

        (endpoint,) = rows(emu, "serviceendpoint")
        assert (endpoint["name"], endpoint["url"], endpoint["contract"], endpoint["authtype"]) == (
            "abm-webhook",
            URL,
            8,
            4,
        )
        assert endpoint["authvalue"] == KEY and endpoint["messageformat"] == 2
        assert report.endpoint_id == uuid.UUID(endpoint["serviceendpointid"])

        messages = {r["sdkmessageid"]: r["name"] for r in rows(emu, "sdkmessage")}
        filters = {
            r["sdkmessagefilterid"]: (messages[r["sdkmessageid"]], r["primaryobjecttypecode"])
            for r in rows(emu, "sdkmessagefilter")
        }
        steps = rows(emu, "sdkmessageprocessingstep")
        assert len(steps) == 12
        registered = set()
        for step in steps:
            message, table_name = filters[step["sdkmessagefilterid"]]
            registered.add((message, table_name))
            assert step["name"] == step_name("abm-webhook", message, table_name)
            assert messages[step["sdkmessageid"]] == message
            assert step["eventhandler"] == endpoint["serviceendpointid"]
            assert (step["mode"], step["stage"], step["supporteddeployment"], step["asyncautodelete"]) == (1, 40, 0, 1)
            expected = ",".join(sorted(FILTERING[table_name])) if message == "Update" else None
            assert step["filteringattributes"] == expected
        assert registered == {(m, t) for m in MESSAGES for t in WEBHOOK_TABLES}


def test_the_key_is_write_only_and_never_in_the_report() -> None:
    with running() as (_, client):
        report = register(client)
        endpoint = next(client.iter_rows(Query("serviceendpoints")))
        assert "authvalue" not in endpoint
        selected = next(client.iter_rows(Query("serviceendpoints").select("name", "authvalue")))
        assert selected["authvalue"] is None
        assert KEY not in json.dumps(report.as_dict())


def test_a_second_run_creates_nothing_and_updates_only_the_endpoint_with_the_new_key() -> None:
    with running() as (emu, client):
        first = register(client)
        before = client.stats.as_dict()["by_method"]
        again = register(client, key=Secret("rotated-key-9876543210"))
        assert again.endpoint_action == "update" and again.endpoint_id == first.endpoint_id
        assert again.counts() == {"create": 0, "update": 0, "unchanged": 12}
        assert (
            client.stats.by_method["GET"] - before["GET"] == 4 and client.stats.by_method["POST"] - before["POST"] == 1
        )
        assert len(rows(emu, "serviceendpoint")) == 1 and len(rows(emu, "sdkmessageprocessingstep")) == 12
        assert rows(emu, "serviceendpoint")[0]["authvalue"] == "rotated-key-9876543210"


def test_a_step_changed_by_hand_is_put_back_and_the_others_are_left_alone() -> None:
    with running() as (emu, client):
        register(client)
        name = step_name("abm-webhook", "Update", "contact")
        step = next(s for s in rows(emu, "sdkmessageprocessingstep") if s["name"] == name)
        emu.store.update(
            TABLES["sdkmessageprocessingstep"],
            step["sdkmessageprocessingstepid"],
            {"mode": 0, "filteringattributes": "firstname", "statecode": 1, "statuscode": 2},
        )
        report = register(client, filtering_attributes={**FILTERING, "lead": ("statecode",)})
        changed = {s.name: s.changes for s in report.steps if s.action == "update"}
        assert changed == {
            name: ("mode", "filteringattributes", "statecode"),
            step_name("abm-webhook", "Update", "lead"): ("filteringattributes",),
        }
        assert report.counts()["unchanged"] == 10
        fixed = emu.store.get(TABLES["sdkmessageprocessingstep"], step["sdkmessageprocessingstepid"])
        assert fixed is not None
        assert (fixed["mode"], fixed["statecode"], fixed["filteringattributes"]) == (
            1,
            0,
            "donotbulkemail,msgdpr_gdprconsent,parentcustomerid",
        )


def test_a_dry_run_reads_and_reports_what_it_would_write() -> None:
    with running() as (emu, client):
        report = register(client, key=None, dry_run=True)
        assert report.requests["by_method"] == {"GET": 4}
        assert report.endpoint_action == "create" and report.counts()["create"] == 12
        assert rows(emu, "serviceendpoint") == [] and rows(emu, "sdkmessageprocessingstep") == []


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://abm-func.azurewebsites.net/api/dataverse/webhook", "https://"),
        (URL + "?code=abc", "code="),
    ],
)
def test_a_url_that_would_expose_or_drop_the_key_is_refused_before_any_request(url: str, problem: str) -> None:
    with running() as (_, client):
        with pytest.raises(RegistrationError, match=problem):
            register(client, url=url)
        assert client.stats.total == 0


def test_without_a_key_only_a_dry_run_is_possible() -> None:
    with running() as (_, client), pytest.raises(RegistrationError, match="ABM_WEBHOOK_KEY"):
        register(client, key=None)


def test_an_endpoint_of_that_name_that_is_not_a_webhook_is_not_touched() -> None:
    with running() as (emu, client):
        emu.store.insert(
            TABLES["serviceendpoint"],
            {"serviceendpointid": str(uuid.uuid4()), "name": "abm-webhook", "contract": 5, "url": "sb://bus"},
        )
        with pytest.raises(RegistrationError, match="not a webhook"):
            register(client)
        assert rows(emu, "sdkmessageprocessingstep") == []


def test_a_table_without_message_filters_is_named_and_nothing_is_written() -> None:
    with running() as (emu, client):
        with pytest.raises(RegistrationError, match="Update of abm_unknown"):
            register(client, tables=("contact", "abm_unknown"))
        assert rows(emu, "serviceendpoint") == []


def test_filtering_attributes_are_the_logical_names_of_what_the_sync_selects() -> None:
    queries = mirror_queries(MappingConfig())
    found = filtering_from_selects({t: queries[t].columns for t in WEBHOOK_TABLES})
    assert found["contact"] == ("donotbulkemail", "msgdpr_gdprconsent", "parentcustomerid")
    assert found["abm_interaction"][:3] == ("abm_asset", "abm_campaign", "abm_contactid")
    assert all(not c.startswith("_") for columns in found.values() for c in columns)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="abm")
    parser.add_argument("--settings")
    cli_admin.add_commands(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_the_command_registers_what_the_definitions_read_and_never_shows_the_key(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with running() as (emu, _):
        monkeypatch.setenv("DATAVERSE_URL", emu.org_url)
        monkeypatch.setenv("DATAVERSE_AUTH", "none")
        monkeypatch.setenv("ABM_WEBHOOK_KEY", KEY)
        monkeypatch.setenv("ABM_DEFINITIONS_DIR", str(Path(APP_ROOT) / "definitions"))
        assert cli_admin.run(parse(["register-webhook", "--url", URL])) == 0
        human = capsys.readouterr()
        assert "created webhook abm-webhook -> " + URL in human.out
        assert "steps: 12 created, 0 updated, 0 unchanged" in human.out
        assert cli_admin.run(parse(["register-webhook", "--url", URL, "--json"])) == 0
        body = json.loads(capsys.readouterr().out)
        assert body["endpoint"]["action"] == "update" and body["step_counts"]["unchanged"] == 12

        expected = cli_admin.engine_columns(Settings.from_env())
        contact = next(
            s
            for s in rows(emu, "sdkmessageprocessingstep")
            if s["name"] == step_name("abm-webhook", "Update", "contact")
        )
        assert contact["filteringattributes"] == ",".join(expected["contact"])
    assert KEY not in human.out + human.err + json.dumps(body) + caplog.text


def test_the_command_needs_the_key_setting_unless_it_is_a_dry_run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with running() as (emu, _):
        monkeypatch.setenv("DATAVERSE_URL", emu.org_url)
        monkeypatch.setenv("DATAVERSE_AUTH", "none")
        monkeypatch.delenv("ABM_WEBHOOK_KEY", raising=False)
        monkeypatch.setenv("ABM_DEFINITIONS_DIR", str(Path(APP_ROOT) / "definitions"))
        assert cli_admin.run(parse(["register-webhook", "--url", URL])) == 2
        assert "ABM_WEBHOOK_KEY is not set" in capsys.readouterr().err
        assert cli_admin.run(parse(["register-webhook", "--url", URL, "--dry-run"])) == 0
        assert "would create webhook abm-webhook" in capsys.readouterr().out
        assert rows(emu, "serviceendpoint") == []
