"""Journey path: how many accounts (or contacts) reach each step of an ordered series of events, and who falls out.

Follows Customer Journey Analytics' journey canvas and fallout (B2B, account container by default): an entity reaches
a step at its first event of that type after the event where it reached the step before, so steps are reached in
order and a step of the same type as the one before needs a second event. Percentages are of the start node or of
the previous node; an entity falls out at a node when it never reaches the next one. Given one account, the result
also holds that account's own path: its events from the first step to the last.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from insights.periods import DateRange
from insights.timeline import Event

__all__ = ["AccountPath", "JourneyPath", "PathContainer", "PathNode", "PathSettings", "PercentOf", "journey_path"]

PercentOf = Literal["start", "previous"]
PathContainer = Literal["account", "contact"]
MIN_STEPS = 2
MAX_STEPS = 10


@dataclass(frozen=True)
class PathSettings:
    """The ordered event types (first and last are the two milestones), the percentage base, the container, and
    optionally one account (only its events count, and its own path is returned) and a range of time."""

    steps: tuple[str, ...]
    percent_of: PercentOf = "start"
    container: PathContainer = "account"
    account: str | None = None
    span: DateRange | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.steps, tuple) or not MIN_STEPS <= len(self.steps) <= MAX_STEPS:
            raise ValueError(f"a journey path needs a tuple of {MIN_STEPS}..{MAX_STEPS} steps, not {self.steps!r}")
        if not all(isinstance(step, str) and step for step in self.steps):
            raise ValueError(f"every journey path step must be a non-empty event type: {self.steps!r}")
        if self.percent_of not in get_args(PercentOf):
            raise ValueError(f"percent_of must be 'start' or 'previous', not {self.percent_of!r}")
        if self.container not in get_args(PathContainer):
            raise ValueError(f"journey path container must be 'account' or 'contact', not {self.container!r}")
        if self.account == "":
            raise ValueError("a journey path's account must be an id or None, not empty")


@dataclass(frozen=True)
class PathNode:
    """One step: the entities that reached it (`entities`, to check the count; not in as_dict), the percentage,
    and those that never reached the next step (None on the last node)."""

    step: str
    reached: int
    percent: float | None
    fallout: int | None
    fallout_percent: float | None
    entities: tuple[str, ...]


@dataclass(frozen=True)
class AccountPath:
    """One account's own path: its events from where it reached the first step to where it reached the last (or
    to its last event), when it reached each step (in step order), and whether it reached the last one."""

    events: tuple[Event, ...]
    reached: tuple[datetime, ...]
    converted: bool


@dataclass(frozen=True)
class JourneyPath:
    """The nodes of a journey path and, when the settings name an account, that account's own path."""

    settings: PathSettings
    nodes: tuple[PathNode, ...]
    path: AccountPath | None

    def as_dict(self) -> dict[str, Any]:
        s = self.settings
        return {
            "container": s.container,
            "steps": list(s.steps),
            "percent_of": s.percent_of,
            "account": s.account,
            "range": s.span.as_dict() if s.span else None,
            "nodes": [
                {
                    "step": n.step,
                    "reached": n.reached,
                    "percent": n.percent,
                    "fallout": n.fallout,
                    "fallout_percent": n.fallout_percent,
                }
                for n in self.nodes
            ],
            "path": _path_dict(self.path, s.steps) if self.path is not None else None,
        }


def journey_path(events: Sequence[Event], settings: PathSettings) -> JourneyPath:
    """The journey path of `events` (ordered by time) under `settings`."""
    chosen = [
        e
        for e in events
        if (settings.span is None or e.at in settings.span)
        and (settings.account is None or e.account_id == settings.account)
    ]
    streams: dict[str, list[Event]] = defaultdict(list)
    for event in chosen:
        entity = event.container_id(settings.container)
        if entity is not None:
            streams[entity].append(event)

    reached: list[list[str]] = [[] for _ in settings.steps]
    for entity, stream in streams.items():
        for index in range(len(_walk(stream, settings.steps))):
            reached[index].append(entity)

    counts = [len(entities) for entities in reached]
    nodes = []
    for i, step in enumerate(settings.steps):
        base = counts[0] if settings.percent_of == "start" else counts[max(i - 1, 0)]
        fallout = counts[i] - counts[i + 1] if i + 1 < len(counts) else None
        nodes.append(
            PathNode(
                step=step,
                reached=counts[i],
                percent=_percent(counts[i], base),
                fallout=fallout,
                fallout_percent=_percent(fallout, counts[i]) if fallout is not None else None,
                entities=tuple(sorted(reached[i])),
            )
        )
    path = _account_path(chosen, settings.steps) if settings.account is not None else None
    return JourneyPath(settings=settings, nodes=tuple(nodes), path=path)


def _walk(stream: Sequence[Event], steps: Sequence[str]) -> list[int]:
    """The index in `stream` of the event where each step was reached, in step order, up to the first step missed."""
    positions: list[int] = []
    for index, event in enumerate(stream):
        if len(positions) == len(steps):
            break
        if event.type == steps[len(positions)]:
            positions.append(index)
    return positions


def _account_path(stream: Sequence[Event], steps: Sequence[str]) -> AccountPath:
    """The account's path over all its events (whatever the container): first step to last step, or to its end."""
    positions = _walk(stream, steps)
    if not positions:
        return AccountPath(events=(), reached=(), converted=False)
    converted = len(positions) == len(steps)
    last = positions[-1] if converted else len(stream) - 1
    return AccountPath(
        events=tuple(stream[positions[0] : last + 1]),
        reached=tuple(stream[i].at for i in positions),
        converted=converted,
    )


def _path_dict(path: AccountPath, steps: Sequence[str]) -> dict[str, Any]:
    """The account's path as JSON; a step name repeated in `steps` is keyed "Name (2)", "Name (3)" in `reached`."""
    seen: dict[str, int] = defaultdict(int)
    reached: dict[str, str] = {}
    for step, at in zip(steps, path.reached, strict=False):
        seen[step] += 1
        reached[step if seen[step] == 1 else f"{step} ({seen[step]})"] = _iso(at)
    return {
        "events": [
            {
                "at": _iso(e.at),
                "type": e.type,
                "milestone": e.milestone,
                "contact": e.contact_id,
                "content_type": e.content_type,
            }
            for e in path.events
        ],
        "reached": reached,
        "converted": path.converted,
    }


def _percent(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 1) if whole else None


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
