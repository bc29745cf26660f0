"""The writes of one run, queued across account batches and sent in full bulk requests.

A run evaluates the accounts in batches to keep its memory bounded, but the writes a batch decides are few: sent
per batch, they would cost a request each where one bulk request carries a thousand. The outbox keeps one queue
per kind of write (a channel), sends a channel's items as soon as a full request's worth is waiting, and the rest
when the run flushes it at the end. A channel may name channels that must be sent first (a lead's hand-off workflow
starts before its sales-ready flag is written), and a channel's sender may put items into a later channel (an email
is sent once it is created).

A run's outbox keeps going past a request that fails for good (`keep_going`: a Dataverse error after its retries):
the chunk's items are set aside as a `Failure` and the other channels and chunks still leave, so one bad chunk does
not cost the rest of the run; the run then holds back what those items stood for (see `abm.jobs.pipeline`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from dataverse.errors import DataverseError

__all__ = ["BULK", "WORKFLOW_BATCH", "Failure", "Outbox"]

log = logging.getLogger("abm.outbox")

BULK = 1000  # targets per CreateMultiple / UpdateMultiple / UpsertMultiple (the documented recommendation)
WORKFLOW_BATCH = 100  # ExecuteWorkflow calls per `$batch` (there is no bulk message for it)

Send = Callable[[list[Any]], None]


@dataclass(frozen=True)
class Failure:
    """A chunk of one channel that could not be written: its items and the error's summary (no row values)."""

    channel: str
    items: list[Any]
    error: str

    def as_dict(self) -> dict[str, Any]:
        return {"channel": self.channel, "items": len(self.items), "error": self.error}


@dataclass
class _Channel:
    size: int
    send: Send
    after: tuple[str, ...]
    items: list[Any] = field(default_factory=list)


class Outbox:
    """Channels of queued writes; `flush` sends everything left, in the order the channels were opened."""

    def __init__(self, *, keep_going: bool = False) -> None:
        self._channels: dict[str, _Channel] = {}
        self.keep_going = keep_going
        self.failures: list[Failure] = []

    def open(self, name: str, size: int, send: Send, *, after: Sequence[str] = ()) -> None:
        """A channel sending up to `size` items per call of `send`; `after`: channels to send out first."""
        self._channels[name] = _Channel(size, send, tuple(after))

    def put(self, name: str, items: Iterable[Any]) -> None:
        """Queue items; full requests' worth leave at once."""
        channel = self._channels[name]
        channel.items.extend(items)
        while len(channel.items) >= channel.size:
            self._send(name, channel.size)

    def _send(self, name: str, count: int) -> None:
        channel = self._channels[name]
        for first in channel.after:
            self._drain(first)
        chunk, channel.items = channel.items[:count], channel.items[count:]
        if not chunk:
            return
        try:
            channel.send(chunk)
        except DataverseError as exc:
            if not self.keep_going:
                raise
            log.warning("%d %s could not be written: %s", len(chunk), name, exc.summary)
            self.failures.append(Failure(name, chunk, exc.summary))

    def _drain(self, name: str) -> None:
        channel = self._channels[name]
        while channel.items:
            self._send(name, channel.size)

    def flush(self) -> None:
        """Send everything queued (a sender may queue into a later channel, which is then sent too)."""
        for name in self._channels:
            self._drain(name)
