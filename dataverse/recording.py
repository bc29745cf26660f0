"""A recording transport: what a dry run sends through. Reads reach Dataverse; writes are recorded, not sent.

`RecordingTransport(real)` implements the client's transport port (`dataverse.transport.TransportPort`). A GET goes
to `real` (counted, retried, checked like any other read), except a GET of one row by the id the dry run itself
created it with (a created email read back before SendEmail): that is answered as Dataverse answers for a new row,
its columns as created and `statecode` 0 (a new row's default state, Open or Active), without a request. Any other
request is recorded in `writes` as the operation it is, and answered as Dataverse answers a success, so the client
and everything above it carry on as if it had been written:

| request | recorded as | answer |
|---|---|---|
| `POST <set>` | `Create` with `id` and `row` | 204, `OData-EntityId` naming the (given or new) id |
| `PATCH <set>(<key>)` with `If-Match` | `Update` with `id` and `row` | 204 |
| `PATCH <set>(<key>)` without it | `Upsert` with `key` (an id, or the alternate key's values) and `row` | 204 |
| `DELETE <set>(<id>)` | `Delete` with `id` | 204 |
| `POST <set>/…CreateMultiple` | `CreateMultiple` with `rows` | 200, the `Ids` (given or new) |
| `POST <set>/…UpdateMultiple`, `…UpsertMultiple` | the message with `rows` (and the alternate `key`'s columns) | 204 |
| `POST $batch` | each request: its method, its URL and its `body` | a multipart success, 204 per request |
| `POST <set>(<id>)/…ExecuteWorkflow` | `ExecuteWorkflow` with `entity_id` | 204 (no system job id) |
| `POST <action>`, `POST <set>(<id>)/…<action>` | the action with `parameters` | 204 (the action returns nothing) |

Rows are recorded as the caller gave them (as JSON, without `@odata.type`; an alternate key's values back in the
row), one entry per request: a bulk write of more rows than a chunk is several entries. Writes are recorded one after
the other (the parallelism cap the client reads is 1), so their order is the run's.

>>> from dataverse.transport import Transport, TransportConfig
>>> from dataverse.auth import NoAuth
>>> recorder = RecordingTransport(Transport(TransportConfig(org_url="https://org.crm.dynamics.com"), NoAuth()))
>>> recorder.send("DELETE", "leads(00000000-0000-0000-0000-000000000001)").status_code
204
>>> recorder.writes
[{'operation': 'Delete', 'target': 'leads', 'id': '00000000-0000-0000-0000-000000000001'}]
"""

from __future__ import annotations

import json as jsonlib
import re
import threading
import uuid
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

import requests
from requests.structures import CaseInsensitiveDict

from dataverse.errors import DataverseError
from dataverse.multipart import boundary_of, multipart_parts, split_headers
from dataverse.tables import TABLES
from dataverse.transport import ConcurrencyLimiter, RequestStats, TransportConfig, TransportPort, json_default

__all__ = ["RecordingTransport"]

# `<set>`, `<set>(<key>)`, `<set>/Microsoft.Dynamics.CRM.<op>`, `<set>(<key>)/Microsoft.Dynamics.CRM.<op>`
_TARGET = re.compile(r"^(?P<name>[A-Za-z_]\w*)(?:\((?P<key>.*)\))?(?:/Microsoft\.Dynamics\.CRM\.(?P<op>\w+))?$")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_KEY_PART = re.compile(r"\s*(?P<name>\w+)\s*=\s*(?P<value>'(?:[^']|'')*'|[^,]*?)\s*(?:,|$)")
_LOOKUP = re.compile(r"^_(\w+)_value$")
_BULK = ("CreateMultiple", "UpdateMultiple", "UpsertMultiple")
_NO_CONTENT = ("HTTP/1.1 204 No Content", "", "")  # a batch part's answer: status line, no headers, no body


def _plain(value: Any) -> Any:
    """A JSON-ready copy of a request body (dates as ISO text, GUIDs as text), as it would go on the wire."""
    return jsonlib.loads(jsonlib.dumps(value, default=json_default))


def _literal(text: str) -> Any:
    """The value of an OData literal in a key: quoted text, null, true/false, a number, else the text (a GUID)."""
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1].replace("''", "'")
    if text in ("null", "true", "false"):
        return {"null": None, "true": True, "false": False}[text]
    for number in (int, float):
        try:
            return number(text)
        except ValueError:
            pass
    return text


def _key(segment: str) -> str | dict[str, Any]:
    """A row's key from the parentheses of its URL: an id, or an alternate key's values by column (a lookup's
    `_x_value` as `x`)."""
    segment = unquote(segment)
    if _GUID.match(segment):
        return segment.lower()
    values: dict[str, Any] = {}
    position = 0
    while position < len(segment):
        part = _KEY_PART.match(segment, position)
        if part is None or part.end() == position:
            return segment  # not a key this recorder can take apart: shown as sent
        lookup = _LOOKUP.match(part["name"])
        values[lookup.group(1) if lookup else part["name"]] = _literal(part["value"])
        position = part.end()
    return values


def _options(query: str) -> list[tuple[str, str]]:
    """A query string's options, decoded."""
    return [(unquote(k), unquote(v)) for k, _, v in (part.partition("=") for part in query.split("&") if part)]


def _answer(status: int, *, body: Any = None, headers: Mapping[str, str] | None = None) -> requests.Response:
    """A response as Dataverse sends it: `body` as JSON (bytes as they are), the given headers."""
    response = requests.Response()
    response.status_code = status
    response.headers = CaseInsensitiveDict(dict(headers or {}))
    if isinstance(body, bytes):
        response._content = body
    else:
        response._content = b"" if body is None else jsonlib.dumps(body).encode()
        if body is not None:
            response.headers["Content-Type"] = "application/json; odata.metadata=minimal"
    response.encoding = "utf-8"
    return response


class RecordingTransport:
    """Passes reads to `real`; records writes in `writes` and answers them as Dataverse answers a success."""

    def __init__(self, real: TransportPort) -> None:
        self.real = real
        self.writes: list[dict[str, Any]] = []
        self.limiter = ConcurrencyLimiter(1)  # the client then sends (records) its chunks one after the other
        self._lock = threading.Lock()
        self._api_path = urlsplit(real.config.api_url).path
        self._created: dict[tuple[str, str], dict[str, Any]] = {}  # (entity set, id) -> the row as created

    @property
    def config(self) -> TransportConfig:
        return self.real.config

    @property
    def stats(self) -> RequestStats:
        """What was sent to Dataverse: the reads (a recorded write is not sent)."""
        return self.real.stats

    def close(self) -> None:
        """Nothing to close: the real transport belongs to its own client."""

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
        method = method.upper()
        if method == "GET":
            own = self._created_row(path)
            if own is not None:
                return own
            return self.real.send(
                method,
                path,
                json=json,
                data=data,
                headers=headers,
                idempotent=idempotent,
                done_on_retry=done_on_retry,
                passthrough=passthrough,
            )
        if path.startswith(("https://", "http://")):
            path = urlsplit(path).path.removeprefix(self._api_path)
        sent = {name.lower(): value for name, value in (headers or {}).items()}
        if path == "$batch":
            return self._batch(sent.get("content-type", ""), data or b"")
        return self._write(method, path, _plain(json) if json is not None else {}, sent)

    def _created_row(self, path: str) -> requests.Response | None:
        """The answer to a GET of a row this dry run created, by its id (None for any other read)."""
        if path.startswith(("https://", "http://")):
            path = urlsplit(path).path.removeprefix(self._api_path)
        resource, _, query = path.partition("?")
        found = _TARGET.match(resource)
        if found is None or found["key"] is None or found["op"] is not None:
            return None
        key = _key(found["key"])
        row = self._created.get((found["name"], key)) if isinstance(key, str) else None
        if row is None:
            return None
        selected = next((v for k, v in _options(query) if k == "$select"), None)
        full = {"statecode": 0, **row, TABLES[found["name"]].primary_key: key}
        wanted = full if selected is None else {c: full.get(c) for c in selected.split(",")}
        return _answer(200, body=wanted)

    def _remember(self, entity_set: str, id: str, row: Mapping[str, Any]) -> None:
        with self._lock:
            self._created[(entity_set, id.lower())] = dict(row)

    def _record(self, operation: str, target: str, **details: Any) -> None:
        with self._lock:
            self.writes.append({"operation": operation, "target": target, **details})

    def _write(self, method: str, path: str, body: Any, headers: Mapping[str, str]) -> requests.Response:
        found = _TARGET.match(path)
        if found is None:
            self._record(method, path, body=body)
            return _answer(204)
        name, key, operation = found["name"], found["key"], found["op"]
        if operation in _BULK and key is None:
            return self._bulk(operation, name, body.get("Targets", []))
        if operation is not None:
            target = name if key is None else f"{name}({_key(key)})"
            if operation == "ExecuteWorkflow":
                self._record(operation, target, entity_id=body.get("EntityId"))
            else:
                self._record(operation, target, parameters=body)
            return _answer(204)
        if method == "POST" and key is None:
            if name not in TABLES:  # an unbound action
                self._record(name, "", parameters=body)
                return _answer(204)
            return self._create(name, body)
        if method == "PATCH" and key is not None:
            if "if-match" in headers:
                self._record("Update", name, id=_key(key), row=body)
            else:
                self._record("Upsert", name, key=_key(key), row=body)
            return _answer(204)
        if method == "DELETE" and key is not None:
            self._record("Delete", name, id=_key(key))
            return _answer(204)
        self._record(method, path, body=body)
        return _answer(204)

    def _create(self, entity_set: str, row: dict[str, Any]) -> requests.Response:
        primary_key = TABLES[entity_set].primary_key
        id = str(row.pop(primary_key, None) or uuid.uuid4())
        self._record("Create", entity_set, id=id, row=row)
        self._remember(entity_set, id, row)
        return _answer(204, headers={"OData-EntityId": f"{self.config.api_url}{entity_set}({id})"})

    def _bulk(self, message: str, entity_set: str, targets: list[dict[str, Any]]) -> requests.Response:
        rows: list[dict[str, Any]] = []
        key_columns: list[str] = []
        for target in targets:
            row = {name: value for name, value in target.items() if name not in ("@odata.type", "@odata.id")}
            if "@odata.id" in target:  # an UpsertMultiple target found by an alternate key: its values back in the row
                key = _key(str(target["@odata.id"]).partition("(")[2].rpartition(")")[0])
                if isinstance(key, dict):
                    row |= key
                    key_columns = list(key)
            rows.append(row)
        if message == "UpsertMultiple":
            self._record(message, entity_set, rows=rows, key=key_columns)
            return _answer(204)
        self._record(message, entity_set, rows=rows)
        if message == "CreateMultiple":
            table = TABLES.get(entity_set)
            primary_key = table.primary_key if table else ""
            ids = [str(row.get(primary_key) or uuid.uuid4()) for row in rows]
            for id, row in zip(ids, rows, strict=True):
                self._remember(entity_set, id, {k: v for k, v in row.items() if k != primary_key})
            return _answer(200, body={"Ids": ids})
        return _answer(204)

    # ---- $batch ----------------------------------------------------------------------------------------------------

    def _batch(self, content_type: str, body: bytes) -> requests.Response:
        """Record each request of a `$batch` in order; answer each with 204, change sets as change sets."""
        token = uuid.uuid4().hex
        lines: list[str] = []
        for headers, part in multipart_parts(body.decode("utf-8"), boundary_of(content_type)):
            lines.append(f"--batchresponse_{token}")
            part_type = headers.get("content-type", "")
            if part_type.lower().startswith("multipart/"):
                inner = f"changesetresponse_{token}_{len(lines)}"
                lines += [f"Content-Type: multipart/mixed; boundary={inner}", ""]
                for inner_headers, request in multipart_parts("\n".join(part), boundary_of(part_type)):
                    lines += [f"--{inner}", *self._batch_part(inner_headers, request)]
                lines += [f"--{inner}--", ""]
            else:
                lines += self._batch_part(headers, part)
        lines.append(f"--batchresponse_{token}--")
        answer = ("\r\n".join(lines) + "\r\n").encode()
        return _answer(200, body=answer, headers={"Content-Type": f"multipart/mixed; boundary=batchresponse_{token}"})

    def _batch_part(self, mime_headers: Mapping[str, str], lines: list[str]) -> list[str]:
        """Record one `application/http` request part; returns the lines of its 204 answer."""
        while lines and not lines[0].strip():
            lines = lines[1:]
        method, _, rest = (lines[0] if lines else "").partition(" ")
        url = rest.rpartition(" HTTP/")[0] or rest
        _, body_lines = split_headers(lines[1:])
        text = "\n".join(body_lines).strip()
        self._record(method.upper(), url.removeprefix(self._api_path), body=jsonlib.loads(text) if text else {})
        content_id = [f"Content-ID: {mime_headers['content-id']}"] if "content-id" in mime_headers else []
        return ["Content-Type: application/http", "Content-Transfer-Encoding: binary", *content_id, "", *_NO_CONTENT]
