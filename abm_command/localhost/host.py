"""`LocalHost`: a FunctionApp indexed, its HTTP triggers served with function keys, its queue triggers run in memory,
its timers run on demand; started and closed as one."""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import azure.functions as func
from azure.functions.timer import TimerRequest

from abm_command.localhost.indexing import (
    Function,
    HostConfigError,
    QueueMessages,
    index,
    invoke,
    read_host_json,
    section,
)
from abm_command.localhost.keys import authorize
from abm_command.localhost.queues import LocalQueues
from abm_command.localhost.routes import Route, RouteInfo, compile_routes, match
from abm_command.localhost.server import Server

__all__ = ["LocalHost"]

LOG = logging.getLogger("abm.localhost")


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
        host_json = read_host_json(self.app_root)
        prefix = section(host_json, "extensions", "http").get("routePrefix", "api")
        queues = section(host_json, "extensions", "queues")
        self.route_prefix = str(prefix).strip("/")
        self._keys = {name: key for name, key in (keys or {}).items() if key}
        self._functions = index(app, settings or {})
        self._routes = compile_routes(self._functions, self.route_prefix)
        self._queues = LocalQueues(
            self._queue_functions(),
            lambda function, message: self._run(function, message)[1],
            max_dequeue_count=int(queues.get("maxDequeueCount", 5)),
            retry_delay=retry_delay,
            base64_messages=str(queues.get("messageEncoding", "base64")).lower() != "none",
        )
        function_level = {r.function.name for r in self._routes if r.info.auth_level == "FUNCTION"}
        for name in sorted(set(self._keys) - function_level):
            LOG.warning("a key is configured for %s, which is not a function-level HTTP function", name)
        for name in sorted(function_level - set(self._keys)):
            LOG.warning("no key configured for %s: it answers 401 to every request", name)
        self._lock = threading.Lock()
        self._closed = False
        self._started = False
        self._threads: list[threading.Thread] = []
        self._server = Server((host, port), self)

    def _queue_functions(self) -> dict[str, Function]:
        """Queue name -> the function its messages trigger (the first one, when two listen on a queue)."""
        found: dict[str, Function] = {}
        for function in self._functions:
            if function.kind != "queue":
                continue
            if function.unsupported:
                LOG.warning("%s is not run locally: %s", function.name, "; ".join(function.unsupported))
                continue
            queue = function.trigger["queueName"]
            if queue in found:
                LOG.warning(
                    "%s and %s both listen on %s: only the first gets messages locally",
                    found[queue].name,
                    function.name,
                    queue,
                )
                continue
            found[queue] = function
        return found

    # -- what was indexed ------------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:7071 (routes are under `/<routePrefix>/`)."""
        host, port = self._server.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else host
        return f"http://{f'[{host}]' if ':' in host else host}:{port}"

    @property
    def max_dequeue_count(self) -> int:
        return self._queues.max_dequeue_count

    @property
    def routes(self) -> list[RouteInfo]:
        return [route.info for route in self._routes]

    @property
    def queue_triggers(self) -> dict[str, str]:
        """Queue name -> the function that processes its messages."""
        return {queue: function.name for queue, function in self._queues.functions.items()}

    @property
    def timers(self) -> list[str]:
        return [f.name for f in self._functions if f.kind == "timer"]

    def describe(self) -> str:
        """One line for the console: URL, routes with auth levels, queues, timers. Never a key."""
        parts = [f"listening on {self.url}", "routes: " + (", ".join(r.describe() for r in self.routes) or "none")]
        if self._queues.functions:
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

    # -- lifecycle -------------------------------------------------------------------------------------------------

    def start(self) -> Self:
        """Serve HTTP and run the queue worker on background threads."""
        if self._started:
            return self
        self._started = True
        serve = functools.partial(self._server.serve_forever, poll_interval=0.05)  # close() waits one poll at most
        for target, name in ((serve, "http"), (self._queues.work, "queue")):
            thread = threading.Thread(target=target, name=f"abm-localhost-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def close(self) -> None:
        """Stop serving and stop the queue worker; messages still queued are dropped (and counted in the log)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        dropped = self._queues.close()
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

    # -- queues and timers -----------------------------------------------------------------------------------------

    def enqueue(self, queue_name: str, message: str | bytes) -> None:
        """Put one message on a queue, as a queue output binding or the storage SDK would."""
        body = message.encode() if isinstance(message, str) else message
        self._queues.put(queue_name, [self._queues.checked(queue_name, body)])

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until every queue is empty (retries included) and no delivery is running; False on timeout."""
        return self._queues.drain(timeout)

    def undelivered(self, queue_name: str) -> list[bytes]:
        """Messages put on a queue that no function listens on (e.g. a poison queue without a handler)."""
        return self._queues.undelivered(queue_name)

    def run_timer(self, function_name: str, *, past_due: bool = False) -> None:
        """Run a timer function once now (what `POST /admin/functions/<name>` does in Azure) and enqueue its
        queue outputs; its exception propagates to the caller."""
        function = next((f for f in self._functions if f.name == function_name and f.kind == "timer"), None)
        if function is None:
            raise KeyError(f"no timer function named {function_name!r}")
        if function.unsupported:
            raise HostConfigError(f"{function_name} needs {'; '.join(function.unsupported)}")
        for queue, bodies in self._run(function, TimerRequest(past_due=past_due))[1]:
            self._queues.put(queue, bodies)

    # -- for the server --------------------------------------------------------------------------------------------

    def _run(self, function: Function, trigger: Any) -> tuple[Any, QueueMessages]:
        """Invoke a function: (its HTTP response or return value, the queue messages it put)."""
        return invoke(function, trigger, app_root=self.app_root, checked=self._queues.checked)

    def _match(self, path: str) -> list[tuple[Route, dict[str, str]]]:
        return match(self._routes, self.route_prefix, path)

    def _authorize(self, route: Route, presented: str | None) -> tuple[int, str] | None:
        return authorize(route, presented, self._keys)
