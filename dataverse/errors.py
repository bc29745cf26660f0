"""One error hierarchy for everything `dataverse/` raises.

Every failure of a Dataverse call (an HTTP status, a transport error, a token that could not be acquired, a body
that cannot be decoded) surfaces as a subclass of `DataverseError`, carrying what support needs to find the request
in Dataverse's own logs: status, Dataverse's error code, its message and the request ids. Nothing here ever holds a
token, a secret or a request body.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

__all__ = [
    "ChangeTrackingTokenExpired",
    "DataverseAuthError",
    "DataverseBadRequest",
    "DataverseConnectionError",
    "DataverseDuplicate",
    "DataverseError",
    "DataverseNotFound",
    "DataversePreconditionFailed",
    "DataverseServerError",
    "DataverseThrottled",
    "WebhookContextError",
    "error_from_response",
    "parse_retry_after",
]

# Dataverse's error codes (hex, as the Web API reports them) that decide the class regardless of the HTTP status.
DUPLICATE_KEY = "0x80040237"
DUPLICATE_ENTITY_KEY = "0x80060892"  # DuplicateRecordEntityKey: "Entity Key … violated" (an alternate key's values)
DUPLICATE_DETECTED = "0x80040333"
EXPIRED_VERSION_STAMP = "0x80044352"  # change-tracking token older than the org's retention


class DataverseError(Exception):
    """A failed Dataverse operation.

    >>> try:
    ...     raise DataverseNotFound("lead With Id = 1 Does Not Exist", status=404, code="0x80040217")
    ... except DataverseError as exc:
    ...     (exc.status, exc.code)
    (404, '0x80040217')
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str = "",
        request_id: str | None = None,
        client_request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.request_id = request_id
        self.client_request_id = client_request_id

    def __str__(self) -> str:
        fields = {
            "status": self.status,
            "code": self.code,
            "request_id": self.request_id,
            "client_request_id": self.client_request_id,
        }
        details = ", ".join(f"{name}={value}" for name, value in fields.items() if value not in (None, ""))
        return f"{self.message} ({details})" if details else self.message

    @property
    def summary(self) -> str:
        """The error without Dataverse's message (which can quote row values), for logs and stored errors: its
        kind, status, code and request ids. Errors with no HTTP answer keep their message, which is this client's
        own (method, table, cause), never Dataverse's."""
        kind = next(c for c in type(self).__mro__ if not c.__name__.startswith("_")).__name__
        fields = {
            "status": self.status,
            "code": self.code,
            "request": self.request_id,
            "client request": self.client_request_id,
        }
        details = ", ".join(f"{name} {value}" for name, value in fields.items() if value not in (None, ""))
        own = f" ({self.message})" if isinstance(self, DataverseConnectionError) else ""
        return f"{kind}{own}: {details}" if details else f"{kind}{own}"


class DataverseAuthError(DataverseError):
    """401/403 from Dataverse, or no token could be acquired from Entra ID."""


class DataverseNotFound(DataverseError):
    """404: the row, the entity set, the action or the route does not exist."""


class DataversePreconditionFailed(DataverseError):
    """412: an `If-Match` ETag no longer matches (optimistic concurrency), or an update-only write found no row."""


class DataverseDuplicate(DataverseError):
    """The row already exists: a duplicate primary or alternate key, or a duplicate-detection rule."""


class DataverseThrottled(DataverseError):
    """429: a service protection limit was hit; `retry_after` is the wait Dataverse asked for, in seconds."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        status: int | None = 429,
        code: str = "",
        request_id: str | None = None,
        client_request_id: str | None = None,
    ) -> None:
        super().__init__(message, status=status, code=code, request_id=request_id, client_request_id=client_request_id)
        self.retry_after = retry_after


class DataverseBadRequest(DataverseError):
    """400 and the other 4xx answers that mean the request itself is wrong (405, 413, 414, ...)."""


class ChangeTrackingTokenExpired(DataverseBadRequest):
    """A stored delta link is no longer valid (older than the org's change-tracking retention): read everything anew."""


class DataverseServerError(DataverseError):
    """5xx from Dataverse or the gateway in front of it."""


class DataverseConnectionError(DataverseError):
    """The request got no HTTP answer: connection refused, reset, DNS or a timeout."""


class WebhookContextError(DataverseError, ValueError):
    """A webhook body is not a valid RemoteExecutionContext; the message names the path of the bad part."""


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a `Retry-After` header; Dataverse sends integer seconds. Anything else is treated as absent."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def _error_fields(body: bytes | str | Mapping[str, object] | None) -> tuple[str, str]:
    """Dataverse's `(code, message)` from an error body: `{"error": {"code", "message"}}`, JSON or already parsed."""
    if isinstance(body, (bytes, str)):
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        try:
            body = json.loads(text) if text.strip() else None
        except ValueError:
            return "", text.strip()[:500]
    error = body.get("error") if isinstance(body, Mapping) else None
    if not isinstance(error, Mapping):
        return "", ""
    message = error.get("message")
    inner = error.get("innererror")
    if not message and isinstance(inner, Mapping):
        message = inner.get("message")
    code = error.get("code")
    return (str(code) if code else ""), (str(message) if message else "")


def error_from_response(
    status: int,
    headers: Mapping[str, str],
    body: bytes | str | Mapping[str, object] | None,
    *,
    client_request_id: str | None = None,
) -> DataverseError:
    """The `DataverseError` subclass for an HTTP error answer (a whole response or one part of a `$batch`).

    The class follows Dataverse's error code where that is decisive (duplicate key, expired change-tracking token),
    otherwise the status. The service request id comes from `x-ms-service-request-id` (or `REQ_ID`).
    """
    code, message = _error_fields(body)
    lowered = {k.lower(): v for k, v in headers.items()}
    request_id = lowered.get("x-ms-service-request-id") or lowered.get("req_id")
    message = message or f"Dataverse answered HTTP {status}"
    if status == 429:
        return DataverseThrottled(
            message,
            retry_after=parse_retry_after(lowered.get("retry-after")),
            status=status,
            code=code,
            request_id=request_id,
            client_request_id=client_request_id,
        )
    cls: type[DataverseError]
    if code in (DUPLICATE_KEY, DUPLICATE_ENTITY_KEY, DUPLICATE_DETECTED) or (
        status == 412 and "matching key values already exists" in message
    ):
        cls = DataverseDuplicate
    elif code == EXPIRED_VERSION_STAMP:
        cls = ChangeTrackingTokenExpired
    elif status in (401, 403):
        cls = DataverseAuthError
    elif status == 404:
        cls = DataverseNotFound
    elif status == 412:
        cls = DataversePreconditionFailed
    elif status >= 500:
        cls = DataverseServerError
    else:
        cls = DataverseBadRequest
    return cls(message, status=status, code=code, request_id=request_id, client_request_id=client_request_id)
