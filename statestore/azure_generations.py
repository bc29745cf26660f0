"""Generations of the Azure mirror: its tables come in sets, one set per generation, so that emptying the mirror
is making a new set, not deleting every entity (`statestore.azure_mirror`).

A generation `g` is the tables `{prefix}mp{g}` (rows by partition), `{prefix}mi{g}` (where each id is), `{prefix}ml{g}`
(the partitions, by bucket) and `{prefix}mf{g}` (a bulk load's fragments), and the blobs under `mirrors/{g}/`. Which
generation is the mirror is one entity, `mirror` in the checkpoints table's partition "m": `current` (the one
readers use), `next` (the last number handed out) and `layout`. A new generation is taken by raising `next` (under
the entity's etag, so two processes never get the same), and becomes the mirror when it is published: `current`
moves to it (never back), and the tables and blobs of every older generation are deleted (an old table's deletion
runs in the service's background; a process still reading it gets a 404 and reads `current` again).

The layout before this one (tables `{prefix}mirror` and `{prefix}mirrorindex`) is not converted: the mirror starts
empty, the `columns` checkpoint is removed so that the next sync reads every table again, and the old tables and
blobs are deleted; one warning on the `abm.state` logger says so.
"""

from __future__ import annotations

import contextlib
import logging
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Final

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient, TableEntity, TableServiceClient, UpdateMode
from azure.storage.blob import ContainerClient

from statestore.azure_storage import MAX_TRIES, PARALLEL, new_entity, table_key

__all__ = ["LAYOUT", "Generation", "Generations"]

log = logging.getLogger("abm.state")

LAYOUT: Final = 2
_META = ("m", "mirror")  # (PartitionKey, RowKey) of the pointer in the checkpoints table
_CODES = ("mp", "mi", "ml", "mf")


@dataclass(frozen=True)
class Generation:
    """The tables of one generation of the mirror."""

    number: int
    rows: TableClient  # rows by partition: pages and single rows
    ids: TableClient  # id pages: where each row is
    listing: TableClient  # (kind, partition) pairs by bucket
    log: TableClient  # fragments of a bulk load

    @property
    def blobs(self) -> str:
        """The prefix of the generation's blob names."""
        return f"mirrors/{self.number}/"


class Generations:
    """Hands out, opens, publishes and deletes generations of one store's mirror."""

    def __init__(
        self, service: TableServiceClient, checkpoints: TableClient, container: ContainerClient, prefix: str
    ) -> None:
        self._service, self._checkpoints, self._container, self._prefix = service, checkpoints, container, prefix
        self._names = re.compile(rf"{re.escape(prefix)}({'|'.join(_CODES)})(\d+)")
        self._open: dict[int, Generation] = {}
        if self._pointer() is None:
            self._start()

    def _pointer(self) -> dict[str, int] | None:
        try:
            entity = self._checkpoints.get_entity(*_META)
        except ResourceNotFoundError:
            return None
        return {"current": int(entity["current"]), "next": int(entity["next"]), "layout": int(entity["layout"])}

    def close(self) -> None:
        for generation in self._open.values():
            for table in (generation.rows, generation.ids, generation.listing, generation.log):
                table.close()
        self._open.clear()

    def current(self) -> Generation:
        """The generation readers use (read from the pointer on every call: another process may have published)."""
        pointer = self._pointer()
        if pointer is None:  # removed behind our back: start again
            self._start()
            pointer = self._pointer()
            assert pointer is not None
        return self.open(pointer["current"])

    def open(self, number: int) -> Generation:
        if number not in self._open:
            tables = [self._service.get_table_client(f"{self._prefix}{code}{number}") for code in _CODES]
            self._open[number] = Generation(number, *tables)
        return self._open[number]

    def _create(self, number: int) -> Generation:
        for code in _CODES:
            self._service.create_table_if_not_exists(f"{self._prefix}{code}{number}")
        return self.open(number)

    def _start(self) -> None:
        """A store without a pointer: generation 1, empty; a mirror of the previous layout is dropped (see the
        module docstring). Of processes starting at once, the one that creates the pointer does the rest."""
        self._create(1)
        old = [f"{self._prefix}mirror", f"{self._prefix}mirrorindex"]
        existing = {t.name for t in self._service.query_tables("TableName ge @a and TableName le @b",
                                                                parameters={"a": old[0], "b": old[1]})}  # fmt: skip
        try:
            self._checkpoints.create_entity(new_entity(*_META, current=1, next=1, layout=LAYOUT))
        except ResourceExistsError:
            return
        if existing & set(old):
            with contextlib.suppress(ResourceNotFoundError):
                self._checkpoints.delete_entity("c", table_key("columns"))
            for name in existing & set(old):
                self._service.delete_table(name)
            self._drop_blobs("mirror/")
            log.warning("the state store's mirror layout changed: the next sync reads every table again")

    def begin(self) -> Generation:
        """A new generation, not published: its number is above every one handed out."""
        for _ in range(MAX_TRIES):
            entity = self._checkpoints.get_entity(*_META)
            number = int(entity["next"]) + 1
            if self._merge_meta(entity, next=number):
                return self._create(number)
        raise RuntimeError(f"mirror generations: still contended after {MAX_TRIES} tries")

    def publish(self, generation: Generation) -> bool:
        """Make `generation` the mirror unless a newer one already is (then it is dropped); delete the older ones.
        True if it was published."""
        for _ in range(MAX_TRIES):
            entity = self._checkpoints.get_entity(*_META)
            if int(entity["current"]) >= generation.number:
                self.drop(generation.number)
                return False
            if self._merge_meta(entity, current=generation.number):
                self._drop_older(generation.number)
                return True
        raise RuntimeError(f"mirror generations: still contended after {MAX_TRIES} tries")

    def _merge_meta(self, read: TableEntity, **values: int) -> bool:
        """Set these values on the generations entity unless it changed since `read` (then False: read again)."""
        try:
            self._checkpoints.update_entity(
                {**new_entity(*_META), **values},
                mode=UpdateMode.MERGE,
                etag=read.metadata["etag"],
                match_condition=MatchConditions.IfNotModified,
            )
        except HttpResponseError as failure:
            if failure.status_code != 412:
                raise
            return False
        return True

    def _drop_older(self, number: int) -> None:
        names = self._service.query_tables(
            "TableName ge @a and TableName lt @b", parameters={"a": self._prefix, "b": self._prefix + "~"}
        )
        older = set()
        for table in names:
            found = self._names.fullmatch(table.name)
            if found and int(found.group(2)) < number:
                older.add(int(found.group(2)))
        for old in sorted(older):
            self.drop(old)

    def drop(self, number: int) -> None:
        """Delete a generation's tables and blobs."""
        with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
            list(pool.map(self._service.delete_table, [f"{self._prefix}{code}{number}" for code in _CODES]))
        self._open.pop(number, None)
        self._drop_blobs(f"mirrors/{number}/")

    def drop_log(self, generation: Generation) -> None:
        """Delete a generation's fragments (once its bulk load is sealed): its one table, at once."""
        self._service.delete_table(generation.log.table_name)

    def _drop_blobs(self, prefix: str) -> None:
        for blob in self._container.list_blobs(name_starts_with=prefix):
            with contextlib.suppress(ResourceNotFoundError):
                self._container.delete_blob(blob.name)
