"""The Dataverse Web API client: reads (paged, FetchXML, change tracking), writes (single, bulk, `$batch`), actions.

Everything goes through one `Transport` (headers, token, retries, limits, error mapping). Reads are generators
whose memory is bounded by one page; bulk writes are chunked (default 1,000 targets per request) and the chunks run
in parallel up to the transport's cap. Creates are retried only when they are idempotent: with a client-assigned id,
where a duplicate-key answer to a retry means the first attempt succeeded.

>>> client = DataverseClient(TransportConfig(org_url="https://org.crm.dynamics.com"), NoAuth())
>>> client.api_url
'https://org.crm.dynamics.com/api/data/v9.2/'
"""

from __future__ import annotations

import itertools
import logging
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import requests

from dataverse.auth import NoAuth, TokenProvider
from dataverse.batch import BatchRequest, ChangeSet, ItemOutcome, decode_batch, encode_batch, match
from dataverse.errors import (
    DataverseDuplicate,
    DataverseError,
    DataverseNotFound,
)
from dataverse.fetchxml import next_page, set_paging
from dataverse.pages import ChangeFeed, Page, Removed, Upserted
from dataverse.query import Query, encode_options, literal
from dataverse.tables import Table, entity_id_in, row_path, table
from dataverse.transport import RequestStats, Transport, TransportConfig, TransportPort, json_default

__all__ = ["ChangeFeed", "DataverseClient", "Page", "Removed", "Upserted", "WhoAmI", "entity_id_from"]

log = logging.getLogger("dataverse")
_ANNOTATIONS_FETCH = "Microsoft.Dynamics.CRM.fetchxmlpagingcookie,Microsoft.Dynamics.CRM.morerecords"


@dataclass(frozen=True)
class WhoAmI:
    """The calling user as Dataverse sees it: the application user, for a production app registration."""

    user_id: uuid.UUID
    business_unit_id: uuid.UUID
    organization_id: uuid.UUID


def entity_id_from(response: requests.Response) -> uuid.UUID:
    """The id of a created row, from the `OData-EntityId` header (`…/leads(<guid>)`)."""
    found = entity_id_in(response.headers)
    if found is None:
        raise DataverseError("Dataverse created the row but did not say its id", status=response.status_code)
    return found


def _once(seen: dict[str, int], operation: str, index: int, key: str) -> None:
    """Refuse a second record for one key in a bulk write: Dataverse fails UpsertMultiple as a whole and applies only
    the first of them in UpdateMultiple, so it is always a caller bug."""
    first = seen.setdefault(key, index)
    if first != index:
        raise ValueError(f"{operation}: records {first} and {index} address the same row ({key})")


def _resent_on_duplicate(send: Callable[[], Any]) -> None:
    """Run an upsert; on a duplicate-key answer (a concurrent writer created the row between Dataverse's lookup and
    its insert: DuplicateRecordEntityKey) run it once more, when it finds the row and updates it."""
    try:
        send()
    except DataverseDuplicate:
        log.info("an upsert met a row created concurrently; sending it again")
        send()


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


class DataverseClient:
    """Typed operations on the Dataverse Web API. Build one per process and share it (pooled connections)."""

    def __init__(
        self,
        config: TransportConfig,
        auth: TokenProvider | None = None,
        *,
        page_size: int = 5000,
        bulk_chunk_size: int = 1000,
        transport: TransportPort | None = None,
    ) -> None:
        if not 1 <= page_size <= 5000:
            raise ValueError("page_size must be between 1 and 5,000 (Dataverse's maximum)")
        if bulk_chunk_size < 1:
            raise ValueError("bulk_chunk_size must be at least 1")
        self.transport: TransportPort = transport or Transport(config, auth or NoAuth())
        self.page_size = page_size
        self.bulk_chunk_size = bulk_chunk_size

    @property
    def api_url(self) -> str:
        return self.transport.config.api_url

    @property
    def stats(self) -> RequestStats:
        return self.transport.stats

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> DataverseClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- reads ---------------------------------------------------------------------------------------------------

    def _prefer(self, page_size: int | None, annotations: Sequence[str], track: bool = False) -> dict[str, str]:
        prefs = [f"odata.maxpagesize={page_size or self.page_size}"]
        if annotations:
            prefs.append(f'odata.include-annotations="{",".join(annotations)}"')
        if track:
            prefs.append("odata.track-changes")
        return {"Prefer": ",".join(prefs)}

    def iter_pages(
        self,
        query: Query | str,
        *,
        page_size: int | None = None,
        annotations: Sequence[str] = (),
        track_changes: bool = False,
    ) -> Iterator[Page]:
        """Pages of a read, following `@odata.nextLink` verbatim; one page in memory at a time.

        `query` is a `Query` or a link Dataverse gave (a next or delta link). The same `Prefer` header goes with
        every page, as Dataverse requires. A `Query` with `top` is refused: Dataverse ignores `$top` beside
        `odata.maxpagesize`, so the rows would silently not be limited.
        """
        if isinstance(query, Query) and query.top_n is not None:
            raise ValueError(
                "Dataverse ignores $top when odata.maxpagesize is sent: page through the rows and stop early instead"
            )
        headers = self._prefer(page_size, annotations, track_changes)
        link: str | None = query.to_path() if isinstance(query, Query) else query
        while link:
            response = self.transport.send("GET", link, headers=headers)
            assert response is not None
            body = response.json()
            page = Page(
                rows=list(body.get("value", [])),
                next_link=body.get("@odata.nextLink"),
                delta_link=body.get("@odata.deltaLink"),
                count=body.get("@odata.count"),
            )
            yield page
            link = page.next_link

    def iter_rows(
        self, query: Query | str, *, page_size: int | None = None, annotations: Sequence[str] = ()
    ) -> Iterator[dict[str, Any]]:
        """Every row of a read, page after page."""
        for page in self.iter_pages(query, page_size=page_size, annotations=annotations):
            yield from page.rows

    def get(self, table: Table, id: uuid.UUID, *, select: Sequence[str] = ()) -> dict[str, Any]:
        """One row by id; `DataverseNotFound` when it does not exist."""
        path = f"{table.entity_set}({id})"
        if select:
            path += "?" + encode_options([("$select", ",".join(select))])
        response = self.transport.send("GET", path)
        assert response is not None
        result: dict[str, Any] = response.json()
        return result

    def iter_fetchxml(self, table: Table, fetch_xml: str, *, page_size: int | None = None) -> Iterator[dict[str, Any]]:
        """Rows of a FetchXML query, paged with the paging cookie (`<fetch page= count= paging-cookie=>`)."""
        headers = {"Prefer": f'odata.include-annotations="{_ANNOTATIONS_FETCH}"'}
        page, cookie = 1, None
        while True:
            xml = set_paging(fetch_xml, page=page, count=page_size or self.page_size, cookie=cookie)
            path = f"{table.entity_set}?" + encode_options([("fetchXml", xml)])
            response = self.transport.send("GET", path, headers=headers)
            assert response is not None
            body = response.json()
            yield from body.get("value", [])
            more = next_page(body)
            if more is None:
                return
            page, cookie = page + 1, more

    def read_changes(
        self, source: Query | str, *, page_size: int | None = None, annotations: Sequence[str] = ()
    ) -> ChangeFeed:
        """A change-tracking read: the initial full read from a `Query`, or the changes since a stored delta link.

        Dataverse refuses `$filter`, `$orderby`, `$expand` and `$top` with change tracking; they are refused here
        before any request is sent.
        """
        if isinstance(source, Query) and (source.filter or source.order or source.expands or source.top_n):
            raise ValueError("change tracking allows only $select: filter, order and expand on the client side")

        return ChangeFeed(
            lambda: self.iter_pages(source, page_size=page_size, annotations=annotations, track_changes=True),
            from_delta_link=isinstance(source, str),
        )

    # ---- single-row writes -------------------------------------------------------------------------------------

    def create(self, table: Table, record: Mapping[str, Any], *, id: uuid.UUID | None = None) -> uuid.UUID:
        """Create a row and return its id. With `id` the create is idempotent and therefore retried: a duplicate-key
        answer to a retry means the first attempt went through. Without `id` it is retried only when it surely did
        not run (429, or no connection)."""
        body = dict(record)
        if id is not None:
            body[table.primary_key] = str(id)
        response = self.transport.send(
            "POST",
            table.entity_set,
            json=body,
            idempotent=id is not None,
            done_on_retry=(lambda exc: isinstance(exc, DataverseDuplicate)) if id is not None else None,
        )
        if response is None:
            assert id is not None
            return id
        return id if id is not None else entity_id_from(response)

    def update(self, table: Table, id: uuid.UUID, changes: Mapping[str, Any], *, etag: str | None = None) -> None:
        """Update only (never creates): `If-Match: *`, or the row's ETag for optimistic concurrency (412 on change)."""
        self.transport.send("PATCH", f"{table.entity_set}({id})", json=dict(changes), headers={"If-Match": etag or "*"})

    def upsert(self, table: Table, key: uuid.UUID | Mapping[str, Any], record: Mapping[str, Any]) -> None:
        """Create or update by id or a declared alternate key (a PATCH without `If-Match`): idempotent, so safe to
        retry. A duplicate-key answer means a concurrent writer created the row first: sent once more, it updates."""
        path = row_path(table, key)
        _resent_on_duplicate(lambda: self.transport.send("PATCH", path, json=dict(record)))

    def delete(self, table: Table, id: uuid.UUID, *, etag: str | None = None) -> None:
        """Delete a row; a 404 answer to a retry means the first attempt deleted it."""
        self.transport.send(
            "DELETE",
            f"{table.entity_set}({id})",
            headers={"If-Match": etag} if etag else None,
            done_on_retry=lambda exc: isinstance(exc, DataverseNotFound),
        )

    # ---- bulk writes ---------------------------------------------------------------------------------------------

    def _targets(self, table: Table, records: Iterable[Mapping[str, Any]]) -> Iterator[dict[str, Any]]:
        for record in records:
            yield {"@odata.type": table.odata_type, **record}

    def _run_chunks(
        self, chunks: Iterable[list[dict[str, Any]]], send: Callable[[list[dict[str, Any]]], Any]
    ) -> list[Any]:
        """Send chunks, up to the transport's parallelism at a time, keeping their order in the results."""
        results: list[Any] = []
        workers = self.transport.limiter.maximum
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dataverse-bulk") as pool:
            for wave in _chunks(chunks, workers):
                results.extend(pool.map(send, wave))
        return results

    def create_multiple(
        self, table: Table, records: Iterable[Mapping[str, Any]], *, chunk_size: int | None = None
    ) -> list[uuid.UUID]:
        """CreateMultiple in chunks; returns the ids in order. Each chunk is one transaction in Dataverse.

        Rows carrying their primary key are created idempotently (retried; a duplicate answer to a retry means the
        chunk went through). A chunk with any row lacking it is retried only when it surely did not run.
        """
        pk = table.primary_key

        def send(chunk: list[dict[str, Any]]) -> list[uuid.UUID]:
            with_ids = all(row.get(pk) for row in chunk)
            response = self.transport.send(
                "POST",
                f"{table.entity_set}/Microsoft.Dynamics.CRM.CreateMultiple",
                json={"Targets": chunk},
                idempotent=with_ids,
                done_on_retry=(lambda exc: isinstance(exc, DataverseDuplicate)) if with_ids else None,
            )
            if response is None:
                return [uuid.UUID(str(row[pk])) for row in chunk]
            return [uuid.UUID(i) for i in response.json().get("Ids", [])]

        chunks = _chunks(self._targets(table, records), chunk_size or self.bulk_chunk_size)
        return [i for ids in self._run_chunks(chunks, send) for i in ids]

    def update_multiple(
        self, table: Table, records: Iterable[Mapping[str, Any]], *, chunk_size: int | None = None
    ) -> int:
        """UpdateMultiple in chunks; every record carries its primary key, checked before anything is sent.
        Returns the number of rows sent."""

        rows = list(records)
        seen: dict[str, int] = {}
        for index, record in enumerate(rows):
            if not record.get(table.primary_key):
                raise ValueError(f"update_multiple: record {index} has no {table.primary_key}")
            _once(seen, "update_multiple", index, f"{table.primary_key}={str(record[table.primary_key]).lower()}")
        return self._bulk("UpdateMultiple", table, rows, chunk_size)

    def upsert_multiple(
        self,
        table: Table,
        records: Iterable[Mapping[str, Any]],
        *,
        key: Sequence[str] = (),
        chunk_size: int | None = None,
    ) -> int:
        """UpsertMultiple in chunks, each row found by its primary key or, with `key`, by that declared alternate key:
        the key's values travel in the row's `@odata.id` only, as for a single upsert by key (a key column may be a
        lookup, which a body could not carry as a plain value). Every row is checked before anything is sent; two
        rows for one key are a caller bug (Dataverse would fail the whole request), refused naming the key.
        Idempotent, so every chunk is safe to retry, and resent once when a concurrent writer created a row first."""

        alternate = table.key(key) if key else None
        rows: list[Mapping[str, Any]] = []
        seen: dict[str, int] = {}
        for index, record in enumerate(records):
            if alternate is not None:
                missing = [k for k in alternate.columns if record.get(k) is None]
                if missing:
                    raise ValueError(f"upsert_multiple: record {index} lacks key column(s) {missing}")
                body = {k: v for k, v in record.items() if k not in alternate.columns}
                path = row_path(table, {k: record[k] for k in alternate.columns})
                _once(seen, "upsert_multiple", index, unquote(path))
                rows.append({**body, "@odata.id": path})
            elif record.get(table.primary_key):
                _once(seen, "upsert_multiple", index, f"{table.primary_key}={str(record[table.primary_key]).lower()}")
                rows.append(record)
            else:
                raise ValueError(f"upsert_multiple: record {index} has neither {table.primary_key} nor a key")
        return self._bulk("UpsertMultiple", table, rows, chunk_size)

    def _bulk(self, message: str, table: Table, records: Iterable[Mapping[str, Any]], chunk_size: int | None) -> int:
        path = f"{table.entity_set}/Microsoft.Dynamics.CRM.{message}"

        def send(chunk: list[dict[str, Any]]) -> int:
            def once() -> Any:
                return self.transport.send("POST", path, json={"Targets": chunk}, idempotent=True)

            if message == "UpsertMultiple":
                _resent_on_duplicate(once)
            else:
                once()
            return len(chunk)

        chunks = _chunks(self._targets(table, records), chunk_size or self.bulk_chunk_size)
        return sum(self._run_chunks(chunks, send))

    def batch(
        self,
        items: Sequence[BatchRequest | ChangeSet],
        *,
        continue_on_error: bool = False,
        idempotent: bool = False,
    ) -> tuple[ItemOutcome, ...]:
        """Send a `$batch` (for tables without the bulk messages); one outcome per submitted item, in order.

        Each outcome is `ok`, `failed` (with its `DataverseError`; a failed change set rolled back as a whole) or
        `not_executed` (Dataverse stops at the first failure unless `continue_on_error`). Pass `idempotent=True`
        only when every part is (updates, upserts, creates with ids): the whole batch may then be retried.
        """
        content_type, body = encode_batch(items, api_path=urlsplit(self.api_url).path, json_default=json_default)
        headers = {"Content-Type": content_type}
        if continue_on_error:
            headers["Prefer"] = "odata.continue-on-error"
        response = self.transport.send(
            "POST",
            "$batch",
            data=body,
            headers=headers,
            idempotent=idempotent,
            passthrough=lambda r: r.headers.get("Content-Type", "").startswith("multipart/"),
        )
        assert response is not None
        return match(items, decode_batch(response.headers.get("Content-Type", ""), response.content))

    # ---- functions and actions -----------------------------------------------------------------------------------

    def call_function(
        self, name: str, params: Mapping[str, Any] | None = None, *, bound: tuple[Table, uuid.UUID] | None = None
    ) -> Any:
        """GET a Dataverse function, parameters passed as aliases: `Name(P=@P)?@P=<literal>`."""
        params = params or {}
        call = f"{name}(" + ",".join(f"{p}=@{p}" for p in params) + ")" if params else name
        path = f"{bound[0].entity_set}({bound[1]})/Microsoft.Dynamics.CRM.{call}" if bound else call
        if params:
            path += "?" + encode_options([(f"@{p}", literal(v)) for p, v in params.items()])
        response = self.transport.send("GET", path)
        assert response is not None
        return response.json() if response.content else None

    def call_action(
        self,
        name: str,
        body: Mapping[str, Any] | None = None,
        *,
        bound: tuple[Table, uuid.UUID] | None = None,
        idempotent: bool = False,
    ) -> Any:
        """POST a Dataverse action (bound ones get the `Microsoft.Dynamics.CRM.` prefix); returns its JSON or None."""
        path = f"{bound[0].entity_set}({bound[1]})/Microsoft.Dynamics.CRM.{name}" if bound else name
        response = self.transport.send("POST", path, json=dict(body or {}), idempotent=idempotent)
        if response is None or not response.content:
            return None
        return response.json()

    def who_am_i(self) -> WhoAmI:
        """The WhoAmI function: a cheap probe of URL, token and the application user's access."""
        body = self.call_function("WhoAmI")
        try:
            return WhoAmI(
                uuid.UUID(body["UserId"]), uuid.UUID(body["BusinessUnitId"]), uuid.UUID(body["OrganizationId"])
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataverseError("WhoAmI answered without the expected ids") from exc

    def execute_workflow(self, workflow_id: uuid.UUID, entity_id: uuid.UUID) -> uuid.UUID | None:
        """Start a classic on-demand workflow for one row; returns the system job (asyncoperation) id if given.

        Not idempotent: it is never retried after it may have reached Dataverse. Callers record their intent first
        and look for the system job before trying again.
        """
        result = self.call_action(
            "ExecuteWorkflow", {"EntityId": str(entity_id)}, bound=(table("workflow"), workflow_id)
        )
        job = (result or {}).get("Id") or (result or {}).get("asyncoperationid")  # ExecuteWorkflowResponse.Id
        return uuid.UUID(str(job)) if job else None
