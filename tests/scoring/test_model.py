"""Scoring models: the JSON Schema, the parser's own checks (with their JSON paths), columns_needed and grade_for."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from scoring.model import (
    AttributeCondition,
    BehaviourCondition,
    FieldTest,
    ModelError,
    columns_needed,
    grade_for,
    parse_model,
)

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "schemas" / "scoring-model.schema.json").read_text(encoding="utf-8"))
VALIDATOR = Draft202012Validator(SCHEMA)
DEMO_FILES = sorted((ROOT / "definitions" / "scoring").glob("*.json"))

# The example of the issue, as a file would have it.
EXAMPLE: dict[str, Any] = {
    "$schema": "../../schemas/scoring-model.schema.json",
    "name": "account-fit",
    "version": 3,
    "status": "live",
    "target": "account",
    "minimum_consent": 3,
    "consent_mode": "all_contacts",
    "sales_ready_score": 60,
    "grades": [{"name": "C", "from": 0, "to": 24}, {"name": "B", "from": 25, "to": 59}, {"name": "A", "from": 60}],
    "rules": [
        {
            "name": "big-amsterdam-account",
            "points": 20,
            "when": [
                [
                    {"attribute": "lead.parentaccountid.address1_city", "op": "eq", "value": "Amsterdam"},
                    {"attribute": "lead.parentaccountid.revenue", "op": "ge", "value": 100000},
                ]
            ],
        },
        {
            "name": "clicks",
            "points": 5,
            "when": [
                [
                    {
                        "interaction": "EmailClicked",
                        "frequency": "each",
                        "within_days": 90,
                        "where": [{"field": "campaign", "op": "contains", "value": "spring"}],
                    }
                ]
            ],
        },
        {
            "name": "silent",
            "points": -10,
            "when": [
                [{"interaction": "EmailOpened", "frequency": "none", "within_days": 60}],
                [{"attribute": "lead.leadqualitycode", "op": "eq", "value": 3}],
            ],
        },
    ],
}


def doc(change: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """A deep copy of the example, changed in place by `change`."""
    data = copy.deepcopy(EXAMPLE)
    if change is not None:
        change(data)
    return data


def cond(rule: int, group: int, index: int, **fields: Any) -> Callable[[dict[str, Any]], None]:
    """A change that replaces one condition."""

    def change(data: dict[str, Any]) -> None:
        data["rules"][rule]["when"][group][index] = fields

    return change


def json_path(parts: Iterator[str | int] | Any) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)


# --- the schema -------------------------------------------------------------------------------------------------------


def test_the_schema_is_a_valid_draft_2020_12_schema_with_its_published_id() -> None:
    Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert SCHEMA["$id"] == "https://abm-dataverse.example/schemas/scoring-model.schema.json"


def object_schemas(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if node.get("type") == "object":
            yield node
        for value in node.values():
            yield from object_schemas(value)
    elif isinstance(node, list):
        for value in node:
            yield from object_schemas(value)


def test_every_object_in_the_schema_is_closed_and_every_property_described() -> None:
    objects = list(object_schemas(SCHEMA))
    assert len(objects) == 6  # the model, grade, rule, attribute and behaviour conditions, field test
    for node in objects:
        assert node["additionalProperties"] is False
        for name, prop in node["properties"].items():
            assert prop.get("description"), name
    for name, definition in SCHEMA["$defs"].items():
        assert definition.get("description"), name


@pytest.mark.parametrize("file", DEMO_FILES, ids=lambda p: p.name)
def test_the_demo_models_validate_against_the_schema_and_parse(file: Path) -> None:
    data = json.loads(file.read_text(encoding="utf-8"))
    assert list(VALIDATOR.iter_errors(data)) == []
    model = parse_model(data)
    assert model.name == file.stem
    assert model.live


def test_both_demo_models_exist_with_their_targets() -> None:
    targets = {p.stem: json.loads(p.read_text(encoding="utf-8"))["target"] for p in DEMO_FILES}
    assert targets == {"contact-engagement": "contact", "account-fit": "account"}


def test_the_example_document_is_valid() -> None:
    assert list(VALIDATOR.iter_errors(doc())) == []


def _set(path: tuple[str | int, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        node: Any = data
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = value

    return change


def _drop(path: tuple[str | int, ...]) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        node: Any = data
        for part in path[:-1]:
            node = node[part]
        del node[path[-1]]

    return change


@pytest.mark.parametrize(
    ("change", "path"),
    [
        (_drop(("name",)), "$"),
        (_set(("name",), "has spaces"), "$.name"),
        (_set(("version",), 0), "$.version"),
        (_set(("status",), "paused"), "$.status"),
        (_set(("target",), "lead"), "$.target"),
        (_set(("minimum_consent",), 6), "$.minimum_consent"),
        (_set(("consent_mode",), "none"), "$.consent_mode"),
        (_set(("sales_ready_score",), "60"), "$.sales_ready_score"),
        (_set(("owner",), "me"), "$"),
        (_set(("grades",), []), "$.grades"),
        (_set(("grades", 0, "colour"), "blue"), "$.grades[0]"),
        (_set(("rules",), []), "$.rules"),
        (_set(("rules", 0, "when"), []), "$.rules[0].when"),
        (_set(("rules", 0, "when", 0), []), "$.rules[0].when[0]"),
        (_set(("rules", 0, "points"), 1.5), "$.rules[0].points"),
        (_set(("rules", 0, "weight"), 2), "$.rules[0]"),
        (_set(("rules", 1, "when", 0, 0, "frequency"), "sometimes"), "$.rules[1].when[0][0]"),
        (_set(("rules", 1, "when", 0, 0, "within_days"), 0), "$.rules[1].when[0][0]"),
        (_set(("rules", 0, "when", 0, 0, "op"), "like"), "$.rules[0].when[0][0]"),
        (_set(("rules", 0, "when", 0, 0, "attribute"), "contact.jobtitle"), "$.rules[0].when[0][0]"),
        (_set(("rules", 0, "when", 0, 0, "value"), None), "$.rules[0].when[0][0]"),
        (_set(("rules", 1, "when", 0, 0, "where", 0, "weight"), 1), "$.rules[1].when[0][0]"),
    ],
)
def test_the_schema_rejects_a_bad_document_at_the_right_place(
    change: Callable[[dict[str, Any]], None], path: str
) -> None:
    errors = list(VALIDATOR.iter_errors(doc(change)))
    assert errors
    assert path in {json_path(e.absolute_path) for e in errors}


# --- the parser's own checks ------------------------------------------------------------------------------------------


def grades(*ranges: tuple[str, int, int | None]) -> Callable[[dict[str, Any]], None]:
    items = [{"name": n, "from": lo} | ({} if hi is None else {"to": hi}) for n, lo, hi in ranges]
    return _set(("grades",), items)


ATTR = "lead.parentaccountid.address1_city"
MODEL_ERRORS = [
    ("a gap between grades", grades(("C", 0, 24), ("B", 26, 59), ("A", 60, None)), "$.grades[1].from", "gap"),
    ("overlapping grades", grades(("C", 0, 24), ("B", 24, 59), ("A", 60, None)), "$.grades[1].from", "overlaps"),
    ("an open end before the last", grades(("C", 0, None), ("B", 25, 59)), "$.grades[0]", "only the last"),
    ("to below from", grades(("C", 0, 24), ("B", 25, 20), ("A", 21, None)), "$.grades[1].to", "below from"),
    ("a grade name twice", grades(("C", 0, 24), ("C", 25, None)), "$.grades[1].name", "used twice"),
    ("a rule name twice", _set(("rules", 2, "name"), "clicks"), "$.rules[2].name", "used twice"),
    (
        "six hops",
        cond(0, 0, 1, attribute="lead" + ".parentaccountid" * 6 + ".name", op="is_null"),
        "$.rules[0].when[0][1].attribute",
        "at most 5",
    ),
    (
        "a hop a contact does not have",
        cond(2, 1, 0, attribute="lead.parentcontactid.primarycontactid.jobtitle", op="is_null"),
        "$.rules[2].when[1][0].attribute",
        "contact has no lookup 'primarycontactid'",
    ),
    ("a path not from lead", cond(0, 0, 0, attribute="contact.jobtitle", op="is_null"), None, "starts at lead"),
    ("an empty column", cond(0, 0, 0, attribute="lead.parentaccountid.", op="is_null"), None, "column name"),
    ("only lead", cond(0, 0, 0, attribute="lead", op="is_null"), None, "column name"),
    ("in with an empty list", cond(0, 0, 0, attribute=ATTR, op="in", value=[]), ".value", "non-empty list"),
    ("in with one value", cond(0, 0, 0, attribute=ATTR, op="in", value="Amsterdam"), ".value", "non-empty list"),
    ("is_null with a value", cond(0, 0, 0, attribute=ATTR, op="is_null", value="x"), ".value", "takes no value"),
    ("is_not_null with a value", cond(0, 0, 0, attribute=ATTR, op="is_not_null", value=1), ".value", "no value"),
    ("eq without a value", cond(0, 0, 0, attribute=ATTR, op="eq"), "", "needs a value"),
    ("eq with a list", cond(0, 0, 0, attribute=ATTR, op="eq", value=["a"]), ".value", "single"),
    ("contains with a number", cond(0, 0, 0, attribute=ATTR, op="contains", value=3), ".value", "needs a string"),
    ("gt with a boolean", cond(0, 0, 0, attribute=ATTR, op="gt", value=True), ".value", "number or a string"),
    (
        "a where test without its value",
        _set(("rules", 1, "when", 0, 0, "where"), [{"field": "asset", "op": "is_null"}, {"field": "x", "op": "ge"}]),
        "$.rules[1].when[0][0].where[1]",
        "ge needs a value",
    ),
    (
        "a where test with a list for startswith",
        _set(("rules", 1, "when", 0, 0, "where", 0), {"field": "asset", "op": "startswith", "value": ["a"]}),
        "$.rules[1].when[0][0].where[0].value",
        "single",
    ),
]


@pytest.mark.parametrize(("case", "change", "path", "reason"), MODEL_ERRORS, ids=[c[0] for c in MODEL_ERRORS])
def test_parse_model_names_the_exact_path_and_reason(
    case: str, change: Callable[[dict[str, Any]], None], path: str | None, reason: str
) -> None:
    if path is None:
        path = "$.rules[0].when[0][0].attribute"
    elif not path.startswith("$"):
        path = "$.rules[0].when[0][0]" + path
    with pytest.raises(ModelError) as caught:
        parse_model(doc(change))
    assert caught.value.path == path
    assert reason in caught.value.reason
    assert isinstance(caught.value, ValueError)
    assert str(caught.value).startswith(f"{path}: ")


def test_continuous_grades_may_start_below_zero_and_end_open_or_closed() -> None:
    parse_model(doc(grades(("D", -500, -1), ("C", 0, 24), ("B", 25, 59), ("A", 60, None))))
    parse_model(doc(grades(("C", 0, 24), ("B", 25, 59), ("A", 60, 100))))
    parse_model(doc(grades(("all", 0, None))))


def test_a_path_of_five_hops_parses_and_knows_where_it_ends() -> None:
    path = "lead.parentcontactid.parentcustomerid.parentaccountid.primarycontactid.parentcustomerid.revenue"
    model = parse_model(doc(cond(0, 0, 0, attribute=path, op="gt", value=1)))
    condition = model.rules[0].when[0][0]
    assert isinstance(condition, AttributeCondition)
    assert len(condition.steps) == 5
    assert (condition.table, condition.column) == ("account", "revenue")


def test_the_parsed_example_has_typed_rules_grades_and_defaults() -> None:
    model = parse_model(doc(_drop(("consent_mode",))))
    assert model.consent_mode == "all_contacts"
    assert (model.name, model.version, model.target, model.minimum_consent) == ("account-fit", 3, "account", 3)
    assert [(g.name, g.low, g.high) for g in model.grades] == [("C", 0, 24), ("B", 25, 59), ("A", 60, None)]
    clicks = model.rules[1].when[0][0]
    assert clicks == BehaviourCondition("EmailClicked", "each", 90, (FieldTest("campaign", "contains", "spring"),))
    assert [len(rule.when) for rule in model.rules] == [1, 1, 2]


def test_in_values_are_kept_as_a_tuple_so_conditions_stay_hashable() -> None:
    model = parse_model(doc(cond(0, 0, 0, attribute=ATTR, op="in", value=["Amsterdam", "Utrecht"])))
    condition = model.rules[0].when[0][0]
    assert isinstance(condition, AttributeCondition)
    assert condition.value == ("Amsterdam", "Utrecht")
    assert hash(condition) == hash(AttributeCondition(ATTR, "in", ["Amsterdam", "Utrecht"]))


def test_conditions_built_directly_are_checked_too() -> None:
    with pytest.raises(ValueError, match="at most 5"):
        AttributeCondition("lead" + ".parentaccountid" * 6 + ".name", "is_null")
    with pytest.raises(ValueError, match="unknown operator"):
        FieldTest("asset", "like", "x")


# --- columns_needed and grade_for -------------------------------------------------------------------------------------


def test_columns_needed_lists_each_tables_attribute_columns_and_the_interaction_fields() -> None:
    def more(data: dict[str, Any]) -> None:
        data["rules"].append(
            {
                "name": "more",
                "points": 1,
                "when": [
                    [
                        {"attribute": "lead.parentcontactid.jobtitle", "op": "contains", "value": "purchas"},
                        {"attribute": "lead.parentcontactid.parentcustomerid.numberofemployees", "op": "is_null"},
                        {"attribute": "lead.parentaccountid.primarycontactid.address1_city", "op": "is_null"},
                        {"attribute": "lead.parentaccountid", "op": "is_not_null"},
                        {"attribute": "lead.parentcontactid.id", "op": "eq", "value": "x"},
                        {
                            "interaction": "FormSubmitted",
                            "frequency": "each",
                            "within_days": 5,
                            "where": [{"field": "asset", "op": "eq", "value": "Demo request form"}],
                        },
                    ]
                ],
            }
        )

    assert columns_needed([parse_model(doc(more))]) == {
        "lead": {"leadqualitycode"},
        "contact": {"jobtitle", "address1_city"},
        "account": {"address1_city", "revenue", "numberofemployees"},
        "interaction": {"campaign", "asset"},
    }


def test_columns_needed_ignores_draft_models_and_has_every_key_when_empty() -> None:
    draft = parse_model(doc(_set(("status",), "draft")))
    assert columns_needed([draft]) == {"lead": set(), "contact": set(), "account": set(), "interaction": set()}


@pytest.mark.parametrize(
    ("score", "grade"),
    [(-1, None), (0, "C"), (24, "C"), (25, "B"), (59, "B"), (60, "A"), (10_000, "A")],
)
def test_grade_for_finds_the_range_holding_the_score(score: int, grade: str | None) -> None:
    assert grade_for(parse_model(doc()), score) == grade


def test_grade_for_gives_no_grade_above_a_closed_last_grade() -> None:
    model = parse_model(doc(grades(("C", 0, 24), ("B", 25, 59), ("A", 60, 99))))
    assert (grade_for(model, 99), grade_for(model, 100)) == ("A", None)
