"""`POST $batch` for the emulator: multipart requests in, multipart responses out, change sets atomic.

As Dataverse documents it (Learn: "Execute batch operations using the Web API"): requests run in order; a change set
runs in one transaction and a failing part (any error: a missing row, a duplicate key, a value over its column's
MaxLength) rolls the whole change set back, answered by that part's error in the change set's place; `Content-ID: n`
lets a later request in the same change set say `$n` (in its URL, an `@odata.bind` or an `@odata.id`; a row upserted
by alternate key is referred to in its key form); processing stops at the first failure unless
`Prefer: odata.continue-on-error`; GETs are not allowed inside a change set; at most 1,000 requests.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from devtools.emulator.errors import EmulatorError, bad_request

__all__ = ["BatchOutcome", "run_batch"]

MAX_REQUESTS = 1000
_BOUNDARY = re.compile(r'boundary="?([^";]+)"?', re.IGNORECASE)
_REQUEST_LINE = re.compile(r"^(GET|POST|PATCH|PUT|DELETE) (\S+) HTTP/1\.1$")
_REFERENCE = re.compile(r"^\$([0-9A-Za-z_.-]+)")


@dataclass(frozen=True)
class _Part:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    content_id: str | None


@dataclass(frozen=True)
class BatchOutcome:
    """The `$batch` answer: status, multipart content type and body."""

    status: int
    content_type: str
    body: bytes


# An answer from the emulator's single-request handler: (status, JSON body or None, headers).
Handler = Callable[[str, str, Mapping[str, str], bytes], tuple[int, Any, dict[str, str]]]


def _split(body: str, boundary: str) -> list[str]:
    delimiter = f"--{boundary}"
    if delimiter not in body:
        raise bad_request("Stream was not readable: the batch boundary is missing from the body.")
    chunks = body.split(delimiter)[1:]
    parts = []
    for chunk in chunks:
        if chunk.startswith("--"):
            break
        parts.append(chunk.removeprefix("\r\n"))
    return parts


def _headers_and_rest(text: str) -> tuple[dict[str, str], str]:
    head, sep, rest = text.partition("\r\n\r\n")
    if not sep:
        raise bad_request("Stream was not readable: a batch part has no blank line after its headers.")
    headers: dict[str, str] = {}
    for line in head.split("\r\n"):
        if line.strip():
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return headers, rest


def _request(text: str) -> _Part:
    mime, inner = _headers_and_rest(text)
    line, _, rest = inner.partition("\r\n")
    match = _REQUEST_LINE.match(line.strip())
    if match is None:
        raise bad_request(f"Stream was not readable: '{line.strip()[:80]}' is not a request line.")
    headers, body = _headers_and_rest(rest) if "\r\n\r\n" in rest else ({}, "")
    headers = {k: v for k, v in headers.items()}
    return _Part(match.group(1), match.group(2), headers, body.rstrip("\r\n").encode("utf-8"), mime.get("content-id"))


def _parse(content_type: str, body: bytes) -> list[_Part | list[_Part]]:
    match = _BOUNDARY.search(content_type)
    if match is None or not content_type.lower().startswith("multipart/mixed"):
        raise bad_request("A $batch request must have Content-Type multipart/mixed with a boundary.")
    text = body.decode("utf-8")
    if "\r\n" not in text:
        raise bad_request("Stream was not readable: batch bodies use CRLF line endings.")
    items: list[_Part | list[_Part]] = []
    for part in _split(text, match.group(1)):
        mime, rest = _headers_and_rest(part)
        inner = _BOUNDARY.search(mime.get("content-type", ""))
        if mime.get("content-type", "").lower().startswith("multipart/mixed") and inner:
            changeset = [_request(p) for p in _split(rest, inner.group(1))]
            if any(p.method == "GET" for p in changeset):
                raise bad_request("GET requests are not allowed inside a change set.")
            items.append(changeset)
        else:
            items.append(_request(part))
    if sum(len(i) if isinstance(i, list) else 1 for i in items) > MAX_REQUESTS:
        raise bad_request(f"The batch has more than {MAX_REQUESTS} requests.")
    return items


def _resolve(part: _Part, created: Mapping[str, str]) -> tuple[str, bytes]:
    """The part's URL and body with `$n` Content-ID references replaced by the rows they created."""

    def replace(text: str) -> str:
        match = _REFERENCE.match(text)
        if match is None:
            return text
        if match.group(1) not in created:
            raise bad_request(f"Content-ID Reference: '${match.group(1)}' does not exist in the batch context.")
        return created[match.group(1)] + text[match.end() :]

    url = replace(part.url)
    if not part.body:
        return url, part.body
    try:
        data = json.loads(part.body)
    except ValueError:
        return url, part.body
    if isinstance(data, dict):
        data = {
            k: replace(v) if k.endswith(("@odata.bind", "@odata.id")) and isinstance(v, str) else v
            for k, v in data.items()
        }
    return url, json.dumps(data).encode("utf-8")


def _http(status: int, body: Any, headers: Mapping[str, str], content_id: str | None) -> str:
    lines = ["Content-Type: application/http", "Content-Transfer-Encoding: binary"]
    if content_id:
        lines.append(f"Content-ID: {content_id}")
    lines += ["", f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if isinstance(body, str):  # a text answer, whose Content-Type is among `headers`
        payload = body
    else:
        payload = "" if body is None else json.dumps(body, ensure_ascii=False)
        if payload:
            lines.append("Content-Type: application/json; odata.metadata=minimal")
    lines += ["", payload]
    return "\r\n".join(lines)


_REASONS = {
    200: "OK",
    201: "Created",
    204: "No Content",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    412: "Precondition Failed",
    429: "Too Many Requests",
    500: "Internal Server Error",
}


def _multipart(boundary: str, parts: list[str]) -> str:
    return "".join(f"--{boundary}\r\n{p}\r\n" for p in parts) + f"--{boundary}--\r\n"


def run_batch(
    handler: Handler,
    transaction: Callable[[], Any],
    content_type: str,
    body: bytes,
    continue_on_error: bool,
) -> BatchOutcome:
    """Run a `$batch` through `handler` (one request at a time); change sets inside `transaction()`."""
    items = _parse(content_type, body)
    boundary = f"batchresponse_{uuid.uuid4()}"
    parts: list[str] = []
    failed = False
    for item in items:
        if isinstance(item, _Part):
            status, answer, headers = handler(item.method, item.url, item.headers, item.body)
            parts.append(_http(status, answer, headers, item.content_id))
            failed = status >= 400
        else:
            ok, rendered = _changeset(handler, transaction, item)
            parts.append(rendered)
            failed = not ok
        if failed and not continue_on_error:
            break
    status = 400 if failed and not continue_on_error else 200
    return BatchOutcome(status, f"multipart/mixed; boundary={boundary}", _multipart(boundary, parts).encode("utf-8"))


class _RollBack(Exception):
    def __init__(self, rendered: str) -> None:
        self.rendered = rendered


def _changeset(handler: Handler, transaction: Callable[[], Any], requests: list[_Part]) -> tuple[bool, str]:
    """Run a change set atomically: all its responses, or the failing part's error alone (all rolled back)."""
    boundary = f"changesetresponse_{uuid.uuid4()}"
    created: dict[str, str] = {}
    responses: list[str] = []
    try:
        with transaction():
            for part in requests:
                try:
                    url, data = _resolve(part, created)
                except EmulatorError as exc:
                    raise _RollBack(_http(exc.status, exc.body(), {}, part.content_id)) from None
                status, answer, headers = handler(part.method, url, part.headers, data)
                if status >= 400:
                    raise _RollBack(_http(status, answer, headers, part.content_id))
                entity = headers.get("OData-EntityId")
                if part.content_id and entity:
                    created[part.content_id] = urlsplit(entity).path
                responses.append(_http(status, answer, headers, part.content_id))
    except _RollBack as failure:
        return False, failure.rendered
    inner = _multipart(boundary, responses)
    return True, f"Content-Type: multipart/mixed; boundary={boundary}\r\n\r\n{inner}"
