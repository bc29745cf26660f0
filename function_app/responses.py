"""How the HTTP functions answer: JSON bodies, and the service's errors by kind, from one table.

Every HTTP function that calls the service is wrapped in `answers_errors`: a service error (`abm.errors`) or a
Dataverse failure becomes `{"error": "..."}` with the status `ANSWERS` gives its kind; anything else is a bug, left
to the host (500, logged with its traceback). A runtime that cannot be built (a missing setting, an invalid
definition) is a `NotConfigured` like any other, so the functions call `shared_runtime()` without a guard of their
own.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any, ParamSpec

import azure.functions as func

from abm.errors import InvalidInput, NotConfigured, NotFound, Refused, ServiceError, TooLarge, UpstreamError

__all__ = ["ANSWERS", "answers_errors", "error_response", "json_response", "status_of"]

P = ParamSpec("P")

# Error kind -> (HTTP status, what the message starts with). The most specific kind an error is decides.
ANSWERS: dict[type[Exception], tuple[int, str]] = {
    TooLarge: (413, ""),
    InvalidInput: (400, ""),
    NotFound: (404, ""),
    Refused: (409, ""),
    NotConfigured: (503, "the app is not configured: "),
    UpstreamError: (502, "Dataverse: "),  # Dataverse failed, not the caller
}
_ANSWERED = (ServiceError, UpstreamError)


def json_response(body: Any, status: int = 200) -> func.HttpResponse:
    """A JSON answer; errors are `{"error": "..."}` naming the problem."""
    return func.HttpResponse(json.dumps(body, default=str), status_code=status, mimetype="application/json")


def _answer_of(exc: Exception) -> tuple[int, str]:
    return next(ANSWERS[kind] for kind in type(exc).__mro__ if kind in ANSWERS)


def status_of(exc: Exception) -> int:
    """The HTTP status of a service error or a Dataverse failure."""
    return _answer_of(exc)[0]


def error_response(exc: Exception) -> func.HttpResponse:
    """`{"error": ...}` (and the JSON `path` of a bad input, when known) with the status of the error's kind. A
    Dataverse failure is named by its kind, status, code and request id only: Dataverse's message can quote rows."""
    status, prefix = _answer_of(exc)
    body = {"error": prefix + (exc.summary if isinstance(exc, UpstreamError) else str(exc))}
    if isinstance(exc, InvalidInput) and exc.path:
        body["path"] = exc.path
    return json_response(body, status)


def answers_errors(function: Callable[P, func.HttpResponse]) -> Callable[P, func.HttpResponse]:
    """Wrap an HTTP function (innermost, under the trigger decorators): its service and Dataverse errors are answered
    by `error_response`."""

    @functools.wraps(function)
    def answered(*args: P.args, **kwargs: P.kwargs) -> func.HttpResponse:
        try:
            return function(*args, **kwargs)
        except _ANSWERED as exc:
            return error_response(exc)

    return answered
