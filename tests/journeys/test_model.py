"""Journey definitions: the shipped demos are schema-valid and parse; semantic errors name their JSON path."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from devtools.tenant import CALLER_USER_ID, REFERENCE_WORKFLOWS
from journeys.model import (
    ActivityTile,
    JourneyError,
    LaunchWorkflowTile,
    TriggerTile,
    WaitTile,
    columns_needed,
    parse_journey,
)

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = Draft202012Validator(json.loads((ROOT / "schemas/journey.schema.json").read_text()))
OWNER = "be0a04b9-bf4d-45a9-b50e-66c9ded0fef9"


def account_journey() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((ROOT / "definitions/journeys/abm-nurture.json").read_text())
    return data


def contact_journey() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((ROOT / "definitions/journeys/contact-welcome.json").read_text())
    return data


def test_schema_is_valid_and_demos_conform() -> None:
    Draft202012Validator.check_schema(SCHEMA.schema)
    for data in (account_journey(), contact_journey()):
        assert list(SCHEMA.iter_errors(data)) == []


def test_demo_journeys_parse_with_every_account_option() -> None:
    journey = parse_journey(account_journey())
    assert journey.target == "account" and journey.owner == CALLER_USER_ID and journey.segment == "amsterdam-purchasers"
    tiles = journey.tiles
    assert {t.type for t in tiles} == {"trigger", "activity", "create_lead", "launch_workflow", "email", "wait"}
    assert {(t.based_on, t.account_rule) for t in tiles if isinstance(t, TriggerTile)} == {
        ("account", "any"),
        ("account", "all"),
    }
    assert {t.assigned_to for t in tiles if isinstance(t, ActivityTile)} == {"account_owner", "account_creator"}
    account_workflows = {w for w, _, entity in REFERENCE_WORKFLOWS if entity == "account"}
    assert {t.workflow for t in tiles if isinstance(t, LaunchWorkflowTile)} <= account_workflows
    welcome = parse_journey(contact_journey())
    assert welcome.target == "contact" and welcome.segment == "big-or-engaged"
    contact_workflows = {w for w, _, entity in REFERENCE_WORKFLOWS if entity == "contact"}
    assert {t.workflow for t in welcome.tiles if isinstance(t, LaunchWorkflowTile)} <= contact_workflows
    assert all(getattr(t, "for_each", "contact") == "contact" for t in welcome.tiles)


def test_columns_needed_includes_templates_and_conditions() -> None:
    needed = columns_needed([parse_journey(account_journey()), parse_journey(contact_journey())])
    assert needed["contact"] == {"statecode", "firstname", "fullname", "jobtitle"}
    assert needed["account"] == {"name", "address1_city"}


def test_wait_until_parses_aware() -> None:
    data = contact_journey()
    data["tiles"][3] = {"id": "pause", "type": "wait", "until": "2025-06-01T09:00:00+02:00", "next": None}
    tile = parse_journey(data).tile("pause")
    assert isinstance(tile, WaitTile) and tile.until is not None and tile.until.utcoffset() is not None


def _set(data: dict[str, Any], index: int, **changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(data)
    data["tiles"][index].update(changes)
    return data


@pytest.mark.parametrize(
    ("data", "path", "words"),
    [
        (_set(contact_journey(), 0, for_each="account"), "$.tiles[0].for_each", "account-based"),
        (_set(contact_journey(), 0, regarding="account"), "$.tiles[0].regarding", "account-based"),
        (_set(contact_journey(), 0, assigned_to="account_owner"), "$.tiles[0].assigned_to", "account-based"),
        (_set(contact_journey(), 2, for_each="account"), "$.tiles[2].for_each", "account-based"),
        (_set(contact_journey(), 5, for_each="account"), "$.tiles[5].for_each", "account-based"),
        (_set(contact_journey(), 4, based_on="account"), "$.tiles[4].based_on", "account-based"),
        (_set(account_journey(), 1, for_each="contact"), "$.tiles[1].assigned_to", "journey owner"),
        (_set(account_journey(), 1, id="opened"), "$.tiles[1].id", "used twice"),
        (_set(account_journey(), 1, next="nowhere"), "$.tiles[1].next", "nowhere"),
        (_set(account_journey(), 0, false="missing"), "$.tiles[0].false", "missing"),
        ({**account_journey(), "start": "nope"}, "$.start", "nope"),
        (_set(account_journey(), 6, next="opened"), "$.tiles", "cycle"),
        (_set(account_journey(), 3, subject="{{contact.owner.name}}"), "$.tiles[3].subject", "unknown relation"),
        (_set(account_journey(), 5, template="<p>{{contact.firstname</p>"), "$.tiles[5].template", "compile"),
        (_set(contact_journey(), 3, until="2025-06-01T09:00:00"), "$.tiles[3]", "either days or until"),
        (
            _set(contact_journey(), 3, days=None, until="2025-06-01T09:00:00"),
            "$.tiles[3].until",
            "no time zone",
        ),
        (
            _set(contact_journey(), 4, condition={"attribute": "contact.jobtitle", "op": "gt"}),
            "$.tiles[4].condition.op",
            "needs a value",
        ),
        (
            _set(contact_journey(), 4, condition={"attribute": "lead.subject", "op": "is_null"}),
            "$.tiles[4].condition.attribute",
            "contact.<column>",
        ),
    ],
)
def test_semantic_errors_name_the_path(data: dict[str, Any], path: str, words: str) -> None:
    for tile in data["tiles"]:  # None means "leave the key out" in the cases above
        for key in [k for k, v in tile.items() if v is None and k == "days"]:
            del tile[key]
    with pytest.raises(JourneyError) as caught:
        parse_journey(data)
    assert caught.value.path == path and words in caught.value.reason
    assert isinstance(caught.value, ValueError)


def test_schema_rejects_unknown_keys_with_path() -> None:
    data = _set(account_journey(), 2, colour="red")
    errors = list(SCHEMA.iter_errors(data))
    assert errors and any(list(e.absolute_path)[:2] == ["tiles", 2] for e in errors)
    assert list(SCHEMA.iter_errors({**account_journey(), "surprise": 1}))
