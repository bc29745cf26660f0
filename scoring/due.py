"""When a lead's scores can next change with no new data: the "due moment" the state store indexes.

The service rescores, on a timer tick, only the leads whose data changed and those whose due moment has come.
With no new data a score changes only because time moves interactions in or out of a behaviour condition's window:
`scoring.engine.score_run` counts an interaction while `now - within_days <= occurred_on <= now`, so it starts to
count at `occurred_on` (when that is after `now`) and stops one microsecond (datetime's resolution) after
`occurred_on + within_days`. `next_change` gives, per lead, the earliest such moment after `now` among the
interactions a live model that scores the lead would count (type and `where` tests passing), mirroring the engine:

- an open lead with a contact is scored by the live contact-targeted models whose `minimum_consent` its contact
  meets (a missing contact or one below consent is skipped whatever the time); it counts that contact's interactions;
- an open lead with an account and no contact is scored by the live account-targeted models; it counts the
  interactions of the contacts whose `account_id` is the account (strict models: only contacts at the model's
  minimum consent).

A moment may be early (a count changes but not the outcome, or the lead's account is missing), never late.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

from scoring.model import BehaviourCondition, ScoringModel, conditions
from scoring.records import Contact, Interaction, Lead

__all__ = ["next_change"]

_TICK = timedelta(microseconds=1)


def _per_contact(
    behaviour: Iterable[BehaviourCondition], interactions: Iterable[Interaction], now: datetime
) -> dict[BehaviourCondition, dict[str, datetime]]:
    """Per condition, per contact id: the earliest moment after `now` a count of that contact can change. An
    interaction of the condition's type starts counting at `occurred_on` (when that is after `now`) and stops a
    `window` later; one that occurred at or before `spent` has done both by `now` (the common case, decided by one
    comparison before the costlier `where` tests)."""
    now = now.astimezone(UTC)
    by_type: dict[str, list[tuple[BehaviourCondition, datetime, timedelta, dict[str, datetime]]]] = {}
    out: dict[BehaviourCondition, dict[str, datetime]] = {}
    for condition in behaviour:
        if condition not in out:
            out[condition] = {}
            window = timedelta(days=condition.within_days) + _TICK
            spent = min(now, now - window)
            by_type.setdefault(condition.interaction, []).append((condition, spent, window, out[condition]))
    for interaction in interactions:
        contact_id = interaction.contact_id
        if not contact_id:
            continue
        for condition, spent, window, moments in by_type.get(interaction.type, ()):
            if interaction.occurred_on <= spent:
                continue
            if not all(test.matches(interaction.attributes) for test in condition.where):
                continue
            occurred = interaction.occurred_on.astimezone(UTC)
            moment = occurred if occurred > now else occurred + window
            known = moments.get(contact_id)
            moments[contact_id] = moment if known is None else min(known, moment)
    return out


def _earliest(moments: Iterable[datetime | None]) -> datetime | None:
    found = [m for m in moments if m is not None]
    return min(found) if found else None


def next_change(
    models: Iterable[ScoringModel],
    leads: Iterable[Lead],
    contacts: Iterable[Contact],
    interactions: Iterable[Interaction],
    *,
    now: datetime,
) -> dict[str, datetime]:
    """Per lead id, the earliest moment (UTC) after `now` at which `score_run` could score the lead differently with
    no new data; leads that are not open, not scored by a live model, or counting no interaction that can enter or
    leave a window are absent."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be an aware datetime (UTC)")
    live = [model for model in models if model.live]
    behaviour: dict[str, list[BehaviourCondition]] = {
        model.name: [c for c in conditions(model) if isinstance(c, BehaviourCondition)] for model in live
    }
    moments = _per_contact((c for found in behaviour.values() for c in found), interactions, now)
    index = {contact.id: contact for contact in contacts}
    members: dict[str, list[Contact]] = {}
    for contact in index.values():
        if contact.account_id:
            members.setdefault(contact.account_id, []).append(contact)

    def of_contacts(model: ScoringModel, ids: Sequence[str]) -> datetime | None:
        return _earliest(moments[c].get(i) for c in behaviour[model.name] for i in ids)

    def floor_met(contact: Contact, floor: int | None) -> bool:
        return floor is None or (contact.consent_level is not None and contact.consent_level >= floor)

    due: dict[str, datetime] = {}
    for lead in leads:
        if not lead.is_open:
            continue
        found: list[datetime | None] = []
        if lead.contact_id:
            own = index.get(lead.contact_id)
            for model in live:
                if model.target == "contact" and own is not None and floor_met(own, model.minimum_consent):
                    found.append(of_contacts(model, [own.id]))
        elif lead.account_id:
            for model in live:
                if model.target == "account":
                    floor = None if model.consent_mode == "all_contacts" else model.minimum_consent
                    ids = [c.id for c in members.get(lead.account_id, ()) if floor_met(c, floor)]
                    found.append(of_contacts(model, ids))
        moment = _earliest([due.get(lead.id), *found])
        if moment is not None:
            due[lead.id] = moment
    return due
