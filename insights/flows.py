"""Flow: the paths accounts (or contacts) take into or out of an anchor, column by column, as a Sankey diagram shows.

Follows Customer Journey Analytics' flow visualization (B2B): an anchor that the flow starts with or ends with, a
pathing dimension (event type or content type), repeat instances collapsed unless asked for, at most 5 columns of at
most 10 items each, the rest of a column grouped as "(other)". Each entity follows one path, anchored at its first
occurrence of the anchor or, when asked, its last (CJA's "limit to first/last occurrence"), so every node count is
a count of entities.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

from insights.periods import DateRange
from insights.timeline import Event

__all__ = [
    "OTHER",
    "Flow",
    "FlowContainer",
    "FlowDimension",
    "FlowLink",
    "FlowNode",
    "FlowOccurrence",
    "FlowSettings",
    "flow",
]

FlowDimension = Literal["type", "content_type"]
FlowContainer = Literal["account", "contact"]
FlowOccurrence = Literal["first", "last"]
OTHER = "(other)"
MAX_COLUMNS = 5
MAX_LIMIT = 10


@dataclass(frozen=True)
class FlowSettings:
    """What a flow shows: the anchor (exactly one of `starts_with` / `ends_with`), the pathing dimension, whether
    repeats stay, how many columns of how many items, which container walks the path, the range of time, and which
    occurrence of the anchor a path is anchored at when an entity reaches it more than once."""

    dimension: FlowDimension = "type"
    starts_with: str | None = None
    ends_with: str | None = None
    repeats: bool = False
    columns: int = 5
    limit: int = 10
    container: FlowContainer = "account"
    span: DateRange | None = None
    occurrence: FlowOccurrence = "first"

    def __post_init__(self) -> None:
        if self.dimension not in get_args(FlowDimension):
            raise ValueError(f"flow dimension must be 'type' or 'content_type', not {self.dimension!r}")
        if (self.starts_with is None) == (self.ends_with is None):
            raise ValueError("a flow needs exactly one anchor: starts_with or ends_with")
        if not (self.starts_with or self.ends_with):
            raise ValueError("a flow's anchor must not be empty")
        if isinstance(self.columns, bool) or not 1 <= self.columns <= MAX_COLUMNS:
            raise ValueError(f"flow columns must be 1..{MAX_COLUMNS}, not {self.columns!r}")
        if isinstance(self.limit, bool) or not 1 <= self.limit <= MAX_LIMIT:
            raise ValueError(f"flow limit (items per column) must be 1..{MAX_LIMIT}, not {self.limit!r}")
        if self.container not in get_args(FlowContainer):
            raise ValueError(f"flow container must be 'account' or 'contact', not {self.container!r}")
        if self.occurrence not in get_args(FlowOccurrence):
            raise ValueError(f"flow occurrence must be 'first' or 'last', not {self.occurrence!r}")

    @property
    def anchor(self) -> str:
        """The anchor value, whichever end it is at."""
        return self.starts_with or self.ends_with or ""


@dataclass(frozen=True)
class FlowNode:
    """One item of one column: how many entities pass through it, and which (to check a count; not in as_dict)."""

    column: int
    label: str
    count: int
    entities: tuple[str, ...]


@dataclass(frozen=True)
class FlowLink:
    """Entities going from an item of column `column` to an item of the next column."""

    column: int
    source: str
    target: str
    count: int


@dataclass(frozen=True)
class Flow:
    """The flow: its settings, how many entities it holds (`paths`), nodes, links, and per column how many paths
    begin there (ends_with: `ends` are entries) or end there (starts_with: `ends` are exits)."""

    settings: FlowSettings
    paths: int
    nodes: tuple[FlowNode, ...]
    links: tuple[FlowLink, ...]
    ends: tuple[int, ...]

    def node(self, column: int, label: str) -> FlowNode | None:
        """The node of that column and label, if the flow has one (to see which entities it counts)."""
        return next((n for n in self.nodes if n.column == column and n.label == label), None)

    def as_dict(self) -> dict[str, Any]:
        s = self.settings
        anchor_key = "starts_with" if s.starts_with is not None else "ends_with"
        return {
            "container": s.container,
            "dimension": s.dimension,
            "anchor": {anchor_key: s.anchor},
            "occurrence": s.occurrence,
            "repeats": s.repeats,
            "columns": s.columns,
            "limit": s.limit,
            "range": s.span.as_dict() if s.span else None,
            "paths": self.paths,
            "nodes": [{"column": n.column, "label": n.label, "count": n.count} for n in self.nodes],
            "links": [
                {
                    "from": {"column": k.column, "label": k.source},
                    "to": {"column": k.column + 1, "label": k.target},
                    "count": k.count,
                }
                for k in self.links
            ],
            ("exits" if anchor_key == "starts_with" else "entries"): list(self.ends),
        }


def flow(events: Sequence[Event], settings: FlowSettings) -> Flow:
    """The flow of `events` (ordered by time) under `settings`: one path per entity that reaches the anchor."""
    labels: dict[str, list[str]] = defaultdict(list)
    for event in events:
        entity = event.container_id(settings.container)
        if entity is None or (settings.span is not None and event.at not in settings.span):
            continue
        label = _label(event, settings)
        if label is None:
            continue
        sequence = labels[entity]
        if settings.repeats or not sequence or sequence[-1] != label:
            sequence.append(label)

    placed: dict[str, dict[int, str]] = {}  # entity -> column -> label
    ends = [0] * settings.columns
    for entity, sequence in labels.items():
        if settings.anchor not in sequence:
            continue
        if settings.occurrence == "last":
            at = len(sequence) - 1 - sequence[::-1].index(settings.anchor)
        else:
            at = sequence.index(settings.anchor)
        placed[entity], end = _place(sequence, at, settings)
        if end is not None:
            ends[end] += 1

    members: dict[tuple[int, str], list[str]] = defaultdict(list)
    for entity, row in placed.items():
        for column, label in row.items():
            members[column, label].append(entity)
    kept = _top(members, settings.limit)

    grouped: dict[tuple[int, str], list[str]] = defaultdict(list)
    for (column, label), entities in members.items():
        grouped[column, label if (column, label) in kept else OTHER].extend(entities)
    nodes = sorted(
        (FlowNode(column, label, len(ids), tuple(sorted(ids))) for (column, label), ids in grouped.items()),
        key=lambda n: (n.column, -n.count, n.label),
    )

    def shown(column: int, label: str) -> str:
        return label if (column, label) in kept else OTHER

    links: Counter[tuple[int, str, str]] = Counter()
    for row in placed.values():
        for column in sorted(row):
            if column + 1 in row:
                links[column, shown(column, row[column]), shown(column + 1, row[column + 1])] += 1
    ordered = sorted(links.items(), key=lambda item: (item[0][0], -item[1], item[0][1], item[0][2]))
    return Flow(
        settings=settings,
        paths=len(placed),
        nodes=tuple(nodes),
        links=tuple(FlowLink(column, source, target, count) for (column, source, target), count in ordered),
        ends=tuple(ends),
    )


def _label(event: Event, settings: FlowSettings) -> str | None:
    """The event's node label: the anchor when it matches by type or dimension value, else its dimension value."""
    value = event.type if settings.dimension == "type" else event.content_type
    if settings.anchor in (event.type, value):
        return settings.anchor
    return value


def _place(sequence: list[str], at: int, settings: FlowSettings) -> tuple[dict[int, str], int | None]:
    """An entity's path through the anchor at `at` as column -> label, and the column where it begins (ends_with)
    or ends (starts_with), None when it goes on past the flow's edge (nodes before column 0, or after the last)."""
    columns = settings.columns
    if settings.starts_with is not None:
        after = sequence[at : at + columns]
        end = len(after) - 1 if at + columns >= len(sequence) else None
        return dict(enumerate(after)), end
    start = max(0, at - columns + 1)
    before = sequence[start : at + 1]
    offset = columns - len(before)
    return {offset + i: label for i, label in enumerate(before)}, (offset if start == 0 else None)


def _top(members: dict[tuple[int, str], list[str]], limit: int) -> set[tuple[int, str]]:
    """Per column, the `limit` labels with most entities (ties: alphabetical); the others are grouped as OTHER."""
    by_column: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for (column, label), entities in members.items():
        by_column[column].append((-len(entities), label))
    return {(column, label) for column, items in by_column.items() for _, label in sorted(items)[:limit]}
