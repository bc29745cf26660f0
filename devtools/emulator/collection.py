"""Reads of entity sets and rows: query options, paging with `$skiptoken`, counts, change tracking, one row by key."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

from devtools.emulator.errors import EmulatorError, bad_request, not_found
from devtools.emulator.keys import RowKey
from devtools.emulator.queries import MAX_PAGE_SIZE, Reader, ReadOptions, page_size
from devtools.emulator.rows import FORMATTED, LOOKUP_NAME
from devtools.emulator.schema import TableDef
from devtools.emulator.store import Store
from devtools.emulator.wire import Answer

__all__ = ["Reads", "find", "missing", "requested_annotations"]

_COOKIE = re.compile(r'<cookie pagenumber="(\d+)" offset="(\d+)" version="(\d+)" />')


def requested_annotations(prefer: Mapping[str, str]) -> frozenset[str]:
    """The annotations a `Prefer: odata.include-annotations=…` asks for (`*`: all the emulator has)."""
    asked = prefer.get("odata.include-annotations", "")
    if asked == "*":
        return frozenset({FORMATTED, LOOKUP_NAME})
    return frozenset(a.strip() for a in asked.split(",") if a.strip())


def find(store: Store, table: TableDef, key: RowKey) -> dict[str, Any] | None:
    """The stored row a key addresses, by id or by alternate key."""
    if isinstance(key, str):
        return store.get(table, key)
    return store.find(table, key)


def missing(table: TableDef, key: RowKey) -> EmulatorError:
    """404 for a row that does not exist, worded as Dataverse words it for an id or for an alternate key."""
    if isinstance(key, str):
        return not_found(table.logical_name, key)
    return EmulatorError(
        404, "0x80060891", f"A record with the specified key values does not exist in {table.logical_name} entity"
    )


class Reads:
    """GET on an entity set (a page, or the changes since a delta token) and on one row."""

    def __init__(self, store: Store, reader: Reader, org_url: str, api_url: str) -> None:
        self.store = store
        self.reader = reader
        self.org_url = org_url
        self.api_url = api_url

    def collection(self, table: TableDef, target: str, params: dict[str, str], prefer: Mapping[str, str]) -> Answer:
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
        annotations = requested_annotations(prefer)
        body: dict[str, Any] = {"@odata.context": f"{self.api_url}$metadata#{table.entity_set}"}
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
        annotations = requested_annotations(prefer)
        value: list[dict[str, Any]] = [self.reader.render(table, r, options.select, (), annotations) for r in rows]
        for id in self.store.deletions_since(table, since):
            value.append(
                {
                    "@odata.context": f"{self.api_url}$metadata#{table.entity_set}/$deletedEntity",
                    "id": id,
                    "reason": "deleted",
                }
            )
        body = {
            "@odata.context": f"{self.api_url}$metadata#{table.entity_set}/$delta",
            "value": value,
            "@odata.deltaLink": self._link(target, {"$deltatoken": str(version)}),
        }
        return Answer(200, body, {"Preference-Applied": "odata.track-changes"})

    def get(self, table: TableDef, key: RowKey, params: dict[str, str], prefer: Mapping[str, str]) -> Answer:
        row = find(self.store, table, key)
        if row is None:
            raise missing(table, key)
        options = ReadOptions.parse(params)
        body = self.reader.render(table, row, options.select, options.expand, requested_annotations(prefer))
        return Answer(200, body, {"ETag": body["@odata.etag"]})

    def representation(
        self, table: TableDef, id: str, params: Mapping[str, str], prefer: Mapping[str, str], status: int
    ) -> Answer:
        """The answer to a write with `Prefer: return=representation`: the written row (201 created, 200 updated)."""
        row = self.store.get(table, id) or {}
        select = ReadOptions.parse(params).select
        body = self.reader.render(table, row, select, (), requested_annotations(prefer))
        return Answer(status, body, {"Preference-Applied": "return=representation"})
