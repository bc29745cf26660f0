"""Reads: paging by nextLink, single rows, FetchXML with paging cookies, change tracking with delta links."""

from __future__ import annotations

import uuid
from urllib.parse import parse_qs, quote, unquote, urlsplit

import pytest
import responses

from dataverse.client import DataverseClient, Removed, Upserted
from dataverse.errors import ChangeTrackingTokenExpired, DataverseNotFound
from dataverse.query import Query, eq
from dataverse.tables import table
from tests.conftest import API, FakeSleep, make_client

SKIPTOKEN_2 = "%3Ccookie%20pagenumber=%222%22%20pagingcookie=%22%253ccookie%2520page%253d%25221%2522%253e%22%20/%3E"
NEXT_2 = f"{API}contacts?$select=fullname&$skiptoken={SKIPTOKEN_2}"
NEXT_3 = f"{API}contacts?$select=fullname&$skiptoken=%3Ccookie%20pagenumber=%223%22%20/%3E"


def rows(start: int, n: int) -> list[dict[str, str]]:
    return [{"contactid": str(uuid.UUID(int=i)), "fullname": f"Contact {i}"} for i in range(start, start + n)]


def test_three_pages_are_followed_by_next_link_verbatim_with_the_same_prefer_header(
    client: DataverseClient, mocked: responses.RequestsMock
) -> None:
    mocked.get(f"{API}contacts", json={"value": rows(0, 2), "@odata.nextLink": NEXT_2})
    mocked.get(NEXT_2, json={"value": rows(2, 2), "@odata.nextLink": NEXT_3})
    mocked.get(NEXT_3, json={"value": rows(4, 1)})
    got = list(client.iter_rows(Query("contacts").select("fullname"), page_size=2))
    assert [r["fullname"] for r in got] == [f"Contact {i}" for i in range(5)]
    assert len(mocked.calls) == 3
    assert unquote(mocked.calls[1].request.url) == unquote(NEXT_2)  # not re-encoded, nothing appended
    assert unquote(mocked.calls[2].request.url) == unquote(NEXT_3)
    assert {c.request.headers["Prefer"] for c in mocked.calls} == {"odata.maxpagesize=2"}


def test_pages_are_fetched_lazily_one_at_a_time(client: DataverseClient, mocked: responses.RequestsMock) -> None:
    mocked.get(f"{API}contacts", json={"value": rows(0, 2), "@odata.nextLink": NEXT_2})
    mocked.get(NEXT_2, json={"value": rows(2, 2)})
    pages = client.iter_pages(Query("contacts").select("fullname"))
    first = next(pages)
    assert len(first.rows) == 2 and len(mocked.calls) == 1
    assert first.next_link == NEXT_2


def test_default_page_size_is_5000_and_annotations_are_requested_in_prefer(
    client: DataverseClient, mocked: responses.RequestsMock
) -> None:
    mocked.get(f"{API}contacts", json={"value": [], "@odata.count": 0})
    page = next(client.iter_pages(Query("contacts").count(), annotations=["OData.Community.Display.V1.FormattedValue"]))
    assert page.count == 0
    assert mocked.calls[0].request.headers["Prefer"] == (
        'odata.maxpagesize=5000,odata.include-annotations="OData.Community.Display.V1.FormattedValue"'
    )


def test_the_filter_reaches_the_server_encoded(client: DataverseClient, mocked: responses.RequestsMock) -> None:
    mocked.get(f"{API}contacts", json={"value": []})
    list(client.iter_rows(Query("contacts").where(eq("lastname", "O'Brien"))))
    sent = parse_qs(urlsplit(mocked.calls[0].request.url).query)
    assert sent["$filter"] == ["lastname eq 'O''Brien'"]


def test_page_size_outside_dataverse_limits_is_refused(sleeps: FakeSleep) -> None:
    with pytest.raises(ValueError):
        make_client(sleeps, page_size=5001)


def test_get_one_row_with_select(client: DataverseClient, mocked: responses.RequestsMock) -> None:
    lead_id = uuid.UUID(int=7)
    mocked.get(f"{API}leads({lead_id})", json={"leadid": str(lead_id), "subject": "x", "@odata.etag": 'W/"1"'})
    row = client.get(table("lead"), lead_id, select=["subject"])
    assert row["subject"] == "x"
    assert parse_qs(urlsplit(mocked.calls[0].request.url).query) == {"$select": ["subject"]}


def test_get_a_missing_row_raises_not_found(client: DataverseClient, mocked: responses.RequestsMock) -> None:
    mocked.get(f"{API}leads({uuid.UUID(int=8)})", status=404, json={"error": {"code": "0x80040217", "message": "x"}})
    with pytest.raises(DataverseNotFound):
        client.get(table("lead"), uuid.UUID(int=8))


FETCH = '<fetch mapping="logical"><entity name="account"><attribute name="name" /></entity></fetch>'


def test_fetchxml_pages_with_the_paging_cookie_decoded_twice(
    client: DataverseClient, mocked: responses.RequestsMock
) -> None:
    inner = '<cookie page="1"><accountid last="{A}" first="{B}" /></cookie>'
    annotation = f'<cookie pagenumber="2" pagingcookie="{quote(quote(inner))}" istracking="False" />'
    mocked.get(
        f"{API}accounts",
        json={
            "value": [{"name": "A"}],
            "@Microsoft.Dynamics.CRM.fetchxmlpagingcookie": annotation,
            "@Microsoft.Dynamics.CRM.morerecords": True,
        },
    )
    mocked.get(f"{API}accounts", json={"value": [{"name": "B"}]})
    names = [r["name"] for r in client.iter_fetchxml(table("account"), FETCH, page_size=1)]
    assert names == ["A", "B"]
    first = parse_qs(urlsplit(mocked.calls[0].request.url).query)["fetchXml"][0]
    second = parse_qs(urlsplit(mocked.calls[1].request.url).query)["fetchXml"][0]
    assert 'page="1"' in first and 'count="1"' in first and "paging-cookie" not in first
    assert 'page="2"' in second
    assert 'paging-cookie="&lt;cookie page=&quot;1&quot;&gt;&lt;accountid last=&quot;{A}&quot;' in second
    assert "fetchxmlpagingcookie" in mocked.calls[0].request.headers["Prefer"]


def test_fetchxml_that_is_not_well_formed_is_refused_before_sending(
    client: DataverseClient, mocked: responses.RequestsMock
) -> None:
    with pytest.raises(ValueError, match="well-formed"):
        list(client.iter_fetchxml(table("account"), "<fetch><entity"))
    assert not mocked.calls


DELTA_1 = f"{API}contacts?$select=fullname&$deltatoken=919042%2108%2f22%2f2017%2008%3a10%3a44"
DELTA_2 = f"{API}contacts?$select=fullname&$deltatoken=919100%2108%2f23%2f2017%2008%3a10%3a44"


def test_initial_change_tracking_read_returns_all_rows_and_the_delta_link(
    client: DataverseClient, mocked: responses.RequestsMock
) -> None:
    mocked.get(f"{API}contacts", json={"value": rows(0, 2), "@odata.nextLink": NEXT_2})
    mocked.get(NEXT_2, json={"value": rows(2, 1), "@odata.deltaLink": DELTA_1})
    feed = client.read_changes(Query("contacts").select("fullname"))
    changes = list(feed)
    assert [type(c) for c in changes] == [Upserted] * 3
    assert feed.delta_link == DELTA_1
    assert all("odata.track-changes" in c.request.headers["Prefer"] for c in mocked.calls)


def test_a_delta_read_yields_upserts_and_removals_and_a_new_delta_link(
    client: DataverseClient, mocked: responses.RequestsMock
) -> None:
    gone = uuid.UUID("2e451703-c686-e711-80e5-00155db19e6d")
    mocked.get(
        DELTA_1,
        json={
            "@odata.context": f"{API}$metadata#contacts(fullname)/$delta",
            "value": [
                rows(9, 1)[0],
                {"@odata.context": f"{API}$metadata#contacts/$deletedEntity", "id": str(gone), "reason": "deleted"},
            ],
            "@odata.deltaLink": DELTA_2,
        },
    )
    feed = client.read_changes(DELTA_1)
    assert feed.delta_link is None  # known only once the feed has been read
    changes = list(feed)
    assert changes == [Upserted(rows(9, 1)[0]), Removed(gone, "deleted")]
    assert feed.delta_link == DELTA_2
    assert unquote(mocked.calls[0].request.url) == unquote(DELTA_1)  # percent-escapes may change case only


def test_an_expired_delta_token_raises_a_typed_error(client: DataverseClient, mocked: responses.RequestsMock) -> None:
    mocked.get(
        DELTA_1,
        status=400,
        json={"error": {"code": "0x80044352", "message": "Version stamp associated with the client has expired."}},
    )
    with pytest.raises(ChangeTrackingTokenExpired):
        list(client.read_changes(DELTA_1))


def test_an_expired_token_reported_without_the_code_is_still_recognised(
    client: DataverseClient, mocked: responses.RequestsMock
) -> None:
    mocked.get(DELTA_1, status=400, json={"error": {"code": "0x0", "message": "The delta token has expired."}})
    with pytest.raises(ChangeTrackingTokenExpired):
        list(client.read_changes(DELTA_1))


def test_change_tracking_refuses_filter_and_order_before_sending(
    client: DataverseClient, mocked: responses.RequestsMock
) -> None:
    with pytest.raises(ValueError, match="only \\$select"):
        client.read_changes(Query("contacts").where(eq("statecode", 0)))
    assert not mocked.calls


def test_a_paged_read_refuses_top_because_dataverse_ignores_it_beside_maxpagesize(
    client: DataverseClient, mocked: responses.RequestsMock
) -> None:
    # Learn, "Query data using the Web API" (webapi/query/overview, "Limit the number of rows"): $top is ignored
    # when Prefer: odata.maxpagesize is sent, so the read would not be limited.
    with pytest.raises(ValueError, match=r"ignores \$top"):
        list(client.iter_rows(Query("contacts").select("fullname").top(5)))
    assert not mocked.calls
