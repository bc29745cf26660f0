"""`POST /api/replay` (function key, distinct from the webhook's): support replays a stored or dead-lettered event,
one record, or a time window; `"dry_run": true` answers the exact writes without making them."""

from __future__ import annotations

from datetime import UTC, datetime

import azure.functions as func

from abm.bootstrap import shared_runtime
from abm.jobs.events import parse_replay_request, replay
from function_app.responses import answers_errors, json_response

bp = func.Blueprint()


@bp.function_name("replay")
@bp.route(route="replay", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@answers_errors
def replay_events(req: func.HttpRequest) -> func.HttpResponse:
    request, dry_run = parse_replay_request(req.get_body())  # a body too large or malformed is refused first
    runtime = shared_runtime()
    dry = runtime.dry_run() if dry_run else None
    result = replay(runtime.client, runtime.store, runtime.setup, request, now=datetime.now(UTC), dry_run=dry)
    return json_response(result.as_dict())
