"""Service protection limits, injected faults and latency: what stands between a request and the emulator's data.

- `--limit-requests N --limit-window S`: over N requests in a sliding window of S seconds → 429 with `Retry-After`
  and code 0x80072322, as Dataverse answers; more than `max_concurrent` requests in flight → 0x80072326.
- `--faults 429=0.1,503=0.03,reset=0.01,lost=0.01,seed=7`: before the request is applied, a throttle, a server
  error or a dropped connection; `lost` applies the request and then drops the connection before the answer (what
  a real 502/504 can mean). Drawn from one seeded generator, so a run is reproducible.
- `--latency-ms`: a delay per request, like a real org's round trip.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from devtools.emulator.errors import EmulatorError

__all__ = ["FAULT_KINDS", "Faults", "Guard", "GuardConfig", "Verdict"]

FAULT_KINDS = ("429", "503", "reset", "lost")


@dataclass(frozen=True)
class Faults:
    """Probabilities per fault kind, and the seed of the generator that draws them."""

    rates: dict[str, float] = field(default_factory=dict)
    seed: int = 1

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
    limit_requests: int | None = None
    limit_window: float = 300.0
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


class Guard:
    """Admits requests one by one, counting them against the limits and drawing faults."""

    def __init__(self, config: GuardConfig) -> None:
        self.config = config
        self._rng = random.Random(config.faults.seed)
        self._lock = threading.Lock()
        self._recent: deque[float] = deque()
        self._in_flight = 0
        self.faults_drawn: dict[str, int] = dict.fromkeys(FAULT_KINDS, 0)

    def _draw(self) -> str | None:
        roll = self._rng.random()
        for kind in FAULT_KINDS:
            rate = self.config.faults.rates.get(kind, 0.0)
            if roll < rate:
                self.faults_drawn[kind] += 1
                return kind
            roll -= rate
        return None

    def _limit(self, now: float) -> EmulatorError | None:
        config = self.config
        if self._in_flight > config.max_concurrent:
            return EmulatorError(
                429,
                "0x80072326",
                f"Number of concurrent requests exceeded the limit of {config.max_concurrent}.",
                {"Retry-After": "1"},
            )
        if config.limit_requests is None:
            return None
        while self._recent and self._recent[0] <= now - config.limit_window:
            self._recent.popleft()
        if len(self._recent) >= config.limit_requests:
            wait = self._recent[0] + config.limit_window - now
            return EmulatorError(
                429,
                "0x80072322",
                f"Number of requests exceeded the limit of {config.limit_requests} over time window of "
                f"{config.limit_window:g} seconds.",
                {"Retry-After": str(max(1, int(wait + 0.999)))},
            )
        self._recent.append(now)
        return None

    @contextmanager
    def admit(self) -> Iterator[Verdict]:
        """Count the request in, check the limits, draw a fault; the latency is spent while in flight."""
        with self._lock:
            self._in_flight += 1
            error = self._limit(time.monotonic())
            fault = None if error else self._draw()
        try:
            if self.config.latency_ms:
                time.sleep(self.config.latency_ms / 1000)
            if fault == "429":
                error = EmulatorError(
                    429,
                    "0x80072322",
                    "Number of requests exceeded the limit of 6000 over time window of 300 seconds.",
                    {"Retry-After": str(self.config.fault_retry_after)},
                )
            elif fault == "503":
                error = EmulatorError(503, "", "Service Unavailable")
            yield Verdict(error, fault if fault in ("reset", "lost") else None)
        finally:
            with self._lock:
                self._in_flight -= 1
