"""Reads against the store: OData options to SQL (filter, order, paging), lookup paths as correlated subqueries,
single-valued `$expand` (rows, or `nav/$ref` references), counts, and change-tracking deltas.

`Reader.validate` checks `$select` and `$expand` against the table before anything is read or written, so an unknown
property is refused even when no row matches. Collection-valued navigation properties are not served; the few that
Learn's examples name are known, so that `$expand=Account_Tasks/$ref` gets Dataverse's documented error.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from devtools.emulator.errors import EmulatorError, bad_request
from devtools.emulator.filter_sql import compile_filter
from devtools.emulator.odata import (
    Column,
    ExpandItem,
    ODataError,
    Path,
    parse_expand,
    parse_filter,
    parse_orderby,
    parse_select,
)
from devtools.emulator.odata import unknown_property as odata_unknown_property
from devtools.emulator.rows import to_json, unknown_property
from devtools.emulator.schema import TableDef, by_logical_name
from devtools.emulator.store import Store

__all__ = ["COLLECTION_NAVIGATIONS", "COUNT_LIMIT", "MAX_PAGE_SIZE", "ReadOptions", "Reader"]

MAX_PAGE_SIZE = 5000
COUNT_LIMIT = 5000  # Learn, "Count rows using OData": counts go "up to 5,000"
# Collection-valued navigation properties named in Learn's examples (join-tables, filter-rows, create-entity, query
# overview, the email table reference), by table: known so that they are refused as such, not as unknown properties.
COLLECTION_NAVIGATIONS: dict[str, frozenset[str]] = {
    "account": frozenset({"Account_Tasks", "Account_Emails", "opportunity_customer_accounts"}),
    "contact": frozenset({"Contact_Emails"}),
    "opportunity": frozenset({"Opportunity_Tasks"}),
    "systemuser": frozenset({"user_accounts"}),
}
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
_SAVED_OR_FETCH = frozenset({"fetchXml", "savedQuery", "userQuery"})  # Dataverse has them; the emulator not
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
            if name in _SAVED_OR_FETCH:
                raise bad_request(f"Queries by {name} are not supported by the emulator.", code="0x80060888")
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
                for path, descending in parse_orderby(options.orderby, options.aliases or {}):
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

    def changes(self, table: TableDef, since: int, until: int) -> tuple[list[dict[str, Any]], list[str]]:
        """The rows written after version `since` (up to `until`), oldest first, and the ids deleted since."""
        rows = self.store.select(
            f'SELECT * FROM "{table.logical_name}" AS "t0" WHERE versionnumber > ? AND versionnumber <= ? '
            "ORDER BY versionnumber",
            [since, until],
        )
        return rows, self.store.deletions_since(table, since)

    # ---- navigation properties -----------------------------------------------------------------------------------

    def related(
        self, table: TableDef, row: Mapping[str, Any], navigation: str
    ) -> tuple[TableDef, dict[str, Any]] | None:
        """The row a single-valued navigation property leads to, with its table; None when the lookup is empty or
        points at another table than this navigation's (the `parentcustomerid_contact` of an account's contact)."""
        lookup = table.navigation(navigation)
        if lookup is None:
            raise unknown_property(table, navigation)
        target_name = str(row.get(f"{lookup.name}__type"))
        target = by_logical_name(target_name)
        if target is None or not row.get(lookup.name) or lookup.target_of(navigation, target_name) != target_name:
            return None
        related = self.store.get(target, str(row[lookup.name]))
        return None if related is None else (target, related)

    def render(
        self,
        table: TableDef,
        row: Mapping[str, Any],
        select: Sequence[str],
        expand: Sequence[ExpandItem],
        annotations: frozenset[str],
        *,
        base_url: str,
    ) -> dict[str, Any]:
        """A stored row as Dataverse JSON, with its expanded single-valued navigation properties."""
        body = to_json(table, row, select, annotations, self.name_of)
        for item in expand:
            lookup = table.navigation(item.navigation)
            if item.ref and lookup is not None:
                body.setdefault(f"_{lookup.name}_value", row.get(lookup.name))
            body[item.navigation] = self._expanded(table, row, item, annotations, base_url)
        return body

    def _expanded(
        self, table: TableDef, row: Mapping[str, Any], item: ExpandItem, annotations: frozenset[str], base_url: str
    ) -> dict[str, Any] | None:
        """One expanded navigation property: the related row, or for `nav/$ref` a reference
        `{"@odata.id": <base_url><set>(<id>)}` (Learn, "Join tables using OData": "Return references"); None when
        there is no related row."""
        found = self.related(table, row, item.navigation)
        if found is None:
            return None
        target, related = found
        if item.ref:
            return {"@odata.id": f"{base_url}{target.entity_set}({related[target.primary_key]})"}
        return self.render(target, related, item.select, item.expand, annotations, base_url=base_url)

    # ---- validation ----------------------------------------------------------------------------------------------

    @staticmethod
    def is_property(table: TableDef, name: str) -> bool:
        """Whether `name` is a column of the table or the `_x_value` property of one of its lookups."""
        lookup = table.lookup(name[1:-6]) if name.startswith("_") and name.endswith("_value") else None
        return name in table.all_columns or lookup is not None

    def validate(self, table: TableDef, select: Sequence[str], expand: Sequence[ExpandItem]) -> None:
        """Refuse (400) a `$select` or `$expand` naming what the table does not have: before the query runs (so also
        when no row matches) and before a write whose representation would show it."""
        for name in select:
            if not self.is_property(table, name):
                raise unknown_property(table, name)
        for item in expand:
            self._validate_expand(table, item)

    def _validate_expand(self, table: TableDef, item: ExpandItem) -> None:
        """An expanded navigation property must be a single-valued one; its options are checked against the table it
        leads to (either one, for the owner's systemuser or team)."""
        lookup = table.navigation(item.navigation)
        if lookup is None:
            if item.navigation not in COLLECTION_NAVIGATIONS.get(table.logical_name, frozenset()):
                raise unknown_property(table, item.navigation)
            if item.ref:
                raise bad_request(
                    "Expand with $ref is only supported on lookup type navigation property.", code="0x80060888"
                )
            raise bad_request(
                f"Expanding the collection-valued navigation property '{item.navigation}' is not supported by the "
                "emulator.",
                code="0x80060888",
            )
        targets = [by_logical_name(t) for n, t in lookup.navs if n == item.navigation]
        failures: list[EmulatorError] = []
        for target in (t for t in targets if t is not None):
            try:
                self.validate(target, item.select, item.expand)
            except EmulatorError as exc:
                failures.append(exc)
            else:
                return
        if failures:
            raise failures[0]

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
