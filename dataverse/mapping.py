"""Web API rows to domain records, once, at the boundary; and the `$select` each read needs.

The domain never sees `@odata.*` keys, `_x_value` names or option-set numbers it would have to interpret: lookups
become typed ids, the consent choice becomes a level 0 to 5 (through the configured option-value mapping), dates
become aware datetimes, and the other selected columns travel in `attributes` under their logical names.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from scoring.records import Account, Contact, Interaction, Lead, Opportunity, StoredScore

__all__ = [
    "LOOKUP_NAME",
    "InteractionColumns",
    "MappingConfig",
    "account",
    "company_account",
    "consent_by_email",
    "contact",
    "interaction",
    "interaction_select",
    "lead",
    "opportunity",
    "select_for",
    "stored_score",
]

LOOKUP_NAME = "Microsoft.Dynamics.CRM.lookuplogicalname"  # the annotation naming a lookup's target table

# Columns every record needs, per table (lookups as `_x_value`); definitions add the attributes they name.
BASE_COLUMNS: dict[str, tuple[str, ...]] = {
    "lead": (
        "_parentcontactid_value",
        "_parentaccountid_value",
        "statecode",
        "abm_salesready",
        "abm_salesreadyon",
        "createdon",
        "modifiedon",
    ),
    "contact": ("_parentcustomerid_value", "donotbulkemail"),
    "account": ("name", "_parentaccountid_value", "_primarycontactid_value", "_ownerid_value", "_createdby_value"),
    "opportunity": (
        "_parentaccountid_value",
        "_parentcontactid_value",
        "_originatingleadid_value",
        "statecode",
        "createdon",
        "actualclosedate",
        "modifiedon",
    ),
}
LEAD_QUALIFIED = 1  # lead statecode: 0 open, 1 qualified, 2 disqualified
OPPORTUNITY_STATUS = {0: "open", 1: "won", 2: "lost"}  # opportunity statecode


@dataclass(frozen=True)
class InteractionColumns:
    """Where the interaction table keeps each field (the product's own table by default; configurable)."""

    contact: str = "abm_contactid"
    type: str = "abm_type"
    occurred_on: str = "abm_occurredon"
    attributes: Mapping[str, str] = field(
        default_factory=lambda: {"asset": "abm_asset", "campaign": "abm_campaign", "content_type": "abm_contenttype"}
    )


@dataclass(frozen=True)
class MappingConfig:
    """The org-specific parts of mapping: the consent column and its option values, the interaction columns."""

    consent_column: str = "msgdpr_gdprconsent"
    consent_levels: Mapping[int, int] = field(default_factory=dict)
    consent_source: str = "contact"  # or "contactpointconsent": msdynmkt_contactpointconsent4, by email address
    contactpoint_levels: Mapping[int, int] = field(default_factory=dict)
    interactions: InteractionColumns = field(default_factory=InteractionColumns)


def _id(value: Any) -> str | None:
    return str(value).lower() if value else None


def _maybe_when(value: Any) -> datetime | None:
    return _when(value) if value else None


def _when(value: Any) -> datetime:
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _attributes(row: Mapping[str, Any]) -> dict[str, Any]:
    """The plain columns of a row: no annotations, no lookups' `_x_value` (those are typed fields)."""
    return {k: v for k, v in row.items() if "@" not in k and not (k.startswith("_") and k.endswith("_value"))}


def select_for(table: str, attributes: Iterable[str], config: MappingConfig | None = None) -> tuple[str, ...]:
    """The `$select` of a read: the columns every record of `table` needs plus the attributes definitions name."""
    base = BASE_COLUMNS.get(table, ())
    if table == "contact":
        config = config or MappingConfig()
        base = (*base, config.consent_column if config.consent_source == "contact" else "emailaddress1")
    return tuple(dict.fromkeys((*base, *sorted(attributes))))


def lead(row: Mapping[str, Any]) -> Lead:
    """A lead. Dataverse keeps no qualification date: a qualified lead is closed and read-only, so its `modifiedon`
    is when it was qualified."""
    qualified = row.get("statecode") == LEAD_QUALIFIED
    return Lead(
        id=str(row["leadid"]).lower(),
        contact_id=_id(row.get("_parentcontactid_value")),
        account_id=_id(row.get("_parentaccountid_value")),
        is_open=row.get("statecode", 0) == 0,
        sales_ready=bool(row.get("abm_salesready")),
        attributes=_attributes(row),
        created_on=_maybe_when(row.get("createdon")),
        sales_ready_on=_maybe_when(row.get("abm_salesreadyon")),
        qualified_on=_maybe_when(row.get("modifiedon")) if qualified else None,
    )


def opportunity(row: Mapping[str, Any]) -> Opportunity:
    """An opportunity; a closed one is dated by its actual close date (else its last modification)."""
    status = OPPORTUNITY_STATUS.get(int(row.get("statecode") or 0), "open")
    closed = _maybe_when(row.get("actualclosedate") or row.get("modifiedon")) if status != "open" else None
    return Opportunity(
        id=str(row["opportunityid"]).lower(),
        account_id=_id(row.get("_parentaccountid_value")),
        contact_id=_id(row.get("_parentcontactid_value")),
        lead_id=_id(row.get("_originatingleadid_value")),
        created_on=_maybe_when(row.get("createdon")),
        status=status,
        closed_on=closed,
    )


def stored_score(row: Mapping[str, Any]) -> StoredScore:
    """A score row of the product's score table (`abm_leadscore`)."""
    return StoredScore(
        lead_id=str(row.get("_abm_leadid_value") or "").lower(),
        model=str(row.get("abm_model") or ""),
        score=int(row.get("abm_score") or 0),
        grade=row.get("abm_grade") or None,
        sales_ready=bool(row.get("abm_salesready")),
    )


EMAIL_CONTACT_POINT = 534120000  # msdynmkt_contactpointtype: Email


def consent_by_email(rows: Iterable[Mapping[str, Any]], config: MappingConfig) -> dict[str, int]:
    """Consent levels by lowercase email address from `msdynmkt_contactpointconsent4` rows (email contact points).
    An address with several purposes or topics gets its most restrictive level; Not Set says nothing."""
    levels: dict[str, int] = {}
    for row in rows:
        address = str(row.get("msdynmkt_contactpointvalue") or "").strip().lower()
        value = row.get("msdynmkt_value")
        level = config.contactpoint_levels.get(int(value)) if value is not None else None
        if address and level is not None and row.get("msdynmkt_contactpointtype") == EMAIL_CONTACT_POINT:
            levels[address] = min(level, levels.get(address, level))
    return levels


def company_account(row: Mapping[str, Any]) -> str | None:
    """A contact row's company (`parentcustomerid`) when it is an account; None when it is a contact or empty.
    Read with the lookuplogicalname annotation requested; without it the company is taken to be an account."""
    company = row.get("_parentcustomerid_value")
    is_account = row.get(f"_parentcustomerid_value@{LOOKUP_NAME}", "account") == "account"
    return _id(company) if is_account else None


def contact(row: Mapping[str, Any], config: MappingConfig, by_email: Mapping[str, int] | None = None) -> Contact:
    """A contact; its company lookup counts as the account only when it points to an account. Consent comes from
    the configured column, or (contact point consent) from `by_email` through the contact's email address."""
    if config.consent_source == "contact":
        option = row.get(config.consent_column)
        level = config.consent_levels.get(int(option)) if option is not None else None
    else:
        level = (by_email or {}).get(str(row.get("emailaddress1") or "").strip().lower())
    return Contact(
        id=str(row["contactid"]).lower(),
        account_id=company_account(row),
        consent_level=level,
        do_not_bulk_email=bool(row.get("donotbulkemail")),
        attributes=_attributes(row),
    )


def account(row: Mapping[str, Any]) -> Account:
    return Account(
        id=str(row["accountid"]).lower(),
        parent_account_id=_id(row.get("_parentaccountid_value")),
        primary_contact_id=_id(row.get("_primarycontactid_value")),
        attributes=_attributes(row),
        owner_id=_id(row.get("_ownerid_value")),
        created_by=_id(row.get("_createdby_value")),
    )


def interaction_select(config: MappingConfig, fields: Iterable[str] = ()) -> tuple[str, ...]:
    """The interaction read's `$select`: the mapped columns, plus any other field a definition names (read as the
    column of that name)."""
    columns = config.interactions
    extra = [f for f in sorted(fields) if f not in columns.attributes]
    names = [f"_{columns.contact}_value", columns.type, columns.occurred_on, *columns.attributes.values(), *extra]
    return tuple(dict.fromkeys(names))


def interaction(row: Mapping[str, Any], primary_key: str, config: MappingConfig) -> Interaction:
    columns = config.interactions
    mapped = set(columns.attributes.values()) | {columns.type, columns.occurred_on, primary_key}
    attributes = {k: v for k, v in _attributes(row).items() if k not in mapped}
    attributes |= {name: row.get(column) for name, column in columns.attributes.items()}
    return Interaction(
        id=str(row[primary_key]).lower(),
        contact_id=_id(row.get(f"_{columns.contact}_value")),
        type=str(row.get(columns.type) or ""),
        occurred_on=_when(row[columns.occurred_on]),
        attributes=attributes,
    )
