"""The rows webhook registration reads and writes through the Web API: SDK messages and their filters, the service
endpoint (a webhook with its key), and the processing steps that send a table's messages to it.

Option values (Microsoft Learn, ServiceEndpoint and SdkMessageProcessingStep table references): contract 8 Webhook;
authtype 4 WebhookKey (Dataverse sends the key as `?code=`); messageformat 2 JSON; mode 1 asynchronous; stage 40
post-operation; supporteddeployment 0 server only. A step refers to its endpoint, message and message filter through
lookups, bound by path (or, for an endpoint created in the same change set, by its Content-ID reference).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dataverse.client import DataverseClient
from dataverse.query import Filter, Query, and_, eq, or_
from dataverse.tables import table

__all__ = [
    "ENDPOINTS",
    "STEPS",
    "Endpoint",
    "FoundStep",
    "MessageFilter",
    "StepSettings",
    "endpoint_body",
    "endpoint_key_body",
    "read_endpoints",
    "read_message_filters",
    "read_messages",
    "read_steps",
    "step_body",
    "step_changes",
]

ENDPOINTS = table("serviceendpoint")
STEPS = table("sdkmessageprocessingstep")
SDK_MESSAGES = table("sdkmessage")
FILTERS = table("sdkmessagefilter")

CONTRACT_WEBHOOK = 8
AUTHTYPE_WEBHOOK_KEY = 4
MESSAGE_FORMAT_JSON = 2
MODE_ASYNCHRONOUS = 1
STAGE_POST_OPERATION = 40
DEPLOYMENT_SERVER = 0
RANK = 1
_SETTINGS = ("mode", "stage", "rank", "supporteddeployment", "asyncautodelete")


def _one_of(column: str, values: Sequence[Any]) -> Filter:
    return or_(*(eq(column, v) for v in values)) if len(values) > 1 else eq(column, values[0])


def read_messages(client: DataverseClient, names: Sequence[str]) -> dict[str, uuid.UUID]:
    """The SDK messages of these names (Create, Update, ...), by name: one read."""
    query = Query(SDK_MESSAGES.entity_set).select("sdkmessageid", "name").where(_one_of("name", names))
    return {str(row["name"]): uuid.UUID(str(row["sdkmessageid"])) for row in client.iter_rows(query)}


@dataclass(frozen=True)
class MessageFilter:
    """A message filter: which message, on which table (its logical name)."""

    id: uuid.UUID
    message_id: uuid.UUID
    table: str


def read_message_filters(
    client: DataverseClient, message_ids: Sequence[uuid.UUID], tables: Sequence[str]
) -> list[MessageFilter]:
    """The filters of these messages on these tables: one read."""
    query = (
        Query(FILTERS.entity_set)
        .select("sdkmessagefilterid", "primaryobjecttypecode", "_sdkmessageid_value")
        .where(and_(_one_of("_sdkmessageid_value", list(message_ids)), _one_of("primaryobjecttypecode", tables)))
    )
    return [
        MessageFilter(
            uuid.UUID(str(row["sdkmessagefilterid"])),
            uuid.UUID(str(row["_sdkmessageid_value"])),
            str(row["primaryobjecttypecode"]),
        )
        for row in client.iter_rows(query)
    ]


@dataclass(frozen=True)
class Endpoint:
    """A service endpoint: its id and its contract (`is_webhook` for contract Webhook)."""

    id: uuid.UUID
    contract: Any

    @property
    def is_webhook(self) -> bool:
        return bool(self.contract == CONTRACT_WEBHOOK)


def read_endpoints(client: DataverseClient, name: str) -> list[Endpoint]:
    """The service endpoints of this name: one read (the key is write-only, never read)."""
    query = (
        Query(ENDPOINTS.entity_set)
        .select("serviceendpointid", "name", "url", "contract", "authtype")
        .where(eq("name", name))
    )
    return [Endpoint(uuid.UUID(str(r["serviceendpointid"])), r.get("contract")) for r in client.iter_rows(query)]


def endpoint_body(name: str, url: str, key: str) -> dict[str, Any]:
    """A new webhook endpoint that sends JSON with the key as `?code=`."""
    return {
        "name": name,
        "description": "Webhook of the ABM engine (registered by abm register-webhook)",
        "url": url,
        "contract": CONTRACT_WEBHOOK,
        "messageformat": MESSAGE_FORMAT_JSON,
        **endpoint_key_body(key),
    }


def endpoint_key_body(key: str, url: str | None = None) -> dict[str, Any]:
    """The update of an existing endpoint: its URL (when given) and its key (which cannot be read back)."""
    return {**({"url": url} if url is not None else {}), "authtype": AUTHTYPE_WEBHOOK_KEY, "authvalue": key}


@dataclass(frozen=True)
class StepSettings:
    """What registration wants a step to be: asynchronous, post-operation, server only, its system job deleted on
    success; for Update, the columns that fire it (`filtering_attributes`, comma-separated; None: any)."""

    name: str
    description: str
    filtering_attributes: str | None
    mode: int = MODE_ASYNCHRONOUS
    stage: int = STAGE_POST_OPERATION
    rank: int = RANK
    supported_deployment: int = DEPLOYMENT_SERVER
    async_auto_delete: bool = True

    def columns(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "mode": self.mode,
            "stage": self.stage,
            "rank": self.rank,
            "supporteddeployment": self.supported_deployment,
            "asyncautodelete": self.async_auto_delete,
            "filteringattributes": self.filtering_attributes,
        }


@dataclass(frozen=True)
class FoundStep:
    """A step as read: its id and name, its columns as stored, and its endpoint, message and filter (ids)."""

    id: uuid.UUID
    name: str
    columns: Mapping[str, Any]
    endpoint_id: Any
    message_id: Any
    filter_id: Any


def read_steps(client: DataverseClient, names: Sequence[str]) -> dict[str, list[FoundStep]]:
    """The steps of these names, by name (several when someone made duplicates): one read."""
    select = (
        "sdkmessageprocessingstepid",
        "name",
        *_SETTINGS,
        "filteringattributes",
        "statecode",
        "_eventhandler_value",
        "_sdkmessageid_value",
        "_sdkmessagefilterid_value",
    )
    query = Query(STEPS.entity_set).select(*select).where(_one_of("name", names))
    found: dict[str, list[FoundStep]] = {}
    for row in client.iter_rows(query):
        step = FoundStep(
            uuid.UUID(str(row["sdkmessageprocessingstepid"])),
            str(row["name"]),
            {name: row.get(name) for name in (*_SETTINGS, "filteringattributes", "statecode")},
            row.get("_eventhandler_value"),
            row.get("_sdkmessageid_value"),
            row.get("_sdkmessagefilterid_value"),
        )
        found.setdefault(step.name, []).append(step)
    return found


def _normal(attributes: str | None) -> str:
    return ",".join(sorted(a.strip().lower() for a in (attributes or "").split(",") if a.strip()))


def _same_id(value: Any, expected: uuid.UUID | None) -> bool:
    return expected is not None and bool(value) and uuid.UUID(str(value)) == expected


def step_changes(
    step: FoundStep,
    wanted: StepSettings,
    endpoint_id: uuid.UUID | None,
    message_id: uuid.UUID,
    filter_id: uuid.UUID,
) -> tuple[str, ...]:
    """The columns of a found step that differ from what registration wants (lookups named without `_value`; a
    disabled step has `statecode`); empty when it matches."""
    desired = wanted.columns()
    changes = [name for name in _SETTINGS if step.columns.get(name) != desired[name]]
    if _normal(step.columns.get("filteringattributes")) != _normal(wanted.filtering_attributes):
        changes.append("filteringattributes")
    if step.columns.get("statecode") not in (None, 0):
        changes.append("statecode")
    if not _same_id(step.endpoint_id, endpoint_id):
        changes.append("eventhandler")
    if not _same_id(step.message_id, message_id):
        changes.append("sdkmessageid")
    if not _same_id(step.filter_id, filter_id):
        changes.append("sdkmessagefilterid")
    return tuple(changes)


def step_body(
    wanted: StepSettings,
    endpoint: uuid.UUID | str,
    message_id: uuid.UUID,
    filter_id: uuid.UUID,
    *,
    enable: bool = False,
) -> dict[str, Any]:
    """The step's columns with its lookups bound: `endpoint` is the endpoint's id, or the `$<Content-ID>` reference
    of an endpoint created in the same change set; `enable` turns a disabled step back on."""
    reference = f"/{ENDPOINTS.entity_set}({endpoint})" if isinstance(endpoint, uuid.UUID) else endpoint
    body = {
        **wanted.columns(),
        "eventhandler_serviceendpoint@odata.bind": reference,
        "sdkmessageid@odata.bind": f"/{SDK_MESSAGES.entity_set}({message_id})",
        "sdkmessagefilterid@odata.bind": f"/{FILTERS.entity_set}({filter_id})",
    }
    return body | {"statecode": 0, "statuscode": 1} if enable else body
