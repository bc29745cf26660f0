"""The Dataverse tables this service reads and writes (logical name, entity set, primary key, alternate keys, the
maximum lengths of the text columns it writes), and how rows are addressed in URLs: by id, by alternate key, and back
from the `OData-EntityId` Dataverse answers with.

Bulk messages need the logical name (`@odata.type`), writes by id need the primary key, and URLs need the entity set;
the three differ irregularly (`opportunity`/`opportunities`, `task`/`tasks` keyed by `activityid`), so they are
declared here rather than derived.

An alternate key names its lookup columns, because Dataverse addresses those differently from plain columns: by the
lookup property with the GUID unquoted, `abm_leadscores(_abm_leadid_value=<guid>,abm_model='fit')` (Learn: *Use an
alternate key to reference a record*). The form follows from the declaration, never from the value's Python type.

Text longer than its column's maximum length is refused by Dataverse (0x80044331); `fit` shortens what the service
composes (subjects, descriptions, names copied from another table) to the documented maximum.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from dataverse.query import check_name, literal

__all__ = ["TABLES", "AlternateKey", "Table", "entity_id_in", "fit", "row_path", "table", "text_length"]

_ENTITY_ID = re.compile(r"\(([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})\)\s*$")


@dataclass(frozen=True)
class AlternateKey:
    """An alternate key: its columns, and which of them are lookups (addressed as `_<column>_value=<guid>`)."""

    columns: tuple[str, ...]
    lookups: frozenset[str] = frozenset()

    def segment(self, values: Mapping[str, Any]) -> str:
        """`name=literal,…` for the key's values, in the key's column order; lookups as unquoted GUIDs."""
        parts = []
        for column in self.columns:
            value = values[column]
            if column in self.lookups:
                try:
                    guid = value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
                except ValueError:
                    raise ValueError(f"the lookup key column {column} needs a GUID, not {value!r}") from None
                parts.append(f"_{column}_value={guid}")
            else:
                parts.append(f"{check_name(column)}={literal(value)}")
        return ",".join(parts)


@dataclass(frozen=True)
class Table:
    """One Dataverse table as the Web API addresses it, and the maximum lengths of the text columns written to it."""

    logical_name: str
    entity_set: str
    primary_key: str
    keys: tuple[AlternateKey, ...] = ()
    max_lengths: Mapping[str, int] = field(default_factory=dict, hash=False, compare=False)

    def key(self, columns: Iterable[str]) -> AlternateKey:
        """The declared alternate key made of exactly these columns."""
        wanted = sorted(columns)
        for key in self.keys:
            if sorted(key.columns) == wanted:
                return key
        raise ValueError(f"{self.logical_name} has no declared alternate key made of {', '.join(wanted)}")

    @property
    def odata_type(self) -> str:
        """The `@odata.type` every target of CreateMultiple/UpdateMultiple/UpsertMultiple must carry."""
        return f"Microsoft.Dynamics.CRM.{self.logical_name}"


# Maximum lengths from the table reference pages on Learn (…/reference/entities/<table>): an org that kept them or
# raised them (what customizers do) accepts what is fitted to them.
_ACTIVITY_TEXT = {"subject": 200, "description": 2000}  # task, phonecall
_LEAD_TEXT = {
    "subject": 300,
    "firstname": 50,
    "lastname": 50,
    "companyname": 100,
    "jobtitle": 100,
    "emailaddress1": 100,
}

_DECLARED = [
    Table("account", "accounts", "accountid"),
    Table("contact", "contacts", "contactid"),
    Table("lead", "leads", "leadid", max_lengths=_LEAD_TEXT),
    Table("opportunity", "opportunities", "opportunityid"),
    Table("systemuser", "systemusers", "systemuserid"),
    Table("team", "teams", "teamid"),
    Table("task", "tasks", "activityid", max_lengths=_ACTIVITY_TEXT),
    Table("phonecall", "phonecalls", "activityid", max_lengths=_ACTIVITY_TEXT),
    Table("appointment", "appointments", "activityid", max_lengths={"subject": 200, "description": 1048576}),
    Table("email", "emails", "activityid", max_lengths={"subject": 800}),
    Table("workflow", "workflows", "workflowid"),
    Table("asyncoperation", "asyncoperations", "asyncoperationid"),
    Table("serviceendpoint", "serviceendpoints", "serviceendpointid"),
    Table("sdkmessageprocessingstep", "sdkmessageprocessingsteps", "sdkmessageprocessingstepid"),
    Table("sdkmessage", "sdkmessages", "sdkmessageid"),
    Table("sdkmessagefilter", "sdkmessagefilters", "sdkmessagefilterid"),
    Table(
        "msdyn_predictivescore",
        "msdyn_predictivescores",
        "msdyn_predictivescoreid",
        keys=(AlternateKey(("msdyn_entityid", "msdyn_entitytype")),),
    ),
    Table("msdynmkt_contactpointconsent4", "msdynmkt_contactpointconsent4s", "msdynmkt_contactpointconsent4id"),
    # the product's own tables (publisher prefix abm_)
    Table("abm_interaction", "abm_interactions", "abm_interactionid", max_lengths={"abm_name": 200}),
    Table(
        "abm_leadscore",
        "abm_leadscores",
        "abm_leadscoreid",
        keys=(AlternateKey(("abm_leadid", "abm_model"), lookups=frozenset({"abm_leadid"})),),
    ),
]

TABLES: dict[str, Table] = {t.entity_set: t for t in _DECLARED} | {t.logical_name: t for t in _DECLARED}


def table(name: str) -> Table:
    """The declared table by entity set or logical name; the product's own tables are declared by their issues."""
    try:
        return TABLES[name]
    except KeyError:
        raise KeyError(f"unknown Dataverse table {name!r}: declare it as a dataverse.tables.Table") from None


def row_path(table: Table, key: uuid.UUID | Mapping[str, Any]) -> str:
    """`leads(<guid>)`, or for a declared alternate key `abm_leadscores(_abm_leadid_value=<guid>,abm_model='fit')`
    with the values written as escaped literals and URL-encoded (quotes kept, as Dataverse's examples show them)."""
    if isinstance(key, uuid.UUID):
        return f"{table.entity_set}({key})"
    if not key:
        raise ValueError("an alternate key needs at least one column")
    segment = table.key(key).segment(key)
    return table.entity_set + "(" + quote(segment, safe="=,()'") + ")"


def text_length(text: str) -> int:
    """A text's length as Dataverse measures it against a column's maximum: UTF-16 code units (an emoji is 2)."""
    return len(text.encode("utf-16-le")) // 2


def _fit_text(text: str, limit: int) -> str:
    """`text` within `limit` UTF-16 code units, ending in "…" when cut; never splits a surrogate pair."""
    if text_length(text) <= limit:
        return text
    kept, used = [], 0
    for char in text:
        units = 2 if ord(char) > 0xFFFF else 1
        if used + units > limit - 1:
            break
        kept.append(char)
        used += units
    return "".join(kept) + "…"


def fit(table: Table, row: Mapping[str, Any]) -> dict[str, Any]:
    """The row with every text value of a column with a declared maximum length shortened to fit it."""
    return {
        name: _fit_text(value, table.max_lengths[name])
        if isinstance(value, str) and name in table.max_lengths
        else value
        for name, value in row.items()
    }


def entity_id_in(headers: Mapping[str, str]) -> uuid.UUID | None:
    """The row id in an `OData-EntityId` (or `Location`) header, `…/leads(<guid>)`; None for a key-form URL."""
    lowered = {name.lower(): value for name, value in headers.items()}
    for name in ("odata-entityid", "location"):
        found = _ENTITY_ID.search(lowered.get(name, ""))
        if found:
            return uuid.UUID(found.group(1))
    return None
