"""A local Functions host for machines without Azure Functions Core Tools (`abm serve`).

It indexes any `azure.functions.FunctionApp` the way the Python worker does (`get_functions()` and each function's
binding JSON), serves the HTTP triggers under host.json's route prefix on a stdlib `ThreadingHTTPServer`, checks
function keys the way the Functions host does in Azure (which `func start` does not), and runs storage-queue
triggers in memory: queue output bindings, retries up to host.json `maxDequeueCount`, then `<queue>-poison`.
Timer triggers are listed, not scheduled (`LocalHost.run_timer` runs one on demand).

A development and test convenience, not the Functions host: no blobs, tables, Durable, scale-out or restarts.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import heapq
import hmac
import inspect
import json
import logging
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Iterable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self, cast
from urllib.parse import parse_qsl, unquote, urlsplit

import azure.functions as func
from azure.functions.queue import QueueMessage as RichQueueMessage
from azure.functions.timer import TimerRequest

__all__ = ["MAX_REQUEST_BODY", "HostConfigError", "InvocationContext", "LocalHost", "RouteInfo", "run_local_host"]

LOG = logging.getLogger("abm.localhost")

MAX_REQUEST_BODY = 100 * 1024 * 1024  # the Azure front end refuses larger request bodies (413)
MAX_QUEUE_MESSAGE = 64 * 1024  # a storage queue message, after encoding
POISON_SUFFIX = "-poison"
MESSAGE_TTL = timedelta(days=7)  # the storage queue default, shown as QueueMessage.expiration_time
DISCARD_LIMIT = 1024 * 1024  # an unread request body up to this size is drained to keep the connection usable
KEY_HEADER = "x-functions-key"
STANDARD_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE")

# ASP.NET route constraints the Functions host accepts most often; others match any segment (logged at indexing).
_CONSTRAINTS = {
    "int": r"-?\d+",
    "long": r"-?\d+",
    "alpha": r"[A-Za-z]+",
    "bool": r"(?i:true|false)",
    "guid": r"[0-9A-Fa-f]{8}-?(?:[0-9A-Fa-f]{4}-?){3}[0-9A-Fa-f]{12}",
}
_PARAMETER = re.compile(r"\{(\*{1,2})?([A-Za-z_]\w*)((?::[^{}?=]+)*)(\?)?(?:=([^{}]*))?\}")


class HostConfigError(ValueError):
    """The app cannot be served as indexed: a bad route template or an unreadable host.json."""


class _BadRequest(Exception):
    """A request the server cannot parse (e.g. a malformed chunk): 400, then the connection is closed."""


@dataclass(frozen=True)
class RouteInfo:
    """One served HTTP route, for listings (never carries a key)."""

    function_name: str
    methods: tuple[str, ...] | None  # None: every method, as when the decorator gives none
    path: str  # with the route prefix, e.g. "/api/items/{id}"
    auth_level: str  # ANONYMOUS, FUNCTION or ADMIN

    def describe(self) -> str:
        methods = ",".join(self.methods) if self.methods else "ANY"
        return f"{methods} {self.path} ({self.auth_level.lower()})"


@dataclass(frozen=True)
class InvocationContext:
    """What the worker passes to a function that declares a `context` parameter (duck-typed `func.Context`)."""

    invocation_id: str
    function_name: str
    function_directory: str
    thread_local_storage: threading.local = field(default_factory=threading.local)
    trace_context: None = None
    retry_context: None = None


@dataclass(frozen=True)
class _Function:
    """One indexed function: its Python callable and what the host must pass to it."""

    name: str
    kind: str  # "http", "queue", "timer" or the trigger type of anything else
    call: Callable[..., Any]
    trigger_arg: str
    trigger: Mapping[str, Any]
    queue_outputs: Mapping[str, str]  # argument name (or "$return") -> queue name
    http_output: str = "$return"  # the argument name of the HTTP response
    wants_context: bool = False
    unsupported: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Route:
    """An HTTP function with its route template compiled to a regular expression."""

    function: _Function
    info: RouteInfo
    pattern: re.Pattern[str]
    rank: tuple[int, ...]  # literal segments before parameters before catch-alls, as ASP.NET routing orders them

    def allows(self, method: str) -> bool:
        return self.info.methods is None or method in self.info.methods


@dataclass(order=True)
class _Pending:
    """A queue message waiting to become visible; ordered by visibility, then by arrival (FIFO per queue)."""

    visible_at: float
    seq: int
    queue: str = field(compare=False)
    id: str = field(compare=False)
    body: bytes = field(compare=False)
    inserted: datetime = field(compare=False)
    dequeue_count: int = field(compare=False, default=0)  # deliveries so far


class _OutValue(func.Out[Any]):
    """The `func.Out` the worker passes for an output binding: the last `set` wins, read after the call."""

    def __init__(self) -> None:
        self._value: Any = None

    def set(self, val: Any) -> None:
        self._value = val

    def get(self) -> Any:
        return self._value


def _compile_route(template: str, prefix: str) -> tuple[re.Pattern[str], tuple[int, ...], str]:
    """ASP.NET-style template (`items/{id}`, `{id?}`, `{id:int}`, `{*rest}`) -> regex over the path after the
    prefix, a specificity rank and the displayed path."""
    segments = [s for s in template.strip("/").split("/") if s]
    regex, rank, names = "", [], set()
    for index, segment in enumerate(segments):
        pieces, position, kind = [], 0, 0
        for found in _PARAMETER.finditer(segment):
            pieces.append(re.escape(segment[position : found.start()]))
            catch_all, name, constraints, optional, default = found.groups()
            if name.lower() in names:
                raise HostConfigError(f"route {template!r}: parameter {name!r} appears twice")
            names.add(name.lower())
            value = r"[^/]+"
            for constraint in filter(None, constraints.split(":")):
                known = _CONSTRAINTS.get(constraint.split("(")[0].lower())
                if known is None:
                    LOG.warning("route %r: constraint %r is not checked by the local host", template, constraint)
                else:
                    value = known
            if catch_all:
                value, kind = ".*", 4
            else:
                kind = max(kind, 3 if optional or default is not None else 1 if constraints else 2)
            group = f"(?P<{name}>{value})"
            pieces.append(f"{group}?" if optional or default is not None or catch_all else group)
            position = found.end()
        literal = segment[position:]
        if "{" in literal or "}" in literal:
            raise HostConfigError(f"route {template!r}: cannot parse segment {segment!r}")
        pieces.append(re.escape(literal))
        body = "".join(pieces)
        separator = "/" if index else ""
        # an optional or catch-all last segment may be absent together with its slash
        regex += f"(?:{separator}{body})?" if kind >= 3 and index == len(segments) - 1 else separator + body
        rank.append(kind)
    shown = f"/{prefix}/{template.strip('/')}" if prefix else f"/{template.strip('/')}"
    return re.compile(f"^{regex}/?$", re.IGNORECASE), tuple(rank), shown.rstrip("/") or "/"


def _defaults(template: str) -> dict[str, str]:
    """Default values of route parameters (`{page=1}`), used when the segment is absent."""
    return {m.group(2): m.group(5) for m in _PARAMETER.finditer(template) if m.group(5) is not None}


def _resolve(value: str, settings: Mapping[str, str]) -> str:
    """`%SETTING%` binding expressions, resolved from app settings as the host does."""

    def setting(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in settings:
            LOG.warning("binding expression %%%s%% names an app setting that is not set", name)
            return match.group(0)
        return settings[name]

    return re.sub(r"%([^%]+)%", setting, value)


def _read_host_json(app_root: Path) -> dict[str, Any]:
    path = app_root / "host.json"
    if not path.is_file():
        return {}
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise HostConfigError(f"{path}: cannot read ({exc})") from None
    if not isinstance(document, dict):
        raise HostConfigError(f"{path}: not a JSON object")
    return document


def _section(document: Mapping[str, Any], *keys: str) -> Mapping[str, Any]:
    for key in keys:
        value = document.get(key)
        document = value if isinstance(value, dict) else {}
    return document


def _index(app: func.FunctionApp, settings: Mapping[str, str]) -> list[_Function]:
    """Build the app's functions once, as the worker does, and read what each binding asks of the host."""
    # get_functions() is not idempotent (azure-functions-python-worker#1867): it records every name in
    # functions_bindings and raises "does not have a unique function name" the second time. The dict exists only
    # for that check, so clearing it first makes indexing repeatable (another LocalHost, a test that indexed).
    app.functions_bindings = None
    functions = []
    for built in app.get_functions():
        document = json.loads(built.get_function_json())
        bindings: list[dict[str, Any]] = document.get("bindings", [])
        trigger = next((b for b in bindings if str(b.get("type", "")).endswith("Trigger")), None)
        if trigger is None:
            raise HostConfigError(f"{built.get_function_name()} has no trigger")
        call = built.get_user_function()
        kind = {"httpTrigger": "http", "queueTrigger": "queue", "timerTrigger": "timer"}.get(trigger["type"])
        unsupported = [] if kind else [f"{trigger['type']} trigger"]
        queue_outputs, http_output = {}, "$return"
        for binding in bindings:
            if binding is trigger:
                continue
            direction, kind_of = str(binding.get("direction", "")).upper(), binding.get("type")
            if kind_of == "queue" and direction == "OUT":
                queue_outputs[binding["name"]] = _resolve(binding["queueName"], settings)
            elif kind_of == "http" and direction == "OUT":
                http_output = binding["name"]
            else:
                unsupported.append(f"{kind_of} {direction.lower()} binding {binding.get('name')!r}")
        trigger = {**trigger}
        if kind == "queue":
            trigger["queueName"] = _resolve(trigger["queueName"], settings)
        functions.append(
            _Function(
                name=str(built.get_function_name()),
                kind=kind or str(trigger["type"]),
                call=call,
                trigger_arg=trigger["name"],
                trigger=trigger,
                queue_outputs=queue_outputs,
                http_output=http_output,
                wants_context="context" in inspect.signature(call).parameters,
                unsupported=tuple(unsupported),
            )
        )
    return functions


def _invoke(function: _Function, kwargs: dict[str, Any]) -> Any:
    """Call the user's function; `async def` functions run to completion on a private event loop."""
    result = function.call(**kwargs)
    if inspect.iscoroutine(result):
        return asyncio.run(cast(Coroutine[Any, Any, Any], result))
    return result


def _queue_bodies(value: Any) -> list[bytes]:
    """What the queue output binding accepts (azure.functions.queue.QueueMessageOutConverter): a str, bytes, a
    QueueMessage, or an iterable of str / QueueMessage; anything else fails the invocation, as in Azure."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value.encode()]
    if isinstance(value, bytes | bytearray):
        return [bytes(value)]
    if isinstance(value, func.QueueMessage):
        return [value.get_body()]
    if isinstance(value, Iterable):
        bodies = []
        for item in value:
            if isinstance(item, str):
                bodies.append(item.encode())
            elif isinstance(item, func.QueueMessage):
                bodies.append(item.get_body())
            else:
                raise TypeError(f"the queue output binding does not accept a {type(item).__name__} inside a list")
        return bodies
    raise TypeError(f"the queue output binding does not accept a {type(value).__name__}")


class LocalHost:
    """Serve a FunctionApp on loopback: HTTP triggers with function keys, queue triggers in memory.

    `keys` maps function name -> function key (built by the caller from app settings); `settings` (the app
    settings) resolve `%NAME%` expressions in queue names. `retry_delay` stands in for host.json's
    visibilityTimeout (30 s in Azure) so that retries do not keep a developer or a test waiting.
    """

    def __init__(
        self,
        app: func.FunctionApp,
        *,
        keys: Mapping[str, str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        app_root: Path | None = None,
        retry_delay: float = 0.1,
        settings: Mapping[str, str] | None = None,
    ) -> None:
        self.app_root = app_root if app_root is not None else Path.cwd()  # func start uses the current directory
        host_json = _read_host_json(self.app_root)
        prefix = _section(host_json, "extensions", "http").get("routePrefix", "api")
        queues = _section(host_json, "extensions", "queues")
        self.route_prefix = str(prefix).strip("/")
        self.max_dequeue_count = int(queues.get("maxDequeueCount", 5))
        self.base64_messages = str(queues.get("messageEncoding", "base64")).lower() != "none"
        self.retry_delay = retry_delay
        self._keys = {name: key for name, key in (keys or {}).items() if key}
        self._functions = _index(app, settings or {})
        self._routes = self._compile_routes()
        self._queue_functions: dict[str, _Function] = {}
        for function in self._functions:
            if function.kind != "queue":
                continue
            if function.unsupported:
                LOG.warning("%s is not run locally: %s", function.name, "; ".join(function.unsupported))
                continue
            queue = function.trigger["queueName"]
            if queue in self._queue_functions:
                LOG.warning(
                    "%s and %s both listen on %s: only the first gets messages locally",
                    self._queue_functions[queue].name,
                    function.name,
                    queue,
                )
                continue
            self._queue_functions[queue] = function
        function_level = {r.function.name for r in self._routes if r.info.auth_level == "FUNCTION"}
        for name in sorted(set(self._keys) - function_level):
            LOG.warning("a key is configured for %s, which is not a function-level HTTP function", name)
        for name in sorted(function_level - set(self._keys)):
            LOG.warning("no key configured for %s: it answers 401 to every request", name)

        self._cond = threading.Condition()
        self._pending: list[_Pending] = []
        self._undelivered: dict[str, list[bytes]] = {}
        self._active = 0
        self._seq = 0
        self._closing = False
        self._started = False
        self._threads: list[threading.Thread] = []
        self._server = _Server((host, port), _Handler, self)

    # -- what was indexed ------------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:7071 (routes are under `/<routePrefix>/`)."""
        host, port = self._server.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else host
        return f"http://{f'[{host}]' if ':' in host else host}:{port}"

    @property
    def routes(self) -> list[RouteInfo]:
        return [route.info for route in self._routes]

    @property
    def queue_triggers(self) -> dict[str, str]:
        """Queue name -> the function that processes its messages."""
        return {queue: function.name for queue, function in self._queue_functions.items()}

    @property
    def timers(self) -> list[str]:
        return [f.name for f in self._functions if f.kind == "timer"]

    def describe(self) -> str:
        """One line for the console: URL, routes with auth levels, queues, timers. Never a key."""
        parts = [f"listening on {self.url}", "routes: " + (", ".join(r.describe() for r in self.routes) or "none")]
        if self._queue_functions:
            parts.append("queues: " + ", ".join(f"{q} -> {name}" for q, name in self.queue_triggers.items()))
        if self.timers:
            parts.append("timers (not scheduled): " + ", ".join(self.timers))
        missing = sorted({r.function.name for r in self._routes if r.info.auth_level == "FUNCTION"} - set(self._keys))
        if missing:
            parts.append("no key configured (401): " + ", ".join(missing))
        others = [
            f"{f.name} ({'; '.join(f.unsupported)})"
            for f in self._functions
            if f.unsupported and f.kind != "timer"  # a timer is not run anyway
        ]
        if others:
            parts.append("not served (bindings the local host lacks): " + ", ".join(others))
        return " | ".join(parts)

    def _compile_routes(self) -> list[_Route]:
        routes = []
        for function in self._functions:
            if function.kind != "http":
                continue
            template = str(function.trigger.get("route") or function.name)
            pattern, rank, shown = _compile_route(template, self.route_prefix)
            methods = function.trigger.get("methods")
            info = RouteInfo(
                function_name=function.name,
                methods=tuple(str(m).upper() for m in methods) if methods else None,
                path=shown,
                auth_level=str(function.trigger.get("authLevel", "FUNCTION")).upper(),
            )
            routes.append(_Route(function, info, pattern, rank))
        return sorted(routes, key=lambda r: r.rank)

    # -- lifecycle -------------------------------------------------------------------------------------------------

    def start(self) -> Self:
        """Serve HTTP and run the queue worker on background threads."""
        if self._started:
            return self
        self._started = True
        serve = functools.partial(self._server.serve_forever, poll_interval=0.05)  # close() waits one poll at most
        for target, name in ((serve, "http"), (self._work, "queue")):
            thread = threading.Thread(target=target, name=f"abm-localhost-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def close(self) -> None:
        """Stop serving and stop the queue worker; messages still queued are dropped (and counted in the log)."""
        with self._cond:
            if self._closing:
                return
            self._closing = True
            dropped = len(self._pending)
            self._cond.notify_all()
        if self._started:
            self._server.shutdown()
        self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        if dropped:
            LOG.warning("local host closed with %d queue messages not delivered", dropped)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- queues ----------------------------------------------------------------------------------------------------

    def enqueue(self, queue_name: str, message: str | bytes) -> None:
        """Put one message on a queue, as a queue output binding or the storage SDK would."""
        self._put(queue_name, [self._checked(queue_name, message.encode() if isinstance(message, str) else message)])

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until every queue is empty (retries included) and no delivery is running; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending or self._active:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def undelivered(self, queue_name: str) -> list[bytes]:
        """Messages put on a queue that no function listens on (e.g. a poison queue without a handler)."""
        with self._cond:
            return list(self._undelivered.get(queue_name, []))

    def run_timer(self, function_name: str, *, past_due: bool = False) -> None:
        """Run a timer function once now (what `POST /admin/functions/<name>` does in Azure) and enqueue its
        queue outputs; its exception propagates to the caller."""
        function = next((f for f in self._functions if f.name == function_name and f.kind == "timer"), None)
        if function is None:
            raise KeyError(f"no timer function named {function_name!r}")
        if function.unsupported:
            raise HostConfigError(f"{function_name} needs {'; '.join(function.unsupported)}")
        outputs = self._run(function, TimerRequest(past_due=past_due))[1]
        for queue, bodies in outputs:
            self._put(queue, bodies)

    def _checked(self, queue: str, body: bytes) -> bytes:
        size = len(base64.b64encode(body)) if self.base64_messages else len(body)
        if size > MAX_QUEUE_MESSAGE:
            raise ValueError(f"a message for queue {queue} is {size} bytes encoded; storage queues accept 64 KiB")
        return body

    def _put(self, queue: str, bodies: list[bytes]) -> None:
        if not bodies:
            return
        now = datetime.now(UTC)
        with self._cond:
            if queue not in self._queue_functions:
                self._undelivered.setdefault(queue, []).extend(bodies)
                LOG.warning(
                    "%d message(s) put on %s, which no function listens on: kept, not delivered", len(bodies), queue
                )
                return
            for body in bodies:
                self._seq += 1
                heapq.heappush(
                    self._pending, _Pending(time.monotonic(), self._seq, queue, str(uuid.uuid4()), body, now)
                )
            self._cond.notify_all()

    def _next(self) -> _Pending | None:
        """The next visible message (marked as running), or None when closing."""
        with self._cond:
            while not self._closing:
                if not self._pending:
                    self._cond.wait()
                    continue
                delay = self._pending[0].visible_at - time.monotonic()
                if delay > 0:
                    self._cond.wait(delay)
                    continue
                self._active += 1
                return heapq.heappop(self._pending)
            return None

    def _work(self) -> None:
        while (item := self._next()) is not None:
            try:
                self._deliver(item)
            except Exception:  # the worker thread must survive anything
                LOG.exception("queue worker: unexpected error delivering a message from %s", item.queue)
            finally:
                with self._cond:
                    self._active -= 1
                    self._cond.notify_all()

    def _deliver(self, item: _Pending) -> None:
        """One delivery; on failure, retry after `retry_delay` until maxDequeueCount, then the poison queue."""
        function = self._queue_functions[item.queue]
        attempt = item.dequeue_count + 1
        now = datetime.now(UTC)
        message = RichQueueMessage(  # type: ignore[no-untyped-call]  # the library's constructor is unannotated
            id=item.id,
            body=item.body,
            dequeue_count=attempt,
            insertion_time=item.inserted,
            expiration_time=item.inserted + MESSAGE_TTL,
            time_next_visible=now + timedelta(seconds=self.retry_delay),
            pop_receipt=str(uuid.uuid4()),
        )
        started = time.monotonic()
        try:
            outputs = self._run(function, message)[1]
        except Exception:
            LOG.exception(
                "%s failed on message %s from %s (dequeue count %d of %d)",
                function.name,
                item.id,
                item.queue,
                attempt,
                self.max_dequeue_count,
            )
            if item.queue.endswith(POISON_SUFFIX):
                LOG.error("poison message %s from %s dropped: its handler failed", item.id, item.queue)
            elif attempt >= self.max_dequeue_count:
                LOG.warning("message %s moved to %s%s", item.id, item.queue, POISON_SUFFIX)
                self._put(item.queue + POISON_SUFFIX, [item.body])
            else:
                with self._cond:
                    item.dequeue_count, item.visible_at = attempt, time.monotonic() + self.retry_delay
                    heapq.heappush(self._pending, item)
                    self._cond.notify_all()
            return
        LOG.info(
            "%s: message %s from %s done (dequeue count %d, %.1f ms)",
            function.name,
            item.id,
            item.queue,
            attempt,
            (time.monotonic() - started) * 1000,
        )
        for queue, bodies in outputs:
            self._put(queue, bodies)

    # -- invocations -----------------------------------------------------------------------------------------------

    def _run(self, function: _Function, trigger: Any) -> tuple[Any, list[tuple[str, list[bytes]]]]:
        """Invoke with the trigger and fresh output bindings; returns (the HTTP response or return value, the queue
        messages to enqueue). Nothing is enqueued by a failed invocation, as in Azure."""
        outs = {name: _OutValue() for name in function.queue_outputs if name != "$return"}
        kwargs: dict[str, Any] = {function.trigger_arg: trigger, **outs}
        http_out = _OutValue() if function.kind == "http" and function.http_output != "$return" else None
        if http_out is not None:
            kwargs[function.http_output] = http_out
        if function.wants_context:
            kwargs["context"] = InvocationContext(str(uuid.uuid4()), function.name, str(self.app_root))
        result = _invoke(function, kwargs)
        messages = []
        for name, queue in function.queue_outputs.items():
            value = result if name == "$return" else outs[name].get()
            messages.append((queue, [self._checked(queue, body) for body in _queue_bodies(value)]))
        return (http_out.get() if http_out is not None else result), messages

    def _match(self, path: str) -> list[tuple[_Route, dict[str, str]]]:
        """Routes matching a request path (most specific first), with URL-decoded route parameters."""
        if self.route_prefix:
            head = f"/{self.route_prefix}"
            if path.lower() == head.lower():
                rest = ""
            elif path.lower().startswith(head.lower() + "/"):
                rest = path[len(head) + 1 :]
            else:
                return []
        else:
            rest = path.lstrip("/")
        found = []
        for route in self._routes:
            match = route.pattern.match(rest)
            if match:
                params = _defaults(str(route.function.trigger.get("route") or ""))
                params.update({k: unquote(v) for k, v in match.groupdict().items() if v is not None})
                found.append((route, params))
        return found

    def _authorize(self, route: _Route, presented: str | None) -> tuple[int, str] | None:
        """None if the request may call the function, else (status, error) as the Functions host answers."""
        level = route.info.auth_level
        if level == "ANONYMOUS":
            return None
        if level != "FUNCTION":
            return 403, f"{level.lower()}-level functions are not served by the local host"
        expected = self._keys.get(route.function.name)
        if expected is None:
            return 401, f"no function key is configured for {route.function.name} on this host"
        if not presented:
            return 401, f"a function key is required: send it in the {KEY_HEADER} header or the code query parameter"
        # bytes, not str: compare_digest refuses non-ASCII str, and a key is whatever the caller configured
        if not hmac.compare_digest(presented.encode(), expected.encode()):
            return 401, "the function key is not valid for this function"
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[_Handler], host: LocalHost) -> None:
        self.localhost = host
        super().__init__(address, handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        LOG.debug("connection error from %s", client_address[0], exc_info=True)  # e.g. the client went away


class _Handler(BaseHTTPRequestHandler):
    """One connection; `_serve` routes each request. Keep-alive (HTTP/1.1) as the Azure front end allows."""

    protocol_version = "HTTP/1.1"
    timeout = 120  # a silent client does not hold a thread forever
    server: _Server

    def _serve(self) -> None:
        started = time.monotonic()
        target = self.path if self.path.startswith("/") else urlsplit(self.path).path or "/"
        path, _, query = target.partition("?")
        try:
            status = self._dispatch(path, query)
        except (ConnectionError, TimeoutError):
            self.close_connection = True
            status = 499  # the client went away, as nginx logs it
        except _BadRequest as exc:
            status = self._error(400, str(exc), close=True)
        except Exception:  # a bug here, not in the function: still answer, and keep the server up
            LOG.exception("local host error on %s %s", self.command, path)
            status = 500
            with suppress(OSError):
                self._error(500, "local host error; see its log", close=True)
        # never the query string (it carries code=), never headers or bodies
        LOG.info("%s %s -> %d (%.1f ms)", self.command, path, status, (time.monotonic() - started) * 1000)

    def _dispatch(self, path: str, query: str) -> int:
        host = self.server.localhost
        length_header = self.headers.get("Content-Length")
        chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        length = 0
        if length_header is not None and not chunked:
            try:
                length = int(length_header)
            except ValueError:
                length = -1
            if length < 0:
                return self._error(400, "invalid Content-Length", close=True)
            if length > MAX_REQUEST_BODY:
                return self._error(413, "request body larger than 100 MB", close=True)
        matches = host._match(path)
        if not matches:
            return self._error(404, "no function serves this route", unread=length, chunked=chunked)
        allowed = [(route, params) for route, params in matches if route.allows(self.command)]
        if not allowed:
            methods = sorted({m for route, _ in matches for m in route.info.methods or STANDARD_METHODS})
            return self._error(
                405, "method not allowed", unread=length, chunked=chunked, headers={"Allow": ", ".join(methods)}
            )
        route, route_params = allowed[0]
        params = self._params(query)
        presented = self.headers.get(KEY_HEADER) or params.get("code")  # the host reads the header first
        refusal = host._authorize(route, presented)
        if refusal is not None:
            return self._error(*refusal, unread=length, chunked=chunked)
        if route.function.unsupported:
            return self._error(
                501, "this function needs bindings the local host does not provide", unread=length, chunked=chunked
            )
        body = self._read_chunked() if chunked else self._read(length)
        if body is None:
            return self._error(413, "request body larger than 100 MB", close=True)
        return self._call_function(route, route_params, params, body)

    def _call_function(self, route: _Route, route_params: dict[str, str], params: dict[str, str], body: bytes) -> int:
        host = self.server.localhost
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        authority = self.headers.get("Host") or host.url.removeprefix("http://")
        url = f"http://{authority}{self.path}" if self.path.startswith("/") else self.path  # the host passes it all
        request = func.HttpRequest(
            self.command,
            url,
            headers=headers,
            params=params,
            route_params=route_params,
            body=body,
        )
        try:
            response, outputs = host._run(route.function, request)
            if isinstance(response, str):  # the worker's HTTP converter takes a str as a 200 text body
                response = func.HttpResponse(response)
            if not isinstance(response, func.HttpResponse):
                raise TypeError(f"an HTTP function must return func.HttpResponse or str, not {type(response).__name__}")
        except Exception:
            LOG.exception("%s failed", route.function.name)  # the traceback goes to the log, never to the client
            return self._error(500, "the function failed; see the host log")
        for queue, bodies in outputs:
            host._put(queue, bodies)
        status = int(response.status_code)
        out_headers = {
            k: v
            for k, v in response.headers.items()
            if k.lower() not in ("content-length", "transfer-encoding", "connection")
        }
        if not any(k.lower() == "content-type" for k in out_headers):
            mimetype, charset = response.mimetype, response.charset
            out_headers["Content-Type"] = f"{mimetype}; charset={charset}" if mimetype.startswith("text/") else mimetype
        self._send(status, response.get_body() or b"", out_headers)
        return status

    # -- request bodies --------------------------------------------------------------------------------------------

    def parse_request(self) -> bool:
        self._expect_continue = False  # set by handle_expect_100 during parsing, per request
        return super().parse_request()

    def handle_expect_100(self) -> bool:
        """Answer `Expect: 100-continue` only when the body is wanted, so a refused request is never uploaded."""
        self._expect_continue = True
        return True

    def _continue(self) -> None:
        if self._expect_continue:
            self._expect_continue = False
            self.send_response_only(HTTPStatus.CONTINUE)
            self.end_headers()

    def _read(self, length: int) -> bytes:
        """A Content-Length body. Without Content-Length or chunking a request has no body (RFC 9112 6.3)."""
        if not length:
            return b""
        self._continue()
        chunks, remaining = [], length
        while remaining:
            chunk = self.rfile.read(min(remaining, 1 << 20))
            if not chunk:
                raise ConnectionError("the client closed the connection before sending the whole body")
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)

    def _read_chunked(self) -> bytes | None:
        """A chunked body, or None once it grows past 100 MB."""
        self._continue()
        chunks: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(1024)
            if not line:
                raise ConnectionError("the client closed the connection inside a chunked body")
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise _BadRequest("malformed chunk size") from None
            if size == 0:
                while self.rfile.readline(8192).strip():  # trailers
                    pass
                return b"".join(chunks)
            total += size
            if total > MAX_REQUEST_BODY:
                return None
            chunks.append(self._read(size))
            self.rfile.readline(8)  # the CRLF after each chunk

    def _discard(self, length: int, chunked: bool) -> bool:
        """Skip an unread body so the connection can serve the next request; False if it must be closed."""
        if self._expect_continue or chunked or length > DISCARD_LIMIT:
            return False  # the client has not sent it (waiting for 100), or it is too big to be worth reading
        with suppress(ConnectionError):
            self._read(length)
            return True
        return False

    # -- responses -------------------------------------------------------------------------------------------------

    def _params(self, query: str) -> dict[str, str]:
        params: dict[str, str] = {}
        for name, value in parse_qsl(query, keep_blank_values=True):
            params[name] = f"{params[name]},{value}" if name in params else value
        return params

    def _error(
        self,
        status: int,
        message: str,
        *,
        unread: int = 0,
        chunked: bool = False,
        close: bool = False,
        headers: Mapping[str, str] | None = None,
    ) -> int:
        if not close and (unread or chunked):
            close = not self._discard(unread, chunked)
        extra = {"Content-Type": "application/json", **(headers or {})}
        if close:
            self.close_connection = True
            extra["Connection"] = "close"
        self._send(status, json.dumps({"error": message}).encode(), extra)
        return status

    def _send(self, status: int, body: bytes, headers: Mapping[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # _serve logs each request without its query string

    def log_message(self, format: str, *args: Any) -> None:
        text = format % args if args else format
        LOG.debug("http.server: %s", re.sub(r"\?[^\s'\"]*", "?…", text))  # protocol errors, query strings removed

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_TRACE = _serve  # noqa: N815


def run_local_host(
    app: func.FunctionApp,
    *,
    keys: Mapping[str, str] | None = None,
    host: str = "127.0.0.1",
    port: int = 7071,
    app_root: Path | None = None,
    retry_delay: float = 1.0,
    settings: Mapping[str, str] | None = None,
    stream: IO[str] | None = None,
    stop: threading.Event | None = None,
) -> int:
    """`abm serve`: serve until Ctrl+C (or `stop` is set); prints one line to stderr with the URL and the routes
    with their auth levels, never a key. Returns a process exit code."""
    out = stream if stream is not None else sys.stderr
    try:
        local = LocalHost(
            app, keys=keys, host=host, port=port, app_root=app_root, retry_delay=retry_delay, settings=settings
        )
    except OSError as exc:
        print(f"abm serve: cannot listen on {host}:{port} ({exc.strerror or exc})", file=out)
        return 1
    except HostConfigError as exc:
        print(f"abm serve: {exc}", file=out)
        return 1
    with local:
        print(f"abm serve: {local.describe()}", file=out, flush=True)
        with suppress(KeyboardInterrupt):
            (stop or threading.Event()).wait()
    return 0
