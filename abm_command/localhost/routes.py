"""HTTP routes: ASP.NET-style route templates compiled to regular expressions, ordered and matched as the Functions
host orders and matches them (literal segments before parameters before catch-alls)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote

from abm_command.localhost.indexing import Function, HostConfigError

__all__ = ["Route", "RouteInfo", "compile_routes", "match"]

LOG = logging.getLogger("abm.localhost")

# ASP.NET route constraints the Functions host accepts most often; others match any segment (logged at indexing).
_CONSTRAINTS = {
    "int": r"-?\d+",
    "long": r"-?\d+",
    "alpha": r"[A-Za-z]+",
    "bool": r"(?i:true|false)",
    "guid": r"[0-9A-Fa-f]{8}-?(?:[0-9A-Fa-f]{4}-?){3}[0-9A-Fa-f]{12}",
}
_PARAMETER = re.compile(r"\{(\*{1,2})?([A-Za-z_]\w*)((?::[^{}?=]+)*)(\?)?(?:=([^{}]*))?\}")


@dataclass(frozen=True)
class RouteInfo:
    """One served HTTP route, for listings (never carries a key)."""

    function_name: str
    methods: tuple[str, ...] | None  # None: every method, as when the decorator gives none
    path: str  # with the route prefix, e.g. "/api/items/{id}"
    auth_level: str  # ANONYMOUS, FUNCTION or ADMIN

    def describe(self) -> str:
        methods = ",".join(self.methods) if self.methods else "ANY"
        return f"{methods} {self.path} ({self.auth_level.lower()})"


@dataclass(frozen=True)
class Route:
    """An HTTP function with its route template compiled to a regular expression."""

    function: Function
    info: RouteInfo
    pattern: re.Pattern[str]
    rank: tuple[int, ...]  # literal segments before parameters before catch-alls, as ASP.NET routing orders them

    def allows(self, method: str) -> bool:
        return self.info.methods is None or method in self.info.methods


def _compile_route(template: str, prefix: str) -> tuple[re.Pattern[str], tuple[int, ...], str]:
    """ASP.NET-style template (`items/{id}`, `{id?}`, `{id:int}`, `{*rest}`) -> regex over the path after the
    prefix, a specificity rank and the displayed path."""
    segments = [s for s in template.strip("/").split("/") if s]
    regex, rank, names = "", [], set()
    for index, segment in enumerate(segments):
        pieces, position, kind = [], 0, 0
        for found in _PARAMETER.finditer(segment):
            pieces.append(re.escape(segment[position : found.start()]))
            catch_all, name, constraints, optional, default = found.groups()
            if name.lower() in names:
                raise HostConfigError(f"route {template!r}: parameter {name!r} appears twice")
            names.add(name.lower())
            value = r"[^/]+"
            for constraint in filter(None, constraints.split(":")):
                known = _CONSTRAINTS.get(constraint.split("(")[0].lower())
                if known is None:
                    LOG.warning("route %r: constraint %r is not checked by the local host", template, constraint)
                else:
                    value = known
            if catch_all:
                value, kind = ".*", 4
            else:
                kind = max(kind, 3 if optional or default is not None else 1 if constraints else 2)
            group = f"(?P<{name}>{value})"
            pieces.append(f"{group}?" if optional or default is not None or catch_all else group)
            position = found.end()
        literal = segment[position:]
        if "{" in literal or "}" in literal:
            raise HostConfigError(f"route {template!r}: cannot parse segment {segment!r}")
        pieces.append(re.escape(literal))
        body = "".join(pieces)
        separator = "/" if index else ""
        # an optional or catch-all last segment may be absent together with its slash
        regex += f"(?:{separator}{body})?" if kind >= 3 and index == len(segments) - 1 else separator + body
        rank.append(kind)
    shown = f"/{prefix}/{template.strip('/')}" if prefix else f"/{template.strip('/')}"
    return re.compile(f"^{regex}/?$", re.IGNORECASE), tuple(rank), shown.rstrip("/") or "/"


def _defaults(template: str) -> dict[str, str]:
    """Default values of route parameters (`{page=1}`), used when the segment is absent."""
    return {m.group(2): m.group(5) for m in _PARAMETER.finditer(template) if m.group(5) is not None}


def compile_routes(functions: Iterable[Function], prefix: str) -> list[Route]:
    """The routes of the HTTP functions, most specific first."""
    routes = []
    for function in functions:
        if function.kind != "http":
            continue
        template = str(function.trigger.get("route") or function.name)
        pattern, rank, shown = _compile_route(template, prefix)
        methods = function.trigger.get("methods")
        info = RouteInfo(
            function_name=function.name,
            methods=tuple(str(m).upper() for m in methods) if methods else None,
            path=shown,
            auth_level=str(function.trigger.get("authLevel", "FUNCTION")).upper(),
        )
        routes.append(Route(function, info, pattern, rank))
    return sorted(routes, key=lambda r: r.rank)


def match(routes: Iterable[Route], prefix: str, path: str) -> list[tuple[Route, dict[str, str]]]:
    """Routes matching a request path (most specific first), with URL-decoded route parameters."""
    if prefix:
        head = f"/{prefix}"
        if path.lower() == head.lower():
            rest = ""
        elif path.lower().startswith(head.lower() + "/"):
            rest = path[len(head) + 1 :]
        else:
            return []
    else:
        rest = path.lstrip("/")
    found = []
    for route in routes:
        matched = route.pattern.match(rest)
        if matched:
            params = _defaults(str(route.function.trigger.get("route") or ""))
            params.update({k: unquote(v) for k, v in matched.groupdict().items() if v is not None})
            found.append((route, params))
    return found
