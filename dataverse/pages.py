"""What reads return: pages of rows, and change-tracking feeds of upserts and removals with their delta link."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from dataverse.errors import ChangeTrackingTokenExpired, DataverseBadRequest

__all__ = ["ChangeFeed", "Page", "Removed", "Upserted"]

_DELETED = "$deletedEntity"


@dataclass(frozen=True)
class Page:
    """One page of a read: its rows, and the link to the next page or (change tracking, last page) the delta link."""

    rows: list[dict[str, Any]]
    next_link: str | None = None
    delta_link: str | None = None
    count: int | None = None


@dataclass(frozen=True)
class Upserted:
    """A row created or updated since the last delta link."""

    row: dict[str, Any]


@dataclass(frozen=True)
class Removed:
    """A row deleted since the last delta link (also reported for rows created and deleted in between)."""

    id: uuid.UUID
    reason: str = "deleted"


@dataclass
class ChangeFeed:
    """The changes of one change-tracking read; iterate it, then store `delta_link` once the work it covers is done.

    A read from a query is the initial (full) read; a read from a stored delta link gives what changed since.
    An expired delta link raises `ChangeTrackingTokenExpired`: read the whole table again from the query.
    """

    _pages: Callable[[], Iterator[Page]]
    from_delta_link: bool = False
    delta_link: str | None = field(default=None, init=False)

    def __iter__(self) -> Iterator[Upserted | Removed]:
        for page in self._read():
            for row in page.rows:
                if _DELETED in str(row.get("@odata.context", "")):
                    yield Removed(uuid.UUID(str(row["id"])), str(row.get("reason", "deleted")))
                else:
                    yield Upserted(row)
            if page.delta_link:
                self.delta_link = page.delta_link

    def _read(self) -> Iterator[Page]:
        """The pages; a stale delta link reported without Dataverse's code is recognised by its message."""
        try:
            yield from self._pages()
        except DataverseBadRequest as exc:
            text = exc.message.lower()
            if (
                self.from_delta_link
                and not isinstance(exc, ChangeTrackingTokenExpired)
                and ("expired" in text or "version stamp" in text)
            ):
                raise ChangeTrackingTokenExpired(
                    exc.message,
                    status=exc.status,
                    code=exc.code,
                    request_id=exc.request_id,
                    client_request_id=exc.client_request_id,
                ) from exc
            raise
