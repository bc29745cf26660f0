"""Decode the body Dataverse POSTs to a webhook into typed, immutable objects.

A webhook step POSTs a serialized `Microsoft.Xrm.Sdk.RemoteExecutionContext` in WCF DataContract JSON: parameter,
attribute and image collections are arrays of `{"key", "value"}` pairs, complex values carry a `"__type": "Name:ns"`
tag and dates are `"\\/Date(ms)\\/"` strings. `decode_context` turns that wire format into a `WebhookEvent` once, at
the edge, so nothing else in the engine handles it, and rejects anything malformed with a `WebhookContextError` whose
message names the JSON path of the problem (`InputParameters[0].value.Attributes[2]: ...`). Messages never contain a
value from the body: attribute values are personal data and error messages end up in logs.

Decisions a caller should know:

- Dates: `/Date(ms)/`, `/Date(ms+hhmm)/` and `/Date(ms-hhmm)/` become aware `datetime`s in UTC. The milliseconds are
  UTC epoch millis; the optional offset only says which local zone the sender was in, so it does not move the instant
  and is dropped. Any string that starts with `/Date(` and ends with `)/` but is not in that shape is rejected (the
  wire format cannot tell a date from text that looks like one).
- Money becomes an exact `decimal.Decimal` (the body is parsed with `parse_float=Decimal`); every other JSON number
  stays what `json.loads` would give (`int` or `float`).
- An `Entity` whose `Id` is missing, null or the empty GUID (a Create before the row exists) has `id=None`.
- Arrays among values: a non-empty array of `{"key", "value"}` objects becomes a dict, an array of OptionSetValues (an
  OptionSetValueCollection, i.e. a multi-select choice) becomes a tuple of ints, any other array a tuple of decoded
  items. A dict with an unknown `__type` (Relationship, AliasedValue, ColumnSet, ...) stays a dict, its members decoded.
- Missing or null collections (InputParameters, images, Attributes, ...) decode to empty dicts, whether or not the body
  was trimmed (`x-ms-dynamics-msg-size-exceeded`); `trimmed` tells the caller to re-read the row by `PrimaryEntityId`.
- `Depth`, `Mode` and `Stage` are required integers; `MessageName` and `PrimaryEntityName` non-empty strings;
  `PrimaryEntityId` a GUID. Other top-level fields may be missing or null; unknown top-level fields are ignored.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from dataverse.errors import WebhookContextError

__all__ = [
    "DEFAULT_MAX_BYTES",
    "SIZE_EXCEEDED_HEADER",
    "Entity",
    "EntityReference",
    "OptionSetValue",
    "WebhookEvent",
    "decode_context",
]

DEFAULT_MAX_BYTES = 4 * 1024 * 1024  # Dataverse trims webhook bodies above ~256 KB; anything far larger is not from it
SIZE_EXCEEDED_HEADER = "x-ms-dynamics-msg-size-exceeded"

_DATE_PREFIX = "/Date("
_DATE_SUFFIX = ")/"
_DATE = re.compile(r"/Date\((-?[0-9]{1,16})(?:[+-][0-9]{4})?\)/")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EMPTY_GUID = uuid.UUID(int=0)
_SAFE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_PAIR_EXPECTED = 'expected an object with "key" and "value"'


@dataclass(frozen=True, slots=True)
class OptionSetValue:
    """A choice (option set) column value: the option's integer value."""

    value: int


@dataclass(frozen=True, slots=True)
class EntityReference:
    """A lookup: the referenced row's table and id, and its primary name when Dataverse sent one."""

    logical_name: str
    id: uuid.UUID
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Entity:
    """A row as the context carries it: only the columns Dataverse put in (for an Update Target, the changed ones)."""

    logical_name: str
    id: uuid.UUID | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    formatted_values: dict[str, str] = field(default_factory=dict)
    key_attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookEvent:
    """One decoded RemoteExecutionContext. `mode` is 0 for a synchronous step, 1 for an asynchronous one."""

    message_name: str
    primary_entity_name: str
    primary_entity_id: uuid.UUID
    secondary_entity_name: str | None = None
    correlation_id: uuid.UUID | None = None
    request_id: uuid.UUID | None = None
    operation_id: uuid.UUID | None = None
    operation_created_on: datetime | None = None
    depth: int
    mode: int
    stage: int
    user_id: uuid.UUID | None = None
    initiating_user_id: uuid.UUID | None = None
    business_unit_id: uuid.UUID | None = None
    organization_id: uuid.UUID | None = None
    organization_name: str | None = None
    owning_extension: EntityReference | None = None
    input_parameters: dict[str, Any] = field(default_factory=dict)
    output_parameters: dict[str, Any] = field(default_factory=dict)
    pre_images: dict[str, Entity] = field(default_factory=dict)
    post_images: dict[str, Entity] = field(default_factory=dict)
    shared_variables: dict[str, Any] = field(default_factory=dict)
    parent: WebhookEvent | None = None
    trimmed: bool = False

    @property
    def target(self) -> Entity | EntityReference | None:
        """The "Target" input parameter: an Entity for Create/Update, an EntityReference for Delete, else None."""
        target = self.input_parameters.get("Target")
        return target if isinstance(target, (Entity, EntityReference)) else None

    @property
    def is_async(self) -> bool:
        """True for an asynchronous step (Mode 1)."""
        return self.mode == 1


def decode_context(
    body: bytes | str, headers: Mapping[str, str] | None = None, *, max_bytes: int = DEFAULT_MAX_BYTES
) -> WebhookEvent:
    """Decode a webhook body into a `WebhookEvent`, or raise `WebhookContextError` naming the path of the problem.

    `headers` are the request's headers (names compared case-insensitively); only `x-ms-dynamics-msg-size-exceeded`
    is read, and its presence (any value) sets `trimmed`. Bodies larger than `max_bytes` are rejected unread.
    """
    trimmed = any(name.lower() == SIZE_EXCEEDED_HEADER for name in (headers or {}))
    document = _load(body, max_bytes)
    if not isinstance(document, dict):
        raise _fail("body", f"expected a JSON object at the top level, got {_kind(document)}")
    try:
        return _event(document, "", trimmed)
    except RecursionError:
        raise _fail("body", "nested too deeply") from None


# --- parsing -----------------------------------------------------------------------------------------------------


def _load(body: bytes | str, max_bytes: int) -> object:
    """The parsed JSON of a body within the size limit; floats as Decimal so Money stays exact."""
    if isinstance(body, str):
        try:
            size = len(body.encode("utf-8"))
        except UnicodeEncodeError:
            raise _fail("body", "not valid UTF-8") from None
        text = body
    else:
        size = len(body)
    if size > max_bytes:
        raise _fail("body", f"larger than the limit of {max_bytes} bytes")
    if not isinstance(body, str):
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise _fail("body", "not valid UTF-8") from None
    text = text.removeprefix("\ufeff")
    try:
        return json.loads(text, parse_float=Decimal, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:  # its msg never quotes the document
        raise _fail("body", f"not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
    except RecursionError:
        raise _fail("body", "not valid JSON (nested too deeply)") from None
    except ValueError:  # NaN/Infinity, or an integer with too many digits
        raise _fail("body", "not valid JSON (a number is not finite or too large)") from None


def _reject_constant(name: str) -> object:
    raise ValueError("non-finite number")


# --- the context -------------------------------------------------------------------------------------------------


def _event(obj: Mapping[str, object], path: str, trimmed: bool) -> WebhookEvent:
    parent: WebhookEvent | None = None
    parent_raw = obj.get("ParentContext")
    if parent_raw is not None:
        parent_path = _child(path, "ParentContext")
        parent = _event(_object(parent_raw, parent_path), parent_path, trimmed)
    secondary = _optional_str(obj, "SecondaryEntityName", path)
    owning = obj.get("OwningExtension")
    return WebhookEvent(
        message_name=_required_str(obj, "MessageName", path),
        primary_entity_name=_required_str(obj, "PrimaryEntityName", path),
        primary_entity_id=_required_guid(obj, "PrimaryEntityId", path),
        secondary_entity_name=None if secondary is None or secondary.lower() == "none" else secondary,
        correlation_id=_optional_guid(obj, "CorrelationId", path),
        request_id=_optional_guid(obj, "RequestId", path),
        operation_id=_optional_guid(obj, "OperationId", path),
        operation_created_on=_optional_date(obj, "OperationCreatedOn", path),
        depth=_required_int(obj, "Depth", path),
        mode=_required_int(obj, "Mode", path),
        stage=_required_int(obj, "Stage", path),
        user_id=_optional_guid(obj, "UserId", path),
        initiating_user_id=_optional_guid(obj, "InitiatingUserId", path),
        business_unit_id=_optional_guid(obj, "BusinessUnitId", path),
        organization_id=_optional_guid(obj, "OrganizationId", path),
        organization_name=_optional_str(obj, "OrganizationName", path),
        owning_extension=None if owning is None else _entity_reference(owning, _child(path, "OwningExtension")),
        input_parameters=_parameters(obj.get("InputParameters"), _child(path, "InputParameters")),
        output_parameters=_parameters(obj.get("OutputParameters"), _child(path, "OutputParameters")),
        pre_images=_images(obj.get("PreEntityImages"), _child(path, "PreEntityImages")),
        post_images=_images(obj.get("PostEntityImages"), _child(path, "PostEntityImages")),
        shared_variables=_parameters(obj.get("SharedVariables"), _child(path, "SharedVariables")),
        parent=parent,
        trimmed=trimmed,
    )


def _pairs(raw: object, path: str) -> list[tuple[str, object, str]]:
    """`(key, raw value, path of the value)` for a key/value array; null or missing is empty."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise _fail(path, f'expected an array of objects with "key" and "value", got {_kind(raw)}')
    pairs = []
    for index, item in enumerate(raw):
        item_path = f"{path}[{index}]"
        if not isinstance(item, dict) or "key" not in item or "value" not in item:
            raise _fail(item_path, _PAIR_EXPECTED)
        key = item["key"]
        if not isinstance(key, str):
            raise _fail(f"{item_path}.key", f"expected a string, got {_kind(key)}")
        pairs.append((key, item["value"], f"{item_path}.value"))
    return pairs


def _parameters(raw: object, path: str) -> dict[str, Any]:
    return {key: _value(value, value_path) for key, value, value_path in _pairs(raw, path)}


def _images(raw: object, path: str) -> dict[str, Entity]:
    return {key: _entity(value, value_path) for key, value, value_path in _pairs(raw, path)}


def _entity(raw: object, path: str) -> Entity:
    obj = _object(raw, path)
    formatted: dict[str, str] = {}
    for key, value, value_path in _pairs(obj.get("FormattedValues"), _child(path, "FormattedValues")):
        if not isinstance(value, str):
            raise _fail(value_path, f"expected a string, got {_kind(value)}")
        formatted[key] = value
    entity_id = _optional_guid(obj, "Id", path)
    return Entity(
        logical_name=_required_str(obj, "LogicalName", path),
        id=None if entity_id == _EMPTY_GUID else entity_id,
        attributes=_parameters(obj.get("Attributes"), _child(path, "Attributes")),
        formatted_values=formatted,
        key_attributes=_parameters(obj.get("KeyAttributes"), _child(path, "KeyAttributes")),
    )


def _entity_reference(raw: object, path: str) -> EntityReference:
    obj = _object(raw, path)
    return EntityReference(
        logical_name=_required_str(obj, "LogicalName", path),
        id=_required_guid(obj, "Id", path),
        name=_optional_str(obj, "Name", path),
    )


# --- values ------------------------------------------------------------------------------------------------------


def _value(raw: object, path: str) -> Any:
    """A parameter or attribute value, decoded by its `__type` tag (recursively)."""
    if isinstance(raw, str):
        return _date_or_text(raw, path)
    if isinstance(raw, Decimal):
        return float(raw)  # only Money keeps the exact decimal; other numbers stay what json.loads gives
    if isinstance(raw, list):
        return _array(raw, path)
    if isinstance(raw, dict):
        return _typed(raw, path)
    return raw  # int, bool, None


def _typed(obj: dict[str, object], path: str) -> Any:
    type_tag = obj.get("__type")
    kind = type_tag.split(":", 1)[0] if isinstance(type_tag, str) else None
    if kind == "Entity":
        return _entity(obj, path)
    if kind == "EntityReference":
        return _entity_reference(obj, path)
    if kind == "OptionSetValue":
        return OptionSetValue(_required_int(obj, "Value", path))
    if kind == "Money":
        return _money(obj, path)
    if kind == "EntityCollection":
        entities = obj.get("Entities")
        entities_path = _child(path, "Entities")
        if not isinstance(entities, list):
            raise _fail(entities_path, f"expected an array of entities, got {_kind(entities)}")
        return tuple(_entity(item, f"{entities_path}[{index}]") for index, item in enumerate(entities))
    return {key: _value(value, _child(path, _segment(key))) for key, value in obj.items()}


def _array(items: list[object], path: str) -> Any:
    if items and all(_looks_like_pair(item) for item in items):
        return _parameters(items, path)
    decoded = tuple(_value(item, f"{path}[{index}]") for index, item in enumerate(items))
    if decoded and all(isinstance(item, OptionSetValue) for item in decoded):
        return tuple(item.value for item in decoded)  # an OptionSetValueCollection (multi-select choice)
    return decoded


def _looks_like_pair(item: object) -> bool:
    return (
        isinstance(item, dict)
        and "key" in item
        and "value" in item
        and isinstance(item["key"], str)
        and set(item) <= {"key", "value", "__type"}
    )


def _money(obj: Mapping[str, object], path: str) -> Decimal:
    value = obj.get("Value")
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        raise _fail(_child(path, "Value"), f"expected a number, got {_kind(value)}")
    return Decimal(value)


def _date_or_text(text: str, path: str) -> str | datetime:
    if not (text.startswith(_DATE_PREFIX) and text.endswith(_DATE_SUFFIX)):
        return text
    return _date(text, path)


def _date(text: str, path: str) -> datetime:
    """The UTC instant of `/Date(ms)/` or `/Date(ms±hhmm)/`; the offset names the sender's zone, not a shift."""
    match = _DATE.fullmatch(text)
    if match is None:
        raise _fail(path, "expected /Date(milliseconds)/ with an optional +hhmm or -hhmm offset")
    try:
        return _EPOCH + timedelta(milliseconds=int(match.group(1)))
    except OverflowError:
        raise _fail(path, "date out of range") from None


# --- fields ------------------------------------------------------------------------------------------------------


def _object(raw: object, path: str) -> dict[str, object]:
    if not isinstance(raw, dict):
        raise _fail(path, f"expected an object, got {_kind(raw)}")
    return raw


def _required_str(obj: Mapping[str, object], name: str, path: str) -> str:
    where = _child(path, name)
    if name not in obj or obj[name] is None:
        raise _fail(where, "missing; expected a non-empty string")
    value = obj[name]
    if not isinstance(value, str):
        raise _fail(where, f"expected a non-empty string, got {_kind(value)}")
    if not value:
        raise _fail(where, "expected a non-empty string, got an empty one")
    return value


def _optional_str(obj: Mapping[str, object], name: str, path: str) -> str | None:
    value = obj.get(name)
    if value is not None and not isinstance(value, str):
        raise _fail(_child(path, name), f"expected a string or null, got {_kind(value)}")
    return value


def _required_guid(obj: Mapping[str, object], name: str, path: str) -> uuid.UUID:
    guid = _optional_guid(obj, name, path)
    if guid is None:
        raise _fail(_child(path, name), "missing; expected a GUID")
    return guid


def _optional_guid(obj: Mapping[str, object], name: str, path: str) -> uuid.UUID | None:
    value = obj.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _fail(_child(path, name), f"expected a GUID string, got {_kind(value)}")
    try:
        return uuid.UUID(value)
    except ValueError:
        raise _fail(_child(path, name), "expected a GUID, got a string that is not one") from None


def _required_int(obj: Mapping[str, object], name: str, path: str) -> int:
    where = _child(path, name)
    if name not in obj:
        raise _fail(where, "missing; expected an integer")
    value = obj[name]
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(where, f"expected an integer, got {_kind(value)}")
    return value


def _optional_date(obj: Mapping[str, object], name: str, path: str) -> datetime | None:
    value = obj.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _fail(_child(path, name), f"expected a /Date(milliseconds)/ string or null, got {_kind(value)}")
    return _date(value, _child(path, name))


# --- messages ----------------------------------------------------------------------------------------------------


def _fail(path: str, problem: str) -> WebhookContextError:
    """The error for a bad part of the body: its path and what was expected, never the value found."""
    return WebhookContextError(f"{path}: {problem}")


def _child(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _segment(key: str) -> str:
    """A member name fit for a message: unusual keys (could carry anything) are not echoed."""
    return key if _SAFE_KEY.fullmatch(key) else "<member>"


def _kind(value: object) -> str:
    """The JSON kind of a parsed value, for "expected X, got Y" (never the value itself)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float, Decimal)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
