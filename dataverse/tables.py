"""The Dataverse tables this service reads and writes: logical name, entity set and primary key, in one place.

Bulk messages need the logical name (`@odata.type`), writes by id need the primary key, and URLs need the entity set;
the three differ irregularly (`opportunity`/`opportunities`, `task`/`tasks` keyed by `activityid`), so they are
declared here rather than derived.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TABLES", "Table", "table"]


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
]

TABLES: dict[str, Table] = {t.entity_set: t for t in _DECLARED} | {t.logical_name: t for t in _DECLARED}


def table(name: str) -> Table:
    """The declared table by entity set or logical name; the product's own tables are declared by their issues."""
    try:
        return TABLES[name]
    except KeyError:
        raise KeyError(f"unknown Dataverse table {name!r}: declare it as a dataverse.tables.Table") from None
