"""`GET /api/insights/...` (function key): account KPIs, journey tile counts by account, cohort tables, flows and
journey paths, as JSON. They read the mirror and the state store, never Dataverse (`abm.views.insights`).

Bad parameters get 400 naming the parameter; an unknown account or journey 404.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import azure.functions as func

from abm.bootstrap import Runtime, shared_runtime
from abm.views.insights import account_insights, cohorts, flows, journey_insights, paths
from function_app.responses import answers_errors, json_response

bp = func.Blueprint()


@answers_errors
def _answer(
    ask: Callable[[Runtime, dict[str, str], datetime], dict[str, Any]], req: func.HttpRequest
) -> func.HttpResponse:
    return json_response(ask(shared_runtime(), dict(req.params), datetime.now(UTC)))


@bp.function_name("insights_account")
@bp.route(route="insights/accounts/{id}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def insights_account(req: func.HttpRequest) -> func.HttpResponse:
    account = req.route_params.get("id", "")
    return _answer(lambda r, params, now: account_insights(r.store, r.setup, account, params, now), req)


@bp.function_name("insights_journey")
@bp.route(route="insights/journeys/{name}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def insights_journey(req: func.HttpRequest) -> func.HttpResponse:
    name = req.route_params.get("name", "")
    return _answer(lambda r, params, _now: journey_insights(r.store, r.setup, name, params), req)


@bp.function_name("insights_cohorts")
@bp.route(route="insights/cohorts", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def insights_cohorts(req: func.HttpRequest) -> func.HttpResponse:
    return _answer(lambda r, params, now: cohorts(r.store, r.setup, params, now), req)


@bp.function_name("insights_flows")
@bp.route(route="insights/flows", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def insights_flows(req: func.HttpRequest) -> func.HttpResponse:
    return _answer(lambda r, params, now: flows(r.store, r.setup, params, now), req)


@bp.function_name("insights_paths")
@bp.route(route="insights/paths", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def insights_paths(req: func.HttpRequest) -> func.HttpResponse:
    return _answer(lambda r, params, now: paths(r.store, r.setup, params, now), req)
