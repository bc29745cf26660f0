"""The Azure state store's event log (`EventLog`): events and dead letters, each in a partition of its own, with
their payloads and errors in blobs when large. The tables' layout: `statestore.azure_tables`."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from statestore.azure_storage import MAX_TRIES, AzureStorage, blobs_of, digest, new_entity, table_key
from statestore.port import DeadLetter, StoredEvent, iso_micro, parse_iso

__all__ = ["AzureEventLog"]


class AzureEventLog(AzureStorage):
    """Received events by id (recorded by insert: the first delivery wins) and dead letters by id."""

    def record_event(self, event: StoredEvent) -> bool:
        """Store an event unless its id is known: True the first time (process it), False for a redelivery."""
        entity = new_entity(
            table_key(event.id),
            "",
            id=event.id,
            source=event.source,
            received_at=iso_micro(event.received_at),
            table=event.table,
            record_id=event.record_id,
            status=event.status,
            attempts=event.attempts,
        )
        where = f"events/{uuid.uuid4().hex}"  # unique: a redelivery must not overwrite the first delivery's blobs
        self._stash(entity, "message", event.message, f"{where}/message")
        self._stash(entity, "payload", event.payload, f"{where}/payload")
        self._stash(entity, "error", event.error, f"{where}/error")
        try:
            self._events.create_entity(entity)
        except ResourceExistsError:
            self._drop_blobs(blobs_of(entity))
            return False
        return True

    def _event(self, entity: Mapping[str, Any]) -> StoredEvent:
        return StoredEvent(
            entity["id"],
            entity["source"],
            parse_iso(entity["received_at"]),
            entity["table"],
            entity["record_id"],
            self._text(entity, "message") or "",
            self._bytes(entity, "payload") or b"",
            entity["status"],
            int(entity["attempts"]),
            self._text(entity, "error"),
        )

    def event(self, event_id: str) -> StoredEvent | None:
        try:
            return self._event(self._events.get_entity(table_key(event_id), ""))
        except ResourceNotFoundError:
            return None

    def events(
        self, *, since: datetime | None = None, until: datetime | None = None, record_id: str | None = None
    ) -> list[StoredEvent]:
        """Events received in [since, until) and/or about one record, oldest first (then by id)."""
        conditions: list[str] = []
        parameters: dict[str, Any] = {}
        if since is not None:
            conditions.append("received_at ge @since")
            parameters["since"] = iso_micro(since)
        if until is not None:
            conditions.append("received_at lt @until")
            parameters["until"] = iso_micro(until)
        if record_id is not None:
            conditions.append("record_id eq @record")
            parameters["record"] = record_id
        if conditions:
            entities = list(self._events.query_entities(" and ".join(conditions), parameters=parameters))
        else:
            entities = list(self._events.list_entities())
        entities.sort(key=lambda e: (e["received_at"], e["id"]))
        return [self._event(e) for e in entities]

    def mark_event(self, event_id: str, status: str, *, error: str | None = None) -> None:
        """Set an event's status, count one more attempt and store this attempt's error (None clears it): a
        read-modify-write that retries when another writer changed the event in between."""
        for _ in range(MAX_TRIES):
            try:
                old = self._events.get_entity(table_key(event_id), "")
            except ResourceNotFoundError:
                return
            entity = {k: v for k, v in old.items() if k not in ("error", "error_blob")}
            entity["status"] = status
            entity["attempts"] = int(old["attempts"]) + 1
            self._stash(entity, "error", error, f"events/{uuid.uuid4().hex}/error")
            try:
                self._events.update_entity(
                    entity,
                    mode=UpdateMode.REPLACE,
                    etag=old.metadata["etag"],
                    match_condition=MatchConditions.IfNotModified,
                )
            except HttpResponseError as failure:
                self._drop_blobs(blobs_of(entity) - blobs_of(old))
                if failure.status_code not in (404, 412):  # 412: changed since read, 404: deleted since read
                    raise
                continue
            self._drop_blobs(blobs_of(old) - blobs_of(entity))
            return
        raise RuntimeError(f"event {event_id!r}: still contended after {MAX_TRIES} tries")

    def add_dead_letter(self, letter: DeadLetter) -> None:
        """Insert or replace a dead letter by id."""
        pk = table_key(letter.id)
        entity = new_entity(
            pk,
            "",
            id=letter.id,
            kind=letter.kind,
            failed_at=iso_micro(letter.failed_at),
            attempts=letter.attempts,
            record_id=letter.record_id,
        )
        where = f"deadletters/{digest(letter.id)}"
        self._stash(entity, "payload", letter.payload, f"{where}/payload")
        self._stash(entity, "error", letter.error, f"{where}/error")
        try:
            stale = blobs_of(self._letters.get_entity(pk, "")) - blobs_of(entity)
        except ResourceNotFoundError:
            stale = set()
        self._letters.upsert_entity(entity, mode=UpdateMode.REPLACE)
        self._drop_blobs(stale)

    def _letter(self, entity: Mapping[str, Any]) -> DeadLetter:
        return DeadLetter(
            entity["id"],
            entity["kind"],
            parse_iso(entity["failed_at"]),
            self._bytes(entity, "payload") or b"",
            self._text(entity, "error") or "",
            int(entity["attempts"]),
            entity.get("record_id", ""),
        )

    def dead_letters(self) -> list[DeadLetter]:
        """Every dead letter, oldest first (then by id)."""
        entities = sorted(self._letters.list_entities(), key=lambda e: (e["failed_at"], e["id"]))
        return [self._letter(e) for e in entities]

    def dead_letter(self, letter_id: str) -> DeadLetter | None:
        try:
            return self._letter(self._letters.get_entity(table_key(letter_id), ""))
        except ResourceNotFoundError:
            return None

    def remove_dead_letter(self, letter_id: str) -> None:
        try:
            entity = self._letters.get_entity(table_key(letter_id), "")
        except ResourceNotFoundError:
            return
        self._letters.delete_entity(table_key(letter_id), "")
        self._drop_blobs(blobs_of(entity))
