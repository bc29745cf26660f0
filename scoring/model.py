"""Scoring models as data: frozen dataclasses parsed from a schema-valid JSON document, and a closed set of operators.

`parse_model` builds a `ScoringModel` from a document that already passed `schemas/scoring-model.schema.json` and
checks what the schema cannot express, raising `ModelError(path, reason)` with a JSON path such as
`$.grades[1].from`. Semantics of a test `actual op value` (as Dataverse and the emulator compare):

- strings compare case-insensitively (Unicode casefold) with every operator; numbers compare as numbers (int, float
  and Decimal together); booleans only equal booleans; values of different kinds never match (so `ne` is true);
- a null `actual` (an empty column, or a missing record on the lookup path) matches only `is_null` and `ne`: `ne` is
  exactly `not eq`, as OData's `null ne 'x'` is true; ordering and `contains`/`startswith` are false on null;
- other column types (dates, GUID objects) match only `is_null`, `is_not_null` and `ne`.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final, Literal

__all__ = [
    "HOPS",
    "MAX_HOPS",
    "OPERATORS",
    "TYPED_COLUMNS",
    "AttributeCondition",
    "BehaviourCondition",
    "Condition",
    "FieldTest",
    "Grade",
    "ModelError",
    "Rule",
    "ScoringModel",
    "columns_needed",
    "conditions",
    "follow_path",
    "grade_for",
    "parse_model",
]

Frequency = Literal["each", "at_least_once", "none"]
Target = Literal["contact", "account"]
ConsentMode = Literal["all_contacts", "strict"]
Step = tuple[str, str]  # (table reached, the typed field of the current record that holds its id)

MAX_HOPS: Final = 5
#: The lookups a path may follow: table -> hop -> (target table, typed field of `scoring.records` holding the id).
HOPS: Final[Mapping[str, Mapping[str, Step]]] = {
    "lead": {"parentaccountid": ("account", "account_id"), "parentcontactid": ("contact", "contact_id")},
    "contact": {"parentcustomerid": ("account", "account_id")},
    "account": {
        "parentaccountid": ("account", "parent_account_id"),
        "primarycontactid": ("contact", "primary_contact_id"),
    },
}
#: Columns read from a record's typed fields rather than its `attributes` (the service always selects them).
TYPED_COLUMNS: Final[Mapping[str, Mapping[str, str]]] = {
    table: {"id": "id", f"{table}id": "id", **{hop: typed for hop, (_, typed) in hops.items()}}
    for table, hops in HOPS.items()
}
_NULL_OPS: Final = frozenset({"is_null", "is_not_null"})
_TEXT_OPS: Final = frozenset({"contains", "startswith"})
_ORDER_OPS: Final = frozenset({"gt", "ge", "lt", "le"})


class ModelError(ValueError):
    """An invalid model: `path` is the JSON path of the offending value (e.g. `$.rules[2].when[0][1].attribute`).
    Also the base of the segment and journey definition errors, which carry the same two fields."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


_KINDS: Final[Mapping[type, str]] = {bool: "bool", int: "number", float: "number", Decimal: "number", str: "text"}


def _kind(value: Any) -> str | None:
    kind = _KINDS.get(type(value))  # the common case (every test of every record): one look-up
    if kind is not None or value is None:
        return kind
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float | Decimal):
        return "number"
    return "text" if isinstance(value, str) else None


def _fold(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


def _eq(actual: Any, expected: Any) -> bool:
    kind = _kind(actual)
    return kind is not None and kind == _kind(expected) and _fold(actual) == _fold(expected)


def _in(actual: Any, items: Iterable[Any]) -> bool:
    """`actual` equals one of the items (as `_eq`), its kind and folded form taken once."""
    kind = _kind(actual)
    if kind is None:
        return False
    folded = _fold(actual)
    return any(kind == _kind(item) and folded == _fold(item) for item in items)


def _ordered(compare: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def test(actual: Any, expected: Any) -> bool:
        kind = _kind(actual)
        return kind in ("number", "text") and kind == _kind(expected) and compare(_fold(actual), _fold(expected))

    return test


#: The closed operator table: `OPERATORS[op](actual, value)`; values were checked against the op at parse time.
OPERATORS: Final[Mapping[str, Callable[[Any, Any], bool]]] = {
    "eq": _eq,
    "ne": lambda actual, expected: not _eq(actual, expected),
    "gt": _ordered(operator.gt),
    "ge": _ordered(operator.ge),
    "lt": _ordered(operator.lt),
    "le": _ordered(operator.le),
    "contains": lambda actual, expected: isinstance(actual, str) and expected.casefold() in actual.casefold(),
    "startswith": lambda actual, expected: (
        isinstance(actual, str) and actual.casefold().startswith(expected.casefold())
    ),
    "in": _in,
    "is_null": lambda actual, _: actual is None,
    "is_not_null": lambda actual, _: actual is not None,
}


def _value_problem(op: str, value: Any, has_value: bool) -> str | None:
    """Why `value` does not fit `op` (None when it does)."""
    if op not in OPERATORS:
        return f"unknown operator {op!r}"
    if op in _NULL_OPS:
        return f"{op} takes no value" if has_value else None
    if not has_value:
        return f"{op} needs a value"
    if op == "in":
        ok = isinstance(value, list | tuple) and len(value) > 0 and all(_kind(v) for v in value)
        return None if ok else "in needs a non-empty list of strings, numbers or booleans"
    if _kind(value) is None:
        return f"{op} needs a single string, number or boolean"
    if op in _TEXT_OPS and not isinstance(value, str):
        return f"{op} needs a string"
    if op in _ORDER_OPS and _kind(value) == "bool":
        return f"{op} needs a number or a string"
    return None


def _show(value: Any) -> str:
    if isinstance(value, str):
        return f"'{value}'"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return str(value)


def _describe(subject: str, op: str, value: Any) -> str:
    return f"{subject} {op}" if op in _NULL_OPS else f"{subject} {op} {_show(value)}"


def _check(test: FieldTest | AttributeCondition) -> None:
    """Raise ValueError when a directly built test's value does not fit its op; store lists as tuples (hashable)."""
    problem = _value_problem(test.op, test.value, test.op not in _NULL_OPS or test.value is not None)
    if problem:
        raise ValueError(problem)
    if isinstance(test.value, list):
        object.__setattr__(test, "value", tuple(test.value))


def follow_path(path: str) -> tuple[tuple[Step, ...], str, str]:
    """The hops of an attribute path, the table it ends on and its column; ValueError says why a path is invalid."""
    parts = path.split(".")
    if parts[0] != "lead":
        raise ValueError("an attribute path starts at lead")
    if len(parts) < 2 or not all(parts):
        raise ValueError("an attribute path is lead, then lookup hops, then a column name, separated by dots")
    if len(parts) - 2 > MAX_HOPS:
        raise ValueError(f"at most {MAX_HOPS} lookup hops, found {len(parts) - 2}")
    table, steps = "lead", []
    for hop in parts[1:-1]:
        step = HOPS[table].get(hop)
        if step is None:
            raise ValueError(f"{table} has no lookup {hop!r} to follow (it has {', '.join(HOPS[table])})")
        steps.append(step)
        table = step[0]
    return tuple(steps), table, parts[-1]


@dataclass(frozen=True)
class FieldTest:
    """`field op value` on an interaction's attributes (asset, campaign, content_type, any mapped column)."""

    field: str
    op: str
    value: Any = None

    def __post_init__(self) -> None:
        _check(self)

    def matches(self, attributes: Mapping[str, Any]) -> bool:
        return OPERATORS[self.op](attributes.get(self.field), self.value)

    def describe(self) -> str:
        return _describe(self.field, self.op, self.value)


@dataclass(frozen=True)
class AttributeCondition:
    """`attribute op value`, the attribute a path from the lead through 0..5 lookups to a column."""

    attribute: str
    op: str
    value: Any = None
    steps: tuple[Step, ...] = field(init=False, repr=False, compare=False)
    table: str = field(init=False, repr=False, compare=False)
    column: str = field(init=False, repr=False, compare=False)
    typed_field: str | None = field(init=False, repr=False, compare=False)
    label: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check(self)
        steps, table, column = follow_path(self.attribute)
        for name, value in (("steps", steps), ("table", table), ("column", column)):
            object.__setattr__(self, name, value)
        object.__setattr__(self, "typed_field", TYPED_COLUMNS[table].get(column))
        object.__setattr__(self, "label", _describe(self.attribute, self.op, self.value))

    def matches(self, actual: Any) -> bool:
        return OPERATORS[self.op](actual, self.value)

    def describe(self) -> str:
        """E.g. `lead.parentaccountid.address1_city eq 'Amsterdam'`."""
        return self.label


@dataclass(frozen=True)
class BehaviourCondition:
    """Interactions of one type within `within_days` before the run, each passing every `where` test."""

    interaction: str
    frequency: Frequency
    within_days: int
    where: tuple[FieldTest, ...] = ()
    label: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        where = f" where {' and '.join(t.describe() for t in self.where)}" if self.where else ""
        object.__setattr__(self, "label", f"{self.interaction} {self.frequency} within {self.within_days} days{where}")

    def describe(self, occurrences: int) -> str:
        """E.g. `EmailClicked each within 90 days where campaign contains 'spring' (3)`."""
        return f"{self.label} ({occurrences})"


Condition = AttributeCondition | BehaviourCondition


@dataclass(frozen=True)
class Rule:
    """Points when any group of `when` matches in full (OR of ANDs); see `scoring.engine` for `each` and groups."""

    name: str
    points: int
    when: tuple[tuple[Condition, ...], ...]


@dataclass(frozen=True)
class Grade:
    """A named score range, `low` to `high` included (`from`/`to` in the file); `high` None: no upper bound."""

    name: str
    low: int
    high: int | None = None


@dataclass(frozen=True)
class ScoringModel:
    """A lead-scoring model: who it targets, the consent it needs, its rules, grades and sales-ready threshold."""

    name: str
    version: int
    status: Literal["live", "draft"]
    target: Target
    minimum_consent: int
    sales_ready_score: int
    grades: tuple[Grade, ...]
    rules: tuple[Rule, ...]
    consent_mode: ConsentMode = "all_contacts"

    @property
    def live(self) -> bool:
        """Only live models are run; drafts are loaded and checked only."""
        return self.status == "live"


def parse_model(data: Mapping[str, Any]) -> ScoringModel:
    """The model of a schema-valid document, after the checks the schema cannot make (raises ModelError)."""
    rules = tuple(_rule(item, f"$.rules[{i}]") for i, item in enumerate(data["rules"]))
    _unique([rule.name for rule in rules], "$.rules[{}].name", "rule")
    return ScoringModel(
        name=data["name"],
        version=data["version"],
        status=data["status"],
        target=data["target"],
        minimum_consent=data["minimum_consent"],
        sales_ready_score=data["sales_ready_score"],
        grades=_grades(data["grades"]),
        rules=rules,
        consent_mode=data.get("consent_mode", "all_contacts"),
    )


def _unique(names: Sequence[str], path: str, what: str) -> None:
    for i, name in enumerate(names):
        if name in names[:i]:
            raise ModelError(path.format(i), f"{what} name {name!r} is used twice")


def _grades(items: Sequence[Mapping[str, Any]]) -> tuple[Grade, ...]:
    grades = tuple(Grade(item["name"], item["from"], item.get("to")) for item in items)
    _unique([grade.name for grade in grades], "$.grades[{}].name", "grade")
    for i, grade in enumerate(grades):
        if grade.high is not None and grade.high < grade.low:
            raise ModelError(f"$.grades[{i}].to", f"to ({grade.high}) is below from ({grade.low})")
        if grade.high is None and i < len(grades) - 1:
            raise ModelError(f"$.grades[{i}]", "only the last grade may leave out to (open-ended)")
        previous = grades[i - 1].high if i else None
        if previous is not None and grade.low != previous + 1:
            gap = "leaves a gap" if grade.low > previous + 1 else "overlaps the previous grade"
            raise ModelError(
                f"$.grades[{i}].from", f"from {grade.low} {gap}: grades must be continuous, from {previous + 1}"
            )
    return grades


def _rule(item: Mapping[str, Any], path: str) -> Rule:
    when = tuple(
        tuple(_condition(condition, f"{path}.when[{g}][{c}]") for c, condition in enumerate(group))
        for g, group in enumerate(item["when"])
    )
    return Rule(name=item["name"], points=item["points"], when=when)


def _checked_value(item: Mapping[str, Any], path: str) -> Any:
    op, value = item["op"], item.get("value")
    problem = _value_problem(op, value, "value" in item)
    if problem:
        raise ModelError(f"{path}.value" if "value" in item else path, problem)
    return tuple(value) if isinstance(value, list) else value


def _condition(item: Mapping[str, Any], path: str) -> Condition:
    if "attribute" in item:
        try:
            follow_path(item["attribute"])
        except ValueError as exc:
            raise ModelError(f"{path}.attribute", str(exc)) from None
        return AttributeCondition(item["attribute"], item["op"], _checked_value(item, path))
    where = tuple(
        FieldTest(test["field"], test["op"], _checked_value(test, f"{path}.where[{j}]"))
        for j, test in enumerate(item.get("where", ()))
    )
    return BehaviourCondition(item["interaction"], item["frequency"], item["within_days"], where)


def conditions(model: ScoringModel) -> Iterable[Condition]:
    """Every condition of the model's rules, in file order."""
    return (condition for rule in model.rules for group in rule.when for condition in group)


def columns_needed(models: Iterable[ScoringModel]) -> dict[str, set[str]]:
    """Per table (lead, contact, account) and for interactions, the attribute columns the live models read, for the
    service's `$select`; typed columns (ids, lookups) are left out, the records always carry them."""
    needed: dict[str, set[str]] = {"lead": set(), "contact": set(), "account": set(), "interaction": set()}
    for model in models:
        for condition in conditions(model) if model.live else ():
            if isinstance(condition, AttributeCondition):
                if condition.typed_field is None:
                    needed[condition.table].add(condition.column)
            else:
                needed["interaction"].update(test.field for test in condition.where)
    return needed


def grade_for(model: ScoringModel, score: int) -> str | None:
    """The grade whose range holds `score`; None below the first grade (or above a last grade that has a `to`)."""
    for grade in model.grades:
        if grade.low <= score and (grade.high is None or score <= grade.high):
            return grade.name
    return None
