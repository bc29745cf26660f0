"""A lead score in a few readable lines, for `abm score --lead ID` and for support: why a lead has the score it has.

The one formatter of a score: a score the engine just computed and one read back from Dataverse (as a `LeadScore`,
with the moment it was scored) print alike.
"""

from __future__ import annotations

from datetime import datetime

from scoring.engine import LeadScore

__all__ = ["explain"]

_CONSENT = {
    "contact": "the lead's contact consents (fit for automated decisions)",
    "all_contacts": "all contacts of the account counted, consent not checked: not fit for automated decisions "
    "about individuals",
    "consenting_contacts": "only consenting contacts of the account counted (fit for automated decisions)",
}


def explain(score: LeadScore, *, scored_on: datetime | None = None) -> str:
    """Headline (score, grade, sales-ready), the consent rule, when it was scored (if given: a UTC datetime), then
    one line per fired rule with what matched.

    >>> print(explain(score))  # doctest: +SKIP
    lead 5d4c... by account-fit v3: 25 points, grade B, not sales-ready
      consent: all contacts of the account counted, consent not checked: not fit for automated decisions about ...
      +20  big-amsterdam-account (when[0]): lead.parentaccountid.address1_city eq 'Amsterdam'; lead.parentacc...
      +15  clicks x3 (when[0]): EmailClicked each within 90 days where campaign contains 'spring' (3)
      -10  silent (when[1]): lead.leadqualitycode eq 3
    """
    ready = "sales-ready" if score.sales_ready else "not sales-ready"
    lines = [
        f"lead {score.lead_id} by {score.model} v{score.model_version}: {score.score} points, "
        f"grade {score.grade or '-'}, {ready}",
        f"  consent: {_CONSENT.get(score.consent_rule, score.consent_rule)}",
    ]
    if scored_on is not None:
        lines.append(f"  scored {scored_on:%Y-%m-%dT%H:%M:%SZ}")
    if not score.explanation:
        lines.append("  no rule fired")
    width = max((len(f"{c.points:+d}") for c in score.explanation), default=0)
    for c in score.explanation:
        times = f" x{c.occurrences}" if c.occurrences != 1 else ""
        lines.append(f"  {c.points:+{width}d}  {c.rule}{times} (when[{c.group}]): {'; '.join(c.matched)}")
    return "\n".join(lines)
