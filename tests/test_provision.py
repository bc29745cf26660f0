"""`abm provision` against the emulator over real HTTP: creates exactly what is missing, waits for the key, reports
change tracking without ever turning it on, and a dry run only reads."""

from __future__ import annotations

import argparse
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import pytest

from abm.admin.product_schema import ADDED_COLUMNS, PRODUCT_TABLES, all_columns
from abm.admin.provision import ProvisionError, ProvisionReport, provision
from abm_command import admin as cli_admin
from dataverse.auth import NoAuth
from dataverse.client import DataverseClient
from dataverse.errors import DataverseBadRequest, DataverseNotFound
from dataverse.metadata import ColumnSpec, MetadataClient, attribute_body, entity_body, key_body, relationship_body
from dataverse.tables import table
from dataverse.transport import Transport, TransportConfig
from devtools.emulator.metadata import Metadata
from devtools.emulator.schema import TABLES
from devtools.emulator.server import Emulator, EmulatorIdentity
from devtools.emulator.store import Store
from tests.emulator.conftest import CALLER, seed

LEAD = uuid.UUID("e0e0e0e0-0000-4000-8000-000000000001")
# What a bare org needs: both tables, their columns and the columns added to lead and the four activity tables,
# the two lookups and the key.
COLUMNS = sum(len(p.columns) for p in PRODUCT_TABLES) + sum(len(c) for c in ADDED_COLUMNS.values())
CREATES = len(PRODUCT_TABLES) + COLUMNS + 2 + 1
READS = 10  # one GET per table involved: 2 product tables, lead, 4 activities, contact, account, opportunity


class Clock:
    """A fake clock that the fake sleep advances: polling without waiting."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@contextmanager
def running(metadata: Metadata | None = None) -> Iterator[Emulator]:
    store = Store()
    seed(store)
    try:
        with Emulator(store, EmulatorIdentity(CALLER), metadata=metadata) as emu:
            yield emu
    finally:
        store.close()


def client_of(emu: Emulator) -> DataverseClient:
    transport = Transport(TransportConfig(org_url=emu.org_url, max_attempts=2), NoAuth(), sleep=lambda s: None)
    return DataverseClient(transport.config, transport=transport)


def run(client: DataverseClient, clock: Clock, **options: Any) -> ProvisionReport:
    return provision(client, sleep=clock.sleep, clock=clock, **options)


def write_score_and_interaction(client: DataverseClient) -> None:
    """What the engine writes: a lead flagged sales-ready, a score upserted by its alternate key, an interaction."""
    client.create(
        table("lead"), {"lastname": "Lead", "abm_salesready": True, "abm_idempotencykey": "journey/x"}, id=LEAD
    )
    score = {
        "abm_leadid": str(LEAD),
        "abm_model": "fit",
        "abm_leadid@odata.bind": f"/leads({LEAD})",
        "abm_score": 42,
        "abm_salesready": True,
        "abm_explanation": "[]",
    }
    client.upsert_multiple(table("abm_leadscore"), [score], key=("abm_leadid", "abm_model"))
    client.create(table("abm_interaction"), {"abm_type": "EmailOpened", "abm_occurredon": "2026-01-01T00:00:00Z"})


def test_a_bare_org_gets_every_table_column_lookup_and_key_and_then_takes_the_engines_writes() -> None:
    clock = Clock()
    with running(Metadata(product=False, change_tracking={"contact": False})) as emu, client_of(emu) as client:
        with pytest.raises(DataverseBadRequest, match="abm_salesready"):
            client.create(table("lead"), {"lastname": "Lead", "abm_salesready": True})
        with pytest.raises(DataverseNotFound):
            client.create(table("abm_interaction"), {"abm_type": "EmailOpened"})
        before = client.stats.total

        report = run(client, clock)

        assert report.ok
        kinds = [a.kind for a in report.actions]
        assert kinds == ["table"] * 2 + ["column"] * COLUMNS + ["lookup"] * 2 + ["key"]
        created = {(a.table, a.name) for a in report.actions}
        expected = {(t, c) for t, columns in all_columns().items() for c in columns}
        expected -= {("abm_interaction", "abm_name"), ("abm_leadscore", "abm_model")}  # come with their table
        assert created == expected | {(p.logical_name, p.logical_name) for p in PRODUCT_TABLES} | {
            ("abm_leadscore", "abm_leadmodel")
        }
        assert report.keys == {"abm_leadscore.abm_leadmodel": "Active"}
        assert clock.sleeps == [5.0]  # the key was Pending at the first poll, Active at the second
        requests = client.stats.total - before
        assert requests == READS + CREATES + 2
        assert report.requests["by_method"] == {"GET": READS + 2, "POST": CREATES + 2}  # + the two refused writes
        # Change tracking: reported, never turned on for an existing table; the product's new tables are created with it
        assert report.change_tracking_off == ["contact"]
        assert emu.metadata.entities["contact"].change_tracking is False
        assert emu.metadata.entities["abm_interaction"].change_tracking is True

        write_score_and_interaction(client)
        score = emu.store.find(TABLES["abm_leadscore"], {"abm_leadid": str(LEAD), "abm_model": "fit"})
        assert score is not None and score["abm_score"] == 42


def test_a_second_run_sends_only_the_reads_and_creates_nothing() -> None:
    clock = Clock()
    with running(Metadata(product=False)) as emu, client_of(emu) as client:
        run(client, clock)
        before = dict(client.stats.by_method)
        again = run(client, clock)
        assert again.actions == []
        assert again.ok
        assert client.stats.by_method["GET"] - before["GET"] == READS
        assert client.stats.by_method["POST"] == before["POST"]


def test_a_complete_org_needs_nothing_and_reports_change_tracking_on() -> None:
    with running() as emu, client_of(emu) as client:
        report = run(client, Clock())
        assert report.actions == [] and report.conflicts == []
        assert report.change_tracking_off == []
        assert report.requests == {"total": READS, "by_method": {"GET": READS}, "by_table": {"EntityDefinitions": 10}}


def test_a_dry_run_sends_only_reads_and_lists_what_it_would_create() -> None:
    with running(Metadata(product=False)) as emu, client_of(emu) as client:
        report = run(client, Clock(), dry_run=True)
        assert report.requests["by_method"] == {"GET": READS}
        assert len(report.actions) == CREATES
        assert report.keys == {"abm_leadscore.abm_leadmodel": "to be created"}
        assert report.as_dict()["to_create"][0] == {
            "kind": "table",
            "table": "abm_interaction",
            "name": "abm_interaction",
            "detail": "OrganizationOwned, primary name abm_name",
        }
        assert "abm_interaction" not in emu.metadata.entities
        assert "abm_salesready" not in emu.metadata.entities["lead"].attributes


def test_an_org_left_half_provisioned_gets_only_the_rest() -> None:
    product = PRODUCT_TABLES[0]  # abm_interaction
    with running(Metadata(product=False)) as emu, client_of(emu) as client:
        meta = MetadataClient(client)
        meta.create_table(product.table)
        meta.create_column("abm_interaction", product.columns[0])
        report = run(client, Clock())
        names = {(a.table, a.name) for a in report.actions}
        assert ("abm_interaction", "abm_interaction") not in names
        assert ("abm_interaction", product.columns[0].logical_name) not in names
        assert ("abm_interaction", product.columns[1].logical_name) in names
        assert len(names) == CREATES - 2


def test_a_failed_key_index_stops_with_an_error_naming_the_key_and_the_way_out() -> None:
    metadata = Metadata(product=False, failing_keys={"abm_leadscore"})
    with running(metadata) as emu, client_of(emu) as client, pytest.raises(ProvisionError) as raised:
        run(client, Clock())
    message = str(raised.value)
    assert "abm_leadmodel" in message and "failed" in message and "ReactivateEntityKey" in message
    assert len(raised.value.report.actions) == CREATES  # what was created before is reported
    assert raised.value.report.keys == {"abm_leadscore.abm_leadmodel": "Failed"}


def test_a_key_still_pending_at_the_deadline_is_an_error_after_a_bounded_wait() -> None:
    clock = Clock()
    pending = r"not active after 12 s: abm_leadmodel on abm_leadscore \(Pending\)"
    with running(Metadata(product=False, key_reads_pending=1000)) as emu, client_of(emu) as client:
        with pytest.raises(ProvisionError, match=pending):
            run(client, clock, wait=12.0, poll_interval=5.0)
        assert clock.sleeps == [5.0, 5.0]
        client.create(table("lead"), {"lastname": "Lead"}, id=LEAD)
        with pytest.raises(DataverseBadRequest, match="is Pending, not Active"):  # as the scoring job would find
            client.upsert_multiple(
                table("abm_leadscore"),
                [{"abm_leadid": str(LEAD), "abm_model": "fit", "abm_leadid@odata.bind": f"/leads({LEAD})"}],
                key=("abm_leadid", "abm_model"),
            )


def test_a_column_of_the_wrong_type_is_a_conflict_and_is_left_alone() -> None:
    metadata = Metadata()
    metadata.entities["lead"].attributes["abm_salesready"].attribute_type = "String"
    with running(metadata) as emu, client_of(emu) as client:
        report = run(client, Clock())
        assert report.actions == []
        assert not report.ok
        assert report.conflicts == [
            "lead.abm_salesready is a String column, the engine needs Boolean: change or delete it by hand, then run "
            "provision again"
        ]
        assert client.stats.by_method == {"GET": READS}


def test_the_emulators_schema_stores_exactly_the_product_schema() -> None:
    """No drift: every product column is stored by the emulator with a matching type, and the emulator has no
    `abm_` column the product schema does not create."""
    kinds = {"string": "string", "memo": "memo", "integer": "int", "boolean": "bool", "datetime": "datetime"}
    for product in PRODUCT_TABLES:
        stored = TABLES[product.logical_name]
        assert stored.primary_name == product.table.primary_name.logical_name
        assert stored.owned is (product.table.ownership == "UserOwned")
        for column in product.columns:
            assert stored.all_columns[column.logical_name] == kinds[column.kind], column.logical_name
        for lookup in product.lookups:
            assert stored.lookup(lookup.logical_name).targets == (lookup.target,)  # type: ignore[union-attr]
        assert set(stored.alternate_keys) == {k.columns for k in product.keys}
    for table_name, columns in ADDED_COLUMNS.items():
        for column in columns:
            assert TABLES[table_name].all_columns[column.logical_name] == kinds[column.kind]
    wanted = all_columns()
    for stored in TABLES.values():
        mine = (*wanted.get(stored.logical_name, ()), stored.primary_key)
        extra = [c for c in stored.all_columns if c.startswith("abm_") and c not in mine]
        assert not extra, (stored.logical_name, extra)


def test_the_emulator_refuses_definitions_dataverse_would_refuse() -> None:
    with running(Metadata(product=False)) as emu, client_of(emu) as client:
        send = client.transport.send
        product = PRODUCT_TABLES[1]  # abm_leadscore
        no_primary = {**entity_body(product.table), "Attributes": []}
        with pytest.raises(DataverseBadRequest, match="exactly one primary name attribute"):
            send("POST", "EntityDefinitions", json=no_primary)
        send("POST", "EntityDefinitions", json=entity_body(product.table))
        with pytest.raises(DataverseBadRequest, match="already exists"):
            send("POST", "EntityDefinitions", json=entity_body(product.table))
        lookup = relationship_body("abm_leadscore", product.lookups[0])["Lookup"]
        with pytest.raises(DataverseBadRequest, match="RelationshipDefinitions"):
            send("POST", "EntityDefinitions(LogicalName='abm_leadscore')/Attributes", json=lookup)
        with pytest.raises(DataverseBadRequest, match="do not exist on abm_leadscore: abm_leadid"):
            send("POST", "EntityDefinitions(LogicalName='abm_leadscore')/Keys", json=key_body(product.keys[0]))
        wrong = attribute_body(ColumnSpec("abm_Score", "Score", "string", max_length=10))
        with pytest.raises(DataverseBadRequest, match=r"stores abm_leadscore\.abm_score as int"):
            send("POST", "EntityDefinitions(LogicalName='abm_leadscore')/Attributes", json=wrong)
        to_account = replace(product.lookups[0], target="account", target_key="accountid")
        with pytest.raises(DataverseBadRequest, match="as a lookup to lead"):
            send("POST", "RelationshipDefinitions", json=relationship_body("abm_leadscore", to_account))
        with pytest.raises(DataverseNotFound):
            send("GET", "EntityDefinitions(LogicalName='abm_nothing')")
        assert MetadataClient(client).table("abm_nothing") is None


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="abm")
    parser.add_argument("--settings")
    cli_admin.add_commands(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_the_command_prints_json_for_scripts_and_names_the_tables_without_change_tracking(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with running(Metadata(product=False, change_tracking={"opportunity": False})) as emu:
        monkeypatch.setenv("DATAVERSE_URL", emu.org_url)
        monkeypatch.setenv("DATAVERSE_AUTH", "none")
        assert cli_admin.run(parse(["provision", "--dry-run", "--json"])) == 0
        body = json.loads(capsys.readouterr().out)
        assert body["dry_run"] is True and len(body["to_create"]) == CREATES
        assert body["change_tracking_off"] == ["opportunity"]  # the product's tables are created with it on
        assert "Track changes" in body["change_tracking_howto"]

        assert cli_admin.run(parse(["provision"])) == 0
        out = capsys.readouterr().out
        assert "created table abm_interaction (OrganizationOwned, primary name abm_name)" in out
        assert "alternate key abm_leadscore.abm_leadmodel: Active" in out
        assert "change tracking is off for: opportunity" in out
        assert "'Track changes'" in out

        assert cli_admin.run(parse(["provision"])) == 0
        assert "nothing to create" in capsys.readouterr().out


def test_the_command_leaves_other_commands_alone_and_names_a_missing_setting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_admin.run(argparse.Namespace(command="whoami")) is None
    monkeypatch.delenv("DATAVERSE_URL", raising=False)
    monkeypatch.setenv("DATAVERSE_AUTH", "none")
    assert cli_admin.run(parse(["provision", "--dry-run"])) == 2
    assert "DATAVERSE_URL" in capsys.readouterr().err
