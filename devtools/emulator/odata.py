"""OData query options for the emulator: `$filter`, `$select`, `$orderby`, `$expand` parsed to an AST.

`parse_filter` is a tokenizer plus a recursive-descent parser (precedence `not` > `and` > `or`, comparisons bind
tighter than all three). It accepts what `dataverse.query` produces and what Dataverse documents: quoted strings
with `''`, unquoted GUIDs, datetimes (`Z` or an offset, converted to UTC) and dates, lookup paths (`a/b/c`),
`contains`/`startswith`/`endswith`, `Microsoft.Dynamics.CRM.In`/`NotIn` inline or through parameter aliases (an alias
the URL does not supply is null, as Learn's "Use OData to query data" says). The other documented Dataverse query
functions (`Between`, `LastXDays`, ...) are refused with a 400 naming the function; `$expand` takes `nav/$ref`.

`filter_sql.compile_filter` turns the AST into SQL for the emulator's store.
"""

from __future__ import annotations

import json
import re
import typing
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from types import MappingProxyType
from typing import Any

__all__ = [
    "DATETIME_RE",
    "And",
    "Column",
    "ColumnType",
    "Compare",
    "CompareOp",
    "ExpandItem",
    "Expr",
    "Literal",
    "LiteralValue",
    "Membership",
    "Not",
    "ODataError",
    "Or",
    "Path",
    "StringFunction",
    "datetime_from",
    "parse_expand",
    "parse_filter",
    "parse_orderby",
    "parse_select",
    "unknown_property",
]

CompareOp = typing.Literal["eq", "ne", "gt", "ge", "lt", "le"]
LikeFunction = typing.Literal["contains", "startswith", "endswith"]
ColumnType = typing.Literal["string", "guid", "int", "decimal", "bool", "datetime", "date"]
LiteralValue: typing.TypeAlias = bool | int | Decimal | str | uuid.UUID | datetime | date | None

DEFAULT_CODE = "0x80060888"
UNKNOWN_PROPERTY_CODE = "0x0"  # Learn, "Troubleshoot Dataverse Web API client errors": `$select=Name` answers code 0x0
MAX_DEPTH = 100


class ODataError(ValueError):
    """A query option Dataverse would refuse with 400; `code` is the Dataverse hex error code."""

    def __init__(self, message: str, code: str = DEFAULT_CODE) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def unknown_property(name: str, logical_name: str) -> ODataError:
    """Dataverse's error for a property the table doesn't have, worded and coded as Learn documents it for `$select`."""
    return ODataError(
        f"Could not find a property named '{name}' on type 'Microsoft.Dynamics.CRM.{logical_name}'.",
        UNKNOWN_PROPERTY_CODE,
    )


def _syntax(source: str, pos: int, detail: str) -> ODataError:
    return ODataError(f"Syntax error at position {pos} in '{source}': {detail}")


# ---------------------------------------------------------------------------------------------------------------- AST


@dataclass(frozen=True)
class Path:
    """A property, or a lookup path across single-valued navigation properties (`primarycontactid/fullname`)."""

    segments: tuple[str, ...]

    def __str__(self) -> str:
        return "/".join(self.segments)


@dataclass(frozen=True)
class Literal:
    """A constant: None, bool, int, Decimal, str, UUID, aware UTC datetime or date."""

    value: LiteralValue


@dataclass(frozen=True)
class Compare:
    """`left op right`; at least one side is a Path when produced by the parser."""

    op: CompareOp
    left: Path | Literal
    right: Path | Literal


@dataclass(frozen=True)
class And:
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Not:
    item: Expr


@dataclass(frozen=True)
class StringFunction:
    """`contains`/`startswith`/`endswith(path,'pattern')`; the pattern's T-SQL LIKE wildcards are active."""

    name: LikeFunction
    path: Path
    pattern: str


@dataclass(frozen=True)
class Membership:
    """`Microsoft.Dynamics.CRM.In` (or `NotIn` when `negate`) with the values as the strings sent."""

    path: Path
    values: tuple[str, ...]
    negate: bool


Expr: typing.TypeAlias = Compare | And | Or | Not | StringFunction | Membership


@dataclass(frozen=True)
class ExpandItem:
    """`navigation($select=...;$expand=...)`, or `navigation/$ref` (`ref`: only a reference to the related row)."""

    navigation: str
    select: tuple[str, ...] = ()
    expand: tuple[ExpandItem, ...] = ()
    ref: bool = False


@dataclass(frozen=True)
class Column:
    """What `resolve` returns for a path: an SQL expression (parenthesize subqueries) and its type."""

    sql: str
    type: ColumnType


# ---------------------------------------------------------------------------------------------------------- tokenizer

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_NAME_RE = re.compile(_NAME)
_IDENT_RE = re.compile(rf"{_NAME}(?:\.{_NAME})*")
_ALIAS_RE = re.compile(rf"@{_NAME}")
DATETIME_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,12}))?)?(Z|[+-]\d{2}:\d{2})?(?![\w.:+-])"
)
_GUID_RE = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}(?![\w-])")
_DATE_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?![\w.:-])")
_NUMBER_RE = re.compile(r"-?\d+(\.\d+)?([eE][+-]?\d+)?(?![\w.])")
_WORD_RE = re.compile(r"[^\s(),=]+")
_PUNCTUATION = "(),/=:"

_COMPARE_OPS: frozenset[str] = frozenset(("eq", "ne", "gt", "ge", "lt", "le"))
_UNSUPPORTED_OPS: frozenset[str] = frozenset(("has", "in", "add", "sub", "mul", "div", "divby", "mod"))
_KEYWORDS: frozenset[str] = _COMPARE_OPS | _UNSUPPORTED_OPS | {"and", "or", "not"}
_LIKE_FUNCTIONS: frozenset[str] = frozenset(("contains", "startswith", "endswith"))
_CRM = "Microsoft.Dynamics.CRM."
# The Dataverse query functions Learn lists ("Filter rows using OData"); only In and NotIn are implemented.
QUERY_FUNCTIONS: frozenset[str] = frozenset(
    _CRM + name
    for name in (
        "InFiscalPeriod",
        "InFiscalPeriodAndYear",
        "InFiscalYear",
        "InOrAfterFiscalPeriodAndYear",
        "InOrBeforeFiscalPeriodAndYear",
        "Last7Days",
        "LastFiscalPeriod",
        "LastFiscalYear",
        "LastMonth",
        "LastWeek",
        "LastXDays",
        "LastXFiscalPeriods",
        "LastXFiscalYears",
        "LastXHours",
        "LastXMonths",
        "LastXWeeks",
        "LastXYears",
        "LastYear",
        "Next7Days",
        "NextFiscalPeriod",
        "NextFiscalYear",
        "NextMonth",
        "NextWeek",
        "NextXDays",
        "NextXFiscalPeriods",
        "NextXFiscalYears",
        "NextXHours",
        "NextXMonths",
        "NextXWeeks",
        "NextXYears",
        "NextYear",
        "OlderThanXDays",
        "OlderThanXHours",
        "OlderThanXMinutes",
        "OlderThanXMonths",
        "OlderThanXWeeks",
        "OlderThanXYears",
        "On",
        "OnOrAfter",
        "OnOrBefore",
        "ThisFiscalPeriod",
        "ThisFiscalYear",
        "ThisMonth",
        "ThisWeek",
        "ThisYear",
        "Today",
        "Tomorrow",
        "Yesterday",
        "EqualBusinessId",
        "EqualUserId",
        "NotEqualBusinessId",
        "NotEqualUserId",
        "Above",
        "AboveOrEqual",
        "EqualUserOrUserHierarchy",
        "EqualUserOrUserHierarchyAndTeams",
        "EqualUserOrUserTeams",
        "EqualUserTeams",
        "NotUnder",
        "Under",
        "UnderOrEqual",
        "ContainValues",
        "DoesNotContainValues",
        "Between",
        "NotBetween",
        "In",
        "NotIn",
        "EqualUserLanguage",
        "Contains",
    )
)
_INT64 = 2**63

TokenKind = typing.Literal["literal", "ident", "alias", "json", "punct", "eof"]


@dataclass(frozen=True)
class _Token:
    kind: TokenKind
    text: str
    pos: int
    value: Any = None

    def is_punct(self, text: str) -> bool:
        return self.kind == "punct" and self.text == text

    def describe(self) -> str:
        return "end of input" if self.kind == "eof" else f"'{self.text}'"


def datetime_from(match: re.Match[str], source: str, pos: int) -> datetime:
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    if offset is None:
        raise _syntax(source, pos, f"datetime literal '{match.group()}' needs 'Z' or a UTC offset")
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    try:
        tz = UTC
        if offset != "Z":
            hours, minutes = int(offset[1:3]), int(offset[4:6])
            if hours > 23 or minutes > 59:
                raise ValueError("offset out of range")
            delta = timedelta(hours=hours, minutes=minutes)
            tz = timezone(delta if offset[0] == "+" else -delta)
        value = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second or 0), micro, tzinfo=tz)
    except ValueError:
        raise _syntax(source, pos, f"'{match.group()}' is not a valid datetime") from None
    return value.astimezone(UTC)


def _number(text: str) -> int | Decimal:
    if "." in text or "e" in text or "E" in text:
        return Decimal(text)
    value = int(text)
    return value if -_INT64 <= value < _INT64 else Decimal(value)


def _string_literal(text: str, pos: int, source: str) -> _Token:
    """The quoted string starting at `pos`, with `''` standing for one quote."""
    chunks: list[str] = []
    i = pos + 1
    while True:
        close = text.find("'", i)
        if close < 0:
            raise _syntax(source, pos, "unterminated string literal")
        chunks.append(text[i:close])
        if not text.startswith("''", close):
            return _Token("literal", text[pos : close + 1], pos, "".join(chunks))
        chunks.append("'")
        i = close + 2


def _bare_literal(text: str, pos: int, source: str) -> _Token | None:
    """An unquoted literal at `pos` (datetime, GUID, date, number), or None."""
    literal: LiteralValue
    if m := DATETIME_RE.match(text, pos):
        literal = datetime_from(m, source, pos)
    elif m := _GUID_RE.match(text, pos):
        literal = uuid.UUID(m.group())
    elif m := _DATE_RE.match(text, pos):
        try:
            literal = date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        except ValueError:
            raise _syntax(source, pos, f"'{m.group()}' is not a valid date") from None
    elif m := _NUMBER_RE.match(text, pos):
        literal = _number(m.group())
    else:
        return None
    return _Token("literal", m.group(), pos, literal)


def _tokenize(text: str, source: str) -> list[_Token]:
    """Split an expression into tokens; literals carry their Python value."""
    tokens: list[_Token] = []
    pos, end = 0, len(text)
    while pos < end:
        ch = text[pos]
        token: _Token | None
        if ch.isspace():
            pos += 1
            continue
        if ch == "'":
            token = _string_literal(text, pos, source)
        elif ch in _PUNCTUATION:
            token = _Token("punct", ch, pos)
        elif ch == "[":
            try:
                array, stop = json.JSONDecoder().raw_decode(text, pos)
            except json.JSONDecodeError as exc:
                raise _syntax(source, exc.pos, f"invalid JSON array: {exc.msg}") from None
            except RecursionError:
                raise _syntax(source, pos, "JSON array nested too deeply") from None
            token = _Token("json", text[pos:stop], pos, array)
        elif ch == "@":
            if not (m := _ALIAS_RE.match(text, pos)):
                raise _syntax(source, pos, "'@' must start a parameter alias such as '@p1'")
            token = _Token("alias", m.group(), pos)
        elif (token := _bare_literal(text, pos, source)) is None:
            if not (m := _IDENT_RE.match(text, pos)):
                word = _WORD_RE.match(text, pos)
                raise _syntax(source, pos, f"unrecognized '{word.group() if word else ch}'")
            token = _Token("ident", m.group(), pos)
        tokens.append(token)
        pos += len(token.text)
    tokens.append(_Token("eof", "", end))
    return tokens


# ------------------------------------------------------------------------------------------------------------- parser

_NO_ALIASES: Mapping[str, str] = MappingProxyType({})
_AliasValue = Literal | Path | list[Any]


def _alias_value(name: str, aliases: Mapping[str, str]) -> _AliasValue:
    """The value of `@name`: a literal, a property path or a JSON array."""
    text = aliases.get(name, aliases.get(name[1:]))
    if text is None:
        return Literal(None)  # "If the alias isn't assigned a value, it's assumed to be null." (Learn)
    tokens = _tokenize(text, name)
    first = tokens[0]
    if first.kind == "eof":
        raise _syntax(name, 0, "empty parameter alias value")
    value: _AliasValue
    if first.kind == "json":
        value, rest = first.value, 1
    elif first.kind in ("literal", "ident"):
        parser = _Parser(tokens, name, _NO_ALIASES)
        value = parser.value()
        rest = parser.index
    else:
        raise _syntax(name, first.pos, f"expected a literal or a property, found {first.describe()}")
    if tokens[rest].kind != "eof":
        raise _syntax(name, tokens[rest].pos, f"unexpected {tokens[rest].describe()} after the value")
    return value


def _literal_of(token: _Token) -> Literal:
    value: LiteralValue = token.value
    return Literal(value)


class _Parser:
    """Recursive descent over a token list; `source` names the option in error messages."""

    def __init__(self, tokens: list[_Token], source: str, aliases: Mapping[str, str]) -> None:
        self.tokens = tokens
        self.source = source
        self.aliases = aliases
        self.index = 0
        self.depth = 0

    def peek(self, offset: int = 0) -> _Token:
        return self.tokens[min(self.index + offset, len(self.tokens) - 1)]

    def next(self) -> _Token:
        token = self.peek()
        self.index = min(self.index + 1, len(self.tokens) - 1)
        return token

    def error(self, token: _Token, detail: str) -> ODataError:
        return _syntax(self.source, token.pos, detail)

    def expect(self, punct: str) -> _Token:
        token = self.next()
        if not token.is_punct(punct):
            raise self.error(token, f"expected '{punct}', found {token.describe()}")
        return token

    def at_word(self, word: str) -> bool:
        token = self.peek()
        return token.kind == "ident" and token.text == word

    def at_punct(self, punct: str) -> bool:
        return self.peek().is_punct(punct)

    def nest(self, token: _Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(token, f"expression nested more than {MAX_DEPTH} levels deep")

    # expression := or ; or := and ('or' and)* ; and := unary ('and' unary)* ; unary := 'not' unary | comparison

    def parse(self) -> Expr:
        if self.peek().kind == "eof":
            raise self.error(self.peek(), "empty expression")
        expr = self.or_()
        token = self.peek()
        if token.kind != "eof":
            raise self.error(token, f"expected 'and', 'or' or end of input, found {token.describe()}")
        return expr

    def or_(self) -> Expr:
        items = [self.and_()]
        while self.at_word("or"):
            self.next()
            items.append(self.and_())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def and_(self) -> Expr:
        items = [self.unary()]
        while self.at_word("and"):
            self.next()
            items.append(self.unary())
        return items[0] if len(items) == 1 else And(tuple(items))

    def unary(self) -> Expr:
        if self.at_word("not"):
            token = self.next()
            self.nest(token)
            item = self.unary()
            self.depth -= 1
            return Not(item)
        return self.comparison()

    def comparison(self) -> Expr:
        token = self.peek()
        if token.is_punct("("):
            self.next()
            self.nest(token)
            expr = self.or_()
            self.depth -= 1
            self.expect(")")
            return expr
        if token.kind == "ident" and token.text not in _KEYWORDS and self.peek(1).is_punct("("):
            return self.function(self.next())
        left = self.value()
        op = self.next()
        if op.kind != "ident" or op.text not in _COMPARE_OPS:
            if op.kind == "ident" and op.text in _UNSUPPORTED_OPS:
                raise self.error(op, f"the operator '{op.text}' is not supported")
            raise self.error(op, f"expected a comparison operator (eq, ne, gt, ge, lt, le), found {op.describe()}")
        right = self.value()
        if isinstance(left, Literal) and isinstance(right, Literal):
            raise self.error(token, "a comparison needs a property on at least one side")
        return Compare(typing.cast(CompareOp, op.text), left, right)

    def value(self) -> Path | Literal:
        token = self.next()
        if token.kind == "literal":
            return _literal_of(token)
        if token.kind == "alias":
            value = _alias_value(token.text, self.aliases)
            if isinstance(value, list):
                raise self.error(token, f"the JSON array in '{token.text}' can only be a PropertyValues argument")
            return value
        if token.kind == "ident" and token.text not in _KEYWORDS:
            if token.text in ("true", "false"):
                return Literal(token.text == "true")
            if token.text == "null":
                return Literal(None)
            return self.path(token)
        raise self.error(token, f"expected a property or a literal, found {token.describe()}")

    def path(self, first: _Token) -> Path:
        segments = [self.segment(first)]
        while self.at_punct("/"):
            self.next()
            token = self.next()
            if token.kind != "ident":
                raise self.error(token, f"expected a property name after '/', found {token.describe()}")
            if token.text in ("any", "all") and self.at_punct("("):
                raise ODataError(
                    f"The lambda operator '{token.text}' at position {token.pos} in '{self.source}' is not supported "
                    "by the emulator."
                )
            segments.append(self.segment(token))
        if self.at_punct("("):
            raise self.error(self.peek(), f"unexpected '(' after '{'/'.join(segments)}'")
        return Path(tuple(segments))

    def segment(self, token: _Token) -> str:
        if token.kind != "ident" or not _NAME_RE.fullmatch(token.text):
            raise self.error(token, f"'{token.text}' is not a property name (type casts are not supported)")
        return token.text

    def function(self, name: _Token) -> Expr:
        self.expect("(")
        if name.text in _LIKE_FUNCTIONS:
            target = self.value()
            if not isinstance(target, Path):
                raise self.error(name, f"the first argument of {name.text}() must be a property")
            self.expect(",")
            pattern_token = self.peek()
            pattern = self.value()
            if not isinstance(pattern, Literal) or not isinstance(pattern.value, str):
                raise self.error(pattern_token, f"the second argument of {name.text}() must be a string literal")
            self.expect(")")
            return StringFunction(typing.cast(LikeFunction, name.text), target, pattern.value)
        if name.text in (_CRM + "In", _CRM + "NotIn"):
            return self.membership(name)
        if name.text in QUERY_FUNCTIONS:
            raise ODataError(
                f"The Dataverse query function '{name.text}' at position {name.pos} in '{self.source}' is not "
                "supported by the emulator (only In and NotIn are)."
            )
        raise ODataError(
            f"An unknown function with name '{name.text}' was found. This may also be a function import or a key "
            f"lookup on a navigation property, which is not allowed. (position {name.pos} in '{self.source}')"
        )

    def membership(self, name: _Token) -> Membership:
        args: dict[str, tuple[_Token, _AliasValue]] = {}
        while True:
            key = self.next()
            if key.kind != "ident" or key.text not in ("PropertyName", "PropertyValues"):
                raise self.error(key, f"expected PropertyName or PropertyValues, found {key.describe()}")
            if key.text in args:
                raise self.error(key, f"{key.text} is given twice")
            self.expect("=")
            token = self.next()
            value: _AliasValue
            if token.kind == "alias":
                value = _alias_value(token.text, self.aliases)
            elif token.kind == "json":
                value = typing.cast(list[Any], token.value)
            elif token.kind == "literal":
                value = _literal_of(token)
            else:
                raise self.error(token, f"expected a value for {key.text}, found {token.describe()}")
            args[key.text] = (token, value)
            if self.at_punct(","):
                self.next()
                continue
            self.expect(")")
            break
        for required in ("PropertyName", "PropertyValues"):
            if required not in args:
                raise self.error(name, f"{name.text} needs {required}")
        name_token, property_name = args["PropertyName"]
        if not isinstance(property_name, Literal) or not isinstance(property_name.value, str):
            raise self.error(name_token, "PropertyName must be a string literal naming the column, e.g. 'lastname'")
        segments = tuple(property_name.value.split("/"))
        if not all(_NAME_RE.fullmatch(s) for s in segments):
            raise self.error(name_token, f"'{property_name.value}' is not a property name")
        values_token, values = args["PropertyValues"]
        if not isinstance(values, list):
            raise self.error(values_token, 'PropertyValues must be a JSON array of strings, e.g. ["a","b"]')
        if not values:
            raise self.error(values_token, "PropertyValues must not be empty")
        if not all(isinstance(v, str) for v in values):
            raise self.error(values_token, 'PropertyValues must be a JSON array of strings, e.g. ["1","2"]')
        return Membership(Path(segments), tuple(values), negate=name.text.endswith("NotIn"))


def parse_filter(text: str, aliases: Mapping[str, str] = _NO_ALIASES) -> Expr:
    """Parse `$filter`; `aliases` maps `@p1` (or `p1`) to the alias's raw value text."""
    return _Parser(_tokenize(text, "$filter"), "$filter", aliases).parse()


def _names(text: str, source: str, offset: int = 0) -> tuple[str, ...]:
    names: list[str] = []
    pos = 0
    for item in text.split(","):
        name = item.strip()
        if not _NAME_RE.fullmatch(name):
            where = offset + pos + (len(item) - len(item.lstrip()))
            shown = f"'{name}' is not a property name" if name else "expected a property name"
            raise _syntax(source, where, shown)
        names.append(name)
        pos += len(item) + 1
    return tuple(names)


def parse_select(text: str) -> tuple[str, ...]:
    """`$select=a,b` → `("a", "b")`; only plain property names."""
    return _names(text, "$select")


_ORDER_ITEM = re.compile(r"(\S+?)(?:\s+(asc|desc))?")


def parse_orderby(text: str, aliases: Mapping[str, str] = _NO_ALIASES) -> tuple[tuple[Path, bool], ...]:
    """`$orderby=a desc,b/c` → `((Path(("a",)), True), (Path(("b", "c")), False))`; the bool means descending."""
    result: list[tuple[Path, bool]] = []
    pos = 0
    for item in text.split(","):
        where = pos + (len(item) - len(item.lstrip()))
        m = _ORDER_ITEM.fullmatch(item.strip())
        if not m:
            raise _syntax("$orderby", where, "expected 'property [asc|desc]'")
        name = m.group(1)
        if name.startswith("@"):
            value = _alias_value(name, aliases)
            if not isinstance(value, Path):
                raise _syntax("$orderby", where, f"'{name}' must hold a property name")
            path = value
        else:
            segments = tuple(name.split("/"))
            if not all(_NAME_RE.fullmatch(s) for s in segments):
                raise _syntax("$orderby", where, f"'{name}' is not a property name")
            path = Path(segments)
        result.append((path, m.group(2) == "desc"))
        pos += len(item) + 1
    return tuple(result)


_EXPAND_OPTION = re.compile(r"\$[A-Za-z]+=")
_EXPAND_SELECT = re.compile(r"[^;)]*")
MAX_EXPAND_DEPTH = 10


class _ExpandParser:
    """`nav($select=a,b;$expand=other($select=c)),nav2`."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def error(self, detail: str, pos: int | None = None) -> ODataError:
        return _syntax("$expand", self.pos if pos is None else pos, detail)

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def at(self, ch: str) -> bool:
        self.skip_space()
        return self.text.startswith(ch, self.pos)

    def items(self, depth: int) -> tuple[ExpandItem, ...]:
        if depth > MAX_EXPAND_DEPTH:
            raise self.error(f"$expand nested more than {MAX_EXPAND_DEPTH} levels deep")
        items = [self.item(depth)]
        while self.at(","):
            self.pos += 1
            items.append(self.item(depth))
        return tuple(items)

    def item(self, depth: int) -> ExpandItem:
        """`nav`, `nav(options)` or `nav/$ref` (a reference takes no options)."""
        self.skip_space()
        m = _NAME_RE.match(self.text, self.pos)
        if not m:
            raise self.error("expected a navigation property name")
        self.pos = m.end()
        if self.at("/$ref"):
            self.pos += len("/$ref")
            if self.at("("):
                raise self.error("'/$ref' takes no query options")
            return ExpandItem(m.group(), ref=True)
        if not self.at("("):
            return ExpandItem(m.group())
        self.pos += 1
        return ExpandItem(m.group(), *self.options(depth))

    def options(self, depth: int) -> tuple[tuple[str, ...], tuple[ExpandItem, ...]]:
        """The `$select` and nested `$expand` between an expanded property's parentheses (the `(` is consumed)."""
        select: tuple[str, ...] = ()
        expand: tuple[ExpandItem, ...] = ()
        seen: set[str] = set()
        while True:
            self.skip_space()
            start = self.pos
            option = _EXPAND_OPTION.match(self.text, self.pos)
            if not option:
                raise self.error("expected a query option such as '$select='")
            name = option.group()[:-1]
            if name in seen:
                raise self.error(f"'{name}' is given twice", start)
            seen.add(name)
            self.pos = option.end()
            if name == "$select":
                value = _EXPAND_SELECT.match(self.text, self.pos)
                assert value is not None  # `*` always matches
                select = _names(value.group(), "$expand", self.pos)
                self.pos = value.end()
            elif name == "$expand":
                expand = self.items(depth + 1)
            elif name in ("$filter", "$orderby", "$top"):
                raise ODataError(
                    f"The query option '{name}' inside '$expand' (position {start}) is supported only for "
                    "collection-valued navigation properties, which the emulator does not expand."
                )
            else:
                raise ODataError(f"The query option '{name}' is not supported inside '$expand' (position {start}).")
            if self.at(";"):
                self.pos += 1
                continue
            if self.at(")"):
                self.pos += 1
                return select, expand
            raise self.error("expected ';' or ')'")

    def parse(self) -> tuple[ExpandItem, ...]:
        items = self.items(0)
        self.skip_space()
        if self.pos != len(self.text):
            raise self.error(f"unexpected '{self.text[self.pos]}'")
        return items


def parse_expand(text: str) -> tuple[ExpandItem, ...]:
    """Parse `$expand` with nested `$select`/`$expand` options."""
    return _ExpandParser(text).parse()
