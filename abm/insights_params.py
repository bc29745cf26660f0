"""The insights' parameters: query-string text (HTTP) or command-line options, both given as `name -> text`, turned
into the analyses' settings. One parser for both front ends, so they accept the same values and reject the same
mistakes with the same message (an `InsightsInputError`, a 400 over HTTP).

Dates: `from` and `to` are days (`2026-04-30`, both inclusive) or UTC datetimes (`2026-04-30T12:00:00Z`, `to`
exclusive); without them the range is the twelve months up to now.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal, TypeVar

from insights.cohorts import CohortSettings, Criteria, MetricTest
from insights.flows import FlowContainer, FlowDimension, FlowSettings
from insights.paths import PathSettings, PercentOf
from insights.periods import GRANULARITIES, DateRange, periods
from insights.timeline import CONTAINERS

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
    "flows": (*_RANGE, "dimension", "starts_with", "ends_with", "repeats", "columns", "limit", "container"),
    "paths": (*_RANGE, "steps", "account", "percent", "container"),
}
_TEST = re.compile(r"^\s*([A-Za-z][\w .-]*?)\s*(?:>=\s*(\d+))?\s*$")
T = TypeVar("T")
_MATCHES: tuple[Literal["all", "any"], ...] = ("all", "any")
_DIMENSIONS: tuple[FlowDimension, ...] = ("type", "content_type")
_PEOPLE: tuple[FlowContainer, ...] = ("account", "contact")  # flows and paths follow accounts or contacts
_PERCENTS: tuple[PercentOf, ...] = ("start", "previous")


class InsightsInputError(ValueError):
    """A parameter is missing, unknown or malformed; the message names it."""


def check_names(analysis: str, params: Mapping[str, str]) -> None:
    """Reject parameters the analysis does not know."""
    unknown = sorted(set(params) - set(PARAMETERS[analysis]) - IGNORED)
    if unknown:
        known = ", ".join(PARAMETERS[analysis])
        raise InsightsInputError(f"unknown parameter {unknown[0]!r} (accepted: {known})")


def _moment(name: str, text: str, *, end: bool) -> datetime:
    text = text.strip()
    try:
        if len(text) == 10:
            day = datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
            return day + timedelta(days=1) if end else day
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InsightsInputError(f"{name}: {text!r} is not a date (YYYY-MM-DD) or a datetime") from None
    if moment.tzinfo is None:
        raise InsightsInputError(f"{name}: {text!r} has no time zone (add Z for UTC)")
    return moment.astimezone(UTC)


def date_range(params: Mapping[str, str], now: datetime) -> DateRange:
    """`from` .. `to` (see the module docstring); the twelve months up to `now` by default."""
    end = _moment("to", params["to"], end=True) if params.get("to") else now
    start = _moment("from", params["from"], end=False) if params.get("from") else end - DEFAULT_RANGE
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


def number(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    text = params.get(name)
    if text is None or text == "":
        return default
    if not text.strip().isdigit() or not low <= int(text) <= high:
        raise InsightsInputError(f"{name}: {text!r} is not a whole number from {low} to {high}")
    return int(text)


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
        tests.append(MetricTest(metric, int(found.group(2) or 1)))
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


def cohort_settings(params: Mapping[str, str], now: datetime, known: Collection[str]) -> CohortSettings:
    check_names("cohorts", params)
    span = date_range(params, now)
    granularity = choice(params, "granularity", GRANULARITIES, "month")
    if len(periods(span, granularity)) > MAX_PERIODS:
        raise InsightsInputError(f"granularity: more than {MAX_PERIODS} {granularity}s in the range; use a coarser one")
    inclusion, returning = _criteria(params, "include", known), _criteria(params, "return", known)
    container = choice(params, "container", CONTAINERS, "account")
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
    repeats, span = flag(params, "repeats"), date_range(params, now)
    columns, limit = number(params, "columns", 5, 1, 5), number(params, "limit", 10, 1, 10)
    container = choice(params, "container", _PEOPLE, "account")
    return _build("flows", lambda: FlowSettings(dimension, starts, ends, repeats, columns, limit, container, span))


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
