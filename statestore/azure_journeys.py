"""The Azure state store's journey roles: progress, handled tiles and tile counts (`ProgressStore`), and effects
and workflow intents (`EffectLedger`). The tables' layout: `statestore.azure_tables`."""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from statestore.azure_storage import (
    MAX_TRIES,
    SCAN_ABOVE,
    AzureStorage,
    Op,
    key_after,
    key_filters,
    new_entity,
    pair_key,
    table_key,
    upsert_op,
)
from statestore.port import Intent, Progress, iso_micro, parse_iso

__all__ = ["GROUPS", "AzureEffectLedger", "AzureProgress"]

_NO_SLASH = "~"  # the effects partition for keys without "/" (never the result of `table_key`)
GROUPS = 16  # PartitionKeys per journey of its progress, and of its effects


def _group(key: str) -> str:
    return f"{zlib.crc32(key.encode()) % GROUPS:02d}"


class AzureProgress(AzureStorage):
    """Journey progress by journey (in GROUPS PartitionKeys by a hash of the contact) and contact, handled (tile,
    account) pairs, and tile counts by account.

    A run saves thousands of contacts' progress in a journey: in one PartitionKey per journey (the layout before),
    every write went to one hot partition, and Azurite slows with a partition's size. A store of the layout before is
    converted when first opened (progress is kept, not dropped)."""

    def __init__(self, connection_string: str, prefix: str) -> None:
        super().__init__(connection_string, prefix)
        self._regroup(self._progress, "progress", lambda e: self._progress_partition(e["journey"], e["contact_id"]))

    @staticmethod
    def _progress_partition(journey: str, contact: str) -> str:
        return f"{table_key(journey)}!{_group(contact)}"

    def progress(self, journey: str, contacts: Iterable[str] | None = None) -> list[Progress]:
        """The journey's progress (one range of its PartitionKeys), or these contacts' (lookups by RowKey; for more
        than SCAN_ABOVE, as a batch asks for, the journey read once), by contact id."""
        wanted = None if contacts is None else set(contacts)
        if wanted is None or len(wanted) > SCAN_ABOVE:
            low = table_key(journey) + "!"
            found = self._progress.query_entities(
                "PartitionKey ge @low and PartitionKey lt @high", parameters={"low": low, "high": key_after(low)}
            )
            entities = [e for e in found if wanted is None or e["contact_id"] in wanted]
        else:
            by_pk: dict[str, list[str]] = {}
            for contact in sorted(wanted):
                by_pk.setdefault(self._progress_partition(journey, contact), []).append(table_key(contact))
            entities = self._query_all(self._progress, [f for pk, rks in by_pk.items() for f in key_filters(pk, rks)])
        rows = [
            Progress(
                e["contact_id"],
                e.get("tile_id"),
                parse_iso(e["entered_at"]),
                bool(e["finished"]),
                parse_iso(e.get("started_at") or e["entered_at"]),
            )
            for e in entities
        ]
        return sorted(rows, key=lambda row: row.contact_id)

    def handled(self, journey: str, accounts: Iterable[str] | None = None) -> set[tuple[str, str]]:
        """The journey's handled pairs (one partition), or those of these accounts. Their RowKey leads with the
        tile, so an account is no key range: up to SCAN_ABOVE accounts are queried by `account_id` (a few OR
        queries, each a scan of the journey's partition on the service's side); more read the partition once."""
        pk = table_key(journey)
        columns = ["tile_id", "account_id"]
        wanted = None if accounts is None else set(accounts)
        if wanted is not None and len(wanted) <= SCAN_ABOVE:
            entities = self._find(self._handled, pk, sorted(wanted), select=columns, field="account_id")
        else:
            entities = list(self._handled.query_entities("PartitionKey eq @pk", parameters={"pk": pk}, select=columns))
        pairs = {(e["tile_id"], e["account_id"]) for e in entities}
        return pairs if wanted is None else {pair for pair in pairs if pair[1] in wanted}

    def save_journey(
        self,
        journey: str,
        progress: Iterable[Progress],
        handled: Iterable[tuple[str, str]],
        counts: Mapping[str, Mapping[str, Mapping[str, int]]] | None = None,
    ) -> None:
        """Upsert progress by contact, add handled pairs, then add the tile counts (by account; "" for none).

        Not one transaction as in SQLite: progress and handled are idempotent, and counts go last."""
        pk = table_key(journey)
        self._transact(self._progress, (upsert_op(self._progress_entity(journey, p)) for p in progress))
        self._transact(
            self._handled,
            (
                upsert_op(new_entity(pk, pair_key(tile, account), journey=journey, tile_id=tile, account_id=account))
                for tile, account in handled
            ),
        )
        self._add_counts(journey, counts or {})

    def _progress_entity(self, journey: str, p: Progress) -> dict[str, Any]:
        return new_entity(
            self._progress_partition(journey, p.contact_id),
            table_key(p.contact_id),
            journey=journey,
            contact_id=p.contact_id,
            tile_id=p.tile_id,
            entered_at=iso_micro(p.entered_at),
            finished=p.finished,
            started_at=iso_micro(p.started_at or p.entered_at),
        )

    def _add_counts(self, journey: str, counts: Mapping[str, Mapping[str, Mapping[str, int]]]) -> None:
        """Add counters per (account, tile), each entity replaced only if unchanged since read (else reread)."""
        pk = table_key(journey)
        pending: dict[str, tuple[str, str, dict[str, int]]] = {}
        for account, tiles in counts.items():
            for tile, counters in tiles.items():
                added = {name: value for name, value in counters.items() if value}
                if added:
                    rk = pair_key(account, tile)
                    merged = pending.setdefault(rk, (account, tile, {}))[2]
                    for name, value in added.items():
                        merged[name] = merged.get(name, 0) + value
        for _ in range(MAX_TRIES):
            if not pending:
                return
            current = {e["RowKey"]: e for e in self._lookup(self._counts, pk, sorted(pending))}
            ops: list[Op] = []
            for rk, (account, tile, added) in pending.items():
                old = current.get(rk)
                totals: dict[str, int] = json.loads(old["counters"]) if old is not None else {}
                for name, value in added.items():
                    totals[name] = totals.get(name, 0) + value
                text = json.dumps(totals, sort_keys=True)
                entity = new_entity(pk, rk, journey=journey, account_id=account, tile_id=tile, counters=text)
                if old is None:
                    ops.append(("create", entity, {}))
                else:
                    condition = {"etag": old.metadata["etag"], "match_condition": MatchConditions.IfNotModified}
                    ops.append(("update", entity, {"mode": UpdateMode.REPLACE, **condition}))
            failed = self._transact(self._counts, ops, conflicts=True)
            pending = {op[1]["RowKey"]: pending[op[1]["RowKey"]] for op in failed}
        raise RuntimeError(f"tile counts of journey {journey!r}: still contended after {MAX_TRIES} tries")

    def tile_counts(self, journey: str, account: str | None = None) -> dict[str, dict[str, int]]:
        """Counts per tile since the journey started, for every account or for one."""
        if account is None:
            entities = self._counts.query_entities("PartitionKey eq @pk", parameters={"pk": table_key(journey)})
        else:
            low = table_key(account) + "!"
            entities = self._counts.query_entities(
                "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high",
                parameters={"pk": table_key(journey), "low": low, "high": key_after(low)},
            )
        totals: dict[str, dict[str, int]] = {}
        for entity in entities:
            tile = totals.setdefault(entity["tile_id"], {})
            for name, value in json.loads(entity["counters"]).items():
                tile[name] = tile.get(name, 0) + int(value)
        return {tile: dict(sorted(counters.items())) for tile, counters in sorted(totals.items())}


class AzureEffectLedger(AzureStorage):
    """Effects by key (partitioned by the key's journey and a hash of the key) and workflow intents, each in a
    partition of its own.

    A run records thousands of effects of one journey: in one PartitionKey per journey (the layout before), every
    write went to one hot partition, and Azurite slows with a partition's size. So a journey's effects are spread
    over GROUPS PartitionKeys (`journey!nn`). Effects are what keeps a run from writing anything twice, so a store of
    the layout before is converted when first opened (its effects copied, then removed), not dropped."""

    _clock: Callable[[], datetime]

    def __init__(self, connection_string: str, prefix: str) -> None:
        super().__init__(connection_string, prefix)
        self._regroup(self._effects, "effects", lambda e: self._effect_partition(e["key"]))

    @staticmethod
    def _effect_partition(key: str) -> str:
        head, slash, _ = key.partition("/")
        return f"{table_key(head) if slash else _NO_SLASH}!{_group(key)}"

    def effects_done(self, keys: Iterable[str]) -> dict[str, str]:
        """The effects among `keys` already written, with the id of the row each created: per group of them, a query
        per 14, all a few at a time."""
        by_partition: dict[str, set[str]] = {}
        for key in keys:
            by_partition.setdefault(self._effect_partition(key), set()).add(table_key(key))
        filters = [found for pk, rks in by_partition.items() for found in key_filters(pk, sorted(rks))]
        return {e["key"]: e["entity_id"] for e in self._query_all(self._effects, filters, ["key", "entity_id"])}

    def record_effects(self, done: Iterable[tuple[str, str]]) -> None:
        self._transact(
            self._effects,
            (
                upsert_op(new_entity(self._effect_partition(key), table_key(key), key=key, entity_id=id))
                for key, id in done
            ),
        )

    @staticmethod
    def _intent_entity(intent: Intent) -> dict[str, Any]:
        return new_entity(
            table_key(intent.key),
            "",
            key=intent.key,
            workflow_id=intent.workflow_id,
            entity_id=intent.entity_id,
            job_id=intent.job_id or "",  # "" for none yet, so that open intents can be queried
            claimed_at=intent.claimed_at,
        )

    def intent(self, key: str) -> Intent | None:
        try:
            e = self._intents.get_entity(table_key(key), "")
        except ResourceNotFoundError:
            return None
        return self._intent_of(e)

    @staticmethod
    def _intent_of(e: Mapping[str, Any]) -> Intent:
        return Intent(e["key"], e["workflow_id"], e["entity_id"], e.get("job_id") or None, e.get("claimed_at"))

    def open_intents(self) -> list[Intent]:
        found = self._intents.query_entities("job_id eq ''")
        return sorted((self._intent_of(e) for e in found), key=lambda intent: intent.key)

    def record_intent(self, intent: Intent) -> None:
        self._intents.upsert_entity(self._intent_entity(intent), mode=UpdateMode.REPLACE)

    def clock(self) -> datetime:
        return self._clock()

    def take_over_intent(self, stale: Intent, claimed_at: str | None) -> bool:
        try:
            old = self._intents.get_entity(table_key(stale.key), "")
        except ResourceNotFoundError:
            return False
        found = self._intent_of(old)
        if found.job_id or found.claimed_at != stale.claimed_at:
            return False
        taken = self._intent_entity(Intent(found.key, found.workflow_id, found.entity_id, None, claimed_at))
        try:
            self._intents.update_entity(
                taken, mode=UpdateMode.REPLACE, etag=old.metadata["etag"], match_condition=MatchConditions.IfNotModified
            )
        except HttpResponseError as failure:
            if failure.status_code not in (404, 412):  # changed or deleted since read: another run took it
                raise
            return False
        return True

    def claim_intent(self, intent: Intent) -> bool:
        """Record a new intent unless one exists: True for the run that got it (only that run may call out)."""
        try:
            self._intents.create_entity(self._intent_entity(intent))
        except ResourceExistsError:
            return False
        return True
