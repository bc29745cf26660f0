"""Handlebars personalization (pybars3) for journey emails, activities and leads.

A template sees one variable, `contact`: the contact's columns by logical name (its `attributes`, plus `contactid`
and `parentcustomerid`, the account id), and `contact.contact_account_parentcustomerid.<column>`, the columns of the
contact's account (plus `accountid`), as in Dynamics 365 Marketing's account-based personalization. `if`, `unless`,
`else`, `each` and `with` work; `{{...}}` output is HTML-escaped (`{{{...}}}` is the explicit raw opt-out); a
missing value renders as the empty string.

`compile_template` checks a template when it is loaded, not when it is sent: it must parse, and a path under
`contact` may only follow the `contact_account_parentcustomerid` relation (one hop, then a column). A template is
compiled once per distinct source (cached).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from html import unescape
from typing import Any, Final

from pybars import Compiler

from scoring.records import Account, Contact

__all__ = ["ACCOUNT_RELATION", "Template", "TemplateError", "compile_template", "context_for", "render"]

#: The contact -> account relation a template may follow (the contact's company lookup, parentcustomerid).
ACCOUNT_RELATION: Final = "contact_account_parentcustomerid"
#: Path roots a template may use outside blocks (pybars' own helpers and scope words included).
_ROOTS: Final = frozenset({"contact", "this", "@root", "@index", "@key", "@first", "@last", "lookup", "log"})
_LOCK = threading.Lock()  # pybars' Compiler shares one code builder between instances: compile one at a time
_COMPILER = Compiler()
_CACHE: dict[str, Template] = {}


class TemplateError(ValueError):
    """A template that does not parse or names something the context does not have."""


@dataclass(frozen=True)
class Template:
    """A compiled template; equal (and hashed) by source. `contact_columns`/`account_columns`: the columns it reads."""

    source: str
    contact_columns: frozenset[str] = field(compare=False)
    account_columns: frozenset[str] = field(compare=False)
    _render: Any = field(compare=False, repr=False)


def _paths(node: Any, depth: int) -> Iterator[tuple[list[str], int]]:
    """Every ('path', segments) of the parse tree, with how many scope-changing blocks (each, with) enclose it."""
    if isinstance(node, tuple) and len(node) == 2 and node[0] == "path" and isinstance(node[1], list):
        yield [str(s) for s in node[1] if s], depth
        return
    if isinstance(node, tuple) and node and node[0] == "block":
        _, name, arguments, body, alternative = node
        yield from _paths(arguments, depth)
        inner = depth + 1 if name in ("each", "with") else depth
        yield from _paths(body, inner)
        yield from _paths(alternative, inner)
        return
    if isinstance(node, list | tuple):
        for child in node:
            yield from _paths(child, depth)


def _columns(source: str, tree: Any) -> tuple[frozenset[str], frozenset[str]]:
    contact: set[str] = set()
    account: set[str] = set()
    for found, depth in _paths(tree, 0):
        segments = found
        while segments and segments[0] in ("@_parent", "@@_parent", "@root"):
            segments = segments[1:]
        if not segments:
            continue
        root = segments[0]
        if root != "contact":
            if depth == 0 and root not in _ROOTS:
                raise TemplateError(f"template {source!r}: unknown variable {'.'.join(segments)!r} (use contact.…)")
            continue
        if len(segments) == 2:
            contact.add(segments[1])
        elif len(segments) > 2:
            relation = segments[1]
            if relation != ACCOUNT_RELATION:
                raise TemplateError(
                    f"template {source!r}: unknown relation {relation!r} in {'.'.join(segments)!r}; "
                    f"the only relation is {ACCOUNT_RELATION} (the contact's account)"
                )
            if len(segments) > 3:
                raise TemplateError(f"template {source!r}: {'.'.join(segments)!r} goes past the account's columns")
            account.add(segments[2])
    return frozenset(contact), frozenset(account)


def compile_template(source: str) -> Template:
    """The compiled template of `source` (cached by source); TemplateError when it does not parse or names an
    unknown relation or variable."""
    cached = _CACHE.get(source)
    if cached is not None:
        return cached
    with _LOCK:
        try:
            prepared = _COMPILER.whitespace_control(source)
            grammar = _COMPILER._handlebars(prepared)
            tree, _ = grammar.apply("template")
            if grammar.input.position < len(prepared):  # pybars accepts an unclosed tag and drops the rest
                near = prepared[grammar.input.position : grammar.input.position + 30]
                raise TemplateError(f"template {source!r} does not compile: unclosed or invalid tag near {near!r}")
            function = _COMPILER.compile(source)
        except TemplateError:
            raise
        except Exception as exc:  # PybarsError, or pymeta's own parse errors
            raise TemplateError(f"template {source!r} does not compile: {exc}") from None
    contact_columns, account_columns = _columns(source, tree)
    template = Template(source, contact_columns, account_columns, function)
    _CACHE[source] = template
    return template


def context_for(contact: Contact, account: Account | None) -> dict[str, Any]:
    """The render context of one contact and its account (None when its company is not a known account)."""
    row: dict[str, Any] = dict(contact.attributes)
    row["contactid"] = contact.id
    row["parentcustomerid"] = contact.account_id
    if account is not None:
        row[ACCOUNT_RELATION] = {**dict(account.attributes), "accountid": account.id}
    else:
        row[ACCOUNT_RELATION] = None
    return {"contact": row}


def render(template: Template, contact: Contact, account: Account | None, *, html: bool = True) -> str:
    """The template rendered for `contact` and its `account`: HTML with escaped values, or with `html=False` plain
    text (for subjects and descriptions: the same rendering with entities turned back into characters)."""
    text = str(template._render(context_for(contact, account)))
    return text if html else unescape(text)
