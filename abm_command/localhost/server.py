"""The HTTP server loop: a stdlib `ThreadingHTTPServer` whose handler reads each request as the Azure front end and
the Functions host would (body limits, `Expect: 100-continue`, chunked bodies, keep-alive), routes it, checks its
key, calls the function and answers; errors are JSON `{"error": ...}`, and the log never has a query string, a
header or a body.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Mapping
from contextlib import suppress
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from abm_command.localhost.adapter import function_request, query_params, wire_response
from abm_command.localhost.keys import KEY_HEADER
from abm_command.localhost.routes import Route

if TYPE_CHECKING:
    from abm_command.localhost.host import LocalHost

__all__ = ["MAX_REQUEST_BODY", "Server"]

LOG = logging.getLogger("abm.localhost")

MAX_REQUEST_BODY = 100 * 1024 * 1024  # the Azure front end refuses larger request bodies (413)
DISCARD_LIMIT = 1024 * 1024  # an unread request body up to this size is drained to keep the connection usable
STANDARD_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE")


class _BadRequest(Exception):
    """A request the server cannot parse (e.g. a malformed chunk): 400, then the connection is closed."""


class Server(ThreadingHTTPServer):
    """Serves `host`'s HTTP functions on `address`, one thread per connection."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], host: LocalHost) -> None:
        self.localhost = host
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        LOG.debug("connection error from %s", client_address[0], exc_info=True)  # e.g. the client went away


class _Handler(BaseHTTPRequestHandler):
    """One connection; `_serve` routes each request. Keep-alive (HTTP/1.1) as the Azure front end allows."""

    protocol_version = "HTTP/1.1"
    timeout = 120  # a silent client does not hold a thread forever
    server: Server

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
        params = query_params(query)
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

    def _call_function(self, route: Route, route_params: dict[str, str], params: dict[str, str], body: bytes) -> int:
        host = self.server.localhost
        authority = self.headers.get("Host") or host.url.removeprefix("http://")
        url = f"http://{authority}{self.path}" if self.path.startswith("/") else self.path  # the host passes it all
        request = function_request(
            self.command, url, self.headers.items(), params=params, route_params=route_params, body=body
        )
        try:
            answer, outputs = host._run(route.function, request)
            status, headers, content = wire_response(answer)
        except Exception:
            LOG.exception("%s failed", route.function.name)  # the traceback goes to the log, never to the client
            return self._error(500, "the function failed; see the host log")
        for queue, bodies in outputs:
            host._queues.put(queue, bodies)
        self._send(status, content, headers)
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
