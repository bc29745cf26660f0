"""The one request path to Dataverse: headers, token, timeouts, retries, parallelism cap, error mapping, counting.

Every HTTP request the service sends to the Web API goes through `Transport.send`. It

- sets the OData headers, a bearer token, a user agent and one `x-ms-client-request-id` per logical request
  (kept across its retries, so support can find every attempt in Dataverse's logs);
- uses a pooled `requests.Session` with separate connect and read timeouts (a 5,000-row page takes a while);
- retries with tenacity: a 429 waits exactly `Retry-After`; 502/503/504 and connection failures back off
  exponentially with jitter, a 500 too but only twice (it may be a row that always fails); the total sleep of one
  request is capped. A request that is not idempotent is retried
  only when it certainly did not run (429, or a connection that was never established);
- caps requests in flight at the configured maximum, lowered to the server's `x-ms-dop-hint`;
- maps every error answer to a `DataverseError` subclass and counts every attempt by method and table;
- logs method, table, status, duration and request ids only: never query strings, bodies or tokens.

Sleeping and the clock are injected, so tests never really sleep.
"""

from __future__ import annotations

import json as jsonlib
import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from tenacity import RetryCallState, Retrying, retry_if_exception, wait_exponential_jitter

from dataverse.auth import TokenProvider
from dataverse.errors import (
    DataverseConnectionError,
    DataverseError,
    DataverseServerError,
    DataverseThrottled,
    error_from_response,
)

__all__ = ["ConcurrencyLimiter", "RequestStats", "Transport", "TransportConfig", "TransportPort"]

log = logging.getLogger("dataverse")

RETRYABLE_STATUSES = frozenset({502, 503, 504})
SERVER_ERROR_RETRIES = 2  # a 500 may be a passing fault or a row that always fails (a plugin): retried this often


@dataclass(frozen=True)
class TransportConfig:
    """How requests are sent. Defaults suit a production org; every field has an app setting (see abm.settings)."""

    org_url: str
    api_version: str = "v9.2"
    connect_timeout: float = 10.0
    read_timeout: float = 300.0
    max_attempts: int = 6
    max_retry_wait: float = 300.0
    backoff_initial: float = 1.0
    backoff_max: float = 60.0
    max_parallel: int = 8
    user_agent: str = "abm-dataverse/0.1"

    @property
    def api_url(self) -> str:
        return f"{self.org_url.rstrip('/')}/api/data/{self.api_version}/"


@dataclass
class RequestStats:
    """What was sent to Dataverse, retries included: the figure every run reports against the API limits."""

    total: int = 0
    by_method: Counter[str] = field(default_factory=Counter)
    by_table: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, method: str, table: str) -> None:
        with self._lock:
            self.total += 1
            self.by_method[method] += 1
            self.by_table[table] += 1

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "total": self.total,
                "by_method": dict(sorted(self.by_method.items())),
                "by_table": dict(sorted(self.by_table.items())),
            }


class ConcurrencyLimiter:
    """At most `limit` requests in flight; the limit follows the server's `x-ms-dop-hint`, never above `maximum`."""

    def __init__(self, maximum: int) -> None:
        if maximum < 1:
            raise ValueError("the parallelism cap must be at least 1")
        self.maximum = maximum
        self.limit = maximum
        self.in_flight = 0
        self.peak = 0
        self._cond = threading.Condition()

    def hint(self, value: str | None) -> None:
        """Apply an `x-ms-dop-hint` header value (ignored when absent or not a positive integer)."""
        try:
            hinted = int(value) if value is not None else 0
        except ValueError:
            return
        if hinted >= 1:
            with self._cond:
                self.limit = min(self.maximum, hinted)
                self._cond.notify_all()

    def __enter__(self) -> None:
        with self._cond:
            while self.in_flight >= self.limit:
                self._cond.wait()
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)

    def __exit__(self, *exc: object) -> None:
        with self._cond:
            self.in_flight -= 1
            self._cond.notify()


def json_default(value: Any) -> Any:
    """JSON for the values rows carry besides str/int/bool: GUIDs, aware datetimes (UTC), dates, money, enums."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime in a request body: pass an aware datetime (UTC)")
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, Enum):
        return value.value
    raise TypeError(f"{type(value).__name__} cannot be sent to Dataverse as JSON")


def table_of(url: str, api_path: str) -> str:
    """The entity set (or function, or `$batch`) a URL addresses: `contacts(…)/x?…` → `contacts`."""
    path = unquote(urlsplit(url).path)
    if path.startswith(api_path):
        path = path[len(api_path) :]
    head = path.split("/", 1)[0]
    return head.split("(", 1)[0] or "(root)"


def _never_sent(exc: BaseException) -> bool:
    """True when the connection was never established, so the server cannot have acted on the request."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(exc, requests.exceptions.ConnectionError):
        reason = getattr(exc.args[0], "reason", None) if exc.args else None
        return isinstance(reason, urllib3.exceptions.NewConnectionError)
    return False


class TransportPort(Protocol):
    """What `DataverseClient` sends through: one method, `send`, for one logical request (its retries included), beside
    what the client reads about the path (its configuration, its request counts, its parallelism cap) and `close`.

    `Transport` sends over HTTP; `dataverse.recording.RecordingTransport` passes reads to a `Transport` and records
    writes instead of sending them (a dry run).
    """

    @property
    def config(self) -> TransportConfig: ...

    @property
    def stats(self) -> RequestStats: ...

    @property
    def limiter(self) -> ConcurrencyLimiter: ...

    def send(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        done_on_retry: Callable[[DataverseError], bool] | None = None,
        passthrough: Callable[[requests.Response], bool] | None = None,
    ) -> requests.Response | None:
        """Send one request (with its retries); the response of a 2xx answer, or None when a retry found the work
        already done. An error answer raises its `DataverseError`."""
        ...

    def close(self) -> None: ...


class _NotSent(DataverseConnectionError):
    """A connection error raised before any byte reached the server (safe to retry anything)."""


@dataclass(frozen=True)
class _Request:
    method: str
    url: str
    table: str
    request_id: str
    is_json: bool
    data: bytes | None
    headers: Mapping[str, str] | None
    passthrough: Callable[[requests.Response], bool] | None = None


class Transport:
    """Sends one logical request (with its retries) and returns the `requests.Response` of a 2xx answer."""

    def __init__(
        self,
        config: TransportConfig,
        auth: TokenProvider,
        *,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.auth = auth
        self.stats = RequestStats()
        self.limiter = ConcurrencyLimiter(config.max_parallel)
        self._sleep = sleep
        self._clock = clock
        self._backoff = wait_exponential_jitter(
            multiplier=config.backoff_initial, max=config.backoff_max, jitter=config.backoff_initial
        )
        self._api_path = urlsplit(config.api_url).path
        if session is None:
            session = requests.Session()
            adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(10, config.max_parallel))
            session.mount("https://", adapter)
            session.mount("http://", adapter)
        self.session = session

    def close(self) -> None:
        self.session.close()

    def url(self, path: str) -> str:
        """An absolute URL for a path relative to the API root; absolute URLs (next and delta links) pass verbatim."""
        if path.startswith(("https://", "http://")):
            return path
        return self.config.api_url + path.lstrip("/")

    def _headers(self, extra: Mapping[str, str] | None, request_id: str, has_json: bool) -> dict[str, str]:
        headers = {
            "Accept": "application/json",
            "OData-MaxVersion": "4.0",
            "OData-Version": "4.0",
            "If-None-Match": "null",
            "User-Agent": self.config.user_agent,
            "x-ms-client-request-id": request_id,
        }
        if has_json:
            headers["Content-Type"] = "application/json; charset=utf-8"
        token = self.auth.token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if extra:
            headers.update(extra)
        return headers

    def send(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        done_on_retry: Callable[[DataverseError], bool] | None = None,
        passthrough: Callable[[requests.Response], bool] | None = None,
    ) -> requests.Response | None:
        """Send with retries. `idempotent` defaults to True for GET/PATCH/PUT/DELETE and False for POST.

        `done_on_retry(error)` says whether an error answer to a *retry* proves the first attempt succeeded
        (a duplicate key for a create with a client-assigned id, a 404 for a delete); `send` then returns None.
        `passthrough(response)` returns a 4xx answer to the caller instead of raising (a `$batch` whose parts
        carry their own errors); 429 and 5xx are still retried and raised.
        """
        method = method.upper()
        if json is not None:
            data = jsonlib.dumps(json, default=json_default, ensure_ascii=False).encode("utf-8")
        if idempotent is None:
            idempotent = method != "POST"
        url = self.url(path)
        table = table_of(url, self._api_path)
        request_id = str(uuid.uuid4())
        request = _Request(method, url, table, request_id, json is not None, data, headers, passthrough)

        internal_errors = 0

        def should_retry(exc: BaseException) -> bool:
            nonlocal internal_errors
            if isinstance(exc, DataverseThrottled | _NotSent):
                return True
            if isinstance(exc, DataverseServerError) and exc.status == 500:
                internal_errors += 1
                return bool(idempotent) and internal_errors <= SERVER_ERROR_RETRIES
            if isinstance(exc, DataverseServerError):
                return bool(idempotent) and exc.status in RETRYABLE_STATUSES
            return isinstance(exc, DataverseConnectionError) and bool(idempotent)

        retrying = Retrying(
            retry=retry_if_exception(should_retry),
            wait=self._wait,
            stop=self._stop,
            sleep=self._sleep,
            reraise=True,
            before_sleep=lambda state: self._log_retry(state, method, table, request_id),
        )
        for attempt in retrying:
            with attempt:
                try:
                    return self._send_once(request)
                except DataverseError as exc:
                    number = attempt.retry_state.attempt_number
                    if number > 1 and done_on_retry is not None and done_on_retry(exc):
                        log.info("%s %s: retry %d found the work already done", method, table, number)
                        return None
                    raise
        raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover

    def _send_once(self, request: _Request) -> requests.Response:
        method, table, request_id = request.method, request.table, request.request_id
        headers = self._headers(request.headers, request_id, has_json=request.is_json)
        started = self._clock()
        with self.limiter:
            self.stats.add(method, table)
            try:
                response = self.session.request(
                    method,
                    request.url,
                    data=request.data,
                    headers=headers,
                    timeout=(self.config.connect_timeout, self.config.read_timeout),
                    allow_redirects=False,
                )
            except requests.RequestException as exc:
                cls = _NotSent if _never_sent(exc) else DataverseConnectionError
                reason = type(exc).__name__
                log.warning("%s %s: no answer (%s), client_request_id=%s", method, table, reason, request_id)
                raise cls(
                    f"no answer from Dataverse for {method} {table}: {reason}", client_request_id=request_id
                ) from exc
        self.limiter.hint(response.headers.get("x-ms-dop-hint"))
        elapsed_ms = int((self._clock() - started) * 1000)
        service_id = response.headers.get("x-ms-service-request-id") or response.headers.get("REQ_ID")
        log.debug(
            "%s %s -> %d in %d ms, client_request_id=%s, request_id=%s",
            method,
            table,
            response.status_code,
            elapsed_ms,
            request_id,
            service_id,
        )
        status = response.status_code
        if status >= 400 and not (status < 429 and request.passthrough and request.passthrough(response)):
            raise error_from_response(
                response.status_code, response.headers, response.content, client_request_id=request_id
            )
        return response

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, DataverseThrottled) and exc.retry_after is not None:
            return exc.retry_after
        return float(self._backoff(state))

    def _stop(self, state: RetryCallState) -> bool:
        if state.attempt_number >= self.config.max_attempts:
            return True
        return state.idle_for + state.upcoming_sleep > self.config.max_retry_wait

    def _log_retry(self, state: RetryCallState, method: str, table: str, request_id: str) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning(
            "%s %s failed (%s), retry %d/%d in %.1f s, client_request_id=%s",
            method,
            table,
            getattr(exc, "status", None) or type(exc).__name__,
            state.attempt_number,
            self.config.max_attempts - 1,
            state.upcoming_sleep,
            request_id,
        )
