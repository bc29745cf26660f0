"""The tables the emulator serves, with their real entity set names, primary keys, columns and lookups.

Columns follow Microsoft's table reference (see ../shared/reference/dataverse-web-api.md, section 11) for the subset
this service uses, plus the product's own tables (prefix `abm_`). Every table also gets the system columns
`createdon`, `modifiedon`, `createdby`, `ownerid` (where Dataverse has it), `versionnumber`, and `statecode` /
`statuscode` where the real table has them.

A lookup is stored as two SQLite columns, `<name>` (the GUID) and `<name>__type` (the target's logical name), read as
`_<name>_value` and written through a navigation property: `parentaccountid@odata.bind`, or for a lookup to several
tables one navigation per target (`parentcustomerid_account`, `regardingobjectid_contact_task`); the owner lookup has
the single navigation `ownerid` for both system users and teams, as in Dataverse.

String and memo columns carry their MaxLength from Microsoft's table reference (Learn: "<table> table/entity reference";
the product's own columns as `abm.admin.product_schema` declares them); a write over it is refused. Columns whose
reference was not looked up (system users' names, teams, workflows, system jobs, SDK messages, the Marketing tables) and
EntityName columns (`primaryentity`, `primaryentitytype`, `primaryobjecttypecode`) have no limit here.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["TABLES", "ColumnType", "Lookup", "TableDef", "by_entity_set", "by_logical_name", "system_rows"]

ColumnType = Literal["guid", "string", "memo", "int", "decimal", "money", "bool", "datetime", "date", "choice"]


@dataclass(frozen=True)
class Lookup:
    """A lookup column and its navigation properties: `(navigation, target logical name)` pairs."""

    name: str
    navs: tuple[tuple[str, str], ...]

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(target for _, target in self.navs))

    def target_of(self, navigation: str, entity_set_target: str | None = None) -> str | None:
        """The target table of a navigation; for `ownerid` the bound entity set decides (systemuser or team)."""
        matches = [target for nav, target in self.navs if nav == navigation]
        if not matches:
            return None
        if entity_set_target is not None and entity_set_target in matches:
            return entity_set_target
        return matches[0] if len(matches) == 1 else None


def single(name: str, target: str) -> Lookup:
    """A lookup to one table whose navigation property has the lookup's name (`parentaccountid`)."""
    return Lookup(name, ((name, target),))


def customer(name: str) -> Lookup:
    """A Customer lookup (account or contact): navigations `<name>_account`, `<name>_contact`."""
    return Lookup(name, ((f"{name}_account", "account"), (f"{name}_contact", "contact")))


def regarding(activity: str, targets: Iterable[str]) -> Lookup:
    """An activity's `regardingobjectid`: navigations `regardingobjectid_<target>_<activity>`."""
    return Lookup("regardingobjectid", tuple((f"regardingobjectid_{t}_{activity}", t) for t in targets))


OWNER = Lookup("ownerid", (("ownerid", "systemuser"), ("ownerid", "team")))
CREATEDBY = single("createdby", "systemuser")


@dataclass(frozen=True)
class TableDef:
    """One table: names, primary key and primary name, typed columns, lookups, alternate keys, choices."""

    logical_name: str
    entity_set: str
    primary_key: str
    primary_name: str
    columns: dict[str, ColumnType]
    lookups: tuple[Lookup, ...] = ()
    alternate_keys: tuple[tuple[str, ...], ...] = ()
    owned: bool = True
    stateful: bool = True
    computed_fullname: bool = False
    bulk_messages: bool = True
    write_only: tuple[str, ...] = ()  # columns that can be written but are never read back (IsValidForRead false)
    max_lengths: dict[str, int] = field(default_factory=dict, compare=False)  # string/memo column → MaxLength
    all_columns: dict[str, ColumnType] = field(default_factory=dict, init=False, compare=False)

    def __post_init__(self) -> None:
        columns: dict[str, ColumnType] = {self.primary_key: "guid", **self.columns}
        if self.stateful:
            columns |= {"statecode": "choice", "statuscode": "choice"}
        columns |= {"createdon": "datetime", "modifiedon": "datetime", "versionnumber": "int"}
        if self.computed_fullname:
            columns["fullname"] = "string"
        self.all_columns.update(columns)

    @property
    def all_lookups(self) -> tuple[Lookup, ...]:
        system = (OWNER, CREATEDBY) if self.owned else (CREATEDBY,)
        return self.lookups + system

    def lookup(self, name: str) -> Lookup | None:
        return next((lk for lk in self.all_lookups if lk.name == name), None)

    def max_length(self, column: str) -> int | None:
        """The column's MaxLength (characters), or None where the emulator sets no limit."""
        return self.max_lengths.get(column)

    def navigation(self, nav: str) -> Lookup | None:
        """The lookup a single-valued navigation property belongs to."""
        return next((lk for lk in self.all_lookups if any(n == nav for n, _ in lk.navs)), None)


ACTIVITY_REGARDING = ("account", "contact", "lead", "opportunity")
_ACTIVITY_COLUMNS: dict[str, ColumnType] = {
    "subject": "string",
    "description": "memo",
    "scheduledstart": "datetime",
    "scheduledend": "datetime",
    "actualend": "datetime",
    "prioritycode": "choice",
    "abm_idempotencykey": "string",
}


# The product's idempotency key on the tables it creates rows in (abm.admin.product_schema.IDEMPOTENCY_KEY).
IDEMPOTENCY_KEY_LENGTH = 400


def _activity(logical: str, entity_set: str, extra: dict[str, ColumnType], max_lengths: dict[str, int]) -> TableDef:
    """An activity table: the columns every activity has, its own, and their MaxLengths from its table reference."""
    return TableDef(
        logical,
        entity_set,
        "activityid",
        "subject",
        {**_ACTIVITY_COLUMNS, **extra},
        (regarding(logical, ACTIVITY_REGARDING),),
        max_lengths={**max_lengths, "abm_idempotencykey": IDEMPOTENCY_KEY_LENGTH},
    )


_TABLES: tuple[TableDef, ...] = (
    TableDef(
        "account",
        "accounts",
        "accountid",
        "name",
        {
            "name": "string",
            "accountnumber": "string",
            "revenue": "money",
            "numberofemployees": "int",
            "industrycode": "choice",
            "address1_city": "string",
            "address1_country": "string",
            "telephone1": "string",
            "websiteurl": "string",
        },
        (single("primarycontactid", "contact"), single("parentaccountid", "account")),
        max_lengths={
            "name": 160,
            "accountnumber": 20,
            "address1_city": 80,
            "address1_country": 80,
            "telephone1": 50,
            "websiteurl": 200,
        },
    ),
    TableDef(
        "contact",
        "contacts",
        "contactid",
        "fullname",
        {
            "firstname": "string",
            "lastname": "string",
            "emailaddress1": "string",
            "jobtitle": "string",
            "telephone1": "string",
            "address1_city": "string",
            "donotbulkemail": "bool",
            "donotemail": "bool",
            "donotphone": "bool",
            "msgdpr_gdprconsent": "choice",
        },
        (customer("parentcustomerid"),),
        computed_fullname=True,
        max_lengths={
            "firstname": 50,
            "lastname": 50,
            "emailaddress1": 100,
            "jobtitle": 100,
            "telephone1": 50,
            "address1_city": 80,
        },
    ),
    TableDef(
        "lead",
        "leads",
        "leadid",
        "fullname",
        {
            "subject": "string",
            "firstname": "string",
            "lastname": "string",
            "companyname": "string",
            "emailaddress1": "string",
            "jobtitle": "string",
            "telephone1": "string",
            "leadsourcecode": "choice",
            "leadqualitycode": "choice",
            "revenue": "money",
            "numberofemployees": "int",
            "industrycode": "choice",
            "donotbulkemail": "bool",
            "msdyn_gdproptout": "bool",
            "abm_salesready": "bool",
            "abm_salesreadyon": "datetime",
            "abm_idempotencykey": "string",
        },
        (single("parentaccountid", "account"), single("parentcontactid", "contact"), customer("customerid")),
        computed_fullname=True,
        max_lengths={
            "subject": 300,
            "firstname": 50,
            "lastname": 50,
            "companyname": 100,
            "emailaddress1": 100,
            "jobtitle": 100,
            "telephone1": 50,
            "abm_idempotencykey": IDEMPOTENCY_KEY_LENGTH,
        },
    ),
    TableDef(
        "opportunity",
        "opportunities",
        "opportunityid",
        "name",
        {
            "name": "string",
            "estimatedvalue": "money",
            "actualvalue": "money",
            "actualclosedate": "date",
            "estimatedclosedate": "date",
        },
        (
            customer("customerid"),
            single("parentaccountid", "account"),
            single("parentcontactid", "contact"),
            single("originatingleadid", "lead"),
        ),
        max_lengths={"name": 300},
    ),
    TableDef(
        "systemuser",
        "systemusers",
        "systemuserid",
        "fullname",
        {
            "fullname": "string",
            "firstname": "string",
            "lastname": "string",
            "internalemailaddress": "string",
            "azureactivedirectoryobjectid": "guid",
            "applicationid": "guid",
            "isdisabled": "bool",
        },
        owned=False,
        stateful=False,
        max_lengths={"internalemailaddress": 100},
    ),
    TableDef("team", "teams", "teamid", "name", {"name": "string"}, stateful=False),
    _activity("task", "tasks", {"percentcomplete": "int"}, {"subject": 200, "description": 2000}),
    _activity(
        "phonecall",
        "phonecalls",
        {"phonenumber": "string", "directioncode": "bool"},
        {"subject": 200, "description": 2000, "phonenumber": 200},
    ),
    _activity(
        "appointment", "appointments", {"location": "string"}, {"subject": 200, "description": 1048576, "location": 200}
    ),
    _activity(
        "email",
        "emails",
        {"directioncode": "bool", "sender": "string", "torecipients": "string"},
        {"subject": 800, "description": 1073741823, "sender": 250, "torecipients": 500},
    ),
    TableDef(
        "workflow",
        "workflows",
        "workflowid",
        "name",
        {"name": "string", "primaryentity": "string", "category": "choice", "type": "choice", "ondemand": "bool"},
    ),
    TableDef(
        "asyncoperation",
        "asyncoperations",
        "asyncoperationid",
        "name",
        {
            "name": "string",
            "operationtype": "choice",
            "message": "memo",
            "completedon": "datetime",
            "primaryentitytype": "string",
        },
        (
            Lookup(
                "regardingobjectid", tuple((f"regardingobjectid_{t}_asyncoperation", t) for t in ACTIVITY_REGARDING)
            ),
            single("workflowactivationid", "workflow"),
        ),
        bulk_messages=False,
    ),
    TableDef(
        "serviceendpoint",
        "serviceendpoints",
        "serviceendpointid",
        "name",
        {
            "name": "string",
            "url": "string",
            "contract": "choice",
            "authtype": "choice",
            "authvalue": "string",
            "messageformat": "choice",
            "description": "memo",
        },
        owned=False,
        stateful=False,
        bulk_messages=False,
        write_only=("authvalue",),  # the webhook key or header: Dataverse never returns it
        max_lengths={"name": 256, "url": 2000, "authvalue": 2048, "description": 2000},
    ),
    TableDef("sdkmessage", "sdkmessages", "sdkmessageid", "name", {"name": "string"}, owned=False, stateful=False),
    TableDef(
        "sdkmessagefilter",
        "sdkmessagefilters",
        "sdkmessagefilterid",
        "primaryobjecttypecode",
        {"primaryobjecttypecode": "string"},
        (single("sdkmessageid", "sdkmessage"),),
        owned=False,
        stateful=False,
    ),
    TableDef(
        "sdkmessageprocessingstep",
        "sdkmessageprocessingsteps",
        "sdkmessageprocessingstepid",
        "name",
        {
            "name": "string",
            "description": "memo",
            "stage": "int",
            "mode": "int",
            "rank": "int",
            "supporteddeployment": "choice",
            "filteringattributes": "string",
            "asyncautodelete": "bool",
        },
        (
            Lookup("eventhandler", (("eventhandler_serviceendpoint", "serviceendpoint"),)),
            single("sdkmessageid", "sdkmessage"),
            single("sdkmessagefilterid", "sdkmessagefilter"),
        ),
        bulk_messages=False,
        max_lengths={"name": 256, "description": 256, "filteringattributes": 100000},
    ),
    TableDef(
        "abm_interaction",
        "abm_interactions",
        "abm_interactionid",
        "abm_name",
        {
            "abm_name": "string",
            "abm_type": "string",
            "abm_occurredon": "datetime",
            "abm_asset": "string",
            "abm_campaign": "string",
            "abm_contenttype": "string",
            "abm_idempotencykey": "string",
        },
        (single("abm_contactid", "contact"),),
        owned=False,
        max_lengths={
            "abm_name": 200,
            "abm_type": 100,
            "abm_asset": 200,
            "abm_campaign": 200,
            "abm_contenttype": 100,
            "abm_idempotencykey": IDEMPOTENCY_KEY_LENGTH,
        },
    ),
    TableDef(
        "abm_leadscore",
        "abm_leadscores",
        "abm_leadscoreid",
        "abm_model",
        {
            "abm_model": "string",
            "abm_score": "int",
            "abm_grade": "string",
            "abm_salesready": "bool",
            "abm_explanation": "memo",
            "abm_scoredon": "datetime",
            "abm_modelversion": "int",
            "abm_consentrule": "string",
            "abm_fitforautomateddecisions": "bool",
        },
        (single("abm_leadid", "lead"),),
        alternate_keys=(("abm_leadid", "abm_model"),),
        owned=False,
        max_lengths={
            "abm_model": 100,
            "abm_grade": 100,
            "abm_consentrule": 100,
            "abm_explanation": 1048576,
        },
    ),
)

_TABLES += (
    TableDef(
        "msdyn_predictivescore",
        "msdyn_predictivescores",
        "msdyn_predictivescoreid",
        "msdyn_entityid",
        {
            "msdyn_entityid": "string",
            "msdyn_entitytype": "string",
            "msdyn_score": "int",
            "msdyn_grade": "choice",
            "msdyn_scoretrend": "choice",
        },
        alternate_keys=(("msdyn_entityid", "msdyn_entitytype"),),
        owned=False,
    ),
    TableDef(
        "msdynmkt_contactpointconsent4",
        "msdynmkt_contactpointconsent4s",
        "msdynmkt_contactpointconsent4id",
        "msdynmkt_contactpointvalue",
        {
            "msdynmkt_contactpointvalue": "string",
            "msdynmkt_contactpointtype": "choice",
            "msdynmkt_value": "choice",
        },
        owned=False,
    ),
)

TABLES: dict[str, TableDef] = {t.logical_name: t for t in _TABLES}

# System rows every org has: the SDK messages a webhook step can be registered on and their message filters (one per
# message and table). Their ids are fixed here; real orgs have their own, so clients look them up by name.
_SYSTEM_NAMESPACE = uuid.UUID("6a1b0c52-7c1e-4f3e-9d7e-0e6d0c0a0b02")
SDK_MESSAGES = ("Create", "Update", "Delete")
FILTERED_TABLES = (
    "account",
    "contact",
    "lead",
    "opportunity",
    "task",
    "phonecall",
    "appointment",
    "email",
    "abm_interaction",
    "abm_leadscore",
)


def system_rows() -> dict[str, list[dict[str, object]]]:
    """The seeded `sdkmessage` and `sdkmessagefilter` rows, by table (stored as the store keeps rows)."""
    messages = {name: str(uuid.uuid5(_SYSTEM_NAMESPACE, f"sdkmessage/{name}")) for name in SDK_MESSAGES}
    filters: list[dict[str, object]] = [
        {
            "sdkmessagefilterid": str(uuid.uuid5(_SYSTEM_NAMESPACE, f"sdkmessagefilter/{name}/{table}")),
            "primaryobjecttypecode": table,
            "sdkmessageid": id,
            "sdkmessageid__type": "sdkmessage",
        }
        for name, id in messages.items()
        for table in FILTERED_TABLES
    ]
    return {
        "sdkmessage": [{"sdkmessageid": id, "name": name} for name, id in messages.items()],
        "sdkmessagefilter": filters,
    }


_BY_SET: dict[str, TableDef] = {t.entity_set: t for t in _TABLES}


def by_entity_set(entity_set: str) -> TableDef | None:
    """The table for an entity set name (case-sensitive, as in Dataverse)."""
    return _BY_SET.get(entity_set)


def by_logical_name(logical_name: str) -> TableDef | None:
    return TABLES.get(logical_name)
