"""When a journey's contacts can next move with no new data: the "due moment" the state store indexes.

The service evaluates a journey, on a timer tick, only for the accounts whose data changed and those whose due moment
has come. After `journeys.engine.advance` has run at `now`, `next_change` gives, per contact still on a tile, the
earliest moment after `now` at which `advance` (same members, records and interactions, this progress as its state)
could move it. Missing a moment would lose or delay effects, so every way time alone moves a contact is covered;
a moment may be early (the run then moves nobody), never late. Mirroring `advance` exactly:

- wait tile: released when `now >= until`, or `now >= entered_at + days`;
- trigger tile: the false path when `now >= entered_at + expires_after_days` (an account-based trigger expires from
  the group's earliest entry, which is the earliest of its members' own moments, so the minimum over the result
  covers the group); the true path when an interaction condition turns true, which with no new data only happens
  when a future-dated interaction of the contact (of that type, passing every `where`) becomes current at its
  `occurred_on` (it counts while `now - within_days <= occurred_on <= now`). Interactions leaving the window never
  move anyone, and attribute conditions change only with data;
- action tiles pass contacts on in the same run, so a contact resting on one is one `advance` cannot see (no contact
  record): it moves only on new data.

`progress` is expected as `advance` left it at `now`, so moments at or before `now` are spent and left out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

from journeys.engine import Progress
from journeys.model import InteractionCondition, Journey, TriggerTile, WaitTile
from scoring.records import Interaction

__all__ = ["next_change"]


def _moments(tile: WaitTile | TriggerTile, progress: Progress, interactions: Sequence[Interaction]) -> list[datetime]:
    """Every moment at which time alone can move this contact off `tile` (some may be in the past)."""
    entered = progress.entered_at
    if isinstance(tile, WaitTile):
        return [tile.until if tile.until is not None else entered + timedelta(days=tile.days or 0)]
    moments = [entered + timedelta(days=tile.expires_after_days)]
    condition = tile.condition
    if isinstance(condition, InteractionCondition) and condition.within_days >= 0:
        moments.extend(
            item.occurred_on
            for item in interactions
            if item.type == condition.interaction and all(test.matches(item.attributes) for test in condition.where)
        )
    return moments


def next_change(
    journey: Journey,
    progress: Iterable[Progress],
    interactions_by_contact: Mapping[str, Sequence[Interaction]],
    *,
    now: datetime,
) -> dict[str, datetime]:
    """Per contact id, the earliest moment (UTC) after `now` at which `advance` could move it with no new data.

    Contacts that finished, rest on no tile or on a tile the journey no longer has, or move only on new data are
    absent; a journey that is not live moves nobody (empty result)."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be an aware datetime (UTC)")
    if not journey.live:
        return {}
    tiles = {tile.id: tile for tile in journey.tiles}
    due: dict[str, datetime] = {}
    for item in progress:
        tile = tiles.get(item.tile_id) if item.tile_id is not None and not item.finished else None
        if not isinstance(tile, WaitTile | TriggerTile):
            continue
        later = [m for m in _moments(tile, item, interactions_by_contact.get(item.contact_id, ())) if m > now]
        if later:
            moment = min(later).astimezone(UTC)
            known = due.get(item.contact_id)
            due[item.contact_id] = moment if known is None else min(known, moment)
    return due
