"""Shared pieces of the runtime tests: a synthetic tenant in an emulator, the demo definitions, webhook bodies."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from abm.bootstrap import build_setup
from abm.jobs.mirror import KINDS
from abm.jobs.pipeline import RunSetup
from abm.settings import Settings
from dataverse.auth import NoAuth
from dataverse.client import DataverseClient
from dataverse.query import Query
from dataverse.tables import table
from dataverse.transport import TransportConfig
from devtools.demo import load_tenant
from devtools.emulator.limits import GuardConfig
from devtools.emulator.server import Emulator, EmulatorIdentity
from devtools.emulator.store import Store
from devtools.tenant import CALLER_USER_ID
from statestore.port import MirrorStore

NOW = datetime(2026, 11, 23, tzinfo=UTC)
ENTITY = "Entity:http://schemas.microsoft.com/xrm/2011/Contracts"


def demo_setup() -> RunSetup:
    """The demo definitions with the settings' defaults (the synthetic tenant speaks the default consent values)."""
    return build_setup(Settings.from_env({}))


def handoff_workflow(workflow_id: str, owner: str, stamp: str) -> dict[str, Any]:
    """An activated on-demand classic workflow on lead, as a sales-ready hand-off needs one (a workflow row)."""
    return {
        "workflowid": workflow_id,
        "name": "Hand off sales-ready lead",
        "primaryentity": "lead",
        "category": 0,
        "type": 1,
        "ondemand": 1,
        "statecode": 1,
        "statuscode": 2,
        "createdon": stamp,
        "modifiedon": stamp,
        "ownerid": owner,
        "ownerid__type": "systemuser",
    }


@contextmanager
def tenant(
    size: str = "small", seed: int = 1, guard: GuardConfig | None = None
) -> Iterator[tuple[Emulator, DataverseClient]]:
    """An emulator on loopback loaded with a synthetic tenant (behind `guard`'s limits if given), and a client."""
    store = Store()
    load_tenant(store, size, seed=seed, now=NOW)
    try:
        with (
            Emulator(store, EmulatorIdentity(CALLER_USER_ID), guard=guard) as emulator,
            fresh_client(emulator) as client,
        ):
            yield emulator, client
    finally:
        store.close()


def fresh_client(emulator: Emulator) -> DataverseClient:
    """A client of its own (its request count is one run's bill)."""
    return DataverseClient(TransportConfig(org_url=emulator.org_url, backoff_initial=0.01, backoff_max=0.05), NoAuth())


def ids(client: DataverseClient, name: str) -> set[str]:
    """Every id in one table."""
    source = table(name)
    query = Query(source.entity_set).select(source.primary_key)
    return {str(row[source.primary_key]).lower() for row in client.iter_rows(query)}


def dataverse_state(client: DataverseClient) -> dict[str, Any]:
    """What the engine wrote, comparable across two tenants built from the same seed."""
    scores = Query(table("abm_leadscore").entity_set).select("_abm_leadid_value", "abm_model", "abm_score", "abm_grade")
    jobs = Query(table("asyncoperation").entity_set).select("_workflowactivationid_value", "_regardingobjectid_value")
    return {
        **{name: ids(client, name) for name in ("task", "phonecall", "appointment", "email", "lead")},
        "scores": sorted(
            (r["_abm_leadid_value"], r["abm_model"], r["abm_score"], r["abm_grade"]) for r in client.iter_rows(scores)
        ),
        "workflow_runs": sorted(
            (r["_workflowactivationid_value"], r["_regardingobjectid_value"]) for r in client.iter_rows(jobs)
        ),
    }


def webhook_body(message: str, name: str, id: str, operation_id: str | None = None, **attributes: Any) -> bytes:
    """A RemoteExecutionContext as an asynchronous post-operation step sends it (Target with the given columns)."""
    target = {
        "__type": ENTITY,
        "LogicalName": name,
        "Id": id,
        "Attributes": [{"key": k, "value": v} for k, v in attributes.items()],
    }
    context: dict[str, Any] = {
        "MessageName": message,
        "PrimaryEntityName": name,
        "PrimaryEntityId": id,
        "Depth": 1,
        "Mode": 1,
        "Stage": 40,
        "InputParameters": [{"key": "Target", "value": target}],
    }
    if operation_id:
        context["OperationId"] = operation_id
    return json.dumps(context).encode()


def outsider_contact(client: DataverseClient) -> str:
    """A consenting contact in no journey's segment yet (not a decision maker, at a small account)."""
    query = Query(table("contact").entity_set).select("contactid", "jobtitle", "msgdpr_gdprconsent")
    for row in client.iter_rows(query):
        title = str(row.get("jobtitle") or "")
        if (
            title not in ("CEO", "CFO", "CTO")
            and not title.startswith("Head")
            and row["msgdpr_gdprconsent"] == 587030005
        ):
            return str(row["contactid"])
    raise AssertionError("the tenant has no outsider")


class Clock:
    """A state store's clock that a test moves: claims are stamped and their lease judged by it."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


def abm_command() -> list[str]:
    """The console script installed next to this interpreter (`.venv/bin/abm`), else the module it runs."""
    script = Path(sys.executable).with_name("abm")
    return [str(script)] if script.exists() else [sys.executable, "-m", "abm_command.main"]


STAMPS = ("@odata.etag", "createdon", "modifiedon")  # set by the emulator's clock, not by the engine


def mirror_contents(store: MirrorStore) -> dict[str, dict[Any, tuple[str, dict[str, Any]]]]:
    """The mirror, comparable across two tenants of one seed: without the server's clock stamps, and scores by
    (lead, model) since Dataverse gives an upserted score row an id of its own."""
    contents: dict[str, dict[Any, tuple[str, dict[str, Any]]]] = {}
    for kind in KINDS:
        rows: dict[Any, tuple[str, dict[str, Any]]] = {}
        for row in store.mirror(kind):
            data = {k: v for k, v in row.data.items() if k not in STAMPS}
            key: Any = row.id
            if kind == "abm_leadscore":
                key = (data["_abm_leadid_value"], data["abm_model"])
                data.pop("abm_leadscoreid", None)  # (absent while the run's own write has not been read back)
            rows[key] = (row.partition, data)
        contents[kind] = rows
    return contents
