"""Web API rows to domain records, once, at the boundary; the `$select` and annotations each read needs; and where
the mirror files a row.

The domain never sees `@odata.*` keys, `_x_value` names or option-set numbers it would have to interpret: lookups
become typed ids, the consent choice becomes a level 0 to 5 (through the configured option-value mapping), dates
become aware datetimes, and the other selected columns travel in `attributes` under their logical names. The rows
the service writes are built in `dataverse.rows` (activities, leads, interactions) and `dataverse.scores`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from dataverse.tables import Table, table
from journeys.segments import Member
from scoring.records import Account, Contact, Interaction, Lead, Opportunity

__all__ = [
    "CONSENT_SELECT",
    "LOOKUP_NAME",
    "InteractionColumns",
    "MappingConfig",
    "Placement",
    "account",
    "column_of",
    "company_account",
    "consent_by_email",
    "contact",
    "contact_point_address",
    "email_address",
    "evaluated",
    "interaction",
    "interaction_select",
    "interactions",
    "lead",
    "lookup_id",
    "opportunity",
    "placement",
    "read_annotations",
    "row_id",
    "segment_member",
    "select_for",
    "when",
]

LOOKUP_NAME = "Microsoft.Dynamics.CRM.lookuplogicalname"  # the annotation naming a lookup's target table
# Reads whose rows need the lookuplogicalname annotation: a contact's company (`parentcustomerid`) may be an account
# or a contact, and only the annotation says which.
_ANNOTATED = frozenset({"contact"})

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


def lookup_id(value: Any) -> str | None:
    """A lookup's (or a key's) value as an id: lower case, None when empty."""
    return str(value).lower() if value else None


def _maybe_when(value: Any) -> datetime | None:
    return when(value) if value else None


def when(value: Any) -> datetime:
    """A Web API date-time (`2026-11-23T08:00:00Z`) as an aware datetime in UTC."""
    parsed = datetime.fromisoformat(str(value))
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed if parsed.tzinfo is UTC else parsed.astimezone(UTC)


def _lookup(column: str) -> str:
    """The property a read answers a lookup column with: `parentcustomerid` is read as `_parentcustomerid_value`."""
    return f"_{column}_value"


def _is_lookup(name: str) -> bool:
    return name.startswith("_") and name.endswith("_value")


def column_of(name: str) -> str:
    """The column a `$select` item names: a lookup property `_x_value` is the column `x`, any other item itself."""
    return name[1:-6] if _is_lookup(name) else name


def _attributes(row: Mapping[str, Any]) -> dict[str, Any]:
    """The plain columns of a row: no annotations, no lookups' `_x_value` (those are typed fields)."""
    return {k: v for k, v in row.items() if "@" not in k and not _is_lookup(k)}


def row_id(of: Table, row: Mapping[str, Any]) -> str:
    """A row's id: its primary key's value, lower case."""
    return str(row[of.primary_key]).lower()


def read_annotations(table_name: str) -> tuple[str, ...]:
    """The annotations a read of `table_name` asks for (`Prefer: odata.include-annotations`): a contact's company
    needs the name of the table it points to (`company_account`); other reads need none."""
    return (LOOKUP_NAME,) if table_name in _ANNOTATED else ()


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
        contact_id=lookup_id(row.get("_parentcontactid_value")),
        account_id=lookup_id(row.get("_parentaccountid_value")),
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
        account_id=lookup_id(row.get("_parentaccountid_value")),
        contact_id=lookup_id(row.get("_parentcontactid_value")),
        lead_id=lookup_id(row.get("_originatingleadid_value")),
        created_on=_maybe_when(row.get("createdon")),
        status=status,
        closed_on=closed,
    )


EMAIL_CONTACT_POINT = 534120000  # msdynmkt_contactpointtype: Email
# The read of `msdynmkt_contactpointconsent4` when consent comes from contact point consent.
CONSENT_SELECT = ("msdynmkt_contactpointvalue", "msdynmkt_contactpointtype", "msdynmkt_value")


def consent_by_email(rows: Iterable[Mapping[str, Any]], config: MappingConfig) -> dict[str, int]:
    """Consent levels by lowercase email address from `msdynmkt_contactpointconsent4` rows (email contact points).
    An address with several purposes or topics gets its most restrictive level; Not Set says nothing."""
    levels: dict[str, int] = {}
    for row in rows:
        address = contact_point_address(row)
        value = row.get("msdynmkt_value")
        level = config.contactpoint_levels.get(int(value)) if value is not None else None
        if address and level is not None and row.get("msdynmkt_contactpointtype") == EMAIL_CONTACT_POINT:
            levels[address] = min(level, levels.get(address, level))
    return levels


def contact_point_address(row: Mapping[str, Any]) -> str:
    """The lowercase address of a `msdynmkt_contactpointconsent4` row (what a contact's email is matched with)."""
    return str(row.get("msdynmkt_contactpointvalue") or "").strip().lower()


def email_address(row: Mapping[str, Any]) -> str:
    """A contact row's lowercase email address (empty when none): how contact point consent finds its level."""
    return str(row.get("emailaddress1") or "").strip().lower()


def company_account(row: Mapping[str, Any]) -> str | None:
    """A contact row's company (`parentcustomerid`) when it is an account; None when it is a contact or empty.
    Read with the lookuplogicalname annotation requested; without it the company is taken to be an account."""
    company = row.get("_parentcustomerid_value")
    is_account = row.get(f"_parentcustomerid_value@{LOOKUP_NAME}", "account") == "account"
    return lookup_id(company) if is_account else None


def segment_member(row: Mapping[str, Any]) -> Member:
    """A contact row a segment's query answered (read with `read_annotations("contact")`), as a member."""
    return Member(str(row["contactid"]).lower(), company_account(row))


def contact(row: Mapping[str, Any], config: MappingConfig, by_email: Mapping[str, int] | None = None) -> Contact:
    """A contact; its company lookup counts as the account only when it points to an account. Consent comes from
    the configured column, or (contact point consent) from `by_email` through the contact's email address."""
    if config.consent_source == "contact":
        option = row.get(config.consent_column)
        level = config.consent_levels.get(int(option)) if option is not None else None
    else:
        level = (by_email or {}).get(email_address(row))
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
        parent_account_id=lookup_id(row.get("_parentaccountid_value")),
        primary_contact_id=lookup_id(row.get("_primarycontactid_value")),
        attributes=_attributes(row),
        owner_id=lookup_id(row.get("_ownerid_value")),
        created_by=lookup_id(row.get("_createdby_value")),
    )


def interaction_select(config: MappingConfig, fields: Iterable[str] = ()) -> tuple[str, ...]:
    """The interaction read's `$select`: the mapped columns, plus any other field a definition names (read as the
    column of that name)."""
    columns = config.interactions
    extra = [f for f in sorted(fields) if f not in columns.attributes]
    names = [_lookup(columns.contact), columns.type, columns.occurred_on, *columns.attributes.values(), *extra]
    return tuple(dict.fromkeys(names))


def interaction(row: Mapping[str, Any], primary_key: str, config: MappingConfig) -> Interaction:
    """An interaction (see `interactions`)."""
    return interactions([row], primary_key, config)[0]


def interactions(rows: Iterable[Mapping[str, Any]], primary_key: str, config: MappingConfig) -> list[Interaction]:
    """Interactions, in the rows' order. A run maps hundreds of thousands, read with one `$select`: which of a row's
    columns are its other attributes (no annotation, lookup or mapped column) is worked out once per set of columns."""
    columns = config.interactions
    mapped = frozenset((*columns.attributes.values(), columns.type, columns.occurred_on, primary_key))
    named = tuple(columns.attributes.items())
    contact = _lookup(columns.contact)
    others: dict[tuple[str, ...], tuple[str, ...]] = {}  # a row's columns -> its other attributes
    found = []
    for row in rows:
        keys = tuple(row)
        plain = others.get(keys)
        if plain is None:
            plain = others[keys] = tuple(k for k in keys if "@" not in k and k not in mapped and not _is_lookup(k))
        attributes = {k: row[k] for k in plain}
        for name, column in named:
            attributes[name] = row.get(column)
        found.append(
            Interaction(
                id=str(row[primary_key]).lower(),
                contact_id=lookup_id(row.get(contact)),
                type=str(row.get(columns.type) or ""),
                occurred_on=when(row[columns.occurred_on]),
                attributes=attributes,
            )
        )
    return found


def _seconds(moment: datetime | None) -> datetime | None:
    return moment.replace(microsecond=0) if moment is not None else None


def evaluated(kind: str, row: Mapping[str, Any], config: MappingConfig) -> object:
    """What the engine reads of a mirrored row of table `kind` (not the score table: `scores.score_record`), to
    tell a change that matters from one that does not: annotations such as the etag are left out, and an open lead's
    or opportunity's `modifiedon` (only a closed one's dates it). Dataverse keeps date-times to the second, so a
    value the engine wrote with fractions compares equal to the same value read back."""
    if kind == "account":
        return account(row)
    if kind == "contact":
        return contact(row, config)
    if kind == "lead":
        record = lead(row)
        attributes = {k: v for k, v in record.attributes.items() if k != "modifiedon" or not record.is_open}
        return replace(record, sales_ready_on=_seconds(record.sales_ready_on), attributes=attributes)
    if kind == "opportunity":
        return opportunity(row)
    if kind == "abm_interaction":
        return interaction(row, table(kind).primary_key, config)
    return {k: v for k, v in row.items() if "@" not in k}


@dataclass(frozen=True)
class Placement:
    """What files a mirrored row in an account's partition: its id; the account it names itself (an account: itself;
    a contact: its company when that is an account; a lead or an opportunity: its parent account); the contact it
    belongs to (a lead's, an opportunity's or an interaction's); the lead a score row scores."""

    id: str
    account_id: str | None = None
    contact_id: str | None = None
    lead_id: str | None = None


def placement(kind: str, row: Mapping[str, Any], config: MappingConfig) -> Placement:
    """Where a row of table `kind` (a logical name) belongs, read from its lookups: the one place the mirror's
    partition rule reads a row (the interaction's contact column is configurable, hence `config`)."""
    id = row_id(table(kind), row)
    if kind == "account":
        return Placement(id, account_id=id)
    if kind == "contact":
        return Placement(id, account_id=company_account(row))
    if kind in ("lead", "opportunity"):
        own = lookup_id(row.get("_parentaccountid_value"))
        return Placement(id, account_id=own, contact_id=lookup_id(row.get("_parentcontactid_value")))
    if kind == "abm_interaction":
        return Placement(id, contact_id=lookup_id(row.get(_lookup(config.interactions.contact))))
    if kind == "abm_leadscore":
        return Placement(id, lead_id=lookup_id(row.get("_abm_leadid_value")))
    return Placement(id)
