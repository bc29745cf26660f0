"""Interaction events from other systems: the service behind `POST /api/interactions`.

Outbound marketing's interaction store is gone, so in a real org the website, the forms, the email sender and event
registration post what contacts did. A batch (`schemas/interaction-events.schema.json`) is parsed and validated as
a whole; any problem is an `InteractionInputError` naming the JSON path (`events[3].occurred_on`) and the reason,
never the value (it may be personal data), and nothing is written. Delivery is at least once: each event's row id is
derived from the sender's `source` and `id` (uuid5), so a redelivered batch creates nothing twice and reports its
events as duplicates. Rows are written in bulk (`abm.jobs.writes.create_idempotent`), after one read per 100 contacts
has confirmed every contact exists, so a batch is written completely or not at all.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from abm.definitions import schema_validator
from abm.errors import MAX_BODY_BYTES, InvalidInput
from abm.inputs import EARLIEST, is_text
from abm.jobs.writes import create_idempotent
from dataverse.client import DataverseClient
from dataverse.mapping import MappingConfig
from dataverse.rows import InteractionWrite, existing_ids, interaction_row
from dataverse.tables import table, text_length

__all__ = [
    "EVENT_NAMESPACE",
    "MAX_BODY_BYTES",
    "IngestResult",
    "InteractionEvent",
    "InteractionInputError",
    "ingest",
    "parse_events",
]

log = logging.getLogger("abm.interactions")

FUTURE_TOLERANCE = timedelta(days=1)  # clocks differ; an event further ahead is a sender's bug
EVENT_NAMESPACE = uuid.UUID("0c5b1f0e-7a43-4d8e-9b61-2f4e8a9d3c57")

INTERACTIONS = table("abm_interaction")
CONTACTS = table("contact")
_OPTIONAL = ("asset", "campaign", "content_type")
_TYPES = {"string": "a string", "object": "an object", "array": "an array"}
_PATTERNS = {
    "source": "must be 1 to 50 letters, digits, '.', '_' or '-'",
    "contact_id": "must be a GUID",
    "occurred_on": "must be an RFC 3339 date-time with a UTC offset, such as 2026-11-23T08:30:00Z",
}


class InteractionInputError(InvalidInput):
    """A batch that cannot be accepted (invalid input): `path` is a JSON path such as `events[3].occurred_on` ("$"
    for the body as a whole); `reason` says what is wrong without repeating the value."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass(frozen=True)
class InteractionEvent:
    """One validated event: contact id lower-case, `occurred_on` aware."""

    id: str
    source: str
    type: str
    contact_id: str
    occurred_on: datetime
    asset: str | None = None
    campaign: str | None = None
    content_type: str | None = None

    @property
    def key(self) -> str:
        """The idempotency key: the sender's system and its own event id (a source cannot contain "/")."""
        return f"{self.source}/{self.id}"

    @property
    def row_id(self) -> uuid.UUID:
        """The id of the interaction row: the same key always gives the same id."""
        return uuid.uuid5(EVENT_NAMESPACE, self.key)


@dataclass(frozen=True)
class IngestResult:
    """What a batch did: events received, rows created, events already stored (or repeated within the batch), and
    the contacts the batch is about (lower-case ids), whose accounts the caller re-scores."""

    received: int
    created: int
    duplicates: int
    contacts: tuple[str, ...]

    def as_dict(self) -> dict[str, int]:
        """The HTTP answer: counts only."""
        return {
            "received": self.received,
            "created": self.created,
            "duplicates": self.duplicates,
            "contacts": len(self.contacts),
        }


@cache
def _validator() -> Draft202012Validator:
    return schema_validator("interaction-events.schema.json")


def _path(parts: Iterable[str | int]) -> str:
    path = ""
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else part
    return path or "$"


def _problem(error: ValidationError) -> InteractionInputError:
    """A schema violation as path and reason, built from the schema's side only (never the instance's values)."""
    parts: list[str | int] = list(error.absolute_path)
    keyword, expected = error.validator, error.validator_value
    leaf = next((p for p in reversed(parts) if isinstance(p, str)), "")
    if keyword == "required" and isinstance(error.instance, dict):
        missing = next((name for name in expected if name not in error.instance), "")
        return InteractionInputError(_path([*parts, missing]), "is required")
    if keyword == "additionalProperties":
        allowed = ", ".join(error.schema.get("properties", {}))
        return InteractionInputError(_path(parts), f"has a property that is not allowed (allowed: {allowed})")
    if keyword == "type":
        reason = f"must be {_TYPES.get(str(expected), str(expected))}"
    elif keyword == "enum":
        reason = "must be one of " + ", ".join(str(v) for v in expected)
    elif keyword == "pattern":
        reason = _PATTERNS.get(leaf, f"must match {expected}")
    elif keyword == "minLength":
        reason = "must not be empty" if expected == 1 else f"must be at least {expected} characters"
    elif keyword == "maxLength":
        reason = f"must be at most {expected} characters"
    elif keyword == "minItems":
        reason = f"must hold at least {expected} event"
    elif keyword == "maxItems":
        reason = f"must hold at most {expected:,} events"
    else:
        reason = f"breaks the schema's {keyword!r} rule"
    return InteractionInputError(_path(parts), reason)


def _first_problem(document: Any) -> InteractionInputError | None:
    """The problem to report: one of the body itself if any, else the most relevant one of the first bad event."""
    errors = list(_validator().iter_errors(document))
    if not errors:
        return None

    def position(error: ValidationError) -> int:
        path = list(error.absolute_path)
        return path[1] if len(path) > 1 and isinstance(path[1], int) else -1

    first = min(position(e) for e in errors)
    best = best_match(e for e in errors if position(e) == first)
    assert best is not None
    return _problem(best)


def _too_long_for_dataverse(events: Sequence[Mapping[str, Any]]) -> InteractionInputError | None:
    """The first text attribute the schema admits but its column would refuse: the schema's `maxLength` counts
    characters, Dataverse counts UTF-16 code units (an emoji is 2)."""
    limits = _validator().schema["$defs"]["event"]["properties"]
    for index, event in enumerate(events):
        for name in _OPTIONAL:
            limit = limits[name]["maxLength"]
            if name in event and text_length(event[name]) > limit:
                reason = f"must be at most {limit} characters (an emoji or other character outside the BMP counts 2)"
                return InteractionInputError(f"events[{index}].{name}", reason)
    return None


def _not_text(events: Sequence[Mapping[str, Any]]) -> InteractionInputError | None:
    """The first string the schema admits that is not text (a control character, a lone surrogate: Dataverse
    cannot store it, nor can a log line carry it)."""
    for index, event in enumerate(events):
        for name in ("id", *_OPTIONAL):
            if name in event and not is_text(event[name]):
                return InteractionInputError(f"events[{index}].{name}", "must be text (no control characters)")
    return None


def _occurred_on(text: str, index: int, now: datetime) -> datetime:
    path = f"events[{index}].occurred_on"
    try:
        moment = datetime.fromisoformat(text.upper())
    except ValueError:
        raise InteractionInputError(path, "is not a valid date-time") from None
    if moment.tzinfo is None:  # the schema's pattern requires an offset; kept for events built in code
        raise InteractionInputError(path, "must have a UTC offset")
    _check_time(moment, index, now)
    return moment


def _check_time(moment: datetime, index: int, now: datetime) -> None:
    path = f"events[{index}].occurred_on"
    if moment > now + FUTURE_TOLERANCE:
        raise InteractionInputError(path, "is more than 1 day in the future")
    if moment < EARLIEST:
        raise InteractionInputError(path, "is before 1753-01-01, the earliest date Dataverse stores")


def _unique(events: Sequence[InteractionEvent]) -> list[tuple[int, InteractionEvent]]:
    """The events with their index in the batch, an event repeated identically kept once; the same (source, id)
    with different content is refused."""
    first: dict[str, tuple[int, InteractionEvent]] = {}
    for index, event in enumerate(events):
        seen = first.get(event.key)
        if seen is None:
            first[event.key] = (index, event)
        elif seen[1] != event:
            raise InteractionInputError(
                f"events[{index}].id", f"repeats the source and id of events[{seen[0]}] with different content"
            )
    return list(first.values())


def _check_now(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be an aware datetime (UTC)")


def parse_events(body: bytes, *, now: datetime) -> list[InteractionEvent]:
    """The events of a request body, in order (an event repeated identically stays repeated), or an
    `InteractionInputError`: body over 1 MiB, not JSON, against the schema, the same source and id with different
    content, `occurred_on` more than a day after `now`."""
    _check_now(now)
    if len(body) > MAX_BODY_BYTES:
        raise InteractionInputError("$", f"the body is over {MAX_BODY_BYTES:,} bytes")
    try:
        document = json.loads(body)
    except UnicodeDecodeError:
        raise InteractionInputError("$", "the body is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise InteractionInputError(
            "$", f"not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None
    except (ValueError, RecursionError):  # an integer of thousands of digits, nesting deeper than the parser goes
        raise InteractionInputError("$", "not valid JSON here: a number too long or nesting too deep") from None
    problem = _first_problem(document) or _not_text(document["events"]) or _too_long_for_dataverse(document["events"])
    if problem is not None:
        raise problem
    events = [
        InteractionEvent(
            id=item["id"],
            source=item["source"],
            type=item["type"],
            contact_id=item["contact_id"].lower(),
            occurred_on=_occurred_on(item["occurred_on"], index, now),
            **{name: item[name] for name in _OPTIONAL if name in item},
        )
        for index, item in enumerate(document["events"])
    ]
    _unique(events)
    return events


def _write(event: InteractionEvent) -> InteractionWrite:
    """The interaction row an event becomes: named by its type and campaign (else asset, else source)."""
    label = event.campaign or event.asset or event.source
    return InteractionWrite(
        id=event.row_id,
        key=event.key,
        name=f"{event.type}: {label}",
        contact_id=event.contact_id,
        type=event.type,
        occurred_on=event.occurred_on,
        attributes={name: getattr(event, name) for name in _OPTIONAL},
    )


def _missing_contacts(client: DataverseClient, contact_ids: Sequence[str]) -> set[str]:
    """The contact ids that are not rows of `contacts`: one read per 100 ids."""
    wanted = sorted(set(contact_ids))
    found = existing_ids(client, CONTACTS, [uuid.UUID(c) for c in wanted])
    return set(wanted) - {str(i) for i in found}


def ingest(
    client: DataverseClient,
    events: Sequence[InteractionEvent],
    *,
    now: datetime,
    mapping: MappingConfig | None = None,
) -> IngestResult:
    """Write a batch of events as interaction rows, each once whatever the redeliveries.

    Every contact must exist (checked before anything is written: an unknown one refuses the whole batch, naming
    the first `events[i].contact_id`); the rows go out in bulk, 1,000 per CreateMultiple, and events already
    stored count as duplicates. Raises `InteractionInputError` for a bad batch, `DataverseError` when Dataverse
    fails (the sender should then post the batch again)."""
    _check_now(now)
    for index, event in enumerate(events):
        _check_time(event.occurred_on, index, now)
    unique = _unique(events)
    contacts = tuple(sorted({event.contact_id.lower() for event in events}))
    missing = _missing_contacts(client, contacts) if contacts else set()
    if missing:
        index = next(i for i, event in enumerate(events) if event.contact_id.lower() in missing)
        raise InteractionInputError(f"events[{index}].contact_id", "no contact with this id exists in Dataverse")
    columns = (mapping or MappingConfig()).interactions
    rows = [interaction_row(_write(event), columns) for _, event in unique]
    created = create_idempotent(client, INTERACTIONS, rows) if rows else 0
    result = IngestResult(received=len(events), created=created, duplicates=len(events) - created, contacts=contacts)
    log.info(
        "interaction events: %d received, %d created, %d duplicates", result.received, result.created, result.duplicates
    )
    return result
