"""FetchXML paging: set `page`, `count` and `paging-cookie` on `<fetch>`, and read the cookie Dataverse returns.

Dataverse returns the cookie inside an annotation, itself an XML fragment
(`<cookie pagenumber="2" pagingcookie="%253ccookie…" istracking="False" />`) whose `pagingcookie` attribute is
URL-encoded twice. The next request carries it, decoded, as the `paging-cookie` attribute of `<fetch>`.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET  # the FetchXML is the service's own definition, not untrusted input
from typing import Any
from urllib.parse import unquote

__all__ = ["next_page", "set_paging"]

COOKIE_ANNOTATION = "@Microsoft.Dynamics.CRM.fetchxmlpagingcookie"
MORE_ANNOTATION = "@Microsoft.Dynamics.CRM.morerecords"


def set_paging(fetch_xml: str, *, page: int, count: int, cookie: str | None) -> str:
    """The FetchXML with this page's paging attributes (any previous ones replaced)."""
    try:
        root = ET.fromstring(fetch_xml)  # noqa: S314
    except ET.ParseError as exc:
        raise ValueError(f"FetchXML is not well-formed: {exc}") from exc
    if root.tag != "fetch":
        raise ValueError("FetchXML must have <fetch> as its root element")
    if root.get("top") is not None:
        raise ValueError("FetchXML with top cannot be paged: use count and page instead")
    root.set("page", str(page))
    root.set("count", str(count))
    if cookie:
        root.set("paging-cookie", cookie)
    else:
        root.attrib.pop("paging-cookie", None)
    return ET.tostring(root, encoding="unicode")


def next_page(body: dict[str, Any]) -> str | None:
    """The decoded paging cookie when Dataverse says more records follow ('' when it gave none), else None."""
    if not body.get(MORE_ANNOTATION):
        return None
    annotation = body.get(COOKIE_ANNOTATION)
    if not annotation:
        return ""
    try:
        element = ET.fromstring(annotation)  # noqa: S314
    except ET.ParseError as exc:
        raise ValueError("Dataverse returned a paging cookie that is not XML") from exc
    return unquote(unquote(element.get("pagingcookie", "")))
