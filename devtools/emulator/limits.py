"""Service protection limits, injected faults and latency: what stands between a request and the emulator's data.

The limits are Dataverse's, as Learn documents them (https://learn.microsoft.com/power-apps/developer/data-platform/
api-limits): counted over a sliding window and evaluated after the fact, so a request that is admitted runs to the
end and the requests after it get 429 with `Retry-After` (whole seconds) until the window has room again.

- `--limit-requests N --limit-window S`: past N requests in the window → 0x80072322 (off unless N is given).
- `--limit-time MS --limit-window S`: past MS milliseconds of combined execution time in the window → 0x80072321; on
  by default with Dataverse's 1,200,000 ms per 300 s. Execution time is simulated: `--latency-ms` plus
  `ROW_COST_MS` (0.1 ms) per row a request touches (`touched_rows`: the rows of a page's `value`, the `Targets` of a
  bulk message, the requests a `$batch` ran, else 1). The reads of a full sync of the `ref` tenant (~490,000 rows)
  cost about 49,000 ms, a full sync of `small` about 1,500 ms: ordinary runs stay far below the default.
- more than `max_concurrent` (52) requests in flight → 0x80072326, at once rather than after the fact.
- every answer says what is left: `x-ms-ratelimit-burst-remaining-xrm-requests`, requests left in the window (of
  6,000 when no request limit is set, Dataverse's default), and `x-ms-ratelimit-time-remaining-xrm-requests`,
  execution time left in seconds with a thousands separator and two decimals (`1,199.46`). Learn only says "the
  remaining combined duration"; the unit and format are those of live answers quoted in Microsoft's docs
  (`1,200.00` beside a burst count of `5999` after one WhoAmI).
- `--faults 429=0.1,503=0.03,reset=0.01,lost=0.01,seed=7`: before the request is applied, a throttle, a server
  error or a dropped connection; `lost` applies the request and then drops the connection before the answer (what
  a real 502/504 can mean). Drawn from one seeded generator, so a run is reproducible. Tests also aim faults
  (`Faults.aimed`): the first N requests whose request line (`POST emails(<id>)/...SendEmail`) matches a pattern
  get that fault, so every kind meets a given call.
- `--latency-ms`: a delay per request, like a real org's round trip; it counts as execution time.
"""

from __future__ import annotations

import json
import math
import random
import re
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from devtools.emulator.errors import EmulatorError
from devtools.emulator.wire import Answer

__all__ = [
    "BURST_HEADER",
    "FAULT_KINDS",
    "ROW_COST_MS",
    "TIME_HEADER",
    "AimedFault",
    "Faults",
    "Guard",
    "GuardConfig",
    "Verdict",
    "touched_rows",
]

FAULT_KINDS = ("429", "503", "reset", "lost")
DEFAULT_REQUESTS = 6000
DEFAULT_TIME_MS = 1_200_000
DEFAULT_WINDOW = 300.0
ROW_COST_MS = 0.1  # simulated execution time per row a request touches
BURST_HEADER = "x-ms-ratelimit-burst-remaining-xrm-requests"
TIME_HEADER = "x-ms-ratelimit-time-remaining-xrm-requests"


@dataclass(frozen=True)
class AimedFault:
    """A fault for the first `times` requests whose request line (`METHOD path?query`) matches `pattern`."""

    kind: str
    pattern: str
    times: int = 1


@dataclass(frozen=True)
class Faults:
    """Probabilities per fault kind, and the seed of the generator that draws them; aimed faults come first."""

    rates: dict[str, float] = field(default_factory=dict)
    seed: int = 1
    aimed: tuple[AimedFault, ...] = ()

    @classmethod
    def parse(cls, spec: str | None) -> Faults:
        """`429=0.1,503=0.03,reset=0.01,lost=0.01,seed=7`; ValueError naming the bad part."""
        rates: dict[str, float] = {}
        seed = 1
        for part in (spec or "").split(","):
            if not part.strip():
                continue
            name, sep, value = part.strip().partition("=")
            try:
                number = float(value) if sep else None
            except ValueError:
                number = None
            if name == "seed" and number is not None and number == int(number):
                seed = int(number)
            elif name in FAULT_KINDS and number is not None and 0 <= number <= 1:
                rates[name] = number
            else:
                kinds = ", ".join(FAULT_KINDS)
                raise ValueError(f"bad fault '{part.strip()}': use KIND=PROBABILITY (kinds {kinds}) or seed=N")
        if sum(rates.values()) > 1:
            raise ValueError("fault probabilities add up to more than 1")
        return cls(rates, seed)


@dataclass(frozen=True)
class GuardConfig:
    """The limits (None: no request limit), faults and latency of one emulator."""

    limit_requests: int | None = None
    limit_time_ms: int = DEFAULT_TIME_MS
    limit_window: float = DEFAULT_WINDOW
    max_concurrent: int = 52
    faults: Faults = field(default_factory=Faults)
    latency_ms: int = 0
    dop_hint: int = 8
    fault_retry_after: int = 1


@dataclass(frozen=True)
class Verdict:
    """What happens to a request: an error answer instead of the real one, and/or a connection fault."""

    error: EmulatorError | None = None
    fault: str | None = None


def touched_rows(request_body: bytes, answer: Answer) -> int:
    """The rows a request touched, for its simulated execution time: a `$batch`'s answered requests, a page's
    `value`, a bulk message's `Targets`, else one row."""
    if answer.raw is not None:
        return answer.raw.count(b"\r\nHTTP/1.1 ")
    if isinstance(answer.body, dict) and isinstance(answer.body.get("value"), list):
        return len(answer.body["value"])
    if b'"Targets"' in request_body:
        try:
            targets = json.loads(request_body).get("Targets")
        except (ValueError, AttributeError):
            targets = None
        if isinstance(targets, list):
            return len(targets)
    return 1


def _throttled(code: str, message: str, retry_after: int) -> EmulatorError:
    """429 Too Many Requests with one of the service protection codes and `Retry-After` in seconds."""
    return EmulatorError(429, code, message, {"Retry-After": str(retry_after)})


def _seconds(wait: float) -> int:
    """A wait as `Retry-After` gives it: whole seconds, rounded up, at least one."""
    return max(1, math.ceil(wait))


def _requests_message(limit: int, window: float) -> str:
    return f"Number of requests exceeded the limit of {limit} over time window of {window:g} seconds."


def _time_message(limit_ms: int, window: float) -> str:
    return (
        f"Combined execution time of incoming requests exceeded limit of {limit_ms:,} milliseconds over time window "
        f"of {window:g} seconds. Decrease number of concurrent requests or reduce the duration of requests and try "
        "again later."
    )


class Guard:
    """Admits requests one by one, counting them and their execution time against the limits and drawing faults."""

    def __init__(self, config: GuardConfig) -> None:
        self.config = config
        self._rng = random.Random(config.faults.seed)
        self._lock = threading.Lock()
        self._admitted: deque[float] = deque()  # when each request in the window was admitted
        self._spent: deque[tuple[float, float]] = deque()  # (when it ended, its execution time in ms)
        self._spent_ms = 0.0
        self._in_flight = 0
        self.faults_drawn: dict[str, int] = dict.fromkeys(FAULT_KINDS, 0)
        self._aimed_left = [aim.times for aim in config.faults.aimed]  # per aimed fault, the requests it has left
        self.aimed_hits: list[tuple[str, str]] = []  # (kind, request line) of each aimed fault dealt
        self.refused: Counter[str] = Counter()  # requests refused by a limit, by error code

    def _draw(self, request: str) -> str | None:
        for index, aim in enumerate(self.config.faults.aimed):
            if self._aimed_left[index] and re.search(aim.pattern, request):
                self._aimed_left[index] -= 1
                self.aimed_hits.append((aim.kind, request))
                return aim.kind
        roll = self._rng.random()
        for kind in FAULT_KINDS:
            rate = self.config.faults.rates.get(kind, 0.0)
            if roll < rate:
                self.faults_drawn[kind] += 1
                return kind
            roll -= rate
        return None

    def heal(self) -> None:
        """Deal no more aimed faults (the org is well again)."""
        with self._lock:
            self._aimed_left = [0 for _ in self._aimed_left]

    def _slide(self, now: float) -> None:
        """Forget what has left the window."""
        horizon = now - self.config.limit_window
        while self._admitted and self._admitted[0] <= horizon:
            self._admitted.popleft()
        while self._spent and self._spent[0][0] <= horizon:
            self._spent_ms -= self._spent.popleft()[1]
        if not self._spent:
            self._spent_ms = 0.0  # no float drift once the window is empty

    def _too_concurrent(self) -> EmulatorError | None:
        limit = self.config.max_concurrent
        if self._in_flight <= limit:
            return None
        return _throttled("0x80072326", f"Number of concurrent requests exceeded the limit of {limit}.", 1)

    def _too_many(self, now: float) -> EmulatorError | None:
        limit, window = self.config.limit_requests, self.config.limit_window
        if limit is None or len(self._admitted) < limit:
            return None
        return _throttled("0x80072322", _requests_message(limit, window), _seconds(self._admitted[0] + window - now))

    def _too_long(self, now: float) -> EmulatorError | None:
        """Past the execution-time limit: refused until enough of the time spent has left the window."""
        limit, window = self.config.limit_time_ms, self.config.limit_window
        if self._spent_ms <= limit:
            return None
        excess, freed_at = self._spent_ms - limit, now
        for ended, ms in self._spent:
            excess -= ms
            freed_at = ended + window
            if excess <= 0:
                break
        return _throttled("0x80072321", _time_message(limit, window), _seconds(freed_at - now))

    @contextmanager
    def admit(self, request: str = "") -> Iterator[Verdict]:
        """Count the request in, check the limits, draw a fault (an aimed one first, by the request line); the
        latency is spent while in flight."""
        with self._lock:
            self._in_flight += 1
            now = time.monotonic()
            self._slide(now)
            error = self._too_concurrent() or self._too_many(now) or self._too_long(now)
            if error is None:
                self._admitted.append(now)
            else:
                self.refused[error.code] += 1
            fault = None if error else self._draw(request)
        try:
            if self.config.latency_ms:
                time.sleep(self.config.latency_ms / 1000)
            if fault == "429":
                message = _requests_message(DEFAULT_REQUESTS, DEFAULT_WINDOW)
                error = _throttled("0x80072322", message, self.config.fault_retry_after)
            elif fault == "503":
                error = EmulatorError(503, "", "Service Unavailable")
            yield Verdict(error, fault if fault in ("reset", "lost") else None)
        finally:
            with self._lock:
                self._in_flight -= 1

    def charge(self, request_body: bytes, answer: Answer) -> None:
        """Book a request that ran: `latency_ms` plus `ROW_COST_MS` per row touched, counted from when it ends."""
        ms = self.config.latency_ms + touched_rows(request_body, answer) * ROW_COST_MS
        with self._lock:
            self._spent.append((time.monotonic(), ms))
            self._spent_ms += ms

    def remaining(self) -> dict[str, str]:
        """The two headers every answer carries: requests and execution time (seconds) left in the window."""
        with self._lock:
            self._slide(time.monotonic())
            requests = (self.config.limit_requests or DEFAULT_REQUESTS) - len(self._admitted)
            seconds = (self.config.limit_time_ms - self._spent_ms) / 1000
        return {BURST_HEADER: str(max(0, requests)), TIME_HEADER: f"{max(0.0, seconds):,.2f}"}
