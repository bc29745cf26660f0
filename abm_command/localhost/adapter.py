"""Request and response adaptation: an HTTP request as the worker hands it to a function (`func.HttpRequest`), and a
function's answer as the host puts it on the wire."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl

import azure.functions as func

__all__ = ["function_request", "query_params", "wire_response"]


def query_params(query: str) -> dict[str, str]:
    """The query parameters; a repeated one has its values joined with commas, as the host does."""
    params: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        params[name] = f"{params[name]},{value}" if name in params else value
    return params


def function_request(
    method: str,
    url: str,
    headers: Iterable[tuple[str, str]],
    *,
    params: dict[str, str],
    route_params: dict[str, str],
    body: bytes,
) -> func.HttpRequest:
    """What the function receives: the whole URL, the headers (a repeated one joined with commas), the query and
    route parameters, the body."""
    joined: dict[str, str] = {}
    for name, value in headers:
        joined[name] = f"{joined[name]}, {value}" if name in joined else value
    return func.HttpRequest(method, url, headers=joined, params=params, route_params=route_params, body=body)


def wire_response(answer: Any) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of what an HTTP function returned: a `func.HttpResponse`, or a str (the worker's HTTP
    converter makes it a 200 text body); anything else is a `TypeError`, a failed invocation."""
    if isinstance(answer, str):
        answer = func.HttpResponse(answer)
    if not isinstance(answer, func.HttpResponse):
        raise TypeError(f"an HTTP function must return func.HttpResponse or str, not {type(answer).__name__}")
    hop_by_hop = ("content-length", "transfer-encoding", "connection")
    headers = {k: v for k, v in answer.headers.items() if k.lower() not in hop_by_hop}
    if not any(k.lower() == "content-type" for k in headers):
        mimetype, charset = answer.mimetype, answer.charset
        headers["Content-Type"] = f"{mimetype}; charset={charset}" if mimetype.startswith("text/") else mimetype
    return int(answer.status_code), headers, answer.get_body() or b""
