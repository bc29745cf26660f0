"""Storage queues in memory: what queue output bindings put, delivered to the queue trigger of each queue on one
worker thread, retried after a visibility delay up to host.json's `maxDequeueCount`, then moved to `<queue>-poison`.

A message is limited to what a storage queue accepts (64 KiB once encoded) and carries what the worker passes a
queue trigger (`azure.functions.QueueMessage`: id, dequeue count, insertion, expiration and next-visible times).
"""

from __future__ import annotations

import base64
import heapq
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.functions.queue import QueueMessage as RichQueueMessage

from abm_command.localhost.indexing import Function, QueueMessages

__all__ = ["MAX_QUEUE_MESSAGE", "POISON_SUFFIX", "LocalQueues"]

LOG = logging.getLogger("abm.localhost")

MAX_QUEUE_MESSAGE = 64 * 1024  # a storage queue message, after encoding
POISON_SUFFIX = "-poison"
MESSAGE_TTL = timedelta(days=7)  # the storage queue default, shown as QueueMessage.expiration_time


@dataclass(order=True)
class _Pending:
    """A queue message waiting to become visible; ordered by visibility, then by arrival (FIFO per queue)."""

    visible_at: float
    seq: int
    queue: str = field(compare=False)
    id: str = field(compare=False)
    body: bytes = field(compare=False)
    inserted: datetime = field(compare=False)
    dequeue_count: int = field(compare=False, default=0)  # deliveries so far


class LocalQueues:
    """The queues of one local host. `functions` maps queue name -> the function its messages trigger; `run(function,
    message)` invokes one and returns the messages it put on queues. `work()` is the worker loop (a thread)."""

    def __init__(
        self,
        functions: Mapping[str, Function],
        run: Callable[[Function, Any], QueueMessages],
        *,
        max_dequeue_count: int,
        retry_delay: float,
        base64_messages: bool,
    ) -> None:
        self.functions = dict(functions)
        self.max_dequeue_count = max_dequeue_count
        self.retry_delay = retry_delay
        self.base64_messages = base64_messages
        self._run = run
        self._cond = threading.Condition()
        self._pending: list[_Pending] = []
        self._undelivered: dict[str, list[bytes]] = {}
        self._active = 0
        self._seq = 0
        self._closing = False

    def checked(self, queue: str, body: bytes) -> bytes:
        """`body` if a storage queue accepts it, else ValueError (which fails the invocation that set it)."""
        size = len(base64.b64encode(body)) if self.base64_messages else len(body)
        if size > MAX_QUEUE_MESSAGE:
            raise ValueError(f"a message for queue {queue} is {size} bytes encoded; storage queues accept 64 KiB")
        return body

    def put(self, queue: str, bodies: list[bytes]) -> None:
        """Enqueue messages, visible now; those for a queue no function listens on are kept aside."""
        if not bodies:
            return
        now = datetime.now(UTC)
        with self._cond:
            if queue not in self.functions:
                self._undelivered.setdefault(queue, []).extend(bodies)
                LOG.warning(
                    "%d message(s) put on %s, which no function listens on: kept, not delivered", len(bodies), queue
                )
                return
            for body in bodies:
                self._seq += 1
                heapq.heappush(
                    self._pending, _Pending(time.monotonic(), self._seq, queue, str(uuid.uuid4()), body, now)
                )
            self._cond.notify_all()

    def drain(self, timeout: float) -> bool:
        """Wait until every queue is empty (retries included) and no delivery is running; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending or self._active:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def undelivered(self, queue: str) -> list[bytes]:
        """Messages put on a queue that no function listens on (e.g. a poison queue without a handler)."""
        with self._cond:
            return list(self._undelivered.get(queue, []))

    def close(self) -> int:
        """Stop the worker loop; returns how many messages were still queued (dropped)."""
        with self._cond:
            if self._closing:
                return 0
            self._closing = True
            self._cond.notify_all()
            return len(self._pending)

    def work(self) -> None:
        """The worker loop: deliver each visible message, one at a time, until closed."""
        while (item := self._next()) is not None:
            try:
                self._deliver(item)
            except Exception:  # the worker thread must survive anything
                LOG.exception("queue worker: unexpected error delivering a message from %s", item.queue)
            finally:
                with self._cond:
                    self._active -= 1
                    self._cond.notify_all()

    def _next(self) -> _Pending | None:
        """The next visible message (marked as running), or None when closing."""
        with self._cond:
            while not self._closing:
                if not self._pending:
                    self._cond.wait()
                    continue
                delay = self._pending[0].visible_at - time.monotonic()
                if delay > 0:
                    self._cond.wait(delay)
                    continue
                self._active += 1
                return heapq.heappop(self._pending)
            return None

    def _deliver(self, item: _Pending) -> None:
        """One delivery; on failure, retry after `retry_delay` until maxDequeueCount, then the poison queue."""
        function = self.functions[item.queue]
        attempt = item.dequeue_count + 1
        now = datetime.now(UTC)
        message = RichQueueMessage(  # type: ignore[no-untyped-call]  # the library's constructor is unannotated
            id=item.id,
            body=item.body,
            dequeue_count=attempt,
            insertion_time=item.inserted,
            expiration_time=item.inserted + MESSAGE_TTL,
            time_next_visible=now + timedelta(seconds=self.retry_delay),
            pop_receipt=str(uuid.uuid4()),
        )
        started = time.monotonic()
        try:
            outputs = self._run(function, message)
        except Exception:
            LOG.exception(
                "%s failed on message %s from %s (dequeue count %d of %d)",
                function.name,
                item.id,
                item.queue,
                attempt,
                self.max_dequeue_count,
            )
            if item.queue.endswith(POISON_SUFFIX):
                LOG.error("poison message %s from %s dropped: its handler failed", item.id, item.queue)
            elif attempt >= self.max_dequeue_count:
                LOG.warning("message %s moved to %s%s", item.id, item.queue, POISON_SUFFIX)
                self.put(item.queue + POISON_SUFFIX, [item.body])
            else:
                with self._cond:
                    item.dequeue_count, item.visible_at = attempt, time.monotonic() + self.retry_delay
                    heapq.heappush(self._pending, item)
                    self._cond.notify_all()
            return
        LOG.info(
            "%s: message %s from %s done (dequeue count %d, %.1f ms)",
            function.name,
            item.id,
            item.queue,
            attempt,
            (time.monotonic() - started) * 1000,
        )
        for queue, bodies in outputs:
            self.put(queue, bodies)
