"""The plain records the engine reasons over, mapped from Dataverse rows once, at the boundary (dataverse/mapping.py).

Each record has typed fields for what every rule needs (ids, lookups, consent, state, timestamps) and `attributes`,
the other columns by their Dataverse logical name, so a definition may name any column. Ids are lowercase GUID
strings. Times are aware datetimes in UTC.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["Account", "Contact", "Interaction", "Lead", "Opportunity", "StoredScore"]


@dataclass(frozen=True)
class Account:
    """An account. Accounts carry no consent: that is read from contacts only."""

    id: str
    parent_account_id: str | None = None
    primary_contact_id: str | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)
    owner_id: str | None = None
    created_by: str | None = None


@dataclass(frozen=True)
class Contact:
    """A contact, its company (`parentcustomerid` when that is an account) and its consent level (0-5, None unknown)."""

    id: str
    account_id: str | None = None
    consent_level: int | None = None
    do_not_bulk_email: bool = False
    attributes: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Lead:
    """A lead with its parent contact and parent account; only open leads are scored (the others are read-only)."""

    id: str
    contact_id: str | None = None
    account_id: str | None = None
    is_open: bool = True
    sales_ready: bool = False
    attributes: Mapping[str, Any] = field(default_factory=dict)
    created_on: datetime | None = None
    sales_ready_on: datetime | None = None  # when the engine first found it sales-ready (marketing qualified)
    qualified_on: datetime | None = None  # when a seller qualified it (None while open or when disqualified)


@dataclass(frozen=True)
class Interaction:
    """One marketing interaction of a contact: its type (EmailOpened, FormSubmitted, ...), when, and its attributes
    (`asset`, `campaign`, `content_type`, and any other mapped column)."""

    id: str
    contact_id: str | None
    type: str
    occurred_on: datetime
    attributes: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Opportunity:
    """An opportunity: its account and contact, the lead it came from, when it was created, and how it stands
    (`open`, `won` or `lost`, closed on `closed_on`)."""

    id: str
    account_id: str | None
    contact_id: str | None
    lead_id: str | None
    created_on: datetime | None
    status: str = "open"
    closed_on: datetime | None = None


@dataclass(frozen=True)
class StoredScore:
    """A lead's score by one model as written back to Dataverse (the product's score table)."""

    lead_id: str
    model: str
    score: int
    grade: str | None
    sales_ready: bool
