"""Reads against the store: OData options to SQL (filter, order, paging), lookup paths as correlated subqueries,
single-valued `$expand`, and change-tracking deltas."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from devtools.emulator.errors import bad_request
from devtools.emulator.odata import (
    Column,
    ExpandItem,
    ODataError,
    Path,
    compile_filter,
    parse_expand,
    parse_filter,
    parse_orderby,
    parse_select,
)
from devtools.emulator.odata import unknown_property as odata_unknown_property
from devtools.emulator.rows import to_json, unknown_property
from devtools.emulator.schema import TableDef, by_logical_name
from devtools.emulator.store import Store

__all__ = ["MAX_PAGE_SIZE", "ReadOptions", "Reader"]

MAX_PAGE_SIZE = 5000
_KINDS = {
    "guid": "guid",
    "string": "string",
    "memo": "string",
    "int": "int",
    "choice": "int",
    "decimal": "decimal",
    "money": "decimal",
    "bool": "bool",
    "datetime": "datetime",
    "date": "date",
}
SUPPORTED = frozenset({"$select", "$filter", "$orderby", "$top", "$count", "$expand", "$skiptoken", "$deltatoken"})


@dataclass(frozen=True)
class ReadOptions:
    """The parsed query options of a GET."""

    select: tuple[str, ...] = ()
    filter: str | None = None
    orderby: str | None = None
    top: int | None = None
    count: bool = False
    expand: tuple[ExpandItem, ...] = ()
    aliases: Mapping[str, str] | None = None

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> ReadOptions:
        for name in params:
            if name.startswith("$") and name not in SUPPORTED:
                raise bad_request(f"The query parameter {name} is not supported", code="0x80060888")
        top = params.get("$top")
        if top is not None and (not top.isdigit() or int(top) < 1):
            raise bad_request(f"Invalid value '{top}' for $top query option.", code="0x80060888")
        try:
            return cls(
                select=parse_select(params["$select"]) if "$select" in params else (),
                filter=params.get("$filter"),
                orderby=params.get("$orderby"),
                top=int(top) if top else None,
                count=params.get("$count", "false").lower() == "true",
                expand=parse_expand(params["$expand"]) if "$expand" in params else (),
                aliases={k: v for k, v in params.items() if k.startswith("@")},
            )
        except ODataError as exc:
            raise bad_request(str(exc), code=exc.code) from None


class Reader:
    """Turns read options into SQL against one store, and rows into Dataverse JSON."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # ---- paths -----------------------------------------------------------------------------------------------------

    def resolver(self, table: TableDef, alias: str = "t0") -> Any:
        def resolve(path: Path) -> Column:
            return self._resolve(table, alias, list(path.segments), 0)

        return resolve

    def _resolve(self, table: TableDef, alias: str, segments: list[str], depth: int) -> Column:
        head = segments[0]
        if len(segments) == 1:
            kind = table.all_columns.get(head)
            if kind is not None:
                return Column(f'"{alias}"."{head}"', _KINDS[kind])  # type: ignore[arg-type]
            lookup = table.lookup(head[1:-6]) if head.startswith("_") and head.endswith("_value") else None
            if lookup is not None:
                return Column(f'"{alias}"."{lookup.name}"', "guid")
            raise odata_unknown_property(head, table.logical_name)
        lookup = table.navigation(head)
        target = lookup.target_of(head) if lookup else None
        target_table = by_logical_name(target) if target else None
        if lookup is None or target_table is None or depth >= 5:
            raise odata_unknown_property(head, table.logical_name)
        inner = f"t{depth + 1}"
        column = self._resolve(target_table, inner, segments[1:], depth + 1)
        sql = (
            f'(SELECT {column.sql} FROM "{target_table.logical_name}" AS "{inner}" '
            f'WHERE "{inner}"."{target_table.primary_key}" = "{alias}"."{lookup.name}" '
            f'AND "{alias}"."{lookup.name}__type" = \'{target_table.logical_name}\')'
        )
        return Column(sql, column.type)

    def where(self, table: TableDef, options: ReadOptions) -> tuple[str, list[Any]]:
        if not options.filter:
            return "1=1", []
        try:
            expr = parse_filter(options.filter, options.aliases or {})
            return compile_filter(expr, self.resolver(table))
        except ODataError as exc:
            raise bad_request(str(exc), code=exc.code) from None

    def order(self, table: TableDef, options: ReadOptions) -> str:
        terms = []
        if options.orderby:
            try:
                for path, descending in parse_orderby(options.orderby):
                    column = self.resolver(table)(path)
                    terms.append(f"{column.sql} {'DESC' if descending else 'ASC'}")
            except ODataError as exc:
                raise bad_request(str(exc), code=exc.code) from None
        terms.append(f'"t0"."{table.primary_key}" ASC')
        return ", ".join(terms)

    # ---- reads -----------------------------------------------------------------------------------------------------

    def page(
        self,
        table: TableDef,
        options: ReadOptions,
        *,
        offset: int,
        limit: int,
    ) -> tuple[list[dict[str, Any]], bool]:
        """One page of matching rows (stored form) and whether more follow."""
        where, params = self.where(table, options)
        sql = (
            f'SELECT "t0".* FROM "{table.logical_name}" AS "t0" WHERE {where} ORDER BY {self.order(table, options)} '
            "LIMIT ? OFFSET ?"
        )
        rows = self.store.select(sql, [*params, limit + 1, offset])
        return rows[:limit], len(rows) > limit

    def count(self, table: TableDef, options: ReadOptions) -> int:
        where, params = self.where(table, options)
        return int(self.store.scalar(f'SELECT COUNT(*) FROM "{table.logical_name}" AS "t0" WHERE {where}', params))

    def render(
        self,
        table: TableDef,
        row: Mapping[str, Any],
        select: Sequence[str],
        expand: Sequence[ExpandItem],
        annotations: frozenset[str],
    ) -> dict[str, Any]:
        body = to_json(table, row, select, annotations, self.name_of)
        for item in expand:
            lookup = table.navigation(item.navigation)
            if lookup is None:
                raise unknown_property(table, item.navigation)
            target_name = row.get(f"{lookup.name}__type")
            if target_name != lookup.target_of(item.navigation, str(target_name)):
                body[item.navigation] = None
                continue
            target = by_logical_name(str(target_name))
            related = self.store.get(target, str(row[lookup.name])) if target and row.get(lookup.name) else None
            body[item.navigation] = (
                self.render(target, related, item.select, item.expand, annotations) if target and related else None
            )
        return body

    def name_of(self, logical_name: str, id: str) -> str | None:
        table = by_logical_name(logical_name)
        if table is None:
            return None
        row = self.store.get(table, id)
        return None if row is None else row.get(table.primary_name)


def page_size(prefer: Mapping[str, str]) -> int | None:
    """`odata.maxpagesize` from the Prefer header, capped at Dataverse's 5,000; None when not asked for."""
    value = prefer.get("odata.maxpagesize")
    if value is None:
        return None
    try:
        size = int(value)
    except ValueError:
        raise bad_request(f"Invalid odata.maxpagesize '{value}'.") from None
    return max(1, min(size, MAX_PAGE_SIZE))
