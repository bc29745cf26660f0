"""A minimal Dataverse stand-in on loopback (real HTTP) for the tests that go through the whole stack.

It answers WhoAmI and counts what it saw; the full emulator (issue 3) will replace it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

USER_ID = "a0000000-0000-0000-0000-000000000001"
BU_ID = "b0000000-0000-0000-0000-000000000002"
ORG_ID = "c0000000-0000-0000-0000-000000000003"


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self.server.seen.append({"path": self.path, "authorization": self.headers.get("Authorization")})
        if self.server.fail_with is not None:
            status, body = self.server.fail_with
        elif self.path.endswith("/api/data/v9.2/WhoAmI"):
            status, body = 200, {"UserId": USER_ID, "BusinessUnitId": BU_ID, "OrganizationId": ORG_ID}
        else:
            status, body = 404, {"error": {"code": "0x8006088a", "message": "Resource not found"}}
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("x-ms-service-request-id", "loopback-1")
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    seen: list[dict[str, Any]]
    fail_with: tuple[int, dict[str, Any]] | None


@contextmanager
def loopback_dataverse() -> Iterator[_Server]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.seen = []
    server.fail_with = None
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def url_of(server: _Server) -> str:
    host, port = server.server_address[:2]
    return f"http://{host}:{port}"
