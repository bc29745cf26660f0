"""The emulator's HTTP server: the subset of the Dataverse Web API this service uses, over real sockets.

Routes under `/api/data/v9.2/`: entity sets (GET with query options and paging, POST create, GET `<set>/$count`),
rows by id or alternate key (GET, conditional with `If-None-Match`; PATCH update/upsert with `If-Match`/`If-None-Match`;
DELETE), below a row its single-valued navigation properties and properties (GET), the bulk messages
(`<set>/Microsoft.Dynamics.CRM.CreateMultiple|UpdateMultiple|UpsertMultiple`), change tracking
(`Prefer: odata.track-changes`, `$deltatoken`), `WhoAmI`, `workflows(<id>)/Microsoft.Dynamics.CRM.ExecuteWorkflow`, and
the table definitions of `metadata.py` (`EntityDefinitions`, `RelationshipDefinitions`), which also decide which
tables, columns and alternate keys exist.
Every answer carries `x-ms-dop-hint` and the two `x-ms-ratelimit-…-xrm-requests` headers. Injected faults, latency
and the service protection limits are applied around the data (see `limits.py`): the concurrency limit refuses at
once; the request-count and execution-time limits, as Dataverse evaluates them, after the fact.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from devtools.emulator.actions import Actions
from devtools.emulator.batch import run_batch
from devtools.emulator.collection import Reads
from devtools.emulator.errors import EmulatorError, bad_request
from devtools.emulator.keys import ROW, parse_key
from devtools.emulator.limits import Guard, GuardConfig
from devtools.emulator.metadata import Metadata
from devtools.emulator.queries import Reader, ReadOptions
from devtools.emulator.schema import TableDef, by_entity_set
from devtools.emulator.store import Store
from devtools.emulator.wire import Answer, parse_prefer
from devtools.emulator.writes import Writes

__all__ = ["Emulator", "EmulatorIdentity"]

API = "/api/data/v9.2/"


@dataclass(frozen=True)
class EmulatorIdentity:
    """Who WhoAmI says the caller is: a row of systemusers, its business unit and the organization."""

    user_id: str
    business_unit_id: str = "5f1a7c2e-0000-4000-8000-0000000000b1"
    organization_id: str = "5f1a7c2e-0000-4000-8000-0000000000c1"


class Emulator:
    """A running emulator: `with Emulator(store) as emu: emu.url` (the API root), stopped on exit."""

    def __init__(
        self,
        store: Store,
        identity: EmulatorIdentity,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        guard: GuardConfig | None = None,
        metadata: Metadata | None = None,
    ) -> None:
        self.store = store
        self.identity = identity
        self.metadata = metadata or Metadata()
        self.reader = Reader(store)
        self.guard = Guard(guard or GuardConfig())
        handler = type("Handler", (_Handler,), {"emulator": self})
        self.server = ThreadingHTTPServer((host, port), handler)
        self.server.daemon_threads = True
        self.reads = Reads(store, self.reader, self.org_url, self.url)
        self.writes = Writes(store, self.reads, self.metadata, identity.user_id, self.url)
        self.actions = Actions(store, identity.user_id, self.url)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The API root, `http://127.0.0.1:<port>/api/data/v9.2/`."""
        return f"{self.org_url}{API}"

    @property
    def org_url(self) -> str:
        """What `DATAVERSE_URL` is set to for a client of this emulator."""
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Emulator:
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, name="dataverse-emulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- dispatch --------------------------------------------------------------------------------------------------

    def handle(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Answer:
        """One request, already past the guard: route it and produce the answer (errors as Dataverse JSON)."""
        headers = {name.lower(): value for name, value in headers.items()}
        split = urlsplit(target)
        path = unquote(split.path)
        if not path.startswith(API):
            raise EmulatorError(404, "0x8006088a", f"Resource not found for the segment '{path}'.")
        resource = path[len(API) :]
        params = dict(parse_qsl(split.query, keep_blank_values=True))
        prefer = parse_prefer(headers.get("prefer"))
        data = self._json(body) if body and resource != "$batch" else None
        if resource == "$batch" and method == "POST":
            outcome = run_batch(
                self._single,
                self.store.transaction,
                headers.get("content-type", ""),
                body,
                continue_on_error="odata.continue-on-error" in prefer,
            )
            return Answer(outcome.status, headers={"Content-Type": outcome.content_type}, raw=outcome.body)
        if resource == "WhoAmI":
            if method != "GET":
                raise EmulatorError(404, "", "No HTTP resource was found that matches the request URI.")
            return Answer(200, self._who_am_i())
        if self.metadata.handles(resource):
            status, answer, extra = self.metadata.handle(method, resource, params, data, self.url)
            return Answer(status, answer, extra)
        head, _, segment = resource.partition("/")
        if segment.startswith("Microsoft.Dynamics.CRM."):
            return self._action(method, head, segment.removeprefix("Microsoft.Dynamics.CRM."), data)
        row = ROW.match(head)
        table = by_entity_set(row.group(1) if row else head)
        if table is None:
            name = row.group(1) if row else head
            raise EmulatorError(404, "0x8006088a", f"Resource not found for the segment '{name}'.")
        below_row = bool(segment) and row is not None  # `$select` there names the related table's columns
        self._check_definitions(table, data, {} if below_row else params)
        if method == "GET" and row is None and segment == "$count":
            return self.reads.count(table, params)
        if method == "GET" and row is not None and segment and "/" not in segment:
            return self.reads.below(table, self.writes.parse_key(table, row.group(2)), segment, params, prefer)
        if segment and row is not None and method != "GET":
            raise bad_request(
                f"{method} below a row ('{segment}': a single property, a related collection or a $ref) "
                "is not supported by the emulator.",
                code="0x80060888",
            )
        if segment:
            raise EmulatorError(404, "0x8006088a", f"Resource not found for the segment '{segment}'.")
        if row is None:
            if method == "GET":
                return self.reads.collection(table, target, params, prefer)
            if method == "POST":
                return self.writes.create(table, data, params, prefer)
            raise EmulatorError(405, "0x80060888", f"{method} is not supported on a collection.")
        key = self.writes.parse_key(table, row.group(2))
        if method == "GET":
            return self.reads.get(table, key, params, prefer, headers.get("if-none-match"))
        if method == "PATCH":
            return self.writes.patch(table, key, data, headers, params=params, prefer=prefer)
        if method == "DELETE":
            return self.writes.delete(table, key, headers)
        raise EmulatorError(405, "0x80060888", f"{method} is not supported on a row.")

    def _check_definitions(self, table: TableDef, data: Any, params: Mapping[str, str]) -> None:
        """What the table definitions forbid: a table or column that does not exist (yet), and a `$select` or
        `$expand` naming what the table does not have, refused before anything is read or written."""
        self.metadata.check_table(table)
        names = list(data) if isinstance(data, dict) else []
        options = ReadOptions.parse(params)
        self.metadata.check_columns(table, [*names, *options.select])
        self.reader.validate(table, options.select, options.expand)

    def _single(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        """One request of a `$batch`, answered as (status, JSON body or text, headers) instead of raising."""
        if not url.startswith(("/", "http://", "https://")):
            url = API + url
        try:
            answer = self.handle(method, url, headers, body)
        except EmulatorError as exc:
            return exc.status, exc.body(), exc.headers
        if answer.raw is not None:  # a text answer (`$count`): its own content type travels in its headers
            return answer.status, answer.raw.decode("utf-8"), answer.headers
        return answer.status, answer.body, answer.headers

    @staticmethod
    def _json(body: bytes) -> Any:
        try:
            return json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise bad_request("The request body is not valid JSON.") from None

    def _who_am_i(self) -> dict[str, Any]:
        return {
            "@odata.context": f"{self.url}$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse",
            "BusinessUnitId": self.identity.business_unit_id,
            "UserId": self.identity.user_id,
            "OrganizationId": self.identity.organization_id,
        }

    # ---- reads -----------------------------------------------------------------------------------------------------

    # ---- actions ---------------------------------------------------------------------------------------------------

    def _action(self, method: str, head: str, name: str, data: Any) -> Answer:
        if method != "POST":
            raise EmulatorError(404, "", "No HTTP resource was found that matches the request URI.")
        row = ROW.match(head)
        table = by_entity_set(row.group(1) if row else head)
        if table is None:
            raise EmulatorError(404, "0x8006088a", f"Resource not found for the segment '{head}'.")
        self.metadata.check_table(table)
        if name == "ExecuteWorkflow" and row is not None and table.logical_name == "workflow":
            return self.actions.execute_workflow(str(parse_key(table, row.group(2))), data)
        if name == "SendEmail" and row is not None and table.logical_name == "email":
            return self.actions.send_email(table, str(parse_key(table, row.group(2))))
        if row is None and name in ("CreateMultiple", "UpdateMultiple", "UpsertMultiple") and table.bulk_messages:
            return self.writes.bulk(table, name, data)
        raise EmulatorError(404, "0x8006088a", f"Resource not found for the segment 'Microsoft.Dynamics.CRM.{name}'.")


class _Handler(BaseHTTPRequestHandler):
    """Reads a request, runs it past the guard, lets the emulator answer, writes the answer (keep-alive)."""

    emulator: Emulator
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body leave in separate writes: no 40 ms delayed-ACK stall each
    server_version = "DataverseEmulator/0.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        guard = self.emulator.guard
        with guard.admit(f"{method} {self.path}") as verdict:
            if verdict.fault == "reset":
                self._reset()
                return
            if verdict.error is not None:
                self._write(Answer(verdict.error.status, verdict.error.body(), verdict.error.headers))
                return
            answer = self._answer(method, body)
            guard.charge(body, answer)
            if verdict.fault == "lost":
                self._reset()
                return
            self._write(answer)

    def _answer(self, method: str, body: bytes) -> Answer:
        """The emulator's answer to an admitted request, errors included."""
        try:
            return self.emulator.handle(method, self.path, dict(self.headers.items()), body)
        except EmulatorError as exc:
            return Answer(exc.status, exc.body(), exc.headers)

    def _write(self, answer: Answer) -> None:
        if answer.raw is not None:
            payload = answer.raw
        else:
            payload = b"" if answer.body is None else json.dumps(answer.body, ensure_ascii=False).encode("utf-8")
        self.send_response(answer.status)
        self.send_header("OData-Version", "4.0")
        self.send_header("x-ms-dop-hint", str(self.emulator.guard.config.dop_hint))
        self.send_header("x-ms-service-request-id", str(uuid.uuid4()))
        for name, value in self.emulator.guard.remaining().items():
            self.send_header(name, value)
        if payload and answer.raw is None:
            self.send_header("Content-Type", "application/json; odata.metadata=minimal; charset=utf-8")
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _reset(self) -> None:
        """Drop the connection with a TCP reset: the client gets no answer at all."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass
