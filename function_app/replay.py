"""`POST /api/replay` (function key, distinct from the webhook's): support replays a stored or dead-lettered event,
one record, or a time window; `"dry_run": true` answers the exact writes without making them."""

from __future__ import annotations

from datetime import UTC, datetime

import azure.functions as func

from abm.bootstrap import shared_runtime
from abm.definitions import DefinitionError
from abm.jobs.events import MAX_BODY_BYTES, EventInputError, UpstreamError, describe_error, parse_replay_request, replay
from abm.settings import SettingsError
from function_app.queues import json_response, unavailable

bp = func.Blueprint()


@bp.function_name("replay")
@bp.route(route="replay", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def replay_events(req: func.HttpRequest) -> func.HttpResponse:
    body = req.get_body()
    if len(body) > MAX_BODY_BYTES:
        return json_response({"error": f"the body is larger than {MAX_BODY_BYTES:,} bytes"}, 413)
    try:
        runtime = shared_runtime()
    except (SettingsError, DefinitionError) as exc:
        return unavailable(exc)
    try:
        request, dry_run = parse_replay_request(body)
        result = replay(runtime.client, runtime.store, runtime.engine, request, now=datetime.now(UTC), dry_run=dry_run)
    except EventInputError as exc:
        return json_response({"error": str(exc)}, exc.status)
    except UpstreamError as exc:
        return json_response({"error": f"Dataverse: {describe_error(exc)}"}, 502)
    return json_response(result.as_dict())
