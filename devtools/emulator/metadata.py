"""The emulator's table definitions: the subset of the metadata Web API that `abm provision` and the health check use.

Routes (relative to the API root): `GET EntityDefinitions(LogicalName='x')` with `$select` and
`$expand=Attributes($select=…),Keys($select=…)`, `GET …/Attributes`, `GET …/Keys`, `POST EntityDefinitions`,
`POST EntityDefinitions(LogicalName='x')/Attributes|Keys` and `POST RelationshipDefinitions` (one-to-many, with its
lookup). Bodies are checked for what Microsoft Learn lists as required ("Create and update table definitions using
the Web API", "… table relationships …", "Define alternate keys using the Web API"); answers are 204 with an
`OData-EntityId`, as Dataverse gives.

The metadata also gates the data routes, so that provisioning has real work to do: a table that does not exist is a
404, a column that does not exist is a 400, an alternate key that is not Active cannot address a row. By default every
table, column and key of the emulator's schema exists and change tracking is on everywhere, so nothing is gated;
`Metadata(product=False)` starts without the product's own tables (prefix `abm_`), columns and keys, and
`change_tracking={"contact": False}` turns the flag off per table. A key created through the API is Pending for the
first `key_reads_pending` reads of its status, then Active (or Failed, for a table in `failing_keys`).

Storage is the emulator's SQLite schema (schema.py) whatever the metadata says: creating a table or column the
schema has makes it usable; creating one it does not have only records the definition. A definition that contradicts
the schema (another type, another lookup target) is refused, so drift between `abm.admin.product_schema` and the
emulator shows up in tests.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from devtools.emulator.errors import EmulatorError, bad_request, invalid_key
from devtools.emulator.odata import ExpandItem, ODataError, parse_expand, parse_select
from devtools.emulator.schema import TABLES, ColumnType, Lookup, TableDef

__all__ = ["Metadata", "MetadataAnswer"]

NAMESPACE = uuid.UUID("6a1b0c52-7c1e-4f3e-9d7e-0e6d0c0a0b01")
PRODUCT_PREFIX = "abm_"
_CRM = "Microsoft.Dynamics.CRM."

# Emulator column types → Dataverse AttributeType (AttributeTypeCode names).
_ATTRIBUTE_TYPE: dict[ColumnType, str] = {
    "guid": "Uniqueidentifier",
    "string": "String",
    "memo": "Memo",
    "int": "Integer",
    "decimal": "Decimal",
    "money": "Money",
    "bool": "Boolean",
    "datetime": "DateTime",
    "date": "DateTime",
    "choice": "Picklist",
}
# `@odata.type` of a created column → AttributeType, and the emulator column types each may be stored as.
_CREATABLE: dict[str, tuple[str, frozenset[str]]] = {
    "StringAttributeMetadata": ("String", frozenset({"string"})),
    "MemoAttributeMetadata": ("Memo", frozenset({"memo"})),
    "IntegerAttributeMetadata": ("Integer", frozenset({"int"})),
    "BooleanAttributeMetadata": ("Boolean", frozenset({"bool"})),
    "DateTimeAttributeMetadata": ("DateTime", frozenset({"datetime", "date"})),
    "DecimalAttributeMetadata": ("Decimal", frozenset({"decimal"})),
    "MoneyAttributeMetadata": ("Money", frozenset({"money"})),
    "PicklistAttributeMetadata": ("Picklist", frozenset({"choice"})),
}
_ENTITY_PROPERTIES = frozenset(
    {
        "LogicalName",
        "SchemaName",
        "EntitySetName",
        "PrimaryIdAttribute",
        "PrimaryNameAttribute",
        "OwnershipType",
        "ChangeTrackingEnabled",
        "IsCustomEntity",
        "MetadataId",
    }
)
_ATTRIBUTE_PROPERTIES = frozenset({"LogicalName", "SchemaName", "AttributeType", "IsCustomAttribute", "MetadataId"})
_KEY_PROPERTIES = frozenset({"LogicalName", "SchemaName", "KeyAttributes", "EntityKeyIndexStatus", "MetadataId"})
_PATH = re.compile(
    r"^EntityDefinitions(?:\((?:LogicalName='(?P<name>[^']*)'|(?P<id>[0-9a-fA-F-]{36}))\))?(?:/(?P<nav>[A-Za-z]+))?$"
)

# (status, JSON body, headers): the server wraps it in its own answer type.
MetadataAnswer = tuple[int, Any, dict[str, str]]


def _id(*parts: str) -> str:
    return str(uuid.uuid5(NAMESPACE, "/".join(parts)))


@dataclass
class Attribute:
    logical_name: str
    schema_name: str
    attribute_type: str
    metadata_id: str
    custom: bool = False
    max_length: int | None = None  # String and Memo columns: the MaxLength writes are held to

    def as_json(self, select: Collection[str]) -> dict[str, Any]:
        odata_type = {"Uniqueidentifier": "UniqueIdentifier"}.get(self.attribute_type, self.attribute_type)
        full = {
            "@odata.type": f"#{_CRM}{odata_type}AttributeMetadata",
            "LogicalName": self.logical_name,
            "SchemaName": self.schema_name,
            "AttributeType": self.attribute_type,
            "IsCustomAttribute": self.custom,
            "MetadataId": self.metadata_id,
        }
        if self.max_length is not None:
            full["MaxLength"] = self.max_length
        return _selected(full, select)


@dataclass
class Key:
    logical_name: str
    schema_name: str
    columns: tuple[str, ...]
    metadata_id: str
    status: str = "Active"
    reads_left: int = 0
    fails: bool = False

    def observe(self) -> str:
        """The status a read shows; a pending key counts the read and settles after enough of them."""
        shown = self.status
        if self.status == "Pending":
            self.reads_left -= 1
            if self.reads_left <= 0:
                self.status = "Failed" if self.fails else "Active"
        return shown

    def as_json(self, select: Collection[str]) -> dict[str, Any]:
        full: dict[str, Any] = {
            "LogicalName": self.logical_name,
            "SchemaName": self.schema_name,
            "KeyAttributes": list(self.columns),
            "MetadataId": self.metadata_id,
        }
        if not select or "EntityKeyIndexStatus" in select:
            full["EntityKeyIndexStatus"] = self.observe()
        return _selected(full, select)


@dataclass
class Entity:
    logical_name: str
    schema_name: str
    entity_set: str
    primary_id: str
    primary_name: str
    ownership: str
    change_tracking: bool
    metadata_id: str
    custom: bool = False
    attributes: dict[str, Attribute] = field(default_factory=dict)
    keys: dict[str, Key] = field(default_factory=dict)


def _selected(full: dict[str, Any], select: Collection[str]) -> dict[str, Any]:
    if not select:
        return full
    return {k: v for k, v in full.items() if k in select or k in ("MetadataId", "@odata.type")}


def _type_name(body: Mapping[str, Any]) -> str:
    return str(body.get("@odata.type") or "").lstrip("#").removeprefix(_CRM)


def _require(body: Any, what: str, *names: str) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise bad_request(f"The {what} must be a JSON object.")
    missing = [n for n in names if body.get(n) in (None, "")]
    if missing:
        raise bad_request(f"The {what} lacks required properties: {', '.join(missing)}.")
    return body


def _lookup_type(lookup: Lookup) -> str:
    if lookup.name == "ownerid":
        return "Owner"
    return "Customer" if len(lookup.targets) > 1 else "Lookup"


class Metadata:
    """The definitions the emulator reports and enforces; thread-safe (the server is threaded)."""

    def __init__(
        self,
        *,
        product: bool = True,
        change_tracking: bool | Mapping[str, bool] = True,
        key_reads_pending: int = 1,
        failing_keys: Collection[str] = (),
    ) -> None:
        self.lock = threading.RLock()
        self.key_reads_pending = key_reads_pending
        self.failing_keys = frozenset(failing_keys)
        self.entities: dict[str, Entity] = {}
        self._absent: dict[str, frozenset[str]] = {}
        for table in TABLES.values():
            is_product = table.logical_name.startswith(PRODUCT_PREFIX)
            if is_product and not product:
                continue
            if isinstance(change_tracking, bool):
                tracked = change_tracking
            else:
                tracked = change_tracking.get(table.logical_name, True)
            entity = self._entity_from_schema(table, tracked, custom=is_product)
            for name, kind in table.all_columns.items():
                if product or not name.startswith(PRODUCT_PREFIX) or is_product:
                    self._add_attribute(entity, name, _ATTRIBUTE_TYPE[kind])
            for lookup in table.all_lookups:
                self._add_attribute(entity, lookup.name, _lookup_type(lookup))
            for columns in table.alternate_keys:
                name = "_".join(columns) + "_key"
                entity.keys[name] = Key(name, name, columns, _id(table.logical_name, "key", name))
            self.entities[table.logical_name] = entity
            self._refresh(table.logical_name)

    # ---- state ---------------------------------------------------------------------------------------------------

    @staticmethod
    def _entity_from_schema(table: TableDef, tracked: bool, *, custom: bool) -> Entity:
        return Entity(
            logical_name=table.logical_name,
            schema_name=table.logical_name,
            entity_set=table.entity_set,
            primary_id=table.primary_key,
            primary_name=table.primary_name,
            ownership="UserOwned" if table.owned else "OrganizationOwned",
            change_tracking=tracked,
            metadata_id=_id(table.logical_name),
            custom=custom,
        )

    @staticmethod
    def _add_attribute(entity: Entity, name: str, attribute_type: str, schema_name: str | None = None) -> None:
        table = TABLES.get(entity.logical_name)
        entity.attributes[name] = Attribute(
            name,
            schema_name or name,
            attribute_type,
            _id(entity.logical_name, "attribute", name),
            custom=name.startswith(PRODUCT_PREFIX),
            max_length=table.max_length(name) if table is not None else None,
        )

    def _refresh(self, logical_name: str) -> None:
        """Recompute the stored columns of a table that its metadata does not (yet) have."""
        table = TABLES.get(logical_name)
        entity = self.entities.get(logical_name)
        if table is None or entity is None:
            return
        stored = set(table.all_columns) | {lk.name for lk in table.all_lookups}
        self._absent[logical_name] = frozenset(stored - set(entity.attributes))

    def set_change_tracking(self, logical_name: str, enabled: bool) -> None:
        """What an admin does in the maker portal (tests use it to turn the flag on after a report)."""
        with self.lock:
            self.entities[logical_name].change_tracking = enabled

    # ---- gating of the data routes ---------------------------------------------------------------------------------

    def check_table(self, table: TableDef) -> None:
        """404 for a table whose definition does not exist (yet)."""
        if table.logical_name not in self.entities:
            raise EmulatorError(404, "0x8006088a", f"Resource not found for the segment '{table.entity_set}'.")

    def check_columns(self, table: TableDef, names: Iterable[str]) -> None:
        """400 for a body key, `$select` name or `nav@odata.bind` naming a column the table does not have (yet)."""
        absent = self._absent.get(table.logical_name)
        if not absent:
            return
        for name in names:
            column = name
            if name.endswith("@odata.bind"):
                lookup = table.navigation(name[: -len("@odata.bind")])
                column = lookup.name if lookup is not None else name
            elif name.startswith("_") and name.endswith("_value"):
                column = name[1:-6]
            if column in absent:
                raise bad_request(
                    f"Invalid property '{column}' was found in entity 'Microsoft.Dynamics.CRM.{table.logical_name}'."
                )

    def key(self, table: TableDef, columns: Iterable[str]) -> Key | None:
        """The alternate key the table's definition has made of exactly these columns, in any order."""
        wanted = sorted(columns)
        with self.lock:
            entity = self.entities.get(table.logical_name)
            return next((k for k in (entity.keys.values() if entity else ()) if sorted(k.columns) == wanted), None)

    def check_key(self, table: TableDef, columns: Iterable[str]) -> None:
        """400 unless an Active alternate key is made of exactly these columns: a key the definition does not have
        is Learn's "The key in the request URI is not valid …"; one not Active yet says so."""
        wanted = sorted(columns)
        found = self.key(table, wanted)
        if found is not None and found.status == "Active":
            return
        if found is None:
            raise invalid_key(table.logical_name)
        raise bad_request(
            f"The alternate key of {table.logical_name} made of {', '.join(wanted)} is {found.status}, not Active.",
            code="0x80060891",
        )

    # ---- the metadata routes ---------------------------------------------------------------------------------------

    def handles(self, resource: str) -> bool:
        return resource.startswith(("EntityDefinitions", "RelationshipDefinitions"))

    def handle(self, method: str, resource: str, params: Mapping[str, str], data: Any, api_url: str) -> MetadataAnswer:
        """Answer one metadata request (`resource` is the path after the API root, already unquoted)."""
        try:
            with self.lock:
                return self._route(method, resource, params, data, api_url)
        except ODataError as exc:
            raise bad_request(exc.message, exc.code) from None

    def _route(self, method: str, resource: str, params: Mapping[str, str], data: Any, api_url: str) -> MetadataAnswer:
        if resource == "RelationshipDefinitions":
            if method != "POST":
                raise bad_request("The emulator only creates relationships (POST RelationshipDefinitions).")
            return self._create_relationship(data, api_url)
        match = _PATH.match(resource)
        if match is None:
            raise EmulatorError(404, "0x8006088a", f"Resource not found for the segment '{resource}'.")
        name, metadata_id, nav = match.group("name"), match.group("id"), match.group("nav")
        if name is None and metadata_id is None:
            if method == "POST" and nav is None:
                return self._create_entity(data, api_url)
            raise bad_request("The emulator reads one table definition at a time: EntityDefinitions(LogicalName='x').")
        entity = self._find(name, metadata_id)
        if nav is None:
            if method != "GET":
                raise EmulatorError(405, "0x80060888", f"{method} is not supported on a table definition.")
            return 200, self._entity_json(entity, params, api_url), {}
        if nav not in ("Attributes", "Keys"):
            raise EmulatorError(404, "0x8006088a", f"Resource not found for the segment '{nav}'.")
        if method == "GET":
            select = parse_select(params["$select"]) if params.get("$select") else ()
            items = entity.attributes.values() if nav == "Attributes" else entity.keys.values()
            context = f"{api_url}$metadata#EntityDefinitions('{entity.metadata_id}')/{nav}"
            return 200, {"@odata.context": context, "value": [i.as_json(select) for i in items]}, {}
        if method != "POST":
            raise EmulatorError(405, "0x80060888", f"{method} is not supported on {nav}.")
        if nav == "Attributes":
            return self._create_attribute(entity, data, api_url)
        return self._create_key(entity, data, api_url)

    def _find(self, name: str | None, metadata_id: str | None) -> Entity:
        for entity in self.entities.values():
            if entity.logical_name == name or (metadata_id and entity.metadata_id == metadata_id.lower()):
                return entity
        shown = name if name is not None else metadata_id
        raise EmulatorError(404, "0x80040217", f"Could not find entity with name '{shown}'.")

    def _entity_json(self, entity: Entity, params: Mapping[str, str], api_url: str) -> dict[str, Any]:
        select = parse_select(params["$select"]) if params.get("$select") else ()
        for name in select:
            if name not in _ENTITY_PROPERTIES:
                raise bad_request(f"Could not find a property named '{name}' on type '{_CRM}EntityMetadata'.")
        expand: tuple[ExpandItem, ...] = parse_expand(params["$expand"]) if params.get("$expand") else ()
        full: dict[str, Any] = {
            "@odata.context": f"{api_url}$metadata#EntityDefinitions/$entity",
            "LogicalName": entity.logical_name,
            "SchemaName": entity.schema_name,
            "EntitySetName": entity.entity_set,
            "PrimaryIdAttribute": entity.primary_id,
            "PrimaryNameAttribute": entity.primary_name,
            "OwnershipType": entity.ownership,
            "ChangeTrackingEnabled": entity.change_tracking,
            "IsCustomEntity": entity.custom,
            "MetadataId": entity.metadata_id,
        }
        body = {k: v for k, v in full.items() if not select or k in select or k in ("@odata.context", "MetadataId")}
        for item in expand:
            if item.expand or item.ref:
                raise bad_request(f"'{item.navigation}' cannot be expanded further or as references.")
            allowed = {"Attributes": _ATTRIBUTE_PROPERTIES, "Keys": _KEY_PROPERTIES}.get(item.navigation)
            if allowed is None:
                raise bad_request(f"Could not find a navigation property named '{item.navigation}'.")
            unknown = [n for n in item.select if n not in allowed]
            if unknown:
                raise bad_request(f"Could not find a property named '{unknown[0]}' in '{item.navigation}'.")
            if item.navigation == "Attributes":
                body["Attributes"] = [a.as_json(item.select) for a in entity.attributes.values()]
            else:
                body["Keys"] = [k.as_json(item.select) for k in entity.keys.values()]
        return body

    # ---- creation ------------------------------------------------------------------------------------------------

    def _create_entity(self, data: Any, api_url: str) -> MetadataAnswer:
        body = _require(
            data,
            "table definition",
            "SchemaName",
            "DisplayName",
            "DisplayCollectionName",
            "OwnershipType",
            "Attributes",
        )
        for flag in ("IsActivity", "HasActivities", "HasNotes"):
            if not isinstance(body.get(flag), bool):
                raise bad_request(f"The table definition must say {flag} (true or false).")
        schema_name = str(body["SchemaName"])
        logical = schema_name.lower()
        if logical in self.entities:
            raise bad_request(f"A table with the name {logical} already exists.")
        attributes = body["Attributes"]
        primary = [a for a in attributes if isinstance(a, Mapping) and a.get("IsPrimaryName") is True]
        if not isinstance(attributes, list) or len(primary) != 1:
            raise bad_request("The table definition must have exactly one primary name attribute in 'Attributes'.")
        if len(attributes) != 1:
            raise bad_request("Create the table with its primary name attribute only; add other columns afterwards.")
        name_body = _require(
            primary[0], "primary name attribute", "SchemaName", "DisplayName", "RequiredLevel", "MaxLength"
        )
        if _type_name(name_body) != "StringAttributeMetadata":
            raise bad_request("The primary name attribute must be a StringAttributeMetadata.")
        ownership = str(body["OwnershipType"])
        if ownership not in ("UserOwned", "OrganizationOwned"):
            raise bad_request(f"OwnershipType {ownership} is not one the emulator supports.")
        primary_name = str(name_body["SchemaName"]).lower()
        table = TABLES.get(logical)
        if table is not None:
            stored = "UserOwned" if table.owned else "OrganizationOwned"
            if ownership != stored or primary_name != table.primary_name:
                raise bad_request(
                    f"The emulator stores {logical} as {stored} with primary name {table.primary_name}; "
                    f"the definition asks {ownership} with {primary_name}."
                )
            entity = self._entity_from_schema(table, False, custom=True)
            entity.schema_name = schema_name
            stateful = ("statecode", "statuscode") if table.stateful else ()
            for name in (table.primary_key, "createdon", "modifiedon", "versionnumber", *stateful):
                self._add_attribute(entity, name, _ATTRIBUTE_TYPE[table.all_columns[name]])
            for lookup in table.all_lookups:
                if lookup.name in ("ownerid", "createdby"):
                    self._add_attribute(entity, lookup.name, _lookup_type(lookup))
        else:
            entity = Entity(
                logical_name=logical,
                schema_name=schema_name,
                entity_set=f"{logical}s",
                primary_id=f"{logical}id",
                primary_name=primary_name,
                ownership=ownership,
                change_tracking=bool(data.get("ChangeTrackingEnabled", False)),
                metadata_id=_id(logical),
                custom=True,
            )
            self._add_attribute(entity, entity.primary_id, "Uniqueidentifier")
        entity.change_tracking = body.get("ChangeTrackingEnabled") is True
        self._add_attribute(entity, primary_name, "String", str(name_body["SchemaName"]))
        self.entities[logical] = entity
        self._refresh(logical)
        return 204, None, {"OData-EntityId": f"{api_url}EntityDefinitions({entity.metadata_id})"}

    def _create_attribute(self, entity: Entity, data: Any, api_url: str) -> MetadataAnswer:
        body = _require(data, "column definition", "@odata.type", "SchemaName", "DisplayName", "RequiredLevel")
        kind = _type_name(body)
        if kind == "LookupAttributeMetadata":
            raise bad_request("Create a lookup column with its relationship: POST RelationshipDefinitions.")
        if kind not in _CREATABLE:
            raise bad_request(f"The emulator cannot create a column of type {kind or 'unknown'}.")
        attribute_type, stored_as = _CREATABLE[kind]
        if kind in ("StringAttributeMetadata", "MemoAttributeMetadata") and not isinstance(body.get("MaxLength"), int):
            raise bad_request(f"A {kind} needs MaxLength.")
        if kind == "BooleanAttributeMetadata":
            options = body.get("OptionSet")
            if not isinstance(options, Mapping) or not options.get("TrueOption") or not options.get("FalseOption"):
                raise bad_request("A BooleanAttributeMetadata needs an OptionSet with TrueOption and FalseOption.")
        logical = str(body["SchemaName"]).lower()
        if logical in entity.attributes:
            raise bad_request(f"A column named {logical} already exists on {entity.logical_name}.")
        table = TABLES.get(entity.logical_name)
        stored = table.all_columns.get(logical) if table is not None else None
        if stored is not None and stored not in stored_as:
            raise bad_request(f"The emulator stores {entity.logical_name}.{logical} as {stored}, not {attribute_type}.")
        self._add_attribute(entity, logical, attribute_type, str(body["SchemaName"]))
        self._refresh(entity.logical_name)
        attribute = entity.attributes[logical]
        location = f"{api_url}EntityDefinitions({entity.metadata_id})/Attributes({attribute.metadata_id})"
        return 204, None, {"OData-EntityId": location}

    def _create_relationship(self, data: Any, api_url: str) -> MetadataAnswer:
        body = _require(
            data,
            "relationship definition",
            "SchemaName",
            "ReferencedEntity",
            "ReferencedAttribute",
            "ReferencingEntity",
            "CascadeConfiguration",
            "Lookup",
        )
        if _type_name(body) != "OneToManyRelationshipMetadata":
            raise bad_request("The emulator only creates OneToManyRelationshipMetadata relationships.")
        lookup = _require(body["Lookup"], "lookup of the relationship", "SchemaName", "DisplayName", "RequiredLevel")
        if _type_name(lookup) != "LookupAttributeMetadata":
            raise bad_request("The relationship's Lookup must be a LookupAttributeMetadata.")
        referenced = self._find(str(body["ReferencedEntity"]), None)
        referencing = self._find(str(body["ReferencingEntity"]), None)
        if body["ReferencedAttribute"] != referenced.primary_id:
            raise bad_request(f"ReferencedAttribute must be {referenced.primary_id}, the primary key.")
        logical = str(lookup["SchemaName"]).lower()
        if logical in referencing.attributes:
            raise bad_request(f"A column named {logical} already exists on {referencing.logical_name}.")
        table = TABLES.get(referencing.logical_name)
        stored = table.lookup(logical) if table is not None else None
        if stored is not None and stored.targets != (referenced.logical_name,):
            raise bad_request(
                f"The emulator stores {referencing.logical_name}.{logical} as a lookup to {', '.join(stored.targets)}."
            )
        if table is not None and stored is None and logical in table.all_columns:
            raise bad_request(f"The emulator stores {referencing.logical_name}.{logical} as a plain column.")
        self._add_attribute(referencing, logical, "Lookup", str(lookup["SchemaName"]))
        self._refresh(referencing.logical_name)
        return 204, None, {"OData-EntityId": f"{api_url}RelationshipDefinitions({_id('relationship', logical)})"}

    def _create_key(self, entity: Entity, data: Any, api_url: str) -> MetadataAnswer:
        body = _require(data, "key definition", "SchemaName", "DisplayName", "KeyAttributes")
        columns = body["KeyAttributes"]
        if not isinstance(columns, list) or not columns or not all(isinstance(c, str) for c in columns):
            raise bad_request("KeyAttributes must be a non-empty list of column logical names.")
        missing = [c for c in columns if c not in entity.attributes]
        if missing:
            raise bad_request(f"The key's columns do not exist on {entity.logical_name}: {', '.join(missing)}.")
        logical = str(body["SchemaName"]).lower()
        if logical in entity.keys or any(sorted(k.columns) == sorted(columns) for k in entity.keys.values()):
            raise bad_request(f"{entity.logical_name} already has a key {logical} or one made of these columns.")
        key = Key(
            logical,
            str(body["SchemaName"]),
            tuple(columns),
            _id(entity.logical_name, "key", logical),
            status="Pending",
            reads_left=self.key_reads_pending,
            fails=entity.logical_name in self.failing_keys,
        )
        if self.key_reads_pending <= 0:
            key.status = "Failed" if key.fails else "Active"
        entity.keys[logical] = key
        location = f"{api_url}EntityDefinitions({entity.metadata_id})/Keys({key.metadata_id})"
        return 204, None, {"OData-EntityId": location}
