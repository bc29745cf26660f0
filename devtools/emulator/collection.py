"""Reads of entity sets and rows, as Learn documents them for the Dataverse Web API.

- A page of an entity set: query options, paging with `$skiptoken`, `$count=true` (`@odata.count`, at most 5,000) and,
  only when `Prefer: odata.include-annotations` asks for them, `@Microsoft.Dynamics.CRM.totalrecordcount` (-1 without
  `$count=true`) and `…totalrecordcountlimitexceeded` ("Count rows using OData").
- `<set>/$count`: the count alone as `text/plain` (with the UTF-8 byte order mark Learn's "Retrieve a table row"
  notes), also on a delta link, where it counts the changes ("Use change tracking…").
- Change tracking: the changes since a `$deltatoken` (new and updated rows, then deletions); an unknown or expired
  token is ExpiredVersionStamp (0x80044352, "Web service error codes").
- One row by key, with conditional retrieval: `If-None-Match: <its ETag>` answers 304 with no body, except with
  `$expand` or `odata.include-annotations` ("Perform conditional operations using the Web API"); `null` never matches.
- `<row>/<single-valued navigation property>` (the related row, 204 when the lookup is empty) and `<row>/<property>`
  (`{"value": …}`) ("Retrieve a table row using the Web API").
- The representation a create (201, `$select` and `$expand`) or an update (200, `$select`; "The `$expand` query
  option will be ignored") returns with `Prefer: return=representation`.
Annotations named in `odata.include-annotations` may end in `*` ("Compose HTTP requests and handle errors"): `*`
alone asks for every annotation, `Microsoft.Dynamics.CRM.*` for that namespace's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

from devtools.emulator.errors import EmulatorError, bad_request, not_found
from devtools.emulator.keys import RowKey
from devtools.emulator.odata import ExpandItem
from devtools.emulator.queries import COUNT_LIMIT, MAX_PAGE_SIZE, Reader, ReadOptions, page_size
from devtools.emulator.rows import ASSOCIATED_NAV, FORMATTED, LOOKUP_NAME
from devtools.emulator.schema import TableDef
from devtools.emulator.store import Store
from devtools.emulator.wire import Answer

__all__ = ["Reads", "expired_token", "find", "missing", "requested_annotations"]

TOTAL_COUNT = "Microsoft.Dynamics.CRM.totalrecordcount"
COUNT_EXCEEDED = "Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded"
ANNOTATIONS = (FORMATTED, ASSOCIATED_NAV, LOOKUP_NAME, TOTAL_COUNT, COUNT_EXCEEDED)  # the ones the emulator gives
_BOM = "\ufeff"
_COOKIE = re.compile(r'<cookie pagenumber="(\d+)" offset="(\d+)" version="(\d+)" />')


def requested_annotations(prefer: Mapping[str, str]) -> frozenset[str]:
    """The annotations a `Prefer: odata.include-annotations=…` asks for, among those the emulator gives; a name may
    end in `*` to match every annotation that starts with what precedes it (`*` alone: all of them)."""
    asked = [a.strip() for a in prefer.get("odata.include-annotations", "").split(",") if a.strip()]
    return frozenset(
        name for name in ANNOTATIONS if any(name.startswith(a[:-1]) if a.endswith("*") else name == a for a in asked)
    )


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


def expired_token() -> EmulatorError:
    """ExpiredVersionStamp, worded as Learn's "Web service error codes" lists it; the HTTP status is not documented."""
    return bad_request(
        "Version stamp associated with the client has expired. Please perform a full sync.", code="0x80044352"
    )


def _selection(select: Sequence[str], expand: Sequence[ExpandItem]) -> str:
    """`(name,primarycontactid(fullname))`: what an `@odata.context` says was selected and expanded ("" for all)."""
    parts = list(select)
    for item in expand:
        nested = _selection(item.select, item.expand) or "()"
        parts.append(f"{item.navigation}/$ref()" if item.ref else f"{item.navigation}{nested}")
    return f"({','.join(parts)})" if parts else ""


def _not_modified(if_none_match: str | None, etag: str, options: ReadOptions, prefer: Mapping[str, str]) -> bool:
    """Whether a conditional GET answers 304: the row still has an ETag the request names, and the request has no
    `$expand` and asks for no annotations (either could hide a change to another row)."""
    if not if_none_match or options.expand or "odata.include-annotations" in prefer:
        return False
    return etag in (tag.strip() for tag in if_none_match.split(","))


def _applied(prefer: Mapping[str, str], *applied: str) -> dict[str, str]:
    """The `Preference-Applied` header: the preferences applied, and the annotations preference echoed."""
    names = list(applied)
    if "odata.include-annotations" in prefer:
        names.append(f'odata.include-annotations="{prefer["odata.include-annotations"]}"')
    return {"Preference-Applied": ",".join(names)} if names else {}


class Reads:
    """GET on an entity set (a page, its count, or the changes since a delta token), on one row and below a row."""

    def __init__(self, store: Store, reader: Reader, org_url: str, api_url: str) -> None:
        self.store = store
        self.reader = reader
        self.org_url = org_url
        self.api_url = api_url

    # ---- entity sets ---------------------------------------------------------------------------------------------

    def collection(self, table: TableDef, target: str, params: dict[str, str], prefer: Mapping[str, str]) -> Answer:
        """One page of an entity set, or (with `$deltatoken`) the changes since a delta link was given."""
        tracking = "odata.track-changes" in prefer or "$deltatoken" in params
        options = ReadOptions.parse(params)
        if tracking and (options.filter or options.orderby or options.expand or options.top):
            option = next(o for o in ("$filter", "$orderby", "$expand", "$top") if o in params)
            raise bad_request(f'The "{option}" query parameter isn\'t supported when Change Tracking is enabled.')
        if "$deltatoken" in params:
            return self._delta(table, target, params, options, prefer)
        size = page_size(prefer)
        page_number, offset, version = self._cursor(params)
        limit = min(options.top, MAX_PAGE_SIZE) if options.top and size is None else size or MAX_PAGE_SIZE
        rows, more = self.reader.page(table, options, offset=offset, limit=limit)
        more = more and not (options.top and size is None)
        annotations = requested_annotations(prefer)
        body: dict[str, Any] = {"@odata.context": self._context(table, options.select, options.expand)}
        body |= self._counts(table, options, annotations)
        body["value"] = [self._render(table, r, options.select, options.expand, annotations) for r in rows]
        applied = [f"odata.maxpagesize={size}"] if size is not None else []
        if tracking:
            applied.append("odata.track-changes")
        if more:
            cookie = f'<cookie pagenumber="{page_number + 1}" offset="{offset + limit}" version="{version}" />'
            body["@odata.nextLink"] = self._link(target, {"$skiptoken": cookie})
        elif tracking:
            body["@odata.deltaLink"] = self._link(target, {"$deltatoken": str(version)}, drop=("$skiptoken",))
        return Answer(200, body, _applied(prefer, *applied))

    def count(self, table: TableDef, params: Mapping[str, str]) -> Answer:
        """`<set>/$count`: how many rows match (`$filter` applies), or with `$deltatoken` how many changes (new or
        updated rows and deletions) there are since; at most 5,000, as `text/plain`."""
        options = ReadOptions.parse(params)
        if "$deltatoken" in params:
            rows, deleted = self.reader.changes(table, self._since(params["$deltatoken"]), self.store.current_version())
            total = len(rows) + len(deleted)
        else:
            total = self.reader.count(table, options)
        text = f"{_BOM}{min(total, COUNT_LIMIT)}"
        return Answer(200, headers={"Content-Type": "text/plain"}, raw=text.encode("utf-8"))

    def _counts(self, table: TableDef, options: ReadOptions, annotations: frozenset[str]) -> dict[str, Any]:
        """`@odata.count` for `$count=true`, and the total-count annotations when they are asked for: the count (at
        most 5,000) and whether more rows match, or -1 and false without `$count=true`."""
        total = self.reader.count(table, options) if options.count else None
        counts: dict[str, Any] = {}
        if total is not None:
            counts["@odata.count"] = min(total, COUNT_LIMIT)
        if TOTAL_COUNT in annotations:
            counts[f"@{TOTAL_COUNT}"] = -1 if total is None else min(total, COUNT_LIMIT)
        if COUNT_EXCEEDED in annotations:
            counts[f"@{COUNT_EXCEEDED}"] = total is not None and total > COUNT_LIMIT
        return counts

    def _cursor(self, params: Mapping[str, str]) -> tuple[int, int, int]:
        """(page number, offset, store version) from a `$skiptoken`; the first page of the current version without."""
        if "$skiptoken" not in params:
            return 1, 0, self.store.current_version()
        cookie = _COOKIE.match(params["$skiptoken"])
        if cookie is None:
            raise bad_request("The $skiptoken is not valid.")
        page_number, offset, version = (int(g) for g in cookie.groups())
        return page_number, offset, version

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

    def _since(self, token: str) -> int:
        """The store version a delta token stands for; ExpiredVersionStamp for one the store never gave."""
        if not token.isdigit() or int(token) > self.store.current_version():
            raise expired_token()
        return int(token)

    def _delta(
        self, table: TableDef, target: str, params: Mapping[str, str], options: ReadOptions, prefer: Mapping[str, str]
    ) -> Answer:
        """The changes since a delta token: new and updated rows, then `$deletedEntity` entries, and the next link."""
        since = self._since(params["$deltatoken"])
        version = self.store.current_version()
        rows, deleted = self.reader.changes(table, since, version)
        annotations = requested_annotations(prefer)
        value: list[dict[str, Any]] = [self._render(table, r, options.select, (), annotations) for r in rows]
        value += [
            {
                "@odata.context": f"{self.api_url}$metadata#{table.entity_set}/$deletedEntity",
                "id": id,
                "reason": "deleted",
            }
            for id in deleted
        ]
        body = {
            "@odata.context": self._context(table, options.select, (), "/$delta"),
            "value": value,
            "@odata.deltaLink": self._link(target, {"$deltatoken": str(version)}),
        }
        return Answer(200, body, _applied(prefer, "odata.track-changes"))

    # ---- rows ----------------------------------------------------------------------------------------------------

    def get(
        self,
        table: TableDef,
        key: RowKey,
        params: dict[str, str],
        prefer: Mapping[str, str],
        if_none_match: str | None = None,
    ) -> Answer:
        """One row by key; 304 Not Modified when `If-None-Match` names its current ETag (see `_not_modified`)."""
        row = self._row(table, key)
        options = ReadOptions.parse(params)
        etag = f'W/"{row["versionnumber"]}"'
        if _not_modified(if_none_match, etag, options, prefer):
            return Answer(304, None, {"ETag": etag})
        body = self._entity(table, row, options.select, options.expand, requested_annotations(prefer))
        return Answer(200, body, {"ETag": etag, **_applied(prefer)})

    def below(
        self, table: TableDef, key: RowKey, segment: str, params: dict[str, str], prefer: Mapping[str, str]
    ) -> Answer:
        """`<row>/<single-valued navigation property>` or `<row>/<property>`; any other segment is not found."""
        row = self._row(table, key)
        if table.navigation(segment) is not None:
            return self._related(table, row, segment, ReadOptions.parse(params), prefer)
        if self.reader.is_property(table, segment) and segment not in table.write_only:
            return self._property(table, row, segment)
        raise EmulatorError(404, "0x8006088a", f"Resource not found for the segment '{segment}'.")

    def _related(
        self, table: TableDef, row: Mapping[str, Any], navigation: str, options: ReadOptions, prefer: Mapping[str, str]
    ) -> Answer:
        """The row a navigation property leads to, with the request's `$select`/`$expand` checked against its table;
        204 when the lookup is empty (Learn does not say; OData's protocol does)."""
        self.reader.validate(table, (), (ExpandItem(navigation, options.select, options.expand),))
        found = self.reader.related(table, row, navigation)
        if found is None:
            return Answer(204)
        target, related = found
        body = self._entity(target, related, options.select, options.expand, requested_annotations(prefer))
        return Answer(200, body, {"ETag": body["@odata.etag"], **_applied(prefer)})

    def _property(self, table: TableDef, row: Mapping[str, Any], name: str) -> Answer:
        """`{"@odata.context": …, "value": …}` for one property of a row; 204 when it is null (as OData says)."""
        value = self._render(table, row, (name,), (), frozenset())[name]
        if value is None:
            return Answer(204)
        context = f"{self.api_url}$metadata#{table.entity_set}({row[table.primary_key]})/{name}"
        return Answer(200, {"@odata.context": context, "value": value})

    def representation(
        self, table: TableDef, id: str, params: Mapping[str, str], prefer: Mapping[str, str], status: int
    ) -> Answer:
        """The answer to a write with `Prefer: return=representation`: the written row with the URL's `$select`, and
        for a create (201) its `$expand` too; an update (200) ignores `$expand`, as Learn says."""
        row = self.store.get(table, id) or {}
        options = ReadOptions.parse(params)
        expand = options.expand if status == 201 else ()
        body = self._entity(table, row, options.select, expand, requested_annotations(prefer))
        return Answer(status, body, _applied(prefer, "return=representation"))

    # ---- rendering -----------------------------------------------------------------------------------------------

    def _row(self, table: TableDef, key: RowKey) -> dict[str, Any]:
        row = find(self.store, table, key)
        if row is None:
            raise missing(table, key)
        return row

    def _render(
        self,
        table: TableDef,
        row: Mapping[str, Any],
        select: Sequence[str],
        expand: Sequence[ExpandItem],
        annotations: frozenset[str],
    ) -> dict[str, Any]:
        return self.reader.render(table, row, select, expand, annotations, base_url=self.api_url)

    def _entity(
        self,
        table: TableDef,
        row: Mapping[str, Any],
        select: Sequence[str],
        expand: Sequence[ExpandItem],
        annotations: frozenset[str],
    ) -> dict[str, Any]:
        """A single row's body: its `@odata.context` (`…#accounts(name)/$entity`), then the row."""
        context = {"@odata.context": self._context(table, select, expand, "/$entity")}
        return context | self._render(table, row, select, expand, annotations)

    def _context(self, table: TableDef, select: Sequence[str], expand: Sequence[ExpandItem], suffix: str = "") -> str:
        """`<api>$metadata#accounts(name,primarycontactid(fullname))<suffix>`, as Dataverse describes an answer."""
        return f"{self.api_url}$metadata#{table.entity_set}{_selection(select, expand)}{suffix}"
