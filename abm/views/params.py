"""The insights' parameters: query-string text (HTTP) or command-line options, both given as `name -> text`, turned
into the analyses' settings. One parser for both front ends, so they accept the same values and reject the same
mistakes with the same message (an `InsightsInputError`, a 400 over HTTP).

Dates: `from` and `to` are days (`2026-04-30`, both inclusive) or UTC datetimes (`2026-04-30T12:00:00Z`, `to`
exclusive), from 1753-01-01 (Dataverse's earliest date) to 9998-12-31, so that every period of a range can be
computed; without them the range is the twelve months up to now. Numbers are ASCII digits within stated bounds.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, date, datetime, time, timedelta
from functools import partial
from typing import Any, Literal, TypeVar

from abm.errors import InvalidInput
from insights.cohorts import CohortSettings, Criteria, MetricTest
from insights.flows import FlowContainer, FlowDimension, FlowOccurrence, FlowSettings
from insights.paths import PathSettings, PercentOf
from insights.periods import GRANULARITIES, DateRange, Granularity, floor, offset
from insights.timeline import CONTAINERS, OPPORTUNITY_MILESTONES

__all__ = [
    "DEFAULT_RANGE",
    "MAX_PERIODS",
    "PARAMETERS",
    "InsightsInputError",
    "cohort_settings",
    "date_range",
    "flow_settings",
    "path_settings",
]

DEFAULT_RANGE = timedelta(days=365)
MAX_PERIODS = 400  # cohort rows: more is unreadable and slow (use a coarser granularity)
MAX_AT_LEAST = 1_000_000  # the largest N of METRIC>=N
# The moments a range may start or end at: Dataverse's earliest date, and a year short of datetime's last, so that
# a period (up to a year) can always be added to a range's end.
EARLIEST = datetime(1753, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)
IGNORED = frozenset({"code"})  # the function key, when sent as ?code=
_RANGE = ("from", "to")
# The parameters each analysis accepts (others are an error: a misspelt option should not be silently ignored).
PARAMETERS: dict[str, tuple[str, ...]] = {
    "account": _RANGE,
    "journey": ("account",),
    "cohorts": (
        *_RANGE,
        "include",
        "include_match",
        "return",
        "return_match",
        "granularity",
        "container",
        "type",
        "rolling",
    ),
    "flows": (
        *_RANGE,
        "dimension",
        "starts_with",
        "ends_with",
        "occurrence",
        "repeats",
        "columns",
        "limit",
        "container",
    ),
    "paths": (*_RANGE, "steps", "account", "percent", "container"),
}
_TEST = re.compile(r"^\s*([A-Za-z][\w .-]*?)\s*(?:>=\s*([0-9]+))?\s*$")
T = TypeVar("T")
_MATCHES: tuple[Literal["all", "any"], ...] = ("all", "any")
_DIMENSIONS: tuple[FlowDimension, ...] = ("type", "content_type")
_OCCURRENCES: tuple[FlowOccurrence, ...] = ("first", "last")
_PEOPLE: tuple[FlowContainer, ...] = ("account", "contact")  # flows and paths follow accounts or contacts
_PERCENTS: tuple[PercentOf, ...] = ("start", "previous")


class InsightsInputError(InvalidInput):
    """A parameter is missing, unknown or malformed; the message names it."""


def check_names(analysis: str, params: Mapping[str, str]) -> None:
    """Reject parameters the analysis does not know."""
    unknown = sorted(set(params) - set(PARAMETERS[analysis]) - IGNORED)
    if unknown:
        known = ", ".join(PARAMETERS[analysis])
        raise InsightsInputError(f"unknown parameter {unknown[0]!r} (accepted: {known})")


def _moment(name: str, text: str, *, end: bool) -> datetime:
    """A day (the start of it, or with `end` the start of the next) or an aware datetime, in UTC and in bounds."""
    text = text.strip()
    moment: datetime | None = None
    try:
        if len(text) == 10:
            moment = datetime.combine(date.fromisoformat(text), time(), UTC) + timedelta(days=1 if end else 0)
        else:
            parsed = datetime.fromisoformat(text)
            if parsed.tzinfo is None:
                raise InsightsInputError(f"{name}: {text!r} has no time zone (add Z for UTC)")
            moment = parsed.astimezone(UTC)
    except InsightsInputError:
        raise
    except ValueError:
        raise InsightsInputError(f"{name}: {text!r} is not a date (YYYY-MM-DD) or a datetime") from None
    except OverflowError:
        pass  # a day after 9999-12-31 or a moment before year 1 in UTC: out of bounds, as below
    if moment is None or not EARLIEST <= moment <= LATEST:
        last = LATEST - timedelta(days=1)
        raise InsightsInputError(
            f"{name}: {text!r} is outside the dates insights cover ({EARLIEST:%Y-%m-%d} .. {last:%Y-%m-%d})"
        )
    return moment


def date_range(params: Mapping[str, str], now: datetime) -> DateRange:
    """`from` .. `to` (see the module docstring); the twelve months up to `now` by default (never before EARLIEST)."""
    for name in ("from", "to"):
        if name in params and not params[name].strip():
            raise InsightsInputError(f"{name}: empty (leave it out for the default range)")
    end = _moment("to", params["to"], end=True) if "to" in params else now
    start = _moment("from", params["from"], end=False) if "from" in params else max(EARLIEST, end - DEFAULT_RANGE)
    if end <= start:
        raise InsightsInputError(f"from: the range must start before it ends ({start:%Y-%m-%d} .. {end:%Y-%m-%d})")
    return DateRange(start, end)


def choice(params: Mapping[str, str], name: str, allowed: Collection[T], default: T) -> T:
    text = params.get(name)
    if text is None or text == "":
        return default
    for value in allowed:
        if text.strip().lower() == str(value):
            return value
    raise InsightsInputError(f"{name}: {text!r} is not one of {', '.join(map(str, allowed))}")


def flag(params: Mapping[str, str], name: str) -> bool:
    """An on/off option: absent is off; `true`, `1`, `yes` or an empty value (`?rolling`) is on."""
    text = params.get(name)
    if text is None:
        return False
    value = text.strip().lower()
    if value not in ("true", "1", "yes", "", "false", "0", "no"):
        raise InsightsInputError(f"{name}: {text!r} is not true or false")
    return value in ("true", "1", "yes", "")


def _whole(text: str, low: int, high: int) -> int | None:
    """`text` as a whole number from `low` to `high`, or None: ASCII digits only (`str.isdigit` also accepts "²"
    and other digits `int` refuses), and no longer than `high` is, so `int` never parses a huge string."""
    text = text.strip()
    if not (text.isascii() and text.isdigit()) or len(text.lstrip("0")) > len(str(high)):
        return None
    value = int(text)
    return value if low <= value <= high else None


def number(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    text = params.get(name)
    if text is None or text == "":
        return default
    value = _whole(text, low, high)
    if value is None:
        raise InsightsInputError(f"{name}: {text!r} is not a whole number from {low} to {high}")
    return value


def names(params: Mapping[str, str], name: str, known: Collection[str], low: int, high: int) -> tuple[str, ...]:
    """A comma-separated list of event types (each one of `known`), `low` to `high` of them."""
    items = tuple(item.strip() for item in params.get(name, "").split(",") if item.strip())
    if not low <= len(items) <= high:
        raise InsightsInputError(f"{name}: give {low} to {high} event types, comma-separated")
    for item in items:
        event_type(name, item, known)
    return items


def event_type(name: str, value: str, known: Collection[str]) -> str:
    if value not in known:
        raise InsightsInputError(f"{name}: unknown event type {value!r} (known: {', '.join(sorted(known))})")
    return value


def _criteria(params: Mapping[str, str], name: str, known: Collection[str]) -> Criteria:
    """`Metric>=n,Metric` (n defaults to 1), up to three; `<name>_match` all (default) or any."""
    text = params.get(name, "")
    tests = []
    for item in filter(str.strip, text.split(",")):
        found = _TEST.match(item)
        if not found:
            raise InsightsInputError(f"{name}: {item.strip()!r} is not METRIC or METRIC>=N")
        metric = event_type(name, found.group(1), known)
        at_least = _whole(found.group(2) or "1", 1, MAX_AT_LEAST)
        if at_least is None:
            raise InsightsInputError(f"{name}: {item.strip()!r}: N of METRIC>=N must be from 1 to {MAX_AT_LEAST}")
        tests.append(_build(name, partial(MetricTest, metric, at_least)))
    if not tests:
        raise InsightsInputError(f"{name}: required, e.g. {name}=OpportunityCreated>=1")
    match = choice(params, f"{name}_match", _MATCHES, "all")
    return _build(name, lambda: Criteria(tuple(tests), match))


def _build(name: str, make: Callable[[], T]) -> T:
    """Build settings from checked values; their own checks become input errors naming the analysis."""
    try:
        return make()
    except InsightsInputError:
        raise
    except ValueError as exc:
        raise InsightsInputError(f"{name}: {exc}") from None


def _period_count(span: DateRange, granularity: Granularity) -> int:
    """How many periods overlap the range (as `periods` would list them, without listing them)."""
    return offset(floor(span.start, granularity), span.end - timedelta(microseconds=1), granularity) + 1


def cohort_settings(params: Mapping[str, str], now: datetime, known: Collection[str]) -> CohortSettings:
    """A cohort table's settings. An opportunity container counts only opportunity milestones (the only events
    with an opportunity id): other metrics would give an all-zero table, so they are refused by name."""
    check_names("cohorts", params)
    span = date_range(params, now)
    granularity = choice(params, "granularity", GRANULARITIES, "month")
    if _period_count(span, granularity) > MAX_PERIODS:
        raise InsightsInputError(f"granularity: more than {MAX_PERIODS} {granularity}s in the range; use a coarser one")
    inclusion, returning = _criteria(params, "include", known), _criteria(params, "return", known)
    container = choice(params, "container", CONTAINERS, "account")
    if container == "opportunity":
        named = dict.fromkeys(t.metric for t in (*inclusion.metrics, *returning.metrics))
        other = [metric for metric in named if metric not in OPPORTUNITY_MILESTONES]
        if other:
            raise InsightsInputError(
                f"container: {', '.join(other)} cannot be counted per opportunity; an opportunity container counts"
                f" only {', '.join(OPPORTUNITY_MILESTONES)}"
            )
    churn = choice(params, "type", ("retention", "churn"), "retention") == "churn"
    rolling = flag(params, "rolling")
    return _build(
        "cohorts",
        lambda: CohortSettings(inclusion, returning, granularity, span, container, churn, rolling),
    )


def flow_settings(params: Mapping[str, str], now: datetime, known: Collection[str]) -> FlowSettings:
    check_names("flows", params)
    starts, ends = params.get("starts_with") or None, params.get("ends_with") or None
    if (starts is None) == (ends is None):
        raise InsightsInputError("starts_with: give exactly one of starts_with and ends_with")
    dimension = choice(params, "dimension", _DIMENSIONS, "type")
    if dimension == "type":
        event_type("starts_with" if starts else "ends_with", starts or ends or "", known)
    occurrence = choice(params, "occurrence", _OCCURRENCES, "first")
    repeats, span = flag(params, "repeats"), date_range(params, now)
    columns, limit = number(params, "columns", 5, 1, 5), number(params, "limit", 10, 1, 10)
    container = choice(params, "container", _PEOPLE, "account")
    return _build(
        "flows",
        lambda: FlowSettings(
            dimension=dimension,
            starts_with=starts,
            ends_with=ends,
            repeats=repeats,
            columns=columns,
            limit=limit,
            container=container,
            span=span,
            occurrence=occurrence,
        ),
    )


def path_settings(params: Mapping[str, str], now: datetime, known: Collection[str]) -> PathSettings:
    check_names("paths", params)
    steps = names(params, "steps", known, 2, 10)
    percent = choice(params, "percent", _PERCENTS, "start")
    container = choice(params, "container", _PEOPLE, "account")
    account, span = params.get("account", "").strip().lower() or None, date_range(params, now)
    return _build("paths", lambda: PathSettings(steps, percent, container, account, span))


def as_params(values: Mapping[str, Any]) -> dict[str, str]:
    """Command-line option values as the query parameters they stand for (None: not given)."""
    return {
        name: ("true" if value is True else str(value)) for name, value in values.items() if value not in (None, False)
    }
