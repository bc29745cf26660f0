"""`$filter` ASTs (from `odata.parse_filter`) compiled to SQLite WHERE fragments for the emulator's store.

`compile_filter` turns the AST into an SQLite WHERE fragment with `?` parameters. Storage conventions it compiles for:
GUIDs as lowercase text, datetimes as `YYYY-MM-DDTHH:MM:SSZ` text (UTC, whole seconds), dates as `YYYY-MM-DD`, bools
as 0/1, decimals and money as REAL, strings as TEXT. Every connection must have `register_functions` applied.

Semantics:

* Strings compare case-insensitively (every Dataverse collation is `_CI`) through `odata_fold` (Unicode casefold),
  so `'ångström'` equals `'ÅNGSTRÖM'`. Accents stay significant: accent sensitivity depends on the environment's base
  language and is not modelled. The like-functions use T-SQL LIKE wildcards (`%`, `_`, `[...]`, `[^...]`), active
  as in Dataverse (the client bracket-escapes them), and match case-insensitively.
* Nulls: `eq`, `ne`, `In` and `NotIn` are two-valued: a null column never equals a value, so `ne` and `NotIn` (and
  `not (x eq ...)`, `not In(...)`) return the rows where the column is null. That is OData's rule (`null ne 'x'` is
  true) and what Dynamics' "does not equal" is reported to do; Microsoft's Web API docs don't say. Ordering
  comparisons and the like-functions are unknown on null, so neither they nor their negation return null rows (as
  when Dataverse pushes a negation down: `not (x gt 5)` = `x le 5`). `eq null` / `ne null` are `IS NULL` /
  `IS NOT NULL`; null with `gt`/`ge`/`lt`/`le` is refused. Column-vs-column `eq` is false when either side is null.
* Datetime literals with fractional seconds are compared exactly against whole-second storage.
"""

from __future__ import annotations

import functools
import re
import sqlite3
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from devtools.emulator.odata import (
    DATETIME_RE,
    And,
    Column,
    ColumnType,
    Compare,
    CompareOp,
    Expr,
    Literal,
    LiteralValue,
    Membership,
    Not,
    ODataError,
    Or,
    Path,
    StringFunction,
    datetime_from,
)

__all__ = ["compile_filter", "like_pattern_to_regex", "register_functions"]


# ------------------------------------------------------------------------------------------------------ LIKE patterns


def like_pattern_to_regex(pattern: str) -> str:
    """A T-SQL LIKE pattern as an anchored, case-insensitive Python regex.

    `%` any string, `_` one character, `[abc]` / `[a-z]` / `[^abc]` a class (a `]` right after `[` or `[^` is a
    member, so `[]]` is a literal `]`; `-` first or last is literal; a reversed range matches nothing), `]` alone is
    literal, and an unclosed `[` makes the pattern match nothing, as in SQL Server.
    """
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "%":
            out.append(".*")
            i += 1
        elif ch == "_":
            out.append(".")
            i += 1
        elif ch == "[":
            j = i + 1
            negate = j < n and pattern[j] == "^"
            if negate:
                j += 1
            close = pattern.find("]", j + 1) if j < n and pattern[j] == "]" else pattern.find("]", j)
            if close < 0:
                out.append("(?!)")
                break
            out.append(_like_class(pattern[j:close], negate))
            i = close + 1
        else:
            out.append(re.escape(ch))
            i += 1
    return "(?is)\\A" + "".join(out) + "\\Z"


def _like_class(members: str, negate: bool) -> str:
    parts: list[str] = []
    k = 0
    while k < len(members):
        if k + 2 < len(members) and members[k + 1] == "-":
            lo, hi = members[k], members[k + 2]
            if lo <= hi:
                parts.append(f"{re.escape(lo)}-{re.escape(hi)}")
            k += 3
        else:
            parts.append(re.escape(members[k]))
            k += 1
    if not parts:
        return "." if negate else "(?!)"
    return "[" + ("^" if negate else "") + "".join(parts) + "]"


@functools.lru_cache(maxsize=512)
def _compiled(regex: str) -> re.Pattern[str]:
    return re.compile(regex)


def _odata_like(regex: str | None, value: object) -> int | None:
    if regex is None or value is None:
        return None
    return 1 if _compiled(regex).match(value if isinstance(value, str) else str(value)) else 0


def _odata_fold(value: object) -> str | None:
    if value is None:
        return None
    return (value if isinstance(value, str) else str(value)).casefold()


def register_functions(conn: sqlite3.Connection) -> None:
    """Register `odata_like(regex, value)` and `odata_fold(text)`, which compiled filters call."""
    conn.create_function("odata_like", 2, _odata_like, deterministic=True)
    conn.create_function("odata_fold", 1, _odata_fold, deterministic=True)


# ----------------------------------------------------------------------------------------------------------- compiler

_SQL_OPS: dict[str, str] = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}
_FLIPPED: dict[CompareOp, CompareOp] = {"eq": "eq", "ne": "ne", "gt": "lt", "ge": "le", "lt": "gt", "le": "ge"}
_OPERATOR_KIND = {
    "eq": "Equal",
    "ne": "NotEqual",
    "gt": "GreaterThan",
    "ge": "GreaterThanOrEqual",
    "lt": "LessThan",
    "le": "LessThanOrEqual",
}
_EDM: dict[ColumnType, str] = {
    "string": "Edm.String",
    "guid": "Edm.Guid",
    "int": "Edm.Int32",
    "decimal": "Edm.Decimal",
    "bool": "Edm.Boolean",
    "datetime": "Edm.DateTimeOffset",
    "date": "Edm.Date",
}
_SIMPLE_SQL = re.compile(r'[\w."]+')
_INT_TEXT = re.compile(r"[+-]?\d+")


def _edm_of(value: LiteralValue) -> str:
    if isinstance(value, bool):
        return "Edm.Boolean"
    if isinstance(value, int):
        return "Edm.Int32" if -(2**31) <= value < 2**31 else "Edm.Int64"
    if isinstance(value, Decimal):
        return "Edm.Decimal"
    if isinstance(value, str):
        return "Edm.String"
    if isinstance(value, uuid.UUID):
        return "Edm.Guid"
    if isinstance(value, datetime):
        return "Edm.DateTimeOffset"
    if isinstance(value, date):
        return "Edm.Date"
    return "null"


def _iso(value: datetime) -> str:
    """The stored text of a datetime: UTC, `YYYY-MM-DDTHH:MM:SSZ` (with `.ffffff` only if it has microseconds)."""
    utc = value.astimezone(UTC)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    return text + (f".{utc.microsecond:06d}" if utc.microsecond else "") + "Z"


def _operand_sql(column: Column) -> str:
    sql = column.sql if _SIMPLE_SQL.fullmatch(column.sql) else f"({column.sql})"
    if column.type == "string":
        return f"odata_fold({sql})"
    if column.type == "guid":
        return f"lower({sql})"
    return sql


def _storage_value(kind: ColumnType, value: LiteralValue) -> Any:
    """The literal as stored for a column of `kind`, or raise TypeError when the types are incompatible."""
    if kind == "string" and isinstance(value, str):
        return value.casefold()
    if kind == "guid" and isinstance(value, uuid.UUID):
        return str(value)
    if kind in ("int", "decimal") and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind in ("int", "decimal") and isinstance(value, Decimal):
        return float(value)
    if kind == "bool" and isinstance(value, bool):
        return int(value)
    if kind == "datetime" and isinstance(value, datetime):
        return _iso(value)
    if kind == "datetime" and isinstance(value, date):
        return _iso(datetime(value.year, value.month, value.day, tzinfo=UTC))
    if kind == "date" and isinstance(value, date) and not isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(kind)


def _membership_value(column: Column, path: Path, text: str) -> Any:
    """An In/NotIn value (always sent as a string) converted to the column's storage."""
    kind = column.type
    try:
        if kind == "string":
            return text.casefold()
        if kind == "guid":
            return str(uuid.UUID(text))
        if kind == "int":
            if not _INT_TEXT.fullmatch(text.strip()):
                raise ValueError(text)
            return int(text)
        if kind == "decimal":
            return float(Decimal(text.strip()))
        if kind == "bool":
            return {"true": 1, "false": 0, "1": 1, "0": 0}[text.strip().lower()]
        if kind == "datetime":
            m = DATETIME_RE.fullmatch(text.strip())
            if m:
                return _iso(datetime_from(m, "PropertyValues", 0))
            return _iso(datetime.combine(date.fromisoformat(text.strip()), datetime.min.time(), UTC))
        return date.fromisoformat(text.strip()).isoformat()
    except (ValueError, KeyError, ArithmeticError, ODataError):
        raise ODataError(f"The value '{text}' in PropertyValues is not a valid {_EDM[kind]} for '{path}'.") from None


class _Compiler:
    def __init__(self, resolve: Callable[[Path], Column]) -> None:
        self.resolve = resolve
        self.params: list[Any] = []

    def expr(self, expr: Expr) -> str:
        if isinstance(expr, And | Or):
            joiner = " AND " if isinstance(expr, And) else " OR "
            return "(" + joiner.join(self.expr(item) for item in expr.items) + ")"
        if isinstance(expr, Not):
            return f"(NOT {self.expr(expr.item)})"
        if isinstance(expr, Compare):
            return self.compare(expr)
        if isinstance(expr, StringFunction):
            return self.like(expr)
        return self.membership(expr)

    def like(self, expr: StringFunction) -> str:
        column = self.resolve(expr.path)
        if column.type != "string":
            raise ODataError(
                f"No function signature for the function with name '{expr.name}' matches the specified arguments. "
                f"The function signatures considered are: {expr.name}(Edm.String Nullable=true, Edm.String "
                f"Nullable=true). ('{expr.path}' is {_EDM[column.type]}.)"
            )
        pattern = {"contains": "%{}%", "startswith": "{}%", "endswith": "%{}"}[expr.name].format(expr.pattern)
        self.params.append(like_pattern_to_regex(pattern))
        sql = column.sql if _SIMPLE_SQL.fullmatch(column.sql) else f"({column.sql})"
        return f"odata_like(?, {sql})"

    def membership(self, expr: Membership) -> str:
        column = self.resolve(expr.path)
        values = [_membership_value(column, expr.path, v) for v in expr.values]
        self.params.extend(values)
        test = f"COALESCE({_operand_sql(column)} IN ({', '.join('?' for _ in values)}), 0)"
        return f"(NOT {test})" if expr.negate else test

    def compare(self, expr: Compare) -> str:
        op, left, right = expr.op, expr.left, expr.right
        if isinstance(left, Path) and isinstance(right, Path):
            return self.columns(op, left, right)
        swapped = isinstance(left, Literal)
        if isinstance(left, Literal) and isinstance(right, Path):
            op, left, right = _FLIPPED[op], right, left
        if not isinstance(left, Path) or not isinstance(right, Literal):
            raise ODataError("A comparison needs a property on at least one side.")
        column = self.resolve(left)
        value = right.value
        sql = column.sql if _SIMPLE_SQL.fullmatch(column.sql) else f"({column.sql})"
        if value is None:
            if op == "eq":
                return f"({sql} IS NULL)"
            if op == "ne":
                return f"({sql} IS NOT NULL)"
            raise ODataError(f"null can only be compared with 'eq' or 'ne' (found '{op}' on '{left}').")
        try:
            stored = _storage_value(column.type, value)
        except TypeError:
            types = [_EDM[column.type], _edm_of(value)]
            first, second = reversed(types) if swapped else types
            raise ODataError(
                "A binary operator with incompatible types was detected. Found operand types "
                f"'{first}' and '{second}' for operator kind '{_OPERATOR_KIND[expr.op]}'. (property '{left}')"
            ) from None
        operand = _operand_sql(column)
        if op in ("eq", "ne"):
            self.params.append(stored)
            return f"({operand} IS {'NOT ' if op == 'ne' else ''}?)"
        if column.type == "datetime" and isinstance(stored, str) and "." in stored:
            # Storage has whole seconds: x > t.5 and x >= t.5 mean x > t; x < t.5 and x <= t.5 mean x <= t.
            stored = stored.split(".")[0] + "Z"
            op = "gt" if op in ("gt", "ge") else "le"
        self.params.append(stored)
        return f"({operand} {_SQL_OPS[op]} ?)"

    def columns(self, op: CompareOp, left: Path, right: Path) -> str:
        a, b = self.resolve(left), self.resolve(right)
        numeric = {"int", "decimal"}
        if a.type != b.type and not (a.type in numeric and b.type in numeric):
            raise ODataError(
                "A binary operator with incompatible types was detected. Found operand types "
                f"'{_EDM[a.type]}' and '{_EDM[b.type]}' for operator kind '{_OPERATOR_KIND[op]}'. "
                f"(properties '{left}' and '{right}')"
            )
        sa, sb = _operand_sql(a), _operand_sql(b)
        if op == "eq":
            return f"COALESCE({sa} = {sb}, 0)"
        if op == "ne":
            return f"(NOT COALESCE({sa} = {sb}, 0))"
        return f"({sa} {_SQL_OPS[op]} {sb})"


def compile_filter(expr: Expr, resolve: Callable[[Path], Column]) -> tuple[str, list[Any]]:
    """An SQLite WHERE fragment for `expr` and its `?` parameters; `resolve` maps paths to columns or raises."""
    compiler = _Compiler(resolve)
    sql = compiler.expr(expr)
    return sql, compiler.params
