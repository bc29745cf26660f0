"""The storage queues of the app and the app setting naming their storage account (the Function app's own)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import azure.functions as func

from abm.jobs.events import UpstreamError

CONNECTION = "AzureWebJobsStorage"
EVENTS = "abm-events"  # event ids to process (webhook deliveries, interaction batches)
SHARDS = "abm-shards"  # shards of a fanned-out sync
POISON = "-poison"  # the host moves a message here after host.json's maxDequeueCount failed tries


def json_response(body: Any, status: int = 200) -> func.HttpResponse:
    """A JSON answer; errors are `{"error": "..."}` naming the problem."""
    return func.HttpResponse(json.dumps(body, default=str), status_code=status, mimetype="application/json")


def unavailable(exc: Exception) -> func.HttpResponse:
    """503 for a runtime that cannot be built (a missing setting, an invalid definition): the message names it."""
    return json_response({"error": f"the app is not configured: {exc}"}, 503)


class WorkFailed(RuntimeError):
    """A Dataverse error out of a triggered function, reduced to its kind, status, code and request id."""


@contextmanager
def without_row_values(what: str) -> Iterator[None]:
    """Around work the host retries: a Dataverse error is raised again without Dataverse's message (it can quote row
    values, and the host logs what a function raises), naming `what` failed."""
    try:
        yield
    except UpstreamError as exc:
        raise WorkFailed(f"{what}: {exc.summary}") from None
