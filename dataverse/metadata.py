"""Table definitions (metadata) through the Web API: read what a table has, create tables, columns, lookups, keys.

Every request goes through the client's one `Transport` (headers, token, retries, error mapping), so metadata calls
are counted and fail with the same `DataverseError` hierarchy as data calls. What this module relies on (Microsoft
Learn, Power Apps developer docs):

- "Query table definitions using the Web API": `GET EntityDefinitions(LogicalName='x')?$select=…&$expand=
  Attributes($select=…),Keys($select=…)`; `MetadataId` always comes back; a table that does not exist is a 404.
- "Create and update table definitions using the Web API": `POST EntityDefinitions` with SchemaName, DisplayName,
  DisplayCollectionName, OwnershipType, IsActivity, HasActivities, HasNotes and an `Attributes` array holding the one
  primary name `StringAttributeMetadata` (`IsPrimaryName: true`, `FormatName: Text`); columns are created by
  `POST EntityDefinitions(LogicalName='x')/Attributes` with the `@odata.type` of their `AttributeMetadata` kind.
- "Create and update table relationships using the Web API": a lookup column is created with its one-to-many
  relationship, `POST RelationshipDefinitions` with a `OneToManyRelationshipMetadata` whose `Lookup` is a
  `LookupAttributeMetadata` (deep insert), plus `CascadeConfiguration` and `AssociatedMenuConfiguration`.
- "Define alternate keys using the Web API": `POST EntityDefinitions(LogicalName='x')/Keys` with an
  `EntityKeyMetadata` (SchemaName, DisplayName, KeyAttributes); the key's index is built by a system job and its
  `EntityKeyIndexStatus` goes Pending (0) → InProgress (1) → Active (2), or Failed (3).
- Metadata writes join an unmanaged solution when the request carries `MSCRM.SolutionUniqueName`.

Nothing here turns change tracking on: `ChangeTrackingEnabled` is only read (it cannot be turned off once on).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from dataverse.client import DataverseClient
from dataverse.errors import DataverseError, DataverseNotFound
from dataverse.query import check_name, encode_options

__all__ = [
    "ATTRIBUTE_TYPES",
    "KEY_ACTIVE",
    "KEY_FAILED",
    "AttributeInfo",
    "ColumnKind",
    "ColumnSpec",
    "KeyInfo",
    "KeySpec",
    "LookupSpec",
    "MetadataClient",
    "TableInfo",
    "TableSpec",
    "attribute_body",
    "entity_body",
    "key_body",
    "label",
    "relationship_body",
]

ColumnKind = Literal["string", "memo", "integer", "boolean", "datetime"]

KEY_ACTIVE = "Active"
KEY_FAILED = "Failed"
LANGUAGE = 1033  # the labels are English; makers can translate them in the solution

# The AttributeType Dataverse reports for each kind of column this module creates (AttributeTypeCode names).
ATTRIBUTE_TYPES: dict[str, str] = {
    "string": "String",
    "memo": "Memo",
    "integer": "Integer",
    "boolean": "Boolean",
    "datetime": "DateTime",
    "lookup": "Lookup",
}


# ---- what should exist ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnSpec:
    """A column to create: schema name (publisher prefix included), label, kind, and the kind's size limits."""

    schema_name: str
    label: str
    kind: ColumnKind
    description: str = ""
    max_length: int | None = None
    min_value: int | None = None
    max_value: int | None = None

    @property
    def logical_name(self) -> str:
        return self.schema_name.lower()


@dataclass(frozen=True)
class LookupSpec:
    """A lookup column to `target`, created with its one-to-many relationship (`relationship` is its schema name).
    `cascade_delete`: deleting the target row deletes the rows that refer to it (else the link is removed)."""

    schema_name: str
    label: str
    target: str
    target_key: str
    relationship: str
    description: str = ""
    cascade_delete: bool = False

    @property
    def logical_name(self) -> str:
        return self.schema_name.lower()


@dataclass(frozen=True)
class KeySpec:
    """An alternate key: its schema name, label and the logical names of its columns (a lookup counts as one)."""

    schema_name: str
    label: str
    columns: tuple[str, ...]

    @property
    def logical_name(self) -> str:
        return self.schema_name.lower()


@dataclass(frozen=True)
class TableSpec:
    """A table to create, with its primary name column; its other columns, lookups and keys are listed apart."""

    schema_name: str
    label: str
    plural_label: str
    primary_name: ColumnSpec
    description: str = ""
    ownership: Literal["OrganizationOwned", "UserOwned"] = "OrganizationOwned"

    @property
    def logical_name(self) -> str:
        return self.schema_name.lower()


# ---- what exists ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AttributeInfo:
    """A column as the metadata reports it: logical name and AttributeType (`String`, `Lookup`, ...)."""

    logical_name: str
    attribute_type: str = ""


@dataclass(frozen=True)
class KeyInfo:
    """An alternate key as the metadata reports it, with the state of its index."""

    logical_name: str
    columns: tuple[str, ...]
    status: str

    @property
    def active(self) -> bool:
        return self.status == KEY_ACTIVE


@dataclass(frozen=True)
class TableInfo:
    """A table as the metadata reports it; `attributes` and `keys` are None when they were not asked for."""

    logical_name: str
    change_tracking: bool
    attributes: Mapping[str, AttributeInfo] | None = None
    keys: tuple[KeyInfo, ...] | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def key_with(self, columns: Sequence[str]) -> KeyInfo | None:
        """The key made of exactly these columns (in any order), whatever its name."""
        wanted = sorted(columns)
        return next((k for k in self.keys or () if sorted(k.columns) == wanted), None)


# ---- request bodies ------------------------------------------------------------------------------------------------


def label(text: str) -> dict[str, Any]:
    """A `Label` with one English `LocalizedLabel`."""
    return {
        "@odata.type": "Microsoft.Dynamics.CRM.Label",
        "LocalizedLabels": [
            {"@odata.type": "Microsoft.Dynamics.CRM.LocalizedLabel", "Label": text, "LanguageCode": LANGUAGE}
        ],
    }


def _required(level: str = "None") -> dict[str, Any]:
    return {"Value": level, "CanBeChanged": True, "ManagedPropertyLogicalName": "canmodifyrequirementlevelsettings"}


def attribute_body(column: ColumnSpec, *, primary: bool = False) -> dict[str, Any]:
    """The `AttributeMetadata` JSON that creates a column of the given kind."""
    body: dict[str, Any] = {
        "SchemaName": column.schema_name,
        "DisplayName": label(column.label),
        "Description": label(column.description or column.label),
        "RequiredLevel": _required("ApplicationRequired" if primary else "None"),
    }
    if column.kind == "string":
        body |= {
            "@odata.type": "Microsoft.Dynamics.CRM.StringAttributeMetadata",
            "AttributeType": "String",
            "AttributeTypeName": {"Value": "StringType"},
            "MaxLength": column.max_length or 100,
            "FormatName": {"Value": "Text"},
        }
        if primary:
            body["IsPrimaryName"] = True
    elif column.kind == "memo":
        body |= {
            "@odata.type": "Microsoft.Dynamics.CRM.MemoAttributeMetadata",
            "AttributeType": "Memo",
            "AttributeTypeName": {"Value": "MemoType"},
            "Format": "TextArea",
            "MaxLength": column.max_length or 2000,
        }
    elif column.kind == "integer":
        body |= {
            "@odata.type": "Microsoft.Dynamics.CRM.IntegerAttributeMetadata",
            "AttributeType": "Integer",
            "AttributeTypeName": {"Value": "IntegerType"},
            "Format": "None",
            "MinValue": -2147483648 if column.min_value is None else column.min_value,
            "MaxValue": 2147483647 if column.max_value is None else column.max_value,
        }
    elif column.kind == "boolean":
        body |= {
            "@odata.type": "Microsoft.Dynamics.CRM.BooleanAttributeMetadata",
            "AttributeType": "Boolean",
            "AttributeTypeName": {"Value": "BooleanType"},
            "DefaultValue": False,
            "OptionSet": {
                "@odata.type": "Microsoft.Dynamics.CRM.BooleanOptionSetMetadata",
                "OptionSetType": "Boolean",
                "TrueOption": {"Value": 1, "Label": label("Yes")},
                "FalseOption": {"Value": 0, "Label": label("No")},
            },
        }
    elif column.kind == "datetime":
        body |= {
            "@odata.type": "Microsoft.Dynamics.CRM.DateTimeAttributeMetadata",
            "AttributeType": "DateTime",
            "AttributeTypeName": {"Value": "DateTimeType"},
            "Format": "DateAndTime",
            "DateTimeBehavior": {"Value": "UserLocal"},  # stored and returned by the Web API in UTC
        }
    else:  # pragma: no cover (ColumnKind is closed)
        raise ValueError(f"unknown column kind {column.kind!r}")
    if primary and column.kind != "string":
        raise ValueError("a primary name column must be a string column")
    return body


def entity_body(table: TableSpec) -> dict[str, Any]:
    """The `EntityMetadata` JSON that creates a table with its primary name column (and nothing else)."""
    return {
        "@odata.type": "Microsoft.Dynamics.CRM.EntityMetadata",
        "SchemaName": table.schema_name,
        "DisplayName": label(table.label),
        "DisplayCollectionName": label(table.plural_label),
        "Description": label(table.description or table.label),
        "OwnershipType": table.ownership,
        "IsActivity": False,
        "HasActivities": False,
        "HasNotes": False,
        "ChangeTrackingEnabled": True,  # the product's own tables: the sync reads both through change tracking
        "Attributes": [attribute_body(table.primary_name, primary=True)],
    }


def relationship_body(referencing: str, lookup: LookupSpec) -> dict[str, Any]:
    """The `OneToManyRelationshipMetadata` JSON that creates a lookup on `referencing` to `lookup.target`."""
    cascade = "Cascade" if lookup.cascade_delete else "RemoveLink"
    return {
        "@odata.type": "Microsoft.Dynamics.CRM.OneToManyRelationshipMetadata",
        "SchemaName": lookup.relationship,
        "ReferencedEntity": lookup.target,
        "ReferencedAttribute": lookup.target_key,
        "ReferencingEntity": referencing,
        "AssociatedMenuConfiguration": {
            "Behavior": "UseCollectionName",
            "Group": "Details",
            "Label": label(lookup.label),
            "Order": 10000,
        },
        "CascadeConfiguration": {
            "Assign": "NoCascade",
            "Delete": cascade,
            "Merge": "NoCascade",
            "Reparent": "NoCascade",
            "Share": "NoCascade",
            "Unshare": "NoCascade",
        },
        "Lookup": {
            "@odata.type": "Microsoft.Dynamics.CRM.LookupAttributeMetadata",
            "AttributeType": "Lookup",
            "AttributeTypeName": {"Value": "LookupType"},
            "SchemaName": lookup.schema_name,
            "DisplayName": label(lookup.label),
            "Description": label(lookup.description or lookup.label),
            "RequiredLevel": _required("None"),
        },
    }


def key_body(key: KeySpec) -> dict[str, Any]:
    """The `EntityKeyMetadata` JSON that creates an alternate key."""
    return {
        "@odata.type": "Microsoft.Dynamics.CRM.EntityKeyMetadata",
        "SchemaName": key.schema_name,
        "DisplayName": label(key.label),
        "KeyAttributes": list(key.columns),
    }


# ---- the client ----------------------------------------------------------------------------------------------------


def _entity_path(logical_name: str) -> str:
    return f"EntityDefinitions(LogicalName='{check_name(logical_name)}')"


def _key(item: Mapping[str, Any]) -> KeyInfo:
    columns = item.get("KeyAttributes") or []
    if not isinstance(columns, list):
        raise DataverseError("EntityDefinitions answered a key whose KeyAttributes is not a list")
    return KeyInfo(str(item.get("LogicalName") or ""), tuple(str(c) for c in columns), _status(item))


def _status(item: Mapping[str, Any]) -> str:
    """`EntityKeyIndexStatus` as its name; some serialisations give the enum's number instead."""
    status = item.get("EntityKeyIndexStatus")
    names = {0: "Pending", 1: "InProgress", 2: "Active", 3: "Failed"}
    if isinstance(status, int) and not isinstance(status, bool):
        return names.get(status, str(status))
    return str(status or "")


class MetadataClient:
    """Reads and creates table definitions through a `DataverseClient`'s transport.

    `solution`: the unique name of an unmanaged solution the created components are added to (the
    `MSCRM.SolutionUniqueName` header); None adds them to the default solution.
    """

    def __init__(self, client: DataverseClient, *, solution: str | None = None) -> None:
        self.client = client
        self.solution = solution

    def _get(self, path: str) -> Any:
        response = self.client.transport.send("GET", path, headers={"Consistency": "Strong"})
        assert response is not None
        return response.json()

    def _post(self, path: str, body: Mapping[str, Any]) -> None:
        headers = {"MSCRM.SolutionUniqueName": self.solution} if self.solution else None
        self.client.transport.send("POST", path, json=dict(body), headers=headers)

    def table(self, logical_name: str, *, attributes: bool = False, keys: bool = False) -> TableInfo | None:
        """One table's definition (change tracking, and its columns and keys when asked); None when it does not
        exist. One GET; `Consistency: Strong` so that what was just created is seen."""
        options = [("$select", "LogicalName,ChangeTrackingEnabled")]
        expand = []
        if attributes:
            expand.append("Attributes($select=LogicalName,AttributeType)")
        if keys:
            expand.append("Keys($select=LogicalName,KeyAttributes,EntityKeyIndexStatus)")
        if expand:
            options.append(("$expand", ",".join(expand)))
        try:
            body = self._get(_entity_path(logical_name) + "?" + encode_options(options))
        except DataverseNotFound:
            return None
        if not isinstance(body, Mapping):
            raise DataverseError(f"EntityDefinitions answered something other than an object for {logical_name}")
        found_attributes: dict[str, AttributeInfo] | None = None
        if attributes:
            found_attributes = {}
            for item in body.get("Attributes") or []:
                name = str(item.get("LogicalName") or "")
                found_attributes[name] = AttributeInfo(name, str(item.get("AttributeType") or ""))
        found_keys = tuple(_key(item) for item in body.get("Keys") or []) if keys else None
        return TableInfo(
            logical_name=str(body.get("LogicalName") or logical_name),
            change_tracking=bool(body.get("ChangeTrackingEnabled")),
            attributes=found_attributes,
            keys=found_keys,
            raw=body,
        )

    def keys(self, logical_name: str) -> tuple[KeyInfo, ...]:
        """A table's alternate keys with the state of their indexes (one GET); `DataverseNotFound` if no table."""
        options = encode_options([("$select", "LogicalName,KeyAttributes,EntityKeyIndexStatus")])
        body = self._get(f"{_entity_path(logical_name)}/Keys?{options}")
        return tuple(_key(item) for item in body.get("value", []))

    def create_table(self, table: TableSpec) -> None:
        """POST EntityDefinitions: the table with its primary name column."""
        self._post("EntityDefinitions", entity_body(table))

    def create_column(self, table: str, column: ColumnSpec) -> None:
        """POST EntityDefinitions(LogicalName='table')/Attributes: one column (not a lookup)."""
        self._post(f"{_entity_path(table)}/Attributes", attribute_body(column))

    def create_lookup(self, table: str, lookup: LookupSpec) -> None:
        """POST RelationshipDefinitions: the lookup column on `table` with its one-to-many relationship."""
        self._post("RelationshipDefinitions", relationship_body(table, lookup))

    def create_key(self, table: str, key: KeySpec) -> None:
        """POST EntityDefinitions(LogicalName='table')/Keys: the alternate key; Dataverse then builds its index."""
        self._post(f"{_entity_path(table)}/Keys", key_body(key))
