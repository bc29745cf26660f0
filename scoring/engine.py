"""The scoring engine: every open lead with every live model, one outcome each, scores with their explanations.

Outbound Dynamics 365 Marketing's account-based lead scoring, as data plus a closed interpreter:

- a lead with a contact is contact-based (its account, if any, is ignored for classification, though paths through
  `lead.parentaccountid` still read it); with an account only, account-based; with neither, unscorable;
- a model scores only the leads of its target; a contact-based lead's contact needs a consent level (None never
  qualifies) of at least the model's `minimum_consent`;
- contact-based leads count their contact's interactions; account-based leads those of every contact of the
  account (`consent_mode` all_contacts, labelled not fit for automated decisions about individuals) or of its
  contacts at the minimum consent only (strict);
- a rule fires at most once: when several groups of its `when` match, the group with the most occurrences wins (the
  product of its `each` counts, 1 without any; the first on a tie), which for positive points is the group giving
  the most points; the rule adds `points x occurrences`. A score is the sum of the fired rules' contributions;
- a lead is sales-ready when any live model's score reaches that model's `sales_ready_score`. The engine only reports
  it: a later drop does not clear the lead's flag, the service never unsets it (qualifying is the seller's call).

Interactions are aggregated once per run: one pass, grouped by type, testing only the behaviour conditions of that
type and counting per (condition, contact); account counts are sums of contact counts, per consent rule.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Final, Literal

from scoring.model import (
    AttributeCondition,
    BehaviourCondition,
    Condition,
    FieldTest,
    ScoringModel,
    conditions,
    grade_for,
)
from scoring.records import Account, Contact, Interaction, Lead

__all__ = [
    "UNSCORABLE",
    "ConsentRule",
    "Contribution",
    "LeadScore",
    "ScoringRun",
    "SkipReason",
    "Skipped",
    "score_run",
]

ConsentRule = Literal["contact", "all_contacts", "consenting_contacts"]
SkipReason = Literal[
    "not_open", "not_targeted", "below_consent", "no_contact_no_account", "contact_not_found", "account_not_found"
]
#: The reasons a lead cannot be scored at all (counted under "unscorable" in the summary).
UNSCORABLE: Final = frozenset({"no_contact_no_account", "contact_not_found", "account_not_found"})


@dataclass(frozen=True)
class Contribution:
    """A fired rule: the group (index in `when`) that matched, points added, occurrences, the matched conditions."""

    rule: str
    group: int
    points: int
    occurrences: int
    matched: tuple[str, ...]


@dataclass(frozen=True)
class LeadScore:
    """One lead's score by one model; `score` is the sum of the explanation's points."""

    lead_id: str
    model: str
    model_version: int
    score: int
    grade: str | None
    sales_ready: bool
    consent_rule: ConsentRule
    fit_for_automated_decisions: bool
    explanation: tuple[Contribution, ...]


@dataclass(frozen=True)
class Skipped:
    """A lead a model did not score, and why."""

    lead_id: str
    model: str
    reason: SkipReason


@dataclass(frozen=True)
class ScoringRun:
    """The outcomes of one run, in lead order then model order; `models` are the live models that ran."""

    scores: tuple[LeadScore, ...]
    skipped: tuple[Skipped, ...]
    models: tuple[ScoringModel, ...] = ()

    def summary(self) -> dict[str, dict[str, Any]]:
        """Counts per model: target, scored, not_targeted, unscorable by reason, below_consent, not_open, sales_ready,
        and scores per grade (highest grade first; no grade under "none")."""
        out = {model.name: _empty_summary(model) for model in self.models}
        for score in self.scores:
            entry = out.setdefault(score.model, _empty_summary(None))
            entry["scored"] += 1
            entry["sales_ready"] += score.sales_ready
            grade = score.grade or "none"
            entry["grades"][grade] = entry["grades"].get(grade, 0) + 1
        for skip in self.skipped:
            entry = out.setdefault(skip.model, _empty_summary(None))
            if skip.reason in UNSCORABLE:
                entry["unscorable"][skip.reason] = entry["unscorable"].get(skip.reason, 0) + 1
            else:
                entry[skip.reason] += 1
        return out

    def sales_ready_leads(self) -> set[str]:
        """Leads that any model finds sales-ready (the service sets their flag; it never clears one)."""
        return {score.lead_id for score in self.scores if score.sales_ready}


def _empty_summary(model: ScoringModel | None) -> dict[str, Any]:
    grades = {grade.name: 0 for grade in reversed(model.grades)} if model else {}
    return {
        "target": model.target if model else None,
        "scored": 0,
        "not_targeted": 0,
        "unscorable": {},
        "below_consent": 0,
        "not_open": 0,
        "sales_ready": 0,
        "grades": grades,
    }


class _Counts:
    """Occurrences per behaviour condition and contact, from one pass over the interactions; per account on demand."""

    def __init__(
        self,
        behaviour: Iterable[BehaviourCondition],
        interactions: Iterable[Interaction],
        contacts: Mapping[str, Contact],
        now: datetime,
    ) -> None:
        self.index: dict[BehaviourCondition, int] = {}
        by_type: dict[str, list[tuple[dict[str, int], datetime, tuple[FieldTest, ...]]]] = {}
        self.per_contact: list[dict[str, int]] = []
        for condition in behaviour:
            if condition not in self.index:
                self.index[condition] = len(self.per_contact)
                self.per_contact.append({})
                start = now - timedelta(days=condition.within_days)
                by_type.setdefault(condition.interaction, []).append((self.per_contact[-1], start, condition.where))
        for interaction in interactions:
            tests = by_type.get(interaction.type)
            contact_id = interaction.contact_id
            if tests is None or not contact_id or interaction.occurred_on > now:
                continue
            occurred, attributes = interaction.occurred_on, interaction.attributes
            for counts, start, where in tests:
                if occurred >= start and (not where or all(test.matches(attributes) for test in where)):
                    counts[contact_id] = counts.get(contact_id, 0) + 1
        self.contacts = contacts
        self.per_account: dict[tuple[int, int | None], dict[str, int]] = {}

    def of_contact(self, condition: BehaviourCondition, contact_id: str) -> int:
        return self.per_contact[self.index[condition]].get(contact_id, 0)

    def of_account(self, condition: BehaviourCondition, account_id: str, floor: int | None) -> int:
        """The account's contacts' occurrences: all contacts (floor None) or those with consent >= floor."""
        key = (self.index[condition], floor)
        counts = self.per_account.get(key)
        if counts is None:
            counts = self.per_account[key] = {}
            for contact_id, n in self.per_contact[key[0]].items():
                contact = self.contacts.get(contact_id)
                if contact is None or not contact.account_id:
                    continue
                if floor is None or (contact.consent_level is not None and contact.consent_level >= floor):
                    counts[contact.account_id] = counts.get(contact.account_id, 0) + n
        return counts.get(account_id, 0)


class _Run:
    """The records of one run indexed by id, with the interaction counts."""

    def __init__(self, contacts: Mapping[str, Contact], accounts: Mapping[str, Account], counts: _Counts) -> None:
        self.contacts = contacts
        self.accounts = accounts
        self.counts = counts

    def value(self, condition: AttributeCondition, lead: Lead) -> Any:
        """The column at the end of the condition's path; None when a record on the way is missing."""
        row: Lead | Contact | Account | None = lead
        for table, typed in condition.steps:
            ref = getattr(row, typed)
            row = (self.accounts.get(ref) if table == "account" else self.contacts.get(ref)) if ref else None
            if row is None:
                return None
        if condition.typed_field is not None:
            return getattr(row, condition.typed_field)
        return row.attributes.get(condition.column) if row is not None else None

    def outcome(self, model: ScoringModel, lead: Lead) -> LeadScore | SkipReason:
        if not lead.is_open:
            return "not_open"
        if not lead.contact_id and not lead.account_id:
            return "no_contact_no_account"
        if model.target != ("contact" if lead.contact_id else "account"):
            return "not_targeted"
        count: Callable[[BehaviourCondition], int]
        if lead.contact_id:
            contact = self.contacts.get(lead.contact_id)
            if contact is None:
                return "contact_not_found"
            if contact.consent_level is None or contact.consent_level < model.minimum_consent:
                return "below_consent"
            rule: ConsentRule = "contact"
            count = partial(self.counts.of_contact, contact_id=contact.id)
        else:
            account = self.accounts.get(lead.account_id or "")
            if account is None:
                return "account_not_found"
            floor = None if model.consent_mode == "all_contacts" else model.minimum_consent
            rule = "all_contacts" if floor is None else "consenting_contacts"
            count = partial(self.counts.of_account, account_id=account.id, floor=floor)
        explanation = tuple(self.contributions(model, lead, count))
        score = sum(c.points for c in explanation)
        return LeadScore(
            lead_id=lead.id,
            model=model.name,
            model_version=model.version,
            score=score,
            grade=grade_for(model, score),
            sales_ready=score >= model.sales_ready_score,
            consent_rule=rule,
            fit_for_automated_decisions=rule != "all_contacts",
            explanation=explanation,
        )

    def contributions(
        self, model: ScoringModel, lead: Lead, count: Callable[[BehaviourCondition], int]
    ) -> Iterable[Contribution]:
        for rule in model.rules:
            best: tuple[int, int, list[str]] | None = None
            for g, group in enumerate(rule.when):
                hit = self.match(group, lead, count)
                if hit is not None and (best is None or hit[0] > best[1]):
                    best = (g, *hit)
            if best is not None:
                g, occurrences, matched = best
                yield Contribution(rule.name, g, rule.points * occurrences, occurrences, tuple(matched))

    def match(
        self, group: Sequence[Condition], lead: Lead, count: Callable[[BehaviourCondition], int]
    ) -> tuple[int, list[str]] | None:
        """(occurrences, matched descriptions) when every condition of the group matches, else None."""
        occurrences, matched = 1, []
        for condition in group:
            if isinstance(condition, AttributeCondition):
                if not condition.matches(self.value(condition, lead)):
                    return None
                matched.append(condition.describe())
                continue
            n = count(condition)
            if (n > 0) != (condition.frequency != "none"):
                return None
            if condition.frequency == "each":
                occurrences *= n
            matched.append(condition.describe(n))
        return occurrences, matched


def score_run(
    models: Iterable[ScoringModel],
    leads: Iterable[Lead],
    contacts: Iterable[Contact],
    accounts: Iterable[Account],
    interactions: Iterable[Interaction],
    *,
    now: datetime,
) -> ScoringRun:
    """Score every lead with every live model (drafts are not run): exactly one LeadScore or Skipped per pair.

    `now` is the aware moment the run is for: an interaction counts when `now - within_days <= occurred_on <= now`.
    Ids a lead names that are not among the records count as missing.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be an aware datetime (UTC)")
    live = tuple(model for model in models if model.live)
    names = [model.name for model in live]
    if len(set(names)) != len(names):
        raise ValueError(f"live models need unique names, got {sorted(names)}")
    contact_index = {contact.id: contact for contact in contacts}
    behaviour = (c for model in live for c in conditions(model) if isinstance(c, BehaviourCondition))
    run = _Run(contact_index, {a.id: a for a in accounts}, _Counts(behaviour, interactions, contact_index, now))
    scores: list[LeadScore] = []
    skipped: list[Skipped] = []
    for lead in leads:
        for model in live:
            outcome = run.outcome(model, lead)
            if isinstance(outcome, LeadScore):
                scores.append(outcome)
            else:
                skipped.append(Skipped(lead.id, model.name, outcome))
    return ScoringRun(tuple(scores), tuple(skipped), live)
