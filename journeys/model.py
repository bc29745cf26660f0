"""Customer journeys as data: frozen dataclasses parsed from a schema-valid document (`schemas/journey.schema.json`).

A journey is contact-based or account-based (`target`), has an owner (a system user id), a minimum consent level and
an entry segment, and a graph of tiles from `start`: trigger (if/then), activity, launch_workflow, create_lead,
email and wait. `parse_journey` checks what the schema cannot and raises `JourneyError(path, reason)` with a JSON
path such as `$.tiles[2].for_each`:

- tile ids are unique, `start` and every `next`/`true`/`false` name an existing tile (null ends the path);
- the account options (`for_each: account`, `based_on: account`, `assigned_to: account_owner|account_creator`,
  `regarding: account`) appear only in account-based journeys, and a per-contact activity is assigned to the journey
  owner;
- condition operators fit their values (scoring.model's operator table), attribute paths are `contact.<column>` or
  `account.<column>`, `until` is an ISO datetime with a zone;
- templates compile and name only known relations (journeys.personalize);
- the tile graph has no cycle at all (simplest safe rule: a path always moves forward, so one run moves every contact
  a bounded number of tiles, and the engine can process tiles in topological order).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

from journeys.personalize import ACCOUNT_RELATION, Template, TemplateError, compile_template
from scoring.model import OPERATORS, FieldTest, ModelError, _value_problem

__all__ = [
    "ActivityTile",
    "AttributeTest",
    "CreateLeadTile",
    "EmailTile",
    "InteractionCondition",
    "Journey",
    "JourneyError",
    "LaunchWorkflowTile",
    "Tile",
    "TriggerTile",
    "WaitTile",
    "columns_needed",
    "parse_journey",
]

Target = Literal["contact", "account"]
ForEach = Literal["contact", "account"]
AssignedTo = Literal["journey_owner", "account_owner", "account_creator"]
ActivityKind = Literal["task", "phonecall", "appointment"]

#: Columns a condition reads from a record's typed fields (scoring.records) rather than its attributes.
TYPED: Final[Mapping[str, Mapping[str, str]]] = {
    "contact": {"contactid": "id", "parentcustomerid": "account_id"},
    "account": {"accountid": "id"},
}


class JourneyError(ModelError):
    """An invalid journey: `path` is the JSON path of the offending value, `reason` says why."""


@dataclass(frozen=True)
class InteractionCondition:
    """True when the contact has at least one `interaction` within `within_days` before now, passing every `where`."""

    interaction: str
    within_days: int
    where: tuple[FieldTest, ...] = ()


@dataclass(frozen=True)
class AttributeTest:
    """`table.column op value` on the contact (`table` contact) or its account (`table` account; None if none)."""

    table: Literal["contact", "account"]
    column: str
    op: str
    value: Any = None

    def matches(self, actual: Any) -> bool:
        return OPERATORS[self.op](actual, self.value)


Condition = InteractionCondition | AttributeTest


@dataclass(frozen=True)
class TriggerTile:
    """If/then: contacts wait here until the condition is true (-> `true`) or `expires_after_days` pass (-> `false`).

    `based_on` account: the contacts of one account at this tile take one path together, true when `any` (or `all`,
    per `account_rule`) of them is; expiry counts from the account's earliest entry at the tile."""

    id: str
    condition: Condition
    expires_after_days: float
    true: str | None
    false: str | None
    based_on: Target = "contact"
    account_rule: Literal["any", "all"] = "any"
    type: Literal["trigger"] = "trigger"


@dataclass(frozen=True)
class ActivityTile:
    """Creates a task, phone call or appointment per contact or per account (once), then passes on."""

    id: str
    activity: ActivityKind
    subject: Template
    next: str | None
    for_each: ForEach = "contact"
    assigned_to: AssignedTo = "journey_owner"
    regarding: Target = "contact"
    description: Template | None = None
    type: Literal["activity"] = "activity"


@dataclass(frozen=True)
class LaunchWorkflowTile:
    """Runs an on-demand classic workflow on the contact, or on its account (once per account)."""

    id: str
    workflow: str
    next: str | None
    for_each: ForEach = "contact"
    type: Literal["launch_workflow"] = "launch_workflow"


@dataclass(frozen=True)
class CreateLeadTile:
    """Creates a lead for the contact (and its account), or for the account only (once); never matches old leads."""

    id: str
    subject: Template
    next: str | None
    for_each: ForEach = "contact"
    description: Template | None = None
    type: Literal["create_lead"] = "create_lead"


@dataclass(frozen=True)
class EmailTile:
    """Records a personalized email per contact; skipped below minimum consent or with do_not_bulk_email."""

    id: str
    subject: Template
    template: Template
    next: str | None
    type: Literal["email"] = "email"


@dataclass(frozen=True)
class WaitTile:
    """Holds contacts for `days` after they entered it, or until `until` (aware datetime)."""

    id: str
    next: str | None
    days: float | None = None
    until: datetime | None = None
    type: Literal["wait"] = "wait"


Tile = TriggerTile | ActivityTile | LaunchWorkflowTile | CreateLeadTile | EmailTile | WaitTile


@dataclass(frozen=True)
class Journey:
    """A parsed journey. `tiles` keep file order; `order` is the tiles' ids in a topological order of the graph."""

    name: str
    version: int
    status: Literal["live", "draft"]
    target: Target
    minimum_consent: int
    owner: str
    segment: str
    start: str
    tiles: tuple[Tile, ...]
    order: tuple[str, ...]
    description: str | None = None

    @property
    def live(self) -> bool:
        """Only live journeys are run."""
        return self.status == "live"

    @property
    def account_based(self) -> bool:
        return self.target == "account"

    def tile(self, tile_id: str) -> Tile:
        """The tile with this id (KeyError when there is none)."""
        for tile in self.tiles:
            if tile.id == tile_id:
                return tile
        raise KeyError(tile_id)


def successors(tile: Tile) -> tuple[str | None, ...]:
    """The tile ids (or None, the end) a tile leads to."""
    if isinstance(tile, TriggerTile):
        return (tile.true, tile.false)
    return (tile.next,)


def _template(item: Mapping[str, Any], key: str, path: str) -> Template:
    try:
        return compile_template(item[key])
    except TemplateError as exc:
        raise JourneyError(f"{path}.{key}", str(exc)) from None


def _optional_template(item: Mapping[str, Any], key: str, path: str) -> Template | None:
    return _template(item, key, path) if key in item else None


def _value(item: Mapping[str, Any], path: str) -> Any:
    problem = _value_problem(item["op"], item.get("value"), "value" in item)
    if problem:
        raise JourneyError(f"{path}.value" if "value" in item else f"{path}.op", problem)
    value = item.get("value")
    return tuple(value) if isinstance(value, list) else value


def _condition(item: Mapping[str, Any], path: str) -> Condition:
    if "attribute" in item:
        table, _, column = str(item["attribute"]).partition(".")
        if table not in ("contact", "account") or not column or "." in column:
            raise JourneyError(f"{path}.attribute", "an attribute is contact.<column> or account.<column>")
        return AttributeTest(table, column, item["op"], _value(item, path))  # type: ignore[arg-type]
    where = tuple(
        FieldTest(test["field"], test["op"], _value(test, f"{path}.where[{j}]"))
        for j, test in enumerate(item.get("where", ()))
    )
    return InteractionCondition(item["interaction"], item["within_days"], where)


def _until(value: str, path: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise JourneyError(path, f"{value!r} is not an ISO datetime") from None
    if moment.tzinfo is None:
        raise JourneyError(path, f"{value!r} has no time zone")
    return moment


def _tile(item: Mapping[str, Any], path: str) -> Tile:
    kind, tile_id = item["type"], item["id"]
    if kind == "trigger":
        return TriggerTile(
            id=tile_id,
            condition=_condition(item["condition"], f"{path}.condition"),
            expires_after_days=item["expires_after_days"],
            true=item.get("true"),
            false=item.get("false"),
            based_on=item.get("based_on", "contact"),
            account_rule=item.get("account_rule", "any"),
        )
    if kind == "activity":
        return ActivityTile(
            id=tile_id,
            activity=item["activity"],
            subject=_template(item, "subject", path),
            next=item.get("next"),
            for_each=item.get("for_each", "contact"),
            assigned_to=item.get("assigned_to", "journey_owner"),
            regarding=item.get("regarding", "contact"),
            description=_optional_template(item, "description", path),
        )
    if kind == "launch_workflow":
        return LaunchWorkflowTile(
            tile_id, str(item["workflow"]).lower(), item.get("next"), item.get("for_each", "contact")
        )
    if kind == "create_lead":
        return CreateLeadTile(
            id=tile_id,
            subject=_template(item, "subject", path),
            next=item.get("next"),
            for_each=item.get("for_each", "contact"),
            description=_optional_template(item, "description", path),
        )
    if kind == "email":
        return EmailTile(tile_id, _template(item, "subject", path), _template(item, "template", path), item.get("next"))
    if ("days" in item) == ("until" in item):
        raise JourneyError(path, "a wait tile has either days or until")
    until = _until(item["until"], f"{path}.until") if "until" in item else None
    return WaitTile(tile_id, item.get("next"), item.get("days"), until)


def _account_options(tile: Tile) -> Iterable[tuple[str, str]]:
    """(key, value) of the account-only options a tile uses."""
    if isinstance(tile, TriggerTile) and tile.based_on == "account":
        yield "based_on", "account"
    if isinstance(tile, ActivityTile | LaunchWorkflowTile | CreateLeadTile) and tile.for_each == "account":
        yield "for_each", "account"
    if isinstance(tile, ActivityTile):
        if tile.assigned_to != "journey_owner":
            yield "assigned_to", tile.assigned_to
        if tile.regarding == "account":
            yield "regarding", "account"


def _order(start: str, tiles: Mapping[str, Tile]) -> tuple[str, ...]:
    """A topological order of all tiles (file order among equals); JourneyError on a cycle."""
    indegree = dict.fromkeys(tiles, 0)
    for tile in tiles.values():
        for target in set(successors(tile)):
            if target is not None:
                indegree[target] += 1
    ready = [tile_id for tile_id, degree in indegree.items() if degree == 0]
    order: list[str] = []
    while ready:
        current = ready.pop(0)
        order.append(current)
        for target in dict.fromkeys(successors(tiles[current])):
            if target is not None:
                indegree[target] -= 1
                if indegree[target] == 0:
                    ready.append(target)
    if len(order) < len(tiles):
        looping = [tile_id for tile_id in tiles if tile_id not in order]
        raise JourneyError("$.tiles", f"the tiles {', '.join(looping)} form a cycle (journeys must not loop)")
    del start
    return tuple(order)


def parse_journey(data: Mapping[str, Any]) -> Journey:
    """The journey of a schema-valid document, after the checks the schema cannot make (raises JourneyError)."""
    tiles: dict[str, Tile] = {}
    for i, item in enumerate(data["tiles"]):
        path = f"$.tiles[{i}]"
        if item["id"] in tiles:
            raise JourneyError(f"{path}.id", f"tile id {item['id']!r} is used twice")
        tile = _tile(item, path)
        if data["target"] == "contact":
            for key, value in _account_options(tile):
                raise JourneyError(f"{path}.{key}", f"{key} {value} is only valid in account-based journeys")
        if isinstance(tile, ActivityTile) and tile.for_each == "contact" and tile.assigned_to != "journey_owner":
            raise JourneyError(f"{path}.assigned_to", "an activity per contact is assigned to the journey owner")
        tiles[tile.id] = tile
    for i, item in enumerate(data["tiles"]):
        for key in ("next", "true", "false"):
            target = item.get(key)
            if target is not None and target not in tiles:
                raise JourneyError(f"$.tiles[{i}].{key}", f"no tile has the id {target!r}")
    if data["start"] not in tiles:
        raise JourneyError("$.start", f"no tile has the id {data['start']!r}")
    return Journey(
        name=data["name"],
        version=data["version"],
        status=data["status"],
        target=data["target"],
        minimum_consent=data["minimum_consent"],
        owner=str(data["owner"]).lower(),
        segment=data["segment"],
        start=data["start"],
        tiles=tuple(tiles.values()),
        order=_order(data["start"], tiles),
        description=data.get("description"),
    )


def _templates(tile: Tile) -> Iterable[Template]:
    if isinstance(tile, ActivityTile | CreateLeadTile):
        yield tile.subject
        if tile.description is not None:
            yield tile.description
    elif isinstance(tile, EmailTile):
        yield tile.subject
        yield tile.template


def columns_needed(journeys: Sequence[Journey]) -> dict[str, set[str]]:
    """The contact, account and interaction attribute columns the journeys read (conditions and templates), for the
    service's `$select`; typed columns (ids, lookups, consent) are left out, and contact `statecode` is always in."""
    needed: dict[str, set[str]] = {"contact": set(), "account": set(), "interaction": set()}
    for journey in journeys:
        needed["contact"].add("statecode")
        for tile in journey.tiles:
            if isinstance(tile, TriggerTile):
                condition = tile.condition
                if isinstance(condition, AttributeTest):
                    if condition.column not in TYPED[condition.table]:
                        needed[condition.table].add(condition.column)
                else:
                    needed["interaction"].update(test.field for test in condition.where)
            for template in _templates(tile):
                needed["contact"] |= template.contact_columns - {*TYPED["contact"], ACCOUNT_RELATION}
                needed["account"] |= template.account_columns - set(TYPED["account"])
    return needed
