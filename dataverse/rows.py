"""Records to rows: what the service creates, each from a typed write request, and the reads those creates need.

- Journeys' effects: activities (`tasks`, `phonecalls`, `appointments`, `emails`) and leads, each carrying its
  idempotency key and an id derived from it, bound to its owner, its regarding row, its contact and account;
- interaction rows from other systems' events, in the configured interaction columns.

Lookups are bound as `<navigation property>@odata.bind` with the target's path; text is fitted to its column's
maximum length (`dataverse.tables.fit`).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dataverse.client import DataverseClient
from dataverse.errors import DataverseBadRequest, DataverseConnectionError, DataverseServerError
from dataverse.mapping import InteractionColumns
from dataverse.query import Query, in_
from dataverse.tables import Table, fit, table
from scoring.records import Account, Contact

__all__ = [
    "IDEMPOTENCY_KEY",
    "ActivityWrite",
    "InteractionWrite",
    "LeadWrite",
    "activity_row",
    "bind",
    "email_is_open",
    "existing_ids",
    "interaction_row",
    "lead_row",
    "send_email",
    "send_email_once",
]

IDEMPOTENCY_KEY = "abm_idempotencykey"  # the product's column on every table it creates rows in
_INTERACTION_NAME = "abm_name"  # the product's interaction table: its primary name column
_COPIED_FROM_CONTACT = ("firstname", "lastname", "emailaddress1", "jobtitle")  # a per-contact lead's columns
_ID_CHUNK = 100
_EMAIL_OPEN = 0  # email statecode: Open (a draft, not sent)


def bind(logical_name: str, id: str) -> str:
    """The path a lookup is bound to: `/contacts(<id>)`."""
    return f"/{table(logical_name).entity_set}({id})"


@dataclass(frozen=True)
class ActivityWrite:
    """An activity a journey creates (`kind`: task, phonecall, appointment or email): its id and idempotency key, its
    subject and description, its owner (a system user) and the row it regards (logical name, id)."""

    kind: str
    id: uuid.UUID
    key: str
    subject: str
    description: str | None = None
    owner_id: str | None = None
    regarding: tuple[str, str] | None = None


def activity_row(write: ActivityWrite) -> dict[str, Any]:
    """The row of an activity to create, its primary key set (CreateMultiple with client-assigned ids)."""
    row: dict[str, Any] = {"subject": write.subject, IDEMPOTENCY_KEY: write.key}
    if write.owner_id:
        row["ownerid@odata.bind"] = bind("systemuser", write.owner_id)
    if write.description is not None:
        row["description"] = write.description
    if write.regarding is not None:
        logical, id = write.regarding
        row[f"regardingobjectid_{logical}_{write.kind}@odata.bind"] = bind(logical, id)
    target = table(write.kind)
    return fit(target, {**row, target.primary_key: str(write.id)})


@dataclass(frozen=True)
class LeadWrite:
    """A lead a journey creates: its id and idempotency key, subject and owner; for each contact, the contact (its
    name, email address and job title are copied), and the account (its name becomes the company name)."""

    id: uuid.UUID
    key: str
    subject: str
    owner_id: str | None = None
    contact: Contact | None = None
    account: Account | None = None


def lead_row(write: LeadWrite) -> dict[str, Any]:
    """The row of a lead to create, its primary key set."""
    row: dict[str, Any] = {"subject": write.subject, IDEMPOTENCY_KEY: write.key}
    if write.owner_id:
        row["ownerid@odata.bind"] = bind("systemuser", write.owner_id)
    if write.contact is not None:
        row["parentcontactid@odata.bind"] = bind("contact", write.contact.id)
        for column in _COPIED_FROM_CONTACT:
            if write.contact.attributes.get(column):
                row[column] = write.contact.attributes[column]
    if write.account is not None:
        row["parentaccountid@odata.bind"] = bind("account", write.account.id)
        row["companyname"] = write.account.attributes.get("name")
    target = table("lead")
    return fit(target, {**row, target.primary_key: str(write.id)})


@dataclass(frozen=True)
class InteractionWrite:
    """An interaction row from another system's event: its id and idempotency key (`<source>/<id>`), a short name,
    the contact, the type, when it happened, and the named attributes (`asset`, `campaign`, `content_type`)."""

    id: uuid.UUID
    key: str
    name: str
    contact_id: str
    type: str
    occurred_on: datetime
    attributes: Mapping[str, str | None] = field(default_factory=dict)


def interaction_row(write: InteractionWrite, columns: InteractionColumns) -> dict[str, Any]:
    """The interaction row in the configured columns; the contact bound through its lookup, the time in whole UTC
    seconds, attributes without a value left out."""
    interactions = table("abm_interaction")
    row: dict[str, Any] = {
        interactions.primary_key: str(write.id),
        _INTERACTION_NAME: write.name,
        IDEMPOTENCY_KEY: write.key,
        f"{columns.contact}@odata.bind": bind("contact", write.contact_id.lower()),
        columns.type: write.type,
        columns.occurred_on: write.occurred_on.astimezone(UTC).replace(microsecond=0),
    }
    for name, column in columns.attributes.items():
        if write.attributes.get(name) is not None:
            row[column] = write.attributes[name]
    return fit(interactions, row)


def existing_ids(client: DataverseClient, of: Table, ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    """Which of these ids are rows of the table already: one read per 100 ids, in the order given."""
    found: set[uuid.UUID] = set()
    for start in range(0, len(ids), _ID_CHUNK):
        chunk = ids[start : start + _ID_CHUNK]
        query = Query(of.entity_set).select(of.primary_key).where(in_(of.primary_key, chunk))
        found.update(uuid.UUID(str(row[of.primary_key])) for row in client.iter_rows(query))
    return found


def email_is_open(client: DataverseClient, email_id: uuid.UUID) -> bool:
    """Whether the email is still a draft (state Open), so SendEmail would send it: one read."""
    return client.get(table("email"), email_id, select=["statecode"]).get("statecode") == _EMAIL_OPEN


def send_email(client: DataverseClient, email_id: uuid.UUID) -> None:
    """The SendEmail action on a created email (not idempotent: check `email_is_open` first)."""
    client.call_action("SendEmail", {"IssueSend": True, "TrackingToken": ""}, bound=(table("email"), email_id))


SEND_ATTEMPTS = 4  # SendEmail attempts on one email, each after its state was read


def send_email_once(client: DataverseClient, email_id: uuid.UUID) -> bool:
    """Send an email unless it is no longer a draft; True when it was sent during this call.

    SendEmail is not idempotent, so it is never retried blindly: its state is read before each attempt. An attempt
    that fails (a server error, a connection lost before or after the request reached Dataverse, a refusal such as
    an overlapping run's send winning) is judged by the email's state, not by the error: no longer open means it
    was sent (by this attempt or another run's: either way, once); still open means it was not, and it is tried
    again, up to `SEND_ATTEMPTS` times. Learn documents no error code for "already sent", hence the state."""
    if not email_is_open(client, email_id):
        return False
    attempt = 1
    while True:
        try:
            send_email(client, email_id)
        except (DataverseServerError, DataverseConnectionError, DataverseBadRequest):
            if not email_is_open(client, email_id):
                return True
            if attempt == SEND_ATTEMPTS:
                raise
            attempt += 1
        else:
            return True
