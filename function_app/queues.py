"""The storage queues of the app, the app setting naming their storage account (the Function app's own), and what a
triggered function raises when Dataverse fails."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from abm.errors import UpstreamError

CONNECTION = "AzureWebJobsStorage"
EVENTS = "abm-events"  # event ids to process (webhook deliveries, interaction batches)
SHARDS = "abm-shards"  # shards of a fanned-out sync
POISON = "-poison"  # the host moves a message here after host.json's maxDequeueCount failed tries


class WorkFailed(RuntimeError):
    """A Dataverse error out of a triggered function, reduced to its kind, status, code and request id."""


@contextmanager
def without_row_values(what: str) -> Iterator[None]:
    """Around work the host retries: a Dataverse error is raised again without Dataverse's message (it can quote row
    values, and the host logs what a function raises), naming `what` failed. Any other error propagates as it is:
    the host retries the message, then moves it to the poison queue."""
    try:
        yield
    except UpstreamError as exc:
        raise WorkFailed(f"{what}: {exc.summary}") from None
