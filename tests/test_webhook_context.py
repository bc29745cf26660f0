"""Webhook bodies: Dataverse's RemoteExecutionContext JSON decoded field by field, and every malformed body refused."""

from __future__ import annotations

import json
import traceback
import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from dataverse.errors import DataverseError, WebhookContextError
from dataverse.webhook import (
    DEFAULT_MAX_BYTES,
    Entity,
    EntityReference,
    OptionSetValue,
    WebhookEvent,
    decode_context,
)

CONTACT_ID = "6d81597f-0f9f-e711-8122-000d3aa2331c"
USER_ID = "75c2dd85-e89e-e711-8122-000d3aa2331c"
CONTRACTS = "http:\\/\\/schemas.microsoft.com\\/xrm\\/2011\\/Contracts"  # as the JSON text spells it

# The reference's example (section 9.2): an asynchronous PostOperation Update step on contact, exactly as Dataverse
# serializes it (`\/` escapes included), with a real ParentContext: the synchronous main operation, Stage 30.
REALISTIC = r"""{"BusinessUnitId":"e2b9dd85-e89e-e711-8122-000d3aa2331c",
 "CorrelationId":"b374239d-4233-41a9-8b17-a86cb4f737b5",
 "Depth":1,"InitiatingUserId":"75c2dd85-e89e-e711-8122-000d3aa2331c",
 "InputParameters":[{"key":"Target","value":{"__type":"Entity:http:\/\/schemas.microsoft.com\/xrm\/2011\/Contracts",
   "Attributes":[{"key":"firstname","value":"James"},{"key":"contactid","value":"6d81597f-0f9f-e711-8122-000d3aa2331c"},
     {"key":"fullname","value":"James Glynn (sample)"},{"key":"modifiedon","value":"\/Date(1506384247000)\/"},
     {"key":"modifiedby","value":{"__type":"EntityReference:http:\/\/schemas.microsoft.com\/xrm\/2011\/Contracts",
       "Id":"75c2dd85-e89e-e711-8122-000d3aa2331c","KeyAttributes":[],"LogicalName":"systemuser","Name":null,"RowVersion":null}}],
   "EntityState":null,"FormattedValues":[],"Id":"6d81597f-0f9f-e711-8122-000d3aa2331c","KeyAttributes":[],
   "LogicalName":"contact","RelatedEntities":[],"RowVersion":null}}],
 "IsExecutingOffline":false,"IsInTransaction":false,"IsOfflinePlayback":false,"IsolationMode":1,
 "MessageName":"Update","Mode":1,"OperationCreatedOn":"\/Date(1506409448000-0700)\/",
 "OperationId":"4af10637-4ea2-e711-8122-000d3aa2331c","OrganizationId":"4ef5b371-e89e-e711-8122-000d3aa2331c",
 "OrganizationName":"OrgName","OutputParameters":[],
 "OwningExtension":{"Id":"75417616-4ea2-e711-8122-000d3aa2331c","KeyAttributes":[],"LogicalName":"sdkmessageprocessingstep","Name":null,"RowVersion":null},
 "ParentContext":{"BusinessUnitId":"e2b9dd85-e89e-e711-8122-000d3aa2331c","CorrelationId":"b374239d-4233-41a9-8b17-a86cb4f737b5",
   "Depth":1,"InitiatingUserId":"75c2dd85-e89e-e711-8122-000d3aa2331c",
   "InputParameters":[{"key":"Target","value":{"__type":"Entity:http:\/\/schemas.microsoft.com\/xrm\/2011\/Contracts",
     "Attributes":[{"key":"firstname","value":"James"},{"key":"contactid","value":"6d81597f-0f9f-e711-8122-000d3aa2331c"}],
     "EntityState":null,"FormattedValues":[],"Id":"6d81597f-0f9f-e711-8122-000d3aa2331c","KeyAttributes":[],
     "LogicalName":"contact","RelatedEntities":[],"RowVersion":null}},
     {"key":"SuppressDuplicateDetection","value":false}],
   "IsExecutingOffline":false,"IsInTransaction":true,"IsOfflinePlayback":false,"IsolationMode":1,
   "MessageName":"Update","Mode":0,"OperationCreatedOn":"\/Date(1506409447000-0700)\/",
   "OperationId":"00000000-0000-0000-0000-000000000000","OrganizationId":"4ef5b371-e89e-e711-8122-000d3aa2331c",
   "OrganizationName":"OrgName","OutputParameters":[],"OwningExtension":null,"ParentContext":null,
   "PostEntityImages":[],"PreEntityImages":[],"PrimaryEntityId":"6d81597f-0f9f-e711-8122-000d3aa2331c",
   "PrimaryEntityName":"contact","RequestId":"0b9e3b8a-2cbb-4d3a-9a4c-3e3f1f0a8c11","SecondaryEntityName":"none",
   "SharedVariables":[],"Stage":30,"UserId":"75c2dd85-e89e-e711-8122-000d3aa2331c"},
 "PostEntityImages":[{"key":"AsynchronousStepPrimaryName",
   "value":{"Attributes":[{"key":"fullname","value":"James Glynn (sample)"},
   {"key":"contactid","value":"6d81597f-0f9f-e711-8122-000d3aa2331c"}],"Id":"6d81597f-0f9f-e711-8122-000d3aa2331c","LogicalName":"contact"}}],
 "PreEntityImages":[],"PrimaryEntityId":"6d81597f-0f9f-e711-8122-000d3aa2331c","PrimaryEntityName":"contact",
 "RequestId":null,"SecondaryEntityName":"none","SharedVariables":[],"Stage":40,"UserId":"75c2dd85-e89e-e711-8122-000d3aa2331c"}"""


def context(**fields: Any) -> dict[str, Any]:
    """A minimal valid context (an Update on contact) with `fields` added or replaced."""
    base: dict[str, Any] = {
        "MessageName": "Update",
        "PrimaryEntityName": "contact",
        "PrimaryEntityId": CONTACT_ID,
        "Depth": 1,
        "Mode": 0,
        "Stage": 40,
    }
    base.update(fields)
    return base


def with_target_attributes(attributes_json: str, **fields: Any) -> str:
    """A body whose Target entity's `Attributes` is the given raw JSON text (so numbers keep their exact spelling)."""
    target = {"__type": "Entity:http://schemas.microsoft.com/xrm/2011/Contracts", "LogicalName": "contact"}
    target |= {"Id": CONTACT_ID, "Attributes": "@ATTRIBUTES@"}
    doc = context(InputParameters=[{"key": "Target", "value": target}], **fields)
    return json.dumps(doc).replace('"@ATTRIBUTES@"', attributes_json)


def target_attributes(attributes_json: str) -> dict[str, Any]:
    target = decode_context(with_target_attributes(attributes_json)).target
    assert isinstance(target, Entity)
    return target.attributes


@pytest.fixture(scope="module")
def realistic() -> WebhookEvent:
    return decode_context(REALISTIC.encode("utf-8"), {"x-ms-dynamics-entity-name": "contact"})


# --- the realistic example, field by field ------------------------------------------------------------------------


def test_the_realistic_example_keeps_escaped_slashes_as_dataverse_sends_them() -> None:
    assert r"\/Date(1506384247000)\/" in REALISTIC
    assert CONTRACTS in REALISTIC


def test_every_top_level_field_of_the_realistic_example_is_decoded(realistic: WebhookEvent) -> None:
    assert realistic.message_name == "Update"
    assert realistic.primary_entity_name == "contact"
    assert realistic.primary_entity_id == uuid.UUID(CONTACT_ID)
    assert realistic.secondary_entity_name is None
    assert realistic.correlation_id == uuid.UUID("b374239d-4233-41a9-8b17-a86cb4f737b5")
    assert realistic.request_id is None
    assert realistic.operation_id == uuid.UUID("4af10637-4ea2-e711-8122-000d3aa2331c")
    assert realistic.depth == 1
    assert realistic.mode == 1
    assert realistic.stage == 40
    assert realistic.user_id == uuid.UUID(USER_ID)
    assert realistic.initiating_user_id == uuid.UUID(USER_ID)
    assert realistic.business_unit_id == uuid.UUID("e2b9dd85-e89e-e711-8122-000d3aa2331c")
    assert realistic.organization_id == uuid.UUID("4ef5b371-e89e-e711-8122-000d3aa2331c")
    assert realistic.organization_name == "OrgName"
    assert realistic.output_parameters == {}
    assert realistic.pre_images == {}
    assert realistic.shared_variables == {}
    assert set(realistic.input_parameters) == {"Target"}
    assert realistic.trimmed is False


def test_mode_one_means_the_step_is_asynchronous(realistic: WebhookEvent) -> None:
    assert realistic.is_async is True
    assert decode_context(json.dumps(context(Mode=0))).is_async is False


def test_the_update_target_is_an_entity_with_only_the_sent_columns(realistic: WebhookEvent) -> None:
    target = realistic.target
    assert isinstance(target, Entity)
    assert target is realistic.input_parameters["Target"]
    assert target.logical_name == "contact"
    assert target.id == uuid.UUID(CONTACT_ID)
    assert list(target.attributes) == ["firstname", "contactid", "fullname", "modifiedon", "modifiedby"]
    assert target.formatted_values == {}
    assert target.key_attributes == {}


def test_target_attributes_decode_to_text_guid_string_utc_datetime_and_reference(realistic: WebhookEvent) -> None:
    target = realistic.target
    assert isinstance(target, Entity)
    attributes = target.attributes
    assert attributes["firstname"] == "James"
    assert attributes["fullname"] == "James Glynn (sample)"
    assert attributes["contactid"] == CONTACT_ID  # a GUID inside attributes stays the string Dataverse sent
    assert isinstance(attributes["contactid"], str)
    # 1506384247000 ms after the epoch is 2017-09-26T00:04:07Z (not 2017-09-25T23:50:47Z, which is 1506383447000)
    assert attributes["modifiedon"] == datetime(2017, 9, 26, 0, 4, 7, tzinfo=UTC)
    assert attributes["modifiedon"].utcoffset() == timedelta(0)
    assert attributes["modifiedby"] == EntityReference(logical_name="systemuser", id=uuid.UUID(USER_ID), name=None)


def test_operation_created_on_is_the_utc_instant_and_ignores_the_minus_seven_hour_zone(realistic: WebhookEvent) -> None:
    # 1506409448000 ms is 2017-09-26T07:04:08Z; the -0700 only says the server's zone, it does not shift the instant
    assert realistic.operation_created_on == datetime(2017, 9, 26, 7, 4, 8, tzinfo=UTC)
    assert realistic.operation_created_on is not None
    assert realistic.operation_created_on.tzinfo is UTC
    local = realistic.operation_created_on.astimezone(timezone(timedelta(hours=-7)))
    assert (local.hour, local.minute) == (0, 4)


def test_the_post_image_is_keyed_by_its_alias_and_decoded_without_a_type_tag(realistic: WebhookEvent) -> None:
    assert realistic.post_images == {
        "AsynchronousStepPrimaryName": Entity(
            logical_name="contact",
            id=uuid.UUID(CONTACT_ID),
            attributes={"fullname": "James Glynn (sample)", "contactid": CONTACT_ID},
        )
    }


def test_owning_extension_is_a_reference_to_the_registered_step(realistic: WebhookEvent) -> None:
    assert realistic.owning_extension == EntityReference(
        logical_name="sdkmessageprocessingstep", id=uuid.UUID("75417616-4ea2-e711-8122-000d3aa2331c"), name=None
    )


def test_the_parent_context_is_the_synchronous_main_operation_at_stage_30(realistic: WebhookEvent) -> None:
    parent = realistic.parent
    assert parent is not None
    assert (parent.message_name, parent.primary_entity_name, parent.stage, parent.mode) == ("Update", "contact", 30, 0)
    assert parent.primary_entity_id == uuid.UUID(CONTACT_ID)
    assert parent.request_id == uuid.UUID("0b9e3b8a-2cbb-4d3a-9a4c-3e3f1f0a8c11")
    assert parent.operation_id == uuid.UUID(int=0)
    assert parent.operation_created_on == datetime(2017, 9, 26, 7, 4, 7, tzinfo=UTC)
    assert parent.owning_extension is None
    assert parent.parent is None
    assert parent.input_parameters["SuppressDuplicateDetection"] is False
    assert isinstance(parent.target, Entity)
    assert parent.target.attributes == {"firstname": "James", "contactid": CONTACT_ID}


def test_decoded_objects_are_frozen(realistic: WebhookEvent) -> None:
    with pytest.raises(AttributeError):
        realistic.depth = 2  # type: ignore[misc]
    assert realistic.owning_extension is not None
    with pytest.raises(AttributeError):
        realistic.owning_extension.name = "x"  # type: ignore[misc]


# --- value types ----------------------------------------------------------------------------------------------------


def test_an_option_set_value_becomes_an_option_set_value() -> None:
    attributes = target_attributes(
        f'[{{"key":"statuscode","value":{{"__type":"OptionSetValue:{CONTRACTS}","Value":3}}}}]'
    )
    assert attributes == {"statuscode": OptionSetValue(3)}


def test_money_becomes_an_exact_decimal() -> None:
    attributes = target_attributes(
        f'[{{"key":"revenue","value":{{"__type":"Money:{CONTRACTS}","Value":1234.56}}}},'
        f'{{"key":"budget","value":{{"__type":"Money:{CONTRACTS}","Value":922337203685477.5807}}}},'
        f'{{"key":"zero","value":{{"__type":"Money:{CONTRACTS}","Value":0}}}}]'
    )
    assert attributes["revenue"] == Decimal("1234.56")
    assert str(attributes["revenue"]) == "1234.56"
    assert attributes["budget"] == Decimal("922337203685477.5807")
    assert attributes["zero"] == Decimal(0)
    assert all(isinstance(value, Decimal) for value in attributes.values())


def test_plain_numbers_booleans_and_null_stay_as_json_gives_them() -> None:
    attributes = target_attributes(
        '[{"key":"numberofemployees","value":250},{"key":"exchangerate","value":1.5},'
        '{"key":"donotemail","value":true},{"key":"description","value":null}]'
    )
    assert attributes == {"numberofemployees": 250, "exchangerate": 1.5, "donotemail": True, "description": None}
    assert type(attributes["exchangerate"]) is float


def test_an_entity_collection_becomes_a_tuple_of_entities() -> None:
    party = (
        f'{{"__type":"Entity:{CONTRACTS}","LogicalName":"activityparty","Id":null,'
        f'"Attributes":[{{"key":"partyid","value":{{"__type":"EntityReference:{CONTRACTS}",'
        f'"Id":"{USER_ID}","LogicalName":"systemuser","Name":"Sam"}}}}]}}'
    )
    attributes = target_attributes(
        f'[{{"key":"to","value":{{"__type":"EntityCollection:{CONTRACTS}","EntityName":"activityparty",'
        f'"Entities":[{party},{party}],"MoreRecords":false,"PagingCookie":null,"TotalRecordCount":-1}}}}]'
    )
    expected = Entity(
        logical_name="activityparty",
        id=None,
        attributes={"partyid": EntityReference(logical_name="systemuser", id=uuid.UUID(USER_ID), name="Sam")},
    )
    assert attributes["to"] == (expected, expected)


def test_an_option_set_value_collection_becomes_a_tuple_of_ints() -> None:
    attributes = target_attributes(
        f'[{{"key":"new_interests","value":[{{"__type":"OptionSetValue:{CONTRACTS}","Value":100000000}},'
        f'{{"__type":"OptionSetValue:{CONTRACTS}","Value":100000002}}]}}]'
    )
    assert attributes["new_interests"] == (100000000, 100000002)


def test_formatted_values_and_key_attributes_are_decoded_to_dicts() -> None:
    body = json.dumps(
        context(
            PreEntityImages=[
                {
                    "key": "pre",
                    "value": {
                        "LogicalName": "contact",
                        "Id": CONTACT_ID,
                        "Attributes": [{"key": "statuscode", "value": {"__type": "OptionSetValue:x", "Value": 1}}],
                        "FormattedValues": [{"key": "statuscode", "value": "Active"}],
                        "KeyAttributes": [{"key": "new_externalid", "value": "ABC-123"}],
                    },
                }
            ]
        )
    )
    image = decode_context(body).pre_images["pre"]
    assert image.attributes == {"statuscode": OptionSetValue(1)}
    assert image.formatted_values == {"statuscode": "Active"}
    assert image.key_attributes == {"new_externalid": "ABC-123"}


def test_a_date_with_a_plus_offset_is_the_same_utc_instant() -> None:
    attributes = target_attributes(
        '[{"key":"a","value":"\\/Date(1506384247000+0200)\\/"},{"key":"b","value":"\\/Date(1506384247000)\\/"},'
        '{"key":"c","value":"\\/Date(-1000)\\/"}]'
    )
    assert attributes["a"] == attributes["b"] == datetime(2017, 9, 26, 0, 4, 7, tzinfo=UTC)
    assert attributes["c"] == datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC)


def test_a_value_with_an_unknown_type_tag_stays_a_dict() -> None:
    body = json.dumps(
        context(
            MessageName="Associate",
            InputParameters=[
                {
                    "key": "Relationship",
                    "value": {"__type": "Relationship:x", "PrimaryEntityRole": None, "SchemaName": "s"},
                }
            ],
        )
    )
    event = decode_context(body)
    assert event.input_parameters["Relationship"] == {
        "__type": "Relationship:x",
        "PrimaryEntityRole": None,
        "SchemaName": "s",
    }
    assert event.target is None


def test_a_delete_target_is_an_entity_reference() -> None:
    body = json.dumps(
        context(
            MessageName="Delete",
            Stage=20,
            InputParameters=[
                {
                    "key": "Target",
                    "value": {
                        "__type": "EntityReference:http://schemas.microsoft.com/xrm/2011/Contracts",
                        "Id": CONTACT_ID,
                        "KeyAttributes": [],
                        "LogicalName": "contact",
                        "Name": None,
                        "RowVersion": None,
                    },
                }
            ],
        )
    )
    assert decode_context(body).target == EntityReference(logical_name="contact", id=uuid.UUID(CONTACT_ID), name=None)


def test_a_create_carries_the_new_id_in_output_parameters_and_a_pre_operation_target_has_no_id() -> None:
    new_id = "1f2e3d4c-5b6a-4978-8a9b-0c1d2e3f4a5b"
    body = json.dumps(
        context(
            MessageName="Create",
            PrimaryEntityId=new_id,
            InputParameters=[
                {
                    "key": "Target",
                    "value": {
                        "__type": "Entity:http://schemas.microsoft.com/xrm/2011/Contracts",
                        "LogicalName": "lead",
                        "Id": "00000000-0000-0000-0000-000000000000",
                        "Attributes": [{"key": "subject", "value": "Webinar"}],
                    },
                }
            ],
            OutputParameters=[{"key": "id", "value": new_id}],
        )
    )
    event = decode_context(body)
    assert event.output_parameters == {"id": new_id}
    assert isinstance(event.target, Entity)
    assert event.target.id is None
    assert event.target.attributes == {"subject": "Webinar"}


def test_a_create_without_a_target_is_accepted_with_empty_parameters() -> None:
    event = decode_context(json.dumps(context(MessageName="Create")))
    assert event.input_parameters == {}
    assert event.target is None
    assert event.trimmed is False


def test_a_secondary_entity_name_other_than_none_is_kept() -> None:
    event = decode_context(json.dumps(context(SecondaryEntityName="account")))
    assert event.secondary_entity_name == "account"


# --- trimmed payloads -----------------------------------------------------------------------------------------------


def test_the_size_exceeded_header_marks_a_payload_without_parameters_or_images_as_trimmed() -> None:
    body = json.dumps(context(Mode=1, CorrelationId="b374239d-4233-41a9-8b17-a86cb4f737b5"))
    event = decode_context(body, {"X-MS-Dynamics-Msg-Size-Exceeded": ""})
    assert event.trimmed is True
    assert (event.input_parameters, event.pre_images, event.post_images, event.parent) == ({}, {}, {}, None)
    assert event.primary_entity_id == uuid.UUID(CONTACT_ID)
    assert event.correlation_id == uuid.UUID("b374239d-4233-41a9-8b17-a86cb4f737b5")


def test_other_headers_do_not_mark_a_payload_as_trimmed() -> None:
    event = decode_context(json.dumps(context()), {"x-ms-dynamics-request-name": "Update"})
    assert event.trimmed is False


# --- rejections -----------------------------------------------------------------------------------------------------


def _target_body(attributes: Any) -> str:
    return json.dumps(
        context(
            InputParameters=[{"key": "Target", "value": {"__type": "Entity:x", "LogicalName": "contact", **attributes}}]
        )
    )


MALFORMED = [
    pytest.param(b'{"MessageName": "Update",', {}, "body: not valid JSON", id="not-json"),
    pytest.param(b"\xff\xfe{}", {}, "body: not valid UTF-8", id="not-utf8"),
    pytest.param(b"[1, 2]", {}, "body: expected a JSON object at the top level, got an array", id="json-array"),
    pytest.param(json.dumps({"Depth": 1}), {}, "MessageName: missing", id="missing-message-name"),
    pytest.param(json.dumps(context(MessageName="")), {}, "MessageName: expected a non-empty string", id="empty-name"),
    pytest.param(
        json.dumps(context(PrimaryEntityId="not-a-guid")), {}, "PrimaryEntityId: expected a GUID", id="bad-id"
    ),
    pytest.param(json.dumps(context(PrimaryEntityId=None)), {}, "PrimaryEntityId: missing", id="null-id"),
    pytest.param(json.dumps(context(UserId=12)), {}, "UserId: expected a GUID string, got a number", id="user-id"),
    pytest.param(json.dumps(context(Depth="1")), {}, "Depth: expected an integer, got a string", id="depth-string"),
    pytest.param(json.dumps(context(Mode=True)), {}, "Mode: expected an integer, got a boolean", id="mode-bool"),
    pytest.param(
        _target_body({"Attributes": {"firstname": "x"}}),
        {},
        "InputParameters[0].value.Attributes: expected an array",
        id="attributes-not-array",
    ),
    pytest.param(
        _target_body({"Attributes": [{"key": "firstname", "value": "x"}, {"value": "y"}]}),
        {},
        'InputParameters[0].value.Attributes[1]: expected an object with "key" and "value"',
        id="attribute-without-key",
    ),
    pytest.param(
        _target_body({"Attributes": [{"key": "modifiedon", "value": "/Date(abc)/"}]}),
        {},
        "InputParameters[0].value.Attributes[0].value: expected /Date(milliseconds)/",
        id="bad-date",
    ),
    pytest.param(
        json.dumps(context(OperationCreatedOn="2017-09-26T07:04:08Z")),
        {},
        "OperationCreatedOn: expected /Date(milliseconds)/",
        id="iso-operation-date",
    ),
    pytest.param(
        json.dumps(context(InputParameters={"Target": None})),
        {},
        "InputParameters: expected an array",
        id="parameters-object",
    ),
    pytest.param(
        json.dumps(context(PostEntityImages=[{"key": "img", "value": {"Id": CONTACT_ID}}])),
        {},
        "PostEntityImages[0].value.LogicalName: missing",
        id="entity-without-logical-name",
    ),
    pytest.param(
        json.dumps(context(OwningExtension={"LogicalName": "sdkmessageprocessingstep"})),
        {},
        "OwningExtension.Id: missing; expected a GUID",
        id="reference-without-id",
    ),
    pytest.param(
        _target_body(
            {
                "Attributes": [
                    {
                        "key": "parentcustomerid",
                        "value": {"__type": "EntityReference:x", "LogicalName": "account", "Id": "1"},
                    }
                ]
            }
        ),
        {},
        "InputParameters[0].value.Attributes[0].value.Id: expected a GUID",
        id="reference-bad-id",
    ),
    pytest.param(
        _target_body({"Attributes": [{"key": "revenue", "value": {"__type": "Money:x", "Value": "12"}}]}),
        {},
        "InputParameters[0].value.Attributes[0].value.Value: expected a number, got a string",
        id="money-string",
    ),
    pytest.param(
        json.dumps(context(ParentContext=context(Stage="30"))),
        {},
        "ParentContext.Stage: expected an integer",
        id="parent-stage",
    ),
    pytest.param(
        json.dumps(context(ParentContext="none")),
        {},
        "ParentContext: expected an object, got a string",
        id="parent-string",
    ),
    pytest.param(json.dumps(context()), {"max_bytes": 20}, "body: larger than the limit of 20 bytes", id="oversize"),
    pytest.param(
        b" " * (DEFAULT_MAX_BYTES + 1), {}, f"body: larger than the limit of {DEFAULT_MAX_BYTES}", id="default-limit"
    ),
    pytest.param(b'{"Depth": NaN}', {}, "body: not valid JSON", id="nan"),
]


@pytest.mark.parametrize(("body", "options", "expected"), MALFORMED)
def test_a_malformed_body_is_rejected_with_the_path_of_the_problem(
    body: bytes | str, options: dict[str, Any], expected: str
) -> None:
    with pytest.raises(WebhookContextError) as caught:
        decode_context(body, **options)
    assert str(caught.value).startswith(expected)


def test_a_rejection_is_a_dataverse_error_and_a_value_error() -> None:
    with pytest.raises(WebhookContextError) as caught:
        decode_context(b"[]")
    assert isinstance(caught.value, DataverseError)
    assert isinstance(caught.value, ValueError)


def test_a_null_parent_context_is_ignored() -> None:
    assert decode_context(json.dumps(context(ParentContext=None))).parent is None


def test_a_personal_value_never_appears_in_the_error_or_its_traceback() -> None:
    email = "jane.doe@example.com"
    bodies = [
        # an entity without LogicalName whose attribute holds an email address
        _target_body({"LogicalName": None, "Attributes": [{"key": "emailaddress1", "value": email}]}),
        # the email where a GUID is expected
        json.dumps(context(PrimaryEntityId=email)),
        json.dumps(context(PostEntityImages=[{"key": "i", "value": {"LogicalName": "contact", "Id": email}}])),
        # the email where a date, an integer, a formatted value and a money amount are expected
        _target_body({"Attributes": [{"key": "birthdate", "value": f"/Date({email})/"}]}),
        json.dumps(context(Depth=email)),
        _target_body({"FormattedValues": [{"key": "emailaddress1", "value": {"v": email}}]}),
        _target_body({"Attributes": [{"key": "revenue", "value": {"__type": "Money:x", "Value": email}}]}),
        # the email as a member name of an unknown object, next to a malformed date
        _target_body({"Attributes": [{"key": "x", "value": {"__type": "Unknown:x", email: "/Date(z)/"}}]}),
    ]
    messages = []
    for body in bodies:
        with pytest.raises(WebhookContextError) as caught:
            decode_context(body)
        rendered = "".join(traceback.format_exception(caught.value))
        assert email not in rendered
        assert "jane" not in rendered
        messages.append(str(caught.value))
    assert messages[0] == "InputParameters[0].value.LogicalName: missing; expected a non-empty string"
    assert messages[-1].startswith("InputParameters[0].value.Attributes[0].value.<member>: expected /Date(")
