"""`abm register-webhook`: register the Function app's webhook in Dataverse through the Web API, idempotently.

One `serviceendpoint` (contract 8 = Webhook, authtype 4 = WebhookKey: Dataverse sends the key as `?code=`, which is
how Azure Functions checks a function key) and one `sdkmessageprocessingstep` per message (Create, Update, Delete)
and table: asynchronous (mode 1), post-operation (stage 40), server only (supporteddeployment 0), system job deleted
on success (asyncautodelete), and for Update only the columns the engine reads (`filteringattributes`), so that
changes the engine ignores cost no webhook call. What this relies on (Microsoft Learn): "Register a webhook" and
"Use webhooks" (Power Apps developer docs), and the ServiceEndpoint and SdkMessageProcessingStep table references
(authtype 4 Webhook Key, 5 Http Header, 6 Http Query String; `authvalue` is write-only; mode 0 sync / 1 async;
stage 10/20/40; supporteddeployment 0 server only). Steps refer to their message and its filter by id, looked up by
name (`sdkmessages`) and by message and table (`sdkmessagefilters.primaryobjecttypecode`).

Requests: three GETs (messages, message filters, the endpoint by name), a fourth for the steps by name, then all
writes in ONE `$batch` change set (the endpoint first, the steps binding to it by Content-ID when it is new), so a
registration is all or nothing. A step that already matches is not written; the endpoint is always updated (its key
cannot be read back to compare). Running twice creates nothing new. The key is never logged or returned.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

from abm.errors import Refused
from abm.jobs.events import WATCHED_MESSAGES, WATCHED_TABLES
from dataverse.auth import Secret
from dataverse.batch import BatchRequest, ChangeSet
from dataverse.client import DataverseClient
from dataverse.errors import DataverseError
from dataverse.mapping import column_of
from dataverse.registration import (
    ENDPOINTS,
    STEPS,
    FoundStep,
    StepSettings,
    endpoint_body,
    endpoint_key_body,
    read_endpoints,
    read_message_filters,
    read_messages,
    read_steps,
    step_body,
    step_changes,
)

__all__ = [
    "MESSAGES",
    "WEBHOOK_TABLES",
    "RegistrationError",
    "RegistrationReport",
    "StepPlan",
    "filtering_from_selects",
    "register_webhook",
    "step_name",
]

# What the webhook receiver watches is what gets registered: one list, the receiver's.
MESSAGES = WATCHED_MESSAGES
WEBHOOK_TABLES = WATCHED_TABLES
DEFAULT_NAME = "abm-webhook"

Action = Literal["create", "update", "unchanged"]


class RegistrationError(Refused):
    """The webhook cannot be registered as asked: the message names what is wrong and what to do."""


@dataclass(frozen=True)
class StepPlan:
    """One step: its name, message and table, its filtering attributes, and what registration does with it."""

    name: str
    message: str
    table: str
    filtering_attributes: str | None
    action: Action
    changes: tuple[str, ...] = ()
    id: uuid.UUID | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "message": self.message,
            "table": self.table,
            "filteringattributes": self.filtering_attributes,
            "action": self.action,
            "changes": list(self.changes),
        }


@dataclass
class RegistrationReport:
    """What registration found and did (or, in a dry run, would do). Never holds the key."""

    dry_run: bool
    name: str
    url: str
    endpoint_action: Literal["create", "update"]
    endpoint_id: uuid.UUID | None
    steps: list[StepPlan] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    requests: dict[str, Any] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        counts = {"create": 0, "update": 0, "unchanged": 0}
        for step in self.steps:
            counts[step.action] += 1
        return counts

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "endpoint": {
                "name": self.name,
                "url": self.url,
                "action": self.endpoint_action,
                "id": str(self.endpoint_id) if self.endpoint_id else None,
            },
            "steps": [s.as_dict() for s in self.steps],
            "step_counts": self.counts(),
            "duplicates": self.duplicates,
            "requests": self.requests,
        }


def step_name(endpoint: str, message: str, table_name: str) -> str:
    """The step's name: what makes a second registration find it again."""
    return f"{endpoint}: {message} of {table_name}"


def filtering_from_selects(selects: Mapping[str, Sequence[str]]) -> dict[str, tuple[str, ...]]:
    """Filtering attributes from the `$select` of each read: logical names, lookups as `x` rather than `_x_value`."""
    result: dict[str, tuple[str, ...]] = {}
    for table_name, columns in selects.items():
        names = {column_of(c) for c in columns}
        result[table_name] = tuple(sorted(names))
    return result


def _check_url(url: str) -> None:
    parts = urlsplit(url)
    loopback = parts.hostname in ("localhost", "127.0.0.1", "::1")
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        raise RegistrationError(f"the webhook URL must be an https:// URL, got {parts.scheme or 'no'} scheme")
    if not parts.hostname:
        raise RegistrationError("the webhook URL has no host")
    if any(name.lower() == "code" for name, _ in parse_qsl(parts.query, keep_blank_values=True)):
        raise RegistrationError(
            "the webhook URL carries a code= key: give the URL without it and the key in ABM_WEBHOOK_KEY "
            "(Dataverse keeps it write-only and adds it to every call)"
        )


def _message_ids(client: DataverseClient) -> dict[str, uuid.UUID]:
    found = read_messages(client, MESSAGES)
    missing = [m for m in MESSAGES if m not in found]
    if missing:
        raise RegistrationError(f"Dataverse has no SDK message named {', '.join(missing)}")
    return found


def _filter_ids(
    client: DataverseClient, messages: Mapping[str, uuid.UUID], tables: Sequence[str]
) -> dict[tuple[str, str], uuid.UUID]:
    by_id = {id: name for name, id in messages.items()}
    found: dict[tuple[str, str], uuid.UUID] = {}
    for message_filter in read_message_filters(client, list(messages.values()), tables):
        message = by_id.get(message_filter.message_id)
        if message is not None:
            found[(message, message_filter.table)] = message_filter.id
    missing = [f"{m} of {t}" for t in tables for m in MESSAGES if (m, t) not in found]
    if missing:
        raise RegistrationError(
            f"no SDK message filter for {', '.join(missing)}: does the table exist? (abm provision creates the "
            "product's tables)"
        )
    return found


def _endpoint_id(client: DataverseClient, name: str) -> uuid.UUID | None:
    """The id of the webhook endpoint of this name, None when there is none."""
    endpoints = read_endpoints(client, name)
    if len(endpoints) > 1:
        raise RegistrationError(
            f"{len(endpoints)} service endpoints are named {name!r}: delete all but one, or use --name"
        )
    if endpoints and not endpoints[0].is_webhook:
        raise RegistrationError(
            f"the service endpoint {name!r} is not a webhook (contract {endpoints[0].contract}): use another --name"
        )
    return endpoints[0].id if endpoints else None


def register_webhook(
    client: DataverseClient,
    *,
    url: str,
    key: Secret | None,
    filtering_attributes: Mapping[str, Sequence[str]],
    name: str = DEFAULT_NAME,
    tables: Sequence[str] = WEBHOOK_TABLES,
    dry_run: bool = False,
) -> RegistrationReport:
    """Register (or bring up to date) the webhook `name` at `url` with its steps on `tables`.

    `filtering_attributes`: by table, the columns whose change matters to the engine (Update steps fire only for
    them; a table without any fires on every change). `key` is the function key Dataverse sends as `?code=`; it is
    needed unless `dry_run` (which sends only GETs). Raises `RegistrationError` for a bad URL or a state it cannot
    fix, `DataverseError` when a request fails (the change set then wrote nothing).
    """
    _check_url(url)
    if not dry_run and not key:
        raise RegistrationError("no webhook key: set ABM_WEBHOOK_KEY to the function key of the webhook function")
    if not name.strip() or len(name) > 200:
        raise RegistrationError("the webhook name must be 1 to 200 characters")
    messages = _message_ids(client)
    filters = _filter_ids(client, messages, tables)
    endpoint_id = _endpoint_id(client, name)
    wanted = [(m, t) for t in tables for m in MESSAGES]
    existing = read_steps(client, [step_name(name, m, t) for m, t in wanted])
    report = RegistrationReport(
        dry_run=dry_run,
        name=name,
        url=url,
        endpoint_action="update" if endpoint_id else "create",
        endpoint_id=endpoint_id,
    )
    endpoint_ref = endpoint_id or "$1"  # an endpoint created in the change set is referred to by its Content-ID
    writes: list[BatchRequest] = []
    for message, table_name in wanted:
        title = step_name(name, message, table_name)
        columns = filtering_attributes.get(table_name, ()) if message == "Update" else ()
        filtering = ",".join(sorted(set(columns))) or None
        desired = StepSettings(
            title, f"ABM engine: {message} of {table_name} to the webhook {name} (registered by abm)", filtering
        )
        message_id, filter_id = messages[message], filters[(message, table_name)]
        found: list[FoundStep] = existing.get(title, [])
        report.duplicates += [str(step.id) for step in found[1:]]
        if not found:
            report.steps.append(StepPlan(title, message, table_name, filtering, "create"))
            body = step_body(desired, endpoint_ref, message_id, filter_id)
            writes.append(BatchRequest("POST", STEPS.entity_set, body))
            continue
        step_id = found[0].id
        changes = step_changes(found[0], desired, endpoint_id, message_id, filter_id)
        if not changes:
            report.steps.append(StepPlan(title, message, table_name, filtering, "unchanged", id=step_id))
            continue
        report.steps.append(StepPlan(title, message, table_name, filtering, "update", changes, step_id))
        patch = step_body(desired, endpoint_ref, message_id, filter_id, enable="statecode" in changes)
        writes.append(BatchRequest("PATCH", f"{STEPS.entity_set}({step_id})", patch, headers={"If-Match": "*"}))
    if not dry_run:
        assert key is not None
        _write(client, report, endpoint_id, key, writes)
    report.requests = client.stats.as_dict()
    return report


def _write(
    client: DataverseClient,
    report: RegistrationReport,
    endpoint_id: uuid.UUID | None,
    key: Secret,
    steps: list[BatchRequest],
) -> None:
    """The endpoint and the steps in one change set: all written, or nothing."""
    if endpoint_id is None:
        body = endpoint_body(report.name, report.url, key.reveal())
        endpoint = BatchRequest("POST", ENDPOINTS.entity_set, body, content_id="1")
    else:
        path = f"{ENDPOINTS.entity_set}({endpoint_id})"
        body = endpoint_key_body(key.reveal(), url=report.url)
        endpoint = BatchRequest("PATCH", path, body, headers={"If-Match": "*"})
    (outcome,) = client.batch([ChangeSet([endpoint, *steps])])
    if not outcome.ok:
        error = outcome.error or DataverseError("Dataverse did not run the registration change set")
        raise error
    if endpoint_id is None and outcome.responses:
        location = outcome.responses[0].headers.get("odata-entityid", "")
        found = location.rsplit("(", 1)[-1].rstrip(")") if "(" in location else ""
        try:
            report.endpoint_id = uuid.UUID(found)
        except ValueError:
            report.endpoint_id = None
