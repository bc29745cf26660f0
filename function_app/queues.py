"""The storage queues of the app and the app setting naming their storage account (the Function app's own)."""

from __future__ import annotations

import json
from typing import Any

import azure.functions as func

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
