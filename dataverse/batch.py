"""Dataverse `$batch`: a pure encoder and decoder of the multipart/mixed wire format (no I/O).

`encode_batch` turns requests and atomic change sets into the body Dataverse expects (CRLF everywhere, one
`application/http` part per request, `Content-ID`s inside change sets) and rejects, before producing anything, what
Dataverse would reject anyway: more than 1,000 requests, a GET or an unknown `$n` reference inside a change set, a
Content-ID outside one. `decode_batch` parses the response into `BatchResponse`s (status, lower-case headers, JSON
body, and a `DataverseError` for every failed part) grouped like the request. `match` aligns that result with the
submitted items, because a batch answers positionally and stops at the first failure unless the request carried
`Prefer: odata.continue-on-error`: each item is `ok`, `failed` (with its error) or `not_executed`.

>>> content_type, body = encode_batch([BatchRequest("GET", "leads?$top=1")], boundary="b1")
>>> content_type
'multipart/mixed; boundary=batch_b1'
>>> body.splitlines()[4]
b'GET /api/data/v9.2/leads?$top=1 HTTP/1.1'
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from dataverse.errors import DataverseError, error_from_response
from dataverse.multipart import boundary_of, multipart_parts, split_headers
from dataverse.tables import entity_id_in

__all__ = [
    "MAX_BATCH_REQUESTS",
    "BatchRequest",
    "BatchResponse",
    "BatchResult",
    "ChangeSet",
    "ChangeSetResponse",
    "ItemOutcome",
    "decode_batch",
    "encode_batch",
    "match",
]

MAX_BATCH_REQUESTS = 1000  # Dataverse's limit per $batch, requests inside change sets included
METHODS = frozenset({"GET", "POST", "PATCH", "PUT", "DELETE"})
CRLF = "\r\n"

_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # an RFC 9110 token
_BOUNDARY = re.compile(r"^[0-9A-Za-z_.-]{1,50}$")
_CONTENT_ID = re.compile(r"^[0-9A-Za-z_.-]+$")
# `$1`, `$1/primarycontactid/$ref`: a leading `$name` that is not one of OData's own `$` resources.
_REFERENCE = re.compile(r"^\$([0-9A-Za-z_.-]+)(?=[/?(]|$)")
_SYSTEM_RESOURCES = frozenset({"all", "batch", "crossjoin", "entity", "metadata", "root"})
_REFERENCE_KEYS = ("@odata.bind", "@odata.id")
_STATUS_LINE = re.compile(r"^HTTP/\d(?:\.\d)?\s+(\d{3})(?:\s|$)")


# ---- requests ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchRequest:
    """One operation of a batch. `url` is relative to the API root (`leads(<id>)`) or a `$n` Content-ID reference.

    `content_id` is only allowed inside a `ChangeSet`; there, requests without one are numbered automatically.
    """

    method: str
    url: str
    body: Mapping[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    content_id: str | None = None


@dataclass(frozen=True)
class ChangeSet:
    """Requests that succeed or fail together (one transaction; any failure rolls all of them back)."""

    requests: Sequence[BatchRequest]

    def __post_init__(self) -> None:
        object.__setattr__(self, "requests", tuple(self.requests))


def encode_batch(
    items: Sequence[BatchRequest | ChangeSet],
    *,
    api_path: str = "/api/data/v9.2/",
    boundary: str | None = None,
    json_default: Callable[[Any], Any] | None = None,
) -> tuple[str, bytes]:
    """The `Content-Type` header value and the body of a `$batch` POST, after validating the whole batch.

    Boundaries are `batch_<uuid4>` / `changeset_<uuid4>`; with `boundary=x` they are `batch_x` and `changeset_x_<n>`
    (n counts change sets from 1), which makes the bytes reproducible. `json_default` serialises values `json` does
    not know (pass `dataverse.transport.json_default` for GUIDs, datetimes, decimals). Raises `ValueError` for a batch
    Dataverse would reject.
    """
    if not api_path.startswith("/") or not api_path.endswith("/"):
        raise ValueError(f"api_path must start and end with '/', got {api_path!r}")
    content_ids = _validate(items, boundary)
    token = boundary if boundary is not None else str(uuid.uuid4())
    batch_boundary = f"batch_{token}"
    lines: list[str] = []
    changesets = 0
    for index, item in enumerate(items):
        lines.append(f"--{batch_boundary}")
        if isinstance(item, ChangeSet):
            changesets += 1
            cs_boundary = f"changeset_{token}_{changesets}" if boundary is not None else f"changeset_{uuid.uuid4()}"
            lines += [f"Content-Type: multipart/mixed; boundary={cs_boundary}", ""]
            for request, content_id in zip(item.requests, content_ids[index], strict=True):
                lines.append(f"--{cs_boundary}")
                lines += _request_part(request, content_id, api_path, json_default)
            lines += [f"--{cs_boundary}--", ""]
        else:
            lines += _request_part(item, None, api_path, json_default)
    lines.append(f"--{batch_boundary}--")
    if boundary is not None:
        # A chosen boundary could occur in a URL, header or body (a random one cannot, in practice): the parts would
        # be cut there. Request lines never start with "--", so any other line mentioning it is payload.
        delimiters = (f"--{batch_boundary}", f"--changeset_{token}_")
        own = re.compile(rf"^--(?:{re.escape(batch_boundary)}|changeset_{re.escape(token)}_\d+)(?:--)?$")
        if any(d in line and not own.match(line) for line in lines for d in delimiters):
            raise ValueError(f"boundary {boundary!r} occurs inside a request; choose another")
    return f"multipart/mixed; boundary={batch_boundary}", (CRLF.join(lines) + CRLF).encode("utf-8")


def _request_part(
    request: BatchRequest, content_id: str | None, api_path: str, json_default: Callable[[Any], Any] | None
) -> list[str]:
    """The lines of one `application/http` part: MIME headers, blank line, request line, headers, blank, body."""
    lines = ["Content-Type: application/http", "Content-Transfer-Encoding: binary"]
    if content_id is not None:
        lines.append(f"Content-ID: {content_id}")
    target = request.url if request.url.startswith("$") else api_path + request.url
    lines += ["", f"{request.method.upper()} {target} HTTP/1.1"]
    own_type = any(name.lower() == "content-type" for name in request.headers)
    if request.body is not None and not own_type:
        lines.append("Content-Type: application/json; type=entry")
    lines += [f"{name}: {value}" for name, value in request.headers.items()]
    lines.append("")
    lines.append(
        ""
        if request.body is None
        else json.dumps(request.body, ensure_ascii=False, separators=(",", ":"), default=json_default)
    )
    return lines


def _validate(items: Sequence[BatchRequest | ChangeSet], boundary: str | None) -> list[list[str]]:
    """Raise `ValueError` for anything Dataverse would refuse; return each change set's effective Content-IDs."""
    if not items:
        raise ValueError("a batch needs at least one request")
    if boundary is not None and not _BOUNDARY.match(boundary):
        raise ValueError(f"boundary must be 1-50 characters of [0-9A-Za-z_.-], got {boundary!r}")
    total = 0
    for item in items:
        if isinstance(item, ChangeSet):
            total += len(item.requests)
        elif isinstance(item, BatchRequest):
            total += 1
        else:
            raise TypeError(f"batch items are BatchRequest or ChangeSet, not {type(item).__name__}")
    if total > MAX_BATCH_REQUESTS:
        raise ValueError(f"a batch holds at most {MAX_BATCH_REQUESTS} requests (change sets included), got {total}")
    content_ids = _content_ids(items)
    for index, item in enumerate(items):
        if isinstance(item, BatchRequest):
            _check_request(item, f"item {index}")
            if item.content_id is not None:
                raise ValueError(f"item {index}: Content-ID {item.content_id!r} is only allowed inside a change set")
            for ref in _references(item):
                raise ValueError(f"item {index}: reference ${ref} is only allowed inside a change set")
            continue
        if not item.requests:
            raise ValueError(f"item {index}: a change set needs at least one request")
        declared: set[str] = set()
        for position, request in enumerate(item.requests):
            where = f"item {index}, request {position}"
            if not isinstance(request, BatchRequest):
                raise ValueError(f"{where}: a change set holds only BatchRequests (change sets do not nest)")
            _check_request(request, where)
            if request.method.upper() == "GET":
                raise ValueError(f"{where}: GET is not allowed inside a change set; put it outside")
            if request.content_id is not None:
                if not _CONTENT_ID.match(request.content_id):
                    raise ValueError(f"{where}: Content-ID must be [0-9A-Za-z_.-]+, got {request.content_id!r}")
                if request.content_id in declared:
                    raise ValueError(f"{where}: duplicate Content-ID {request.content_id!r} in the change set")
            for ref in _references(request):
                if ref not in declared:
                    raise ValueError(
                        f"{where}: reference ${ref} names no Content-ID declared earlier in the change set"
                    )
            declared.add(content_ids[index][position])
    return content_ids


def _check_request(request: BatchRequest, where: str) -> None:
    if request.method.upper() not in METHODS:
        raise ValueError(f"{where}: method {request.method!r} is not one of {', '.join(sorted(METHODS))}")
    url = request.url
    if not url or any(ch.isspace() for ch in url):
        raise ValueError(f"{where}: url {url!r} is empty or has whitespace (percent-encode query values)")
    if url.startswith("/") or "://" in url.split("?", 1)[0]:
        raise ValueError(f"{where}: url {url!r} must be relative to the API root (e.g. 'leads(<id>)')")
    for name, value in request.headers.items():
        if not _HEADER_NAME.match(name) or "\r" in value or "\n" in value:
            raise ValueError(f"{where}: invalid header {name!r}")


def _content_ids(items: Sequence[BatchRequest | ChangeSet]) -> list[list[str]]:
    """Per item, the Content-ID each change-set request is sent with: its own, else the next unused number.

    Numbers skip every Content-ID declared anywhere in the batch, so an automatic one never shadows an explicit one.
    """
    explicit = {
        request.content_id
        for item in items
        if isinstance(item, ChangeSet)
        for request in item.requests
        if isinstance(request, BatchRequest) and request.content_id is not None
    }
    counter = 0
    result: list[list[str]] = []
    for item in items:
        ids: list[str] = []
        if isinstance(item, ChangeSet):
            for request in item.requests:
                own = request.content_id if isinstance(request, BatchRequest) else None
                if own is None:
                    counter += 1
                    while str(counter) in explicit:
                        counter += 1
                    own = str(counter)
                ids.append(own)
        result.append(ids)
    return result


def _references(request: BatchRequest) -> Iterator[str]:
    """The Content-IDs a request refers to: a leading `$n` in its URL, `$n` values of `@odata.bind`/`@odata.id`."""
    found = _REFERENCE.match(request.url)
    if found and found.group(1) not in _SYSTEM_RESOURCES:
        yield found.group(1)
    if request.body is not None:
        yield from _body_references(request.body)


def _body_references(value: Any) -> Iterator[str]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(key, str) and key.endswith(_REFERENCE_KEYS):
                for target in item if isinstance(item, list | tuple) else (item,):
                    found = _REFERENCE.match(target) if isinstance(target, str) else None
                    if found and found.group(1) not in _SYSTEM_RESOURCES:
                        yield found.group(1)
            else:
                yield from _body_references(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _body_references(item)


# ---- responses -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchResponse:
    """One embedded HTTP response. `headers` has lower-case names; `body` is parsed JSON, text, or None when empty."""

    status: int
    headers: Mapping[str, str]
    body: Any
    content_id: str | None = None
    error: DataverseError | None = None

    @property
    def ok(self) -> bool:
        return self.status < 400

    @property
    def entity_id(self) -> uuid.UUID | None:
        """The row id from `OData-EntityId` (`…/leads(<guid>)`), else from `Location`; None without a GUID key."""
        return entity_id_in(self.headers)


@dataclass(frozen=True)
class ChangeSetResponse:
    """The responses of a change set that came back as a nested multipart, in request order."""

    responses: tuple[BatchResponse, ...]

    @property
    def ok(self) -> bool:
        return all(response.ok for response in self.responses)

    @property
    def error(self) -> DataverseError | None:
        """The first failed part's error (the one that rolled the change set back), or None."""
        return next((response.error for response in self.responses if response.error is not None), None)


@dataclass(frozen=True)
class BatchResult:
    """A decoded `$batch` response: one entry per top-level part, in the order Dataverse answered."""

    responses: tuple[BatchResponse | ChangeSetResponse, ...]

    @property
    def flat(self) -> tuple[BatchResponse, ...]:
        """Every `BatchResponse`, change-set parts expanded in place."""
        return tuple(
            inner
            for response in self.responses
            for inner in (response.responses if isinstance(response, ChangeSetResponse) else (response,))
        )

    @property
    def errors(self) -> tuple[DataverseError, ...]:
        return tuple(response.error for response in self.flat if response.error is not None)

    @property
    def ok(self) -> bool:
        return not self.errors


def decode_batch(content_type: str, body: bytes) -> BatchResult:
    """Parse a `$batch` response (`multipart/mixed`, boundary quoted or not, CRLF or LF-only lines).

    Change-set responses (nested `changesetresponse_` multiparts) become `ChangeSetResponse`s; every part with a status
    of 400 or more carries its `DataverseError` (via `error_from_response`). A body that is not a well-formed batch
    response raises `DataverseError`.
    """
    text = body.decode("utf-8", "replace")
    responses: list[BatchResponse | ChangeSetResponse] = []
    for headers, lines in multipart_parts(text, boundary_of(content_type)):
        part_type = headers.get("content-type", "")
        if part_type.lower().startswith("multipart/"):
            inner = [
                _http_response(h, body_lines)
                for h, body_lines in multipart_parts("\n".join(lines), boundary_of(part_type))
            ]
            responses.append(ChangeSetResponse(tuple(inner)))
        else:
            responses.append(_http_response(headers, lines))
    return BatchResult(tuple(responses))


def _http_response(mime_headers: Mapping[str, str], lines: list[str]) -> BatchResponse:
    """One `application/http` part: status line, headers, blank line, body."""
    while lines and not lines[0].strip():
        lines = lines[1:]
    status_line = _STATUS_LINE.match(lines[0]) if lines else None
    if status_line is None:
        raise DataverseError(f"batch response part without an HTTP status line: {(lines or [''])[0][:100]!r}")
    headers, body_lines = split_headers(lines[1:])
    status = int(status_line.group(1))
    body = _body(headers.get("content-type", ""), "\n".join(body_lines).strip())
    content_id = mime_headers.get("content-id") or headers.get("content-id")
    error = error_from_response(status, headers, body) if status >= 400 else None
    return BatchResponse(status, headers, body, content_id, error)


def _body(content_type: str, text: str) -> Any:
    if not text:
        return None
    if "json" in content_type.lower() or (not content_type and text[0] in "[{"):
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


# ---- alignment -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemOutcome:
    """What happened to one submitted item.

    - `ok`: it ran; `responses` has its response (a change set: one per request, in request order).
    - `failed`: it ran and failed; `error` says why. A failed change set was rolled back as a whole; its
      `responses` are what Dataverse sent in its place (usually one error part), and `failed_request` is the
      request that failed when Dataverse said so by Content-ID.
    - `not_executed`: Dataverse stopped at an earlier failure (no `odata.continue-on-error`) and never ran it.
    """

    item: BatchRequest | ChangeSet
    status: Literal["ok", "failed", "not_executed"]
    responses: tuple[BatchResponse, ...] = ()
    error: DataverseError | None = None
    failed_request: BatchRequest | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def match(items: Sequence[BatchRequest | ChangeSet], result: BatchResult) -> tuple[ItemOutcome, ...]:
    """One `ItemOutcome` per submitted item, in order (`items` exactly as passed to `encode_batch`).

    Dataverse answers in request order, one top-level part per item. A change set that failed comes back as a single
    error part in its place (the OData rule) or as a change-set multipart holding the error; both are `failed`.
    Items after the last part are `not_executed`, which is only valid when that last part was a failure. A result
    that cannot be the answer to `items` (too many parts, a shape that does not fit) raises `DataverseError`.
    """
    parts = result.responses
    if len(parts) > len(items):
        raise DataverseError(f"batch response has {len(parts)} parts for {len(items)} submitted items")
    if len(parts) < len(items) and (not parts or _part_ok(parts[-1])):
        raise DataverseError(
            f"batch response has {len(parts)} parts for {len(items)} submitted items, and no failure stopped it"
        )
    content_ids = _content_ids(items)
    outcomes: list[ItemOutcome] = []
    for index, item in enumerate(items):
        if index >= len(parts):
            outcomes.append(ItemOutcome(item, "not_executed"))
        elif isinstance(item, ChangeSet):
            outcomes.append(_changeset_outcome(item, content_ids[index], parts[index], index))
        else:
            part = parts[index]
            if isinstance(part, ChangeSetResponse):
                raise DataverseError(f"item {index} is a single request but its response is a change set")
            outcomes.append(ItemOutcome(item, "ok" if part.ok else "failed", (part,), part.error))
    return tuple(outcomes)


def _part_ok(part: BatchResponse | ChangeSetResponse) -> bool:
    return part.ok


def _changeset_outcome(
    item: ChangeSet, content_ids: list[str], part: BatchResponse | ChangeSetResponse, index: int
) -> ItemOutcome:
    by_id = dict(zip(content_ids, item.requests, strict=True))
    responses = part.responses if isinstance(part, ChangeSetResponse) else (part,)
    if not part.ok:
        failed = next(response for response in responses if response.error is not None)
        culprit = by_id.get(failed.content_id) if failed.content_id is not None else None
        return ItemOutcome(item, "failed", responses, failed.error, culprit)
    if len(responses) != len(item.requests):
        raise DataverseError(
            f"item {index}: change set of {len(item.requests)} requests answered with {len(responses)} responses"
        )
    order = {content_id: position for position, content_id in enumerate(content_ids)}
    if {response.content_id for response in responses} == set(order):
        responses = tuple(sorted(responses, key=lambda response: order[response.content_id or ""]))
    return ItemOutcome(item, "ok", responses)
