"""The Dataverse tables this service reads and writes (logical name, entity set, primary key), and how rows are
addressed in URLs: by id, by alternate key, and back from the `OData-EntityId` Dataverse answers with.

Bulk messages need the logical name (`@odata.type`), writes by id need the primary key, and URLs need the entity set;
the three differ irregularly (`opportunity`/`opportunities`, `task`/`tasks` keyed by `activityid`), so they are
declared here rather than derived.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from dataverse.query import check_name, literal

__all__ = ["TABLES", "Table", "entity_id_in", "row_path", "table"]

_ENTITY_ID = re.compile(r"\(([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})\)\s*$")


@dataclass(frozen=True)
class Table:
    """One Dataverse table as the Web API addresses it."""

    logical_name: str
    entity_set: str
    primary_key: str

    @property
    def odata_type(self) -> str:
        """The `@odata.type` every target of CreateMultiple/UpdateMultiple/UpsertMultiple must carry."""
        return f"Microsoft.Dynamics.CRM.{self.logical_name}"


_DECLARED = [
    Table("account", "accounts", "accountid"),
    Table("contact", "contacts", "contactid"),
    Table("lead", "leads", "leadid"),
    Table("opportunity", "opportunities", "opportunityid"),
    Table("systemuser", "systemusers", "systemuserid"),
    Table("team", "teams", "teamid"),
    Table("task", "tasks", "activityid"),
    Table("phonecall", "phonecalls", "activityid"),
    Table("appointment", "appointments", "activityid"),
    Table("email", "emails", "activityid"),
    Table("workflow", "workflows", "workflowid"),
    Table("asyncoperation", "asyncoperations", "asyncoperationid"),
    Table("serviceendpoint", "serviceendpoints", "serviceendpointid"),
    Table("sdkmessageprocessingstep", "sdkmessageprocessingsteps", "sdkmessageprocessingstepid"),
    Table("sdkmessage", "sdkmessages", "sdkmessageid"),
    Table("sdkmessagefilter", "sdkmessagefilters", "sdkmessagefilterid"),
    Table("msdyn_predictivescore", "msdyn_predictivescores", "msdyn_predictivescoreid"),
    Table("msdynmkt_contactpointconsent4", "msdynmkt_contactpointconsent4s", "msdynmkt_contactpointconsent4id"),
    # the product's own tables (publisher prefix abm_)
    Table("abm_interaction", "abm_interactions", "abm_interactionid"),
    Table("abm_leadscore", "abm_leadscores", "abm_leadscoreid"),
]

TABLES: dict[str, Table] = {t.entity_set: t for t in _DECLARED} | {t.logical_name: t for t in _DECLARED}


def table(name: str) -> Table:
    """The declared table by entity set or logical name; the product's own tables are declared by their issues."""
    try:
        return TABLES[name]
    except KeyError:
        raise KeyError(f"unknown Dataverse table {name!r}: declare it as a dataverse.tables.Table") from None


def row_path(table: Table, key: uuid.UUID | Mapping[str, Any]) -> str:
    """`leads(<guid>)`, or for an alternate key `abm_leadscores(abm_leadid=<guid>,abm_model='fit')` with the values
    written as escaped literals and URL-encoded (quotes kept, as Dataverse's examples show them)."""
    if isinstance(key, uuid.UUID):
        return f"{table.entity_set}({key})"
    if not key:
        raise ValueError("an alternate key needs at least one column")
    parts = ",".join(f"{check_name(name)}={literal(value)}" for name, value in key.items())
    return table.entity_set + "(" + quote(parts, safe="=,()'") + ")"


def entity_id_in(headers: Mapping[str, str]) -> uuid.UUID | None:
    """The row id in an `OData-EntityId` (or `Location`) header, `…/leads(<guid>)`; None for a key-form URL."""
    lowered = {name.lower(): value for name, value in headers.items()}
    for name in ("odata-entityid", "location"):
        found = _ENTITY_ID.search(lowered.get(name, ""))
        if found:
            return uuid.UUID(found.group(1))
    return None
