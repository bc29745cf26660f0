"""`abm provision`: create the product's schema (`abm.admin.product_schema`) in an org, idempotently, through the
metadata API.

1. Read what exists: one `GET EntityDefinitions(LogicalName='x')` per table involved (404: the table is missing),
   with its columns where the product adds columns and its keys where the product needs a key.
2. Create what is missing, in dependency order: tables (with their primary name column), then columns, then
   lookups (one-to-many relationships), then alternate keys. A column that exists with another type is reported as a
   conflict, never changed.
3. Wait, bounded, until every product key's index is Active (Dataverse builds it in a system job); a Failed index is
   a `ProvisionError` naming the key and the way out.
4. Report the tables the sync reads through change tracking that do not have it. Provisioning never turns change
   tracking on: once on it cannot be turned off again, so that stays the admin's decision (the report says how).

`dry_run` sends only the GETs of step 1 and reports what it would create.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from abm.admin.product_schema import ADDED_COLUMNS, CHANGE_TRACKED, PRODUCT_TABLES, ProductTable
from abm.errors import Refused
from dataverse.client import DataverseClient
from dataverse.metadata import (
    ATTRIBUTE_TYPES,
    KEY_ACTIVE,
    KEY_FAILED,
    ColumnSpec,
    KeyInfo,
    KeySpec,
    LookupSpec,
    MetadataClient,
    TableInfo,
)

__all__ = [
    "CHANGE_TRACKING_HOWTO",
    "Action",
    "ProvisionError",
    "ProvisionReport",
    "provision",
]

CHANGE_TRACKING_HOWTO = (
    "In Power Apps (make.powerapps.com), open the environment, then Tables > the table > Properties > "
    "Advanced options, tick 'Track changes' and save. It cannot be turned off again."
)

Kind = Literal["table", "column", "lookup", "key"]


class ProvisionError(Refused):
    """Provisioning could not finish (a key index failed or did not become active in time); `report` says what was
    done before."""

    def __init__(self, message: str, report: ProvisionReport) -> None:
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class Action:
    """One component to create: a table, a column, a lookup or an alternate key."""

    kind: Kind
    table: str
    name: str
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "table": self.table, "name": self.name, "detail": self.detail}

    def __str__(self) -> str:
        where = self.table if self.kind == "table" else f"{self.table}.{self.name}"
        return f"{self.kind} {where} ({self.detail})"


@dataclass
class ProvisionReport:
    """What provisioning found and did. `actions` were created (or, in a dry run, would be)."""

    dry_run: bool
    actions: list[Action] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    keys: dict[str, str] = field(default_factory=dict)
    change_tracking: dict[str, bool] = field(default_factory=dict)
    requests: dict[str, Any] = field(default_factory=dict)

    @property
    def change_tracking_off(self) -> list[str]:
        return [name for name, on in self.change_tracking.items() if not on]

    @property
    def ok(self) -> bool:
        """No conflict, and (after a real run) every product key active: the engine can use the schema."""
        return not self.conflicts and (self.dry_run or all(s == KEY_ACTIVE for s in self.keys.values()))

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "dry_run": self.dry_run,
            "to_create" if self.dry_run else "created": [a.as_dict() for a in self.actions],
            "conflicts": self.conflicts,
            "keys": self.keys,
            "change_tracking": self.change_tracking,
            "change_tracking_off": self.change_tracking_off,
            "change_tracking_howto": CHANGE_TRACKING_HOWTO if self.change_tracking_off else None,
            "requests": self.requests,
        }


def _column_detail(column: ColumnSpec) -> str:
    if column.kind in ("string", "memo") and column.max_length:
        return f"{column.kind}, {column.max_length:,} characters"
    return column.kind


@dataclass
class _Plan:
    """What is missing, as actions with the call that creates each; conflicts found on the way."""

    steps: list[tuple[Action, Callable[[], None]]] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    keys: list[tuple[str, KeySpec]] = field(default_factory=list)

    def add(self, action: Action, create: Callable[[], None]) -> None:
        self.steps.append((action, create))


def _check_type(plan: _Plan, table: str, info: TableInfo, name: str, expected: str) -> bool:
    """True when the column exists; a wrong type is recorded as a conflict (and counts as existing)."""
    assert info.attributes is not None
    found = info.attributes.get(name)
    if found is None:
        return False
    if found.attribute_type and found.attribute_type != expected:
        plan.conflicts.append(
            f"{table}.{name} is a {found.attribute_type} column, the engine needs {expected}: "
            "change or delete it by hand, then run provision again"
        )
    return True


def _plan_columns(
    plan: _Plan, meta: MetadataClient, table: str, info: TableInfo | None, columns: tuple[ColumnSpec, ...]
) -> None:
    for column in columns:
        if info is not None and _check_type(plan, table, info, column.logical_name, ATTRIBUTE_TYPES[column.kind]):
            continue
        action = Action("column", table, column.logical_name, _column_detail(column))
        plan.add(action, functools.partial(meta.create_column, table, column))


def _plan_lookups(
    plan: _Plan, meta: MetadataClient, table: str, info: TableInfo | None, lookups: tuple[LookupSpec, ...]
) -> None:
    for lookup in lookups:
        if info is not None and _check_type(plan, table, info, lookup.logical_name, "Lookup"):
            continue
        action = Action("lookup", table, lookup.logical_name, f"to {lookup.target}, relationship {lookup.relationship}")
        plan.add(action, functools.partial(meta.create_lookup, table, lookup))


def _plan_product_table(plan: _Plan, meta: MetadataClient, product: ProductTable, info: TableInfo | None) -> None:
    name = product.logical_name
    if info is None:
        spec = product.table
        primary = spec.primary_name
        detail = f"{spec.ownership}, primary name {primary.logical_name}"
        plan.add(Action("table", name, name, detail), functools.partial(meta.create_table, spec))
    else:
        _check_type(plan, name, info, product.table.primary_name.logical_name, "String")
    _plan_columns(plan, meta, name, info, product.columns)
    _plan_lookups(plan, meta, name, info, product.lookups)
    for key in product.keys:
        existing = info.key_with(key.columns) if info is not None else None
        plan.keys.append((name, key))
        if existing is None:
            action = Action("key", name, key.logical_name, "alternate key on " + ", ".join(key.columns))
            plan.add(action, functools.partial(meta.create_key, name, key))


def _plan(meta: MetadataClient, infos: dict[str, TableInfo | None]) -> _Plan:
    plan = _Plan()
    for product in PRODUCT_TABLES:
        _plan_product_table(plan, meta, product, infos[product.logical_name])
    for table_name, columns in ADDED_COLUMNS.items():
        info = infos[table_name]
        if info is None:
            plan.conflicts.append(f"table {table_name} does not exist in this org: the engine writes to it")
            continue
        _plan_columns(plan, meta, table_name, info, columns)
    # Dependency order: tables, then columns, then lookups, then keys (a key needs its columns).
    order = {"table": 0, "column": 1, "lookup": 2, "key": 3}
    plan.steps.sort(key=lambda step: order[step[0].kind])
    return plan


def _wait_for_keys(
    meta: MetadataClient,
    keys: list[tuple[str, KeySpec]],
    known: dict[str, TableInfo | None],
    report: ProvisionReport,
    *,
    wait: float,
    poll_interval: float,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> None:
    """Poll each table's keys until every product key's index is Active; Failed or too slow is a ProvisionError."""
    deadline = clock() + wait
    current: dict[str, tuple[KeyInfo, ...]] = {
        table: info.keys for table, info in known.items() if info is not None and info.keys is not None
    }
    stale = {table for table, _ in keys if table not in current}
    while True:
        for table in sorted(stale):
            current[table] = meta.keys(table)
        stale = set()
        pending = []
        for table, key in keys:
            found = next((k for k in current.get(table, ()) if sorted(k.columns) == sorted(key.columns)), None)
            status = found.status if found is not None else "missing"
            report.keys[f"{table}.{found.logical_name if found else key.logical_name}"] = status
            if status == KEY_FAILED:
                raise ProvisionError(
                    f"the index of alternate key {key.logical_name} on {table} ({', '.join(key.columns)}) failed: "
                    "usually duplicate values in those columns. Remove the duplicates, then reactivate the key "
                    "(Power Apps > Tables > the table > Keys, or the ReactivateEntityKey action) and run provision "
                    "again",
                    report,
                )
            if status != KEY_ACTIVE:
                pending.append((table, key, status))
        if not pending:
            return
        if clock() + poll_interval > deadline:
            names = ", ".join(f"{k.logical_name} on {t} ({s})" for t, k, s in pending)
            raise ProvisionError(
                f"alternate key index not active after {wait:g} s: {names}. Dataverse builds it in a system job; "
                "run provision again later to check",
                report,
            )
        sleep(poll_interval)
        stale = {table for table, _, _ in pending}


def _tables_to_read() -> list[tuple[str, bool, bool]]:
    """(table, with columns, with keys) for every table provisioning looks at, each once."""
    wanted: dict[str, tuple[bool, bool]] = {}
    for product in PRODUCT_TABLES:
        wanted[product.logical_name] = (True, bool(product.keys))
    for table_name in ADDED_COLUMNS:
        wanted[table_name] = (True, wanted.get(table_name, (False, False))[1])
    for table_name in CHANGE_TRACKED:
        wanted.setdefault(table_name, (False, False))
    return [(name, columns, keys) for name, (columns, keys) in wanted.items()]


def provision(
    client: DataverseClient,
    *,
    dry_run: bool = False,
    solution: str | None = None,
    wait: float = 600.0,
    poll_interval: float = 5.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> ProvisionReport:
    """Create what is missing of the product's schema, wait for its keys, and report change tracking.

    `solution` adds the created components to that unmanaged solution. `wait` bounds the wait for key indexes
    (seconds), polled every `poll_interval`. Raises `ProvisionError` (with the report) when a key index failed or is
    still building at the deadline; `DataverseError` when a request fails (what was created before stays, and a
    second run creates only the rest).
    """
    meta = MetadataClient(client, solution=solution)
    infos = {name: meta.table(name, attributes=cols, keys=keys) for name, cols, keys in _tables_to_read()}
    plan = _plan(meta, infos)
    report = ProvisionReport(dry_run=dry_run, conflicts=plan.conflicts)
    created_here = {p.logical_name for p in PRODUCT_TABLES}  # created with change tracking on when missing
    for table_name in CHANGE_TRACKED:
        info = infos[table_name]
        report.change_tracking[table_name] = info.change_tracking if info else table_name in created_here
    if dry_run:
        report.actions = [action for action, _ in plan.steps]
        for table_name, key in plan.keys:
            info = infos[table_name]
            found = info.key_with(key.columns) if info is not None else None
            report.keys[f"{table_name}.{found.logical_name if found else key.logical_name}"] = (
                found.status if found else "to be created"
            )
        report.requests = client.stats.as_dict()
        return report
    created = set()
    for action, create in plan.steps:
        create()
        report.actions.append(action)
        if action.kind == "key":
            created.add(action.table)
    known = {t: (None if t in created else infos[t]) for t, _ in plan.keys}
    try:
        _wait_for_keys(meta, plan.keys, known, report, wait=wait, poll_interval=poll_interval, sleep=sleep, clock=clock)
    finally:
        report.requests = client.stats.as_dict()
    return report
