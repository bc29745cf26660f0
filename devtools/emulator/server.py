"""The emulator's HTTP server: the subset of the Dataverse Web API this service uses, over real sockets.

Routes under `/api/data/v9.2/`: entity sets (GET with query options and paging, POST create), rows by id or
alternate key (GET, PATCH update/upsert with `If-Match`/`If-None-Match`, DELETE), the bulk messages
(`<set>/Microsoft.Dynamics.CRM.CreateMultiple|UpdateMultiple|UpsertMultiple`), change tracking
(`Prefer: odata.track-changes`, `$deltatoken`), `WhoAmI`, `workflows(<id>)/Microsoft.Dynamics.CRM.ExecuteWorkflow`, and
the table definitions of `metadata.py` (`EntityDefinitions`, `RelationshipDefinitions`), which also decide which
tables, columns and alternate keys exist.
Every answer carries `x-ms-dop-hint`; service protection limits, injected faults and latency are applied before a
request touches the data (see `limits.py`).
"""

from __future__ import annotations

import json
import re
import socket
import struct
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from devtools.emulator.batch import run_batch
from devtools.emulator.errors import EmulatorError, bad_request, duplicate, not_found
from devtools.emulator.limits import Guard, GuardConfig
from devtools.emulator.metadata import Metadata
from devtools.emulator.queries import MAX_PAGE_SIZE, Reader, ReadOptions, page_size
from devtools.emulator.rows import FORMATTED, LOOKUP_NAME, from_json
from devtools.emulator.schema import TableDef, by_entity_set, by_logical_name
from devtools.emulator.store import Store

__all__ = ["Emulator", "EmulatorIdentity"]

API = "/api/data/v9.2/"
_ROW = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\((.*)\)$")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_COOKIE = re.compile(r'<cookie pagenumber="(\d+)" offset="(\d+)" version="(\d+)" />')


@dataclass(frozen=True)
class EmulatorIdentity:
    """Who WhoAmI says the caller is: a row of systemusers, its business unit and the organization."""

    user_id: str
    business_unit_id: str = "5f1a7c2e-0000-4000-8000-0000000000b1"
    organization_id: str = "5f1a7c2e-0000-4000-8000-0000000000c1"


@dataclass(frozen=True)
class Answer:
    """An HTTP answer: a JSON body (or None), or `raw` bytes with their content type (a `$batch` response)."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None


def stale_version() -> EmulatorError:
    """412 for an `If-Match` ETag that no longer matches (ConcurrencyVersionMismatch)."""
    return EmulatorError(
        412, "0x80060882", "The version of the existing record doesn't match the RowVersion property provided."
    )


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_prefer(header: str | None) -> dict[str, str]:
    """`Prefer: odata.maxpagesize=50,odata.include-annotations="*"` → {name: value}."""
    prefs: dict[str, str] = {}
    for part in re.split(r",(?=(?:[^\"]*\"[^\"]*\")*[^\"]*$)", header or ""):
        name, _, value = part.strip().partition("=")
        if name:
            prefs[name.strip()] = value.strip().strip('"')
    return prefs


def _key_literal(text: str) -> Any:
    text = text.strip()
    if text.startswith("'") and text.endswith("'") and len(text) >= 2:
        return text[1:-1].replace("''", "'")
    if _GUID.match(text):
        return str(uuid.UUID(text))
    try:
        return int(text)
    except ValueError:
        raise bad_request(f"The key value '{text}' is not a valid literal.") from None


def parse_key(table: TableDef, inner: str) -> str | dict[str, Any]:
    """`(<guid>)` → the id; `(a='x',b=2)` → an alternate key's values (which must be a declared key)."""
    inner = unquote(inner)
    if _GUID.match(inner.strip()):
        return str(uuid.UUID(inner.strip()))
    parts, current, quoted = [], "", False
    for char in inner:
        if char == "'":
            quoted = not quoted
        if char == "," and not quoted:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    key: dict[str, Any] = {}
    for part in parts:
        name, sep, value = part.partition("=")
        if not sep:
            raise bad_request(f"'{inner}' is not a valid key for {table.entity_set}.")
        key[name.strip()] = _key_literal(value)
    if tuple(sorted(key)) not in {tuple(sorted(k)) for k in table.alternate_keys}:
        raise bad_request(f"No alternate key of {table.logical_name} is made of {', '.join(key)}.", code="0x80060891")
    return key


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
        head, _, action = resource.partition("/")
        if action.startswith("Microsoft.Dynamics.CRM."):
            return self._action(method, head, action.removeprefix("Microsoft.Dynamics.CRM."), data)
        if action:
            raise EmulatorError(404, "0x8006088a", f"Resource not found for the segment '{action}'.")
        row = _ROW.match(head)
        table = by_entity_set(row.group(1) if row else head)
        if table is None:
            name = row.group(1) if row else head
            raise EmulatorError(404, "0x8006088a", f"Resource not found for the segment '{name}'.")
        self._check_definitions(table, data, params)
        if row is None:
            if method == "GET":
                return self._collection(table, target, params, prefer)
            if method == "POST":
                return self._create(table, data, params, prefer)
            raise EmulatorError(405, "0x80060888", f"{method} is not supported on a collection.")
        key = self._parse_key(table, row.group(2))
        if method == "GET":
            return self._get(table, key, params, prefer)
        if method == "PATCH":
            return self._patch(table, key, data, headers, params=params, prefer=prefer)
        if method == "DELETE":
            return self._delete(table, key, headers)
        raise EmulatorError(405, "0x80060888", f"{method} is not supported on a row.")

    def _check_definitions(self, table: TableDef, data: Any, params: Mapping[str, str]) -> None:
        """What the table definitions forbid: a table or column that does not exist (yet)."""
        self.metadata.check_table(table)
        names = list(data) if isinstance(data, dict) else []
        if params.get("$select"):
            names += [n.strip() for n in params["$select"].split(",")]
        self.metadata.check_columns(table, names)

    def _parse_key(self, table: TableDef, inner: str) -> str | dict[str, Any]:
        """`parse_key`, and an alternate key must be Active in the table's definition."""
        key = parse_key(table, inner)
        if isinstance(key, dict):
            self.metadata.check_key(table, key)
        return key

    def _single(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        """One request of a `$batch`, answered as (status, JSON body, headers) instead of raising."""
        if not url.startswith(("/", "http://", "https://")):
            url = API + url
        try:
            answer = self.handle(method, url, headers, body)
        except EmulatorError as exc:
            return exc.status, exc.body(), exc.headers
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

    def _annotations(self, prefer: Mapping[str, str]) -> frozenset[str]:
        asked = prefer.get("odata.include-annotations", "")
        if asked == "*":
            return frozenset({FORMATTED, LOOKUP_NAME})
        return frozenset(a.strip() for a in asked.split(",") if a.strip())

    def _collection(self, table: TableDef, target: str, params: dict[str, str], prefer: Mapping[str, str]) -> Answer:
        tracking = "odata.track-changes" in prefer or "$deltatoken" in params
        options = ReadOptions.parse(params)
        if tracking and (options.filter or options.orderby or options.expand or options.top):
            option = next(o for o in ("$filter", "$orderby", "$expand", "$top") if o in params)
            raise bad_request(f'The "{option}" query parameter isn\'t supported when Change Tracking is enabled.')
        if "$deltatoken" in params:
            return self._delta(table, target, params, options, prefer)
        size = page_size(prefer)
        page_number, offset, version = 1, 0, self.store.current_version()
        if "$skiptoken" in params:
            cookie = _COOKIE.match(params["$skiptoken"])
            if cookie is None:
                raise bad_request("The $skiptoken is not valid.")
            page_number, offset, version = (int(g) for g in cookie.groups())
        limit = size or (options.top if options.top else MAX_PAGE_SIZE)
        if options.top and size is None:
            limit = min(options.top, MAX_PAGE_SIZE)
        rows, more = self.reader.page(table, options, offset=offset, limit=limit)
        if options.top and size is None:
            more = False
        annotations = self._annotations(prefer)
        body: dict[str, Any] = {"@odata.context": f"{self.url}$metadata#{table.entity_set}"}
        if options.count:
            total = self.reader.count(table, options)
            body["@odata.count"] = min(total, MAX_PAGE_SIZE)
            if total > MAX_PAGE_SIZE:
                body["@Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded"] = True
        body["value"] = [self.reader.render(table, r, options.select, options.expand, annotations) for r in rows]
        applied = []
        if size is not None:
            applied.append(f"odata.maxpagesize={size}")
        if annotations:
            applied.append(f'odata.include-annotations="{prefer["odata.include-annotations"]}"')
        if more:
            cookie_text = f'<cookie pagenumber="{page_number + 1}" offset="{offset + limit}" version="{version}" />'
            body["@odata.nextLink"] = self._link(target, {"$skiptoken": cookie_text})
        elif tracking:
            applied.append("odata.track-changes")
            body["@odata.deltaLink"] = self._link(target, {"$deltatoken": str(version)}, drop=("$skiptoken",))
        elif "odata.track-changes" in prefer:
            applied.append("odata.track-changes")
        headers = {"Preference-Applied": ",".join(applied)} if applied else {}
        return Answer(200, body, headers)

    def _link(self, target: str, add: Mapping[str, str], drop: tuple[str, ...] = ()) -> str:
        """The request's own URL with query options replaced: how Dataverse builds next and delta links."""
        split = urlsplit(target)
        kept = [
            (k, v)
            for k, v in parse_qsl(split.query, keep_blank_values=True)
            if k not in add and k not in drop and k not in ("$skiptoken", "$deltatoken")
        ]
        query = "&".join(f"{k}={quote(v, safe='')}" for k, v in [*kept, *add.items()])
        return f"{self.org_url}{split.path}?{query}"

    def _delta(
        self, table: TableDef, target: str, params: Mapping[str, str], options: ReadOptions, prefer: Mapping[str, str]
    ) -> Answer:
        token = params["$deltatoken"]
        if not token.isdigit() or int(token) > self.store.current_version():
            raise bad_request("Version stamp associated with the client has expired.", code="0x80044352")
        since = int(token)
        version = self.store.current_version()
        rows = self.store.select(
            f'SELECT * FROM "{table.logical_name}" AS "t0" WHERE versionnumber > ? AND versionnumber <= ? '
            "ORDER BY versionnumber",
            [since, version],
        )
        annotations = self._annotations(prefer)
        value: list[dict[str, Any]] = [self.reader.render(table, r, options.select, (), annotations) for r in rows]
        for id in self.store.deletions_since(table, since):
            value.append(
                {
                    "@odata.context": f"{self.url}$metadata#{table.entity_set}/$deletedEntity",
                    "id": id,
                    "reason": "deleted",
                }
            )
        body = {
            "@odata.context": f"{self.url}$metadata#{table.entity_set}/$delta",
            "value": value,
            "@odata.deltaLink": self._link(target, {"$deltatoken": str(version)}),
        }
        return Answer(200, body, {"Preference-Applied": "odata.track-changes"})

    def _get(
        self, table: TableDef, key: str | dict[str, Any], params: dict[str, str], prefer: Mapping[str, str]
    ) -> Answer:
        row = self._find(table, key)
        if row is None:
            raise self._missing(table, key)
        options = ReadOptions.parse(params)
        body = self.reader.render(table, row, options.select, options.expand, self._annotations(prefer))
        return Answer(200, body, {"ETag": body["@odata.etag"]})

    # ---- writes ----------------------------------------------------------------------------------------------------

    def _find(self, table: TableDef, key: str | dict[str, Any]) -> dict[str, Any] | None:
        if isinstance(key, str):
            return self.store.get(table, key)
        return self.store.find(table, key)

    def _missing(self, table: TableDef, key: str | dict[str, Any]) -> EmulatorError:
        if isinstance(key, str):
            return not_found(table.logical_name, key)
        return EmulatorError(
            404, "0x80060891", f"A record with the specified key values does not exist in {table.logical_name} entity"
        )

    @staticmethod
    def _key_columns(table: TableDef, key: Mapping[str, Any]) -> dict[str, Any]:
        """Stored values of an alternate key: a lookup column gets its target type too."""
        values = dict(key)
        for name in key:
            lookup = table.lookup(name)
            if lookup is not None:
                values[f"{name}__type"] = lookup.targets[0]
        return values

    def _exists(self, table: TableDef, id: str) -> bool:
        return self.store.get(table, id) is not None

    def _new_row(self, table: TableDef, data: Any, id: str | None = None) -> dict[str, Any]:
        values = from_json(table, data, self._exists)
        supplied = values.pop(table.primary_key, None)
        stamp = now_iso()
        row = {"createdon": stamp, "modifiedon": stamp, **values}
        row[table.primary_key] = id or supplied or str(uuid.uuid4())
        if table.stateful:
            row.setdefault("statecode", 0)
            row.setdefault("statuscode", 1)
        user = self.identity.user_id
        row.setdefault("createdby", user)
        row.setdefault("createdby__type", "systemuser")
        if table.lookup("ownerid") is not None and row.get("ownerid") is None:
            row["ownerid"], row["ownerid__type"] = user, "systemuser"
        return row

    def _insert(self, table: TableDef, row: dict[str, Any]) -> None:
        if self.store.get(table, row[table.primary_key]) is not None:
            raise duplicate()
        try:
            self.store.insert(table, row)
        except Exception as exc:  # sqlite3.IntegrityError on an alternate key
            if "UNIQUE" in str(exc):
                raise duplicate("A record with matching key values already exists.") from None
            raise

    def _created(
        self, table: TableDef, id: str, params: Mapping[str, str], prefer: Mapping[str, str], status: int = 201
    ) -> Answer:
        entity_id = f"{self.url}{table.entity_set}({id})"
        if prefer.get("return") == "representation":
            row = self.store.get(table, id) or {}
            select = ReadOptions.parse(params).select
            body = self.reader.render(table, row, select, (), self._annotations(prefer))
            return Answer(status, body, {"Preference-Applied": "return=representation"})
        return Answer(204, None, {"OData-EntityId": entity_id})

    def _create(self, table: TableDef, data: Any, params: Mapping[str, str], prefer: Mapping[str, str]) -> Answer:
        with self.store.transaction():
            row = self._new_row(table, data)
            self._insert(table, row)
        return self._created(table, row[table.primary_key], params, prefer)

    def _patch(
        self,
        table: TableDef,
        key: str | dict[str, Any],
        data: Any,
        headers: Mapping[str, str],
        *,
        params: Mapping[str, str],
        prefer: Mapping[str, str],
    ) -> Answer:
        if_match = headers.get("if-match")
        if_none_match = headers.get("if-none-match")
        if if_none_match == "null":
            if_none_match = None
        with self.store.transaction():
            existing = self._find(table, key)
            if existing is None:
                if if_match is not None:
                    raise self._missing(table, key)
                row = self._new_row(table, data, key if isinstance(key, str) else None)
                if isinstance(key, dict):
                    row.update(self._key_columns(table, key))
                self._insert(table, row)
                return self._created(table, row[table.primary_key], params, prefer)
            if if_none_match == "*":
                raise EmulatorError(412, "0x80040237", "A record with matching key values already exists.")
            if if_match not in (None, "*") and if_match != f'W/"{existing["versionnumber"]}"':
                raise stale_version()
            values = from_json(table, data, self._exists)
            values.pop(table.primary_key, None)
            values["modifiedon"] = now_iso()
            self.store.update(table, existing[table.primary_key], values)
        id = existing[table.primary_key]
        if prefer.get("return") == "representation":
            return self._created(table, id, params, prefer, status=200)
        return Answer(204, None, {"OData-EntityId": f"{self.url}{table.entity_set}({id})"})

    def _delete(self, table: TableDef, key: str | dict[str, Any], headers: Mapping[str, str]) -> Answer:
        with self.store.transaction():
            existing = self._find(table, key)
            if existing is None:
                raise self._missing(table, key)
            if_match = headers.get("if-match")
            if if_match not in (None, "*") and if_match != f'W/"{existing["versionnumber"]}"':
                raise stale_version()
            self.store.delete(table, existing[table.primary_key])
        return Answer(204)

    # ---- actions ---------------------------------------------------------------------------------------------------

    def _action(self, method: str, head: str, name: str, data: Any) -> Answer:
        if method != "POST":
            raise EmulatorError(404, "", "No HTTP resource was found that matches the request URI.")
        row = _ROW.match(head)
        table = by_entity_set(row.group(1) if row else head)
        if table is None:
            raise EmulatorError(404, "0x8006088a", f"Resource not found for the segment '{head}'.")
        self.metadata.check_table(table)
        if name == "ExecuteWorkflow" and row is not None and table.logical_name == "workflow":
            return self._execute_workflow(str(parse_key(table, row.group(2))), data)
        if name == "SendEmail" and row is not None and table.logical_name == "email":
            return self._send_email(table, str(parse_key(table, row.group(2))))
        if row is None and name in ("CreateMultiple", "UpdateMultiple", "UpsertMultiple") and table.bulk_messages:
            return self._bulk(table, name, data)
        raise EmulatorError(404, "0x8006088a", f"Resource not found for the segment 'Microsoft.Dynamics.CRM.{name}'.")

    def _targets(self, table: TableDef, data: Any) -> list[dict[str, Any]]:
        targets = data.get("Targets") if isinstance(data, dict) else None
        if not isinstance(targets, list) or not all(isinstance(t, dict) for t in targets):
            raise bad_request("The request must have a 'Targets' array of entity objects.")
        expected = f"Microsoft.Dynamics.CRM.{table.logical_name}"
        for index, target in enumerate(targets):
            if target.get("@odata.type") != expected:
                raise bad_request(f"Targets[{index}] must have '@odata.type': '{expected}'.")
        return targets

    def _bulk(self, table: TableDef, message: str, data: Any) -> Answer:
        targets = self._targets(table, data)
        ids: list[str] = []
        with self.store.transaction():
            for target in targets:
                if message == "CreateMultiple":
                    self.metadata.check_columns(table, target)
                    row = self._new_row(table, target)
                    self._insert(table, row)
                    ids.append(row[table.primary_key])
                    continue
                key: str | dict[str, Any] | None = None
                if target.get(table.primary_key):
                    key = str(target[table.primary_key]).lower()
                elif isinstance(target.get("@odata.id"), str):
                    match = _ROW.match(target["@odata.id"].rsplit("/", 1)[-1])
                    if match is None or by_entity_set(match.group(1)) is not table:
                        raise bad_request(f"'@odata.id' {target['@odata.id']} does not address a {table.logical_name}.")
                    key = self._parse_key(table, match.group(2))
                if key is None:
                    raise bad_request(f"Each target of {message} must identify its row.")
                body = {k: v for k, v in target.items() if k != "@odata.id"}
                self.metadata.check_columns(table, body)
                headers = {"if-match": "*"} if message == "UpdateMultiple" else {}
                self._patch(table, key, body, headers, params={}, prefer={})
        if message == "CreateMultiple":
            context = f"{self.url}$metadata#Microsoft.Dynamics.CRM.CreateMultipleResponse"
            return Answer(200, {"@odata.context": context, "Ids": ids})
        return Answer(204)

    def _send_email(self, table: TableDef, email_id: str) -> Answer:
        """SendEmail: the email becomes Sent (state Completed); only an open (draft) email can be sent."""
        email = self.store.get(table, email_id)
        if email is None:
            raise not_found("email", email_id)
        if email.get("statecode") != 0:
            raise bad_request("The email has already been sent or canceled.", code="0x8004360d")
        self.store.update(table, email_id, {"statecode": 1, "statuscode": 3, "modifiedon": now_iso()})
        context = f"{self.url}$metadata#Microsoft.Dynamics.CRM.SendEmailResponse"
        return Answer(200, {"@odata.context": context, "Subject": email.get("subject")})

    def _execute_workflow(self, workflow_id: str, data: Any) -> Answer:
        workflow = self.store.get(by_logical_name("workflow"), workflow_id)  # type: ignore[arg-type]
        if workflow is None:
            raise not_found("workflow", workflow_id)
        entity_id = data.get("EntityId") if isinstance(data, dict) else None
        if not isinstance(entity_id, str) or not _GUID.match(entity_id):
            raise bad_request("ExecuteWorkflow needs 'EntityId', the GUID of the row to run the workflow on.")
        primary = by_logical_name(str(workflow.get("primaryentity")))
        if not workflow.get("ondemand") or workflow.get("statecode") != 1 or primary is None:
            raise bad_request("The workflow is not an activated on-demand workflow.", code="0x80045002")
        entity_id = entity_id.lower()
        if self.store.get(primary, entity_id) is None:
            raise not_found(primary.logical_name, entity_id)
        job = str(uuid.uuid4())
        jobs = by_logical_name("asyncoperation")
        assert jobs is not None
        stamp = now_iso()
        self.store.insert(
            jobs,
            {
                "asyncoperationid": job,
                "name": workflow.get("name"),
                "operationtype": 10,
                "statecode": 3,
                "statuscode": 30,
                "primaryentitytype": primary.logical_name,
                "regardingobjectid": entity_id,
                "regardingobjectid__type": primary.logical_name,
                "workflowactivationid": workflow_id,
                "workflowactivationid__type": "workflow",
                "createdon": stamp,
                "modifiedon": stamp,
                "completedon": stamp,
                "ownerid": self.identity.user_id,
                "ownerid__type": "systemuser",
                "createdby": self.identity.user_id,
                "createdby__type": "systemuser",
            },
        )
        context = f"{self.url}$metadata#Microsoft.Dynamics.CRM.ExecuteWorkflowResponse"
        return Answer(200, {"@odata.context": context, "Id": job})


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
        with guard.admit() as verdict:
            if verdict.fault == "reset":
                self._reset()
                return
            if verdict.error is not None:
                self._write(Answer(verdict.error.status, verdict.error.body(), verdict.error.headers))
                return
            try:
                answer = self.emulator.handle(method, self.path, dict(self.headers.items()), body)
            except EmulatorError as exc:
                answer = Answer(exc.status, exc.body(), exc.headers)
            if verdict.fault == "lost":
                self._reset()
                return
            self._write(answer)

    def _write(self, answer: Answer) -> None:
        if answer.raw is not None:
            payload = answer.raw
        else:
            payload = b"" if answer.body is None else json.dumps(answer.body, ensure_ascii=False).encode("utf-8")
        self.send_response(answer.status)
        self.send_header("OData-Version", "4.0")
        self.send_header("x-ms-dop-hint", str(self.emulator.guard.config.dop_hint))
        self.send_header("x-ms-service-request-id", str(uuid.uuid4()))
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
