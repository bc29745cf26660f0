"""`POST /api/interactions` (function key): interaction events from other systems (website visits, form
submissions, email events from whatever sends the email, event registrations).

Outbound marketing's interaction store is gone, so these are a real org's only source of interactions. The batch
is validated (400 naming the JSON path of the first problem), written in bulk (idempotent by the sender's event
ids: a resent batch creates nothing), and stored as an event whose id goes on the events queue, where the worker
re-scores the accounts it touches.
"""

from __future__ import annotations

from datetime import UTC, datetime

import azure.functions as func

from abm.bootstrap import shared_runtime
from abm.jobs.events import receive_interactions
from function_app.queues import CONNECTION, EVENTS
from function_app.responses import answers_errors, json_response

bp = func.Blueprint()


@bp.function_name("interactions")
@bp.route(route="interactions", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@bp.queue_output(arg_name="events", queue_name=EVENTS, connection=CONNECTION)
@answers_errors
def post_interactions(req: func.HttpRequest, events: func.Out[str]) -> func.HttpResponse:
    runtime = shared_runtime()
    result, receipt = receive_interactions(
        runtime.client, runtime.store, req.get_body(), now=datetime.now(UTC), config=runtime.setup.config
    )
    if receipt.queued and receipt.event_id:
        events.set(receipt.event_id)
    return json_response({**result.as_dict(), "event": receipt.as_dict()}, 200)
