"""A deterministic, seeded synthetic B2B tenant: the rows a demo or a test loads into the Dataverse emulator.

`generate(size, seed=..., now=...)` yields `(logical_name, rows)` batches of at most `BATCH_SIZE` rows in dependency
order (systemuser, team, workflow, account, contact, lead, opportunity, abm_interaction), so a loader can insert them
as they come and memory stays bounded; no row refers to a row of its own batch (subsidiary accounts come in a batch
after their parents'). Rows are plain dicts keyed by `devtools/emulator/schema.py` column names; every row of a table
has the same keys (None when empty). Conventions:

- Lookups are two keys, `<lookup>` (GUID) and `<lookup>__type` (target logical name), e.g. `parentcustomerid` and
  `parentcustomerid__type = "account"`; `createdby` on every row, `ownerid` (an active sales rep; the caller for the
  reference rows) on owned tables. System users: the caller first, then `TenantSize.sales_reps` reps and one disabled
  former rep who owns nothing.
- Datetimes are UTC strings `YYYY-MM-DDTHH:MM:SSZ`, dates `YYYY-MM-DD`, money floats with 2 decimals. Every
  `createdon`, `modifiedon` and `abm_occurredon` lies in `[now - 365 days, now]` (`now` truncated to the second; a naive
  `now` is taken as UTC). `fullname` of contacts and leads is left to the emulator (a system user's is set: it is a
  stored column there); `versionnumber` is never set.
- GUIDs: the reference rows (the calling application user `CALLER_USER_ID`, two teams, three on-demand workflows) have
  fixed GUIDs whatever the seed. Every other row's GUID is `uuid5(uuid5(TENANT_NAMESPACE, f"seed:{seed}"),
  f"{logical_name}:{index}")`, lowercase: stable for a seed, different across seeds, computable without a lookup table.
- Consent: `msgdpr_gdprconsent` option value `587030000 + level`, level 0..5 as in outbound marketing's GDPR levels:
  587030000 = 0 (none), 587030001 = 1 Consent, 587030002 = 2 Transactional, 587030003 = 3 Subscriptions,
  587030004 = 4 Marketing, 587030005 = 5 Profiling (see `CONSENT_LEVEL_BY_OPTION`); about 10 % of contacts have none.

Shape (what segments, scoring and analytics rely on): accounts in European cities (Amsterdam about 15 %), log-normal
employees and revenue (some unknown, some below 100,000), Pareto-skewed engagement per account with an individual
trend (warming or cooling); 5..50 contacts per account averaging 20 plus a few without an account; purchasing job
titles among others; about 8 % `donotbulkemail`; names with apostrophes and non-ASCII letters; leads linked to a
contact only, an account only, both, or neither (40/25/25/10 %); opportunities partly from qualified leads, about 30 %
won and 20 % lost; interactions as email funnels (EmailSent, then EmailDelivered, EmailOpened, EmailClicked a little
later for the same contact and campaign, possibly leading to a visit, FormSubmitted or EventRegistered) and web visits,
never before the contact was created, no email to contacts with `donotbulkemail`.
"""

from __future__ import annotations

import hashlib
import math
import unicodedata
import uuid
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from itertools import accumulate
from random import Random
from typing import Any, Final, Generic, TypeVar

__all__ = [
    "BATCH_SIZE",
    "CALLER_USER_ID",
    "CONSENT_LEVEL_BY_OPTION",
    "INTERACTION_TYPES",
    "REFERENCE_WORKFLOWS",
    "SIZES",
    "TENANT_NAMESPACE",
    "TenantSize",
    "generate",
    "size_from",
]

Row = dict[str, Any]
Batch = list[Row]
_T = TypeVar("_T")

BATCH_SIZE: Final = 5_000
TENANT_NAMESPACE: Final = uuid.UUID("d28d3491-3d13-4640-90c5-1a115583b596")

CALLER_USER_ID: Final = "be0a04b9-bf4d-45a9-b50e-66c9ded0fef9"
_CALLER_APPLICATION_ID: Final = "6b81cc21-ab6d-4059-a8a2-dd6d5df7c73d"
_CALLER_AAD_OBJECT_ID: Final = "2a4ebaef-f1ca-4737-9f4c-15667f67343e"
_TEAMS: Final = (
    ("3f07f72b-18a8-4b10-b37d-2f2d85eb5ae1", "Marketing"),
    ("7ad429be-9623-4a15-baba-c99a5b770a41", "Sales"),
)
#: (workflowid, name, primaryentity) of the on-demand, activated classic workflows every tenant has.
REFERENCE_WORKFLOWS: Final = (
    ("9ec0b4a3-42e6-4833-a280-cfae1627a5ce", "ABM: Welcome contact", "contact"),
    ("7f3d263f-c2f7-47fd-856a-bdc3f8da8b9a", "ABM: Add contact to nurture list", "contact"),
    ("a5524b23-ea64-4ba3-a076-a2904f14e72f", "ABM: Notify account owner", "account"),
)

CONSENT_LEVEL_BY_OPTION: Final = {587030000 + level: level for level in range(6)}
INTERACTION_TYPES: Final = (
    "EmailSent",
    "EmailDelivered",
    "EmailOpened",
    "EmailClicked",
    "WebsiteVisited",
    "FormSubmitted",
    "EventRegistered",
)

_DAY: Final = 86_400
_SPAN: Final = 365 * _DAY
_CONTACTS_PER_ACCOUNT_MEAN: Final = 20
_MAX_ACCOUNTS: Final = 100_000


@dataclass(frozen=True)
class TenantSize:
    """How much to generate. Contacts follow from the accounts: 20 per account on average (within
    `contacts_per_account`), one in twenty accounts' worth of them without an account."""

    accounts: int
    leads: int
    interactions: int
    opportunities: int
    contacts_per_account: tuple[int, int] = (5, 50)

    def __post_init__(self) -> None:
        for name in ("accounts", "leads", "interactions", "opportunities"):
            if getattr(self, name) < 0:
                raise ValueError(f"tenant size: {name} must be >= 0, got {getattr(self, name)}")
        low, high = self.contacts_per_account
        if not 1 <= low <= high:
            raise ValueError(
                f"tenant size: contacts_per_account must be (low, high) with 1 <= low <= high, got {low, high}"
            )
        if self.accounts == 0 and (self.leads or self.interactions or self.opportunities):
            raise ValueError("tenant size: leads, interactions and opportunities need at least one account")

    @property
    def orphan_contacts(self) -> int:
        """Contacts without an account (parentcustomerid null)."""
        return -(-self.accounts // 20)

    @property
    def contacts(self) -> int:
        """All contacts, exactly: accounts x 20 when that fits `contacts_per_account`."""
        if self.accounts == 0:
            return 0
        low, high = self.contacts_per_account
        wanted = self.accounts * _CONTACTS_PER_ACCOUNT_MEAN - self.orphan_contacts
        return min(max(wanted, self.accounts * low), self.accounts * high) + self.orphan_contacts

    @property
    def sales_reps(self) -> int:
        """Active sales reps who own the accounts, contacts, leads and opportunities (plus one disabled user)."""
        return 0 if self.accounts == 0 else min(40, max(3, round(self.accounts / 50)))


SIZES: Final = {
    "none": TenantSize(accounts=0, leads=0, interactions=0, opportunities=0),
    "small": TenantSize(accounts=60, leads=300, interactions=12_000, opportunities=90),
    "ref": TenantSize(accounts=2_000, leads=10_000, interactions=400_000, opportunities=3_000),
}


def size_from(text: str) -> TenantSize:
    """`none`, `small`, `ref`, or a number of accounts (everything else scaled to `ref`'s ratios)."""
    key = text.strip().lower()
    if key in SIZES:
        return SIZES[key]
    try:
        accounts = int(key)
    except ValueError:
        raise ValueError(
            f"tenant size must be one of {', '.join(SIZES)} or a number of accounts, got {text!r}"
        ) from None
    if not 0 <= accounts <= _MAX_ACCOUNTS:
        raise ValueError(f"tenant size: number of accounts must be between 0 and {_MAX_ACCOUNTS:,}, got {accounts}")
    ref = SIZES["ref"]
    return TenantSize(
        accounts=accounts,
        leads=round(accounts * ref.leads / ref.accounts),
        interactions=round(accounts * ref.interactions / ref.accounts),
        opportunities=round(accounts * ref.opportunities / ref.accounts),
    )


def generate(size: TenantSize, *, seed: int, now: datetime) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Yield `(logical_name, rows)` in dependency order, at most `BATCH_SIZE` rows a batch; same inputs, same rows."""
    tenant = _Tenant(size, seed, now)
    stages: tuple[tuple[str, Iterable[Batch]], ...] = (
        ("systemuser", tenant.systemusers()),
        ("team", tenant.teams()),
        ("workflow", tenant.workflows()),
        ("account", tenant.accounts()),
        ("contact", tenant.contacts()),
        ("lead", tenant.leads()),
        ("opportunity", tenant.opportunities()),
        ("abm_interaction", tenant.interactions()),
    )
    for logical_name, batches in stages:
        for batch in batches:
            yield logical_name, batch


class _Weighted(Generic[_T]):
    """Values drawn with fixed weights (cumulative sums computed once)."""

    def __init__(self, pairs: Sequence[tuple[_T, float]]) -> None:
        self.values = tuple(value for value, _ in pairs)
        self.cumulative = tuple(accumulate(weight for _, weight in pairs))

    def pick(self, rng: Random) -> _T:
        return self.values[bisect_right(self.cumulative, rng.random() * self.cumulative[-1])]


# --- vocabulary -------------------------------------------------------------------------------------------------------
# fmt: off

# city, country, weight (percent)
_CITIES: Final = (
    ("Amsterdam", "Netherlands", 15), ("Rotterdam", "Netherlands", 8), ("Utrecht", "Netherlands", 6),
    ("Eindhoven", "Netherlands", 3), ("Berlin", "Germany", 8), ("München", "Germany", 7), ("Hamburg", "Germany", 5),
    ("London", "United Kingdom", 10), ("Manchester", "United Kingdom", 3), ("Paris", "France", 7),
    ("Lyon", "France", 3), ("Zürich", "Switzerland", 5), ("Genève", "Switzerland", 2), ("Kraków", "Poland", 4),
    ("Warszawa", "Poland", 4), ("Stockholm", "Sweden", 3), ("København", "Denmark", 3), ("Wien", "Austria", 2),
    ("Dublin", "Ireland", 2),
)
# country: phone prefix, legal forms (repeats make a form more common)
_COUNTRIES: Final = {
    "Netherlands": ("+31", ("B.V.", "B.V.", "N.V.")),
    "Germany": ("+49", ("GmbH", "GmbH", "AG", "GmbH & Co. KG")),
    "United Kingdom": ("+44", ("Ltd", "Ltd", "plc", "LLP")),
    "France": ("+33", ("SAS", "SA", "SARL")),
    "Switzerland": ("+41", ("AG", "GmbH", "SA")),
    "Poland": ("+48", ("Sp. z o.o.", "S.A.")),
    "Sweden": ("+46", ("AB",)),
    "Denmark": ("+45", ("A/S", "ApS")),
    "Austria": ("+43", ("GmbH", "AG")),
    "Ireland": ("+353", ("Ltd", "DAC")),
}
# industrycode 1..33 (reference section 11.2): a B2B-leaning weight each
_INDUSTRIES: Final = _Weighted(tuple(enumerate(
    (3, 1, 2, 1, 1, 8, 6, 2, 2, 5, 1, 8, 1, 1, 2, 5, 4, 2, 2, 3, 3, 1, 1, 2, 1, 1, 1, 2, 2, 6, 2, 1, 6), start=1,
)))
_SECTOR_WORDS: Final = {
    1: ("Accountants", "Audit"), 6: ("Services", "Solutions", "Business Services"),
    7: ("Consulting", "Advisory", "Partners"), 10: ("Distribution", "Trading"),
    12: ("Manufacturing", "Industries", "Machinery", "Engineering"), 16: ("Capital", "Finance", "Bank"),
    17: ("Foods", "Brewery", "Dairy"), 20: ("Insurance", "Assurance"), 21: ("Legal", "Law"),
    24: ("Energy", "Petrochemicals"), 30: ("Logistics", "Transport", "Shipping", "Freight"),
    31: ("Utilities", "Power", "Water"), 33: ("Wholesale", "Supply", "Trading"),
}
_GENERIC_SECTOR_WORDS: Final = ("Group", "Holding", "Solutions", "Systems", "Industries", "Works", "Labs", "Company")
_BRAND_WORDS: Final = (
    "Polder", "Nordlicht", "Zenith", "Meridian", "Brücke", "Hafen", "Kristall", "Lumière", "L'Étoile", "Øresund",
    "Fjord", "Wisła", "Wawel", "Tulp", "Delta", "Grachten", "Rijn", "Elbe", "Thames", "Seine", "Limmat", "Apex",
    "Orbit", "Vector", "Nimbus", "Quercus", "Aurora", "Borealis", "Żuraw", "Dell'Arte", "'t Hooge Huys", "Blauwe Hoed",
    "Sint-Joris", "Côte", "Édelweiss", "Ålborg Bay", "Straße", "Söderberg", "Île Verte", "Mølle", "Kanaal", "Keizers",
)
_FIRST_NAMES: Final = (
    "Anna", "Jan", "Pieter", "Sanne", "Daan", "Lotte", "Thomas", "Lukas", "Sophie", "Emma", "Noah", "Liam", "Olivia",
    "Zoë", "Łukasz", "Agnieszka", "Małgorzata", "Søren", "Bjørn", "Åsa", "Chloé", "Renée", "François", "Jürgen", "Jörg",
    "Sinéad", "Seán", "Siobhán", "Marco", "Giulia", "Ana", "José", "Ömer", "Ayşe", "Mehmet", "Priya", "Wei", "Yuki",
    "Fatima", "Mohammed", "Kofi", "Anne-Marie", "Jean-Luc", "Hannah", "Maximilian", "Elif", "Niamh", "Aoife", "Lars",
    "Ingrid", "Henrik", "Karolina", "Tomasz", "Grzegorz", "Claire", "Mathilde", "Ruud", "Femke", "Bram", "Inês",
)
_LAST_NAMES: Final = (
    "de Vries", "van den Berg", "Jansen", "Bakker", "Visser", "Smit", "de Jong", "Meijer", "Müller", "Schmidt",
    "Schröder", "Weiß", "Fischer", "Becker", "Ångström", "Nordström", "Ørsted", "Kowalski", "Wiśniewski", "Nowak",
    "Dąbrowski", "Łukasiewicz", "O'Brien", "O'Connor", "O'Neill", "D'Angelo", "D'Souza", "van 't Hek", "Dubois",
    "Lefèvre", "Martin", "Girard", "Smith", "Jones", "Taylor", "Brown", "Williams", "Rossi", "Bianchi", "García",
    "Núñez", "Öztürk", "Yılmaz", "Patel", "Chen", "Tanaka", "Kumar", "Andersen", "Nielsen", "Johansson", "Lindqvist",  # noqa: RUF001
    "Gruber", "Huber", "Keller", "Brunner", "Murphy", "Kelly", "Byrne", "Mendes", "Çelik",
)
# job title (None: not filled in), weight
_JOB_TITLES: Final[_Weighted[str | None]] = _Weighted((
    ("Purchaser", 6), ("Purchasing Manager", 5), ("Head of Procurement", 3), ("Procurement Specialist", 4),
    ("Buyer", 4), ("Category Manager", 3), ("CFO", 2), ("Finance Manager", 5), ("Controller", 4), ("CEO", 2),
    ("Managing Director", 2), ("COO", 2), ("Operations Manager", 6), ("Supply Chain Manager", 5),
    ("Logistics Coordinator", 4), ("IT Manager", 4), ("CIO", 1.5), ("Marketing Manager", 4), ("Sales Director", 3),
    ("Account Manager", 5), ("Office Manager", 4), ("HR Manager", 3), ("Project Manager", 5), ("Engineer", 5),
    ("Analyst", 4), ("Assistant", 3), ("Consultant", 3), ("Inkoper", 1), ("Einkaufsleiter", 1),
    ("Responsable des achats", 1), (None, 4),
))
# consent level (None: not set), weight
_CONSENT_LEVELS: Final[_Weighted[int | None]] = _Weighted((
    (0, 7), (1, 6), (2, 14), (3, 14), (4, 27), (5, 22), (None, 10),
))
# leadsourcecode (None: not set), weight; 8 = Web
_LEAD_SOURCES: Final[_Weighted[int | None]] = _Weighted((
    (1, 8), (2, 5), (3, 7), (4, 10), (5, 3), (6, 10), (7, 10), (8, 30), (9, 7), (10, 5), (None, 5),
))
# leadqualitycode 1 Hot, 2 Warm, 3 Cold (None: not set), weight
_LEAD_QUALITIES: Final[_Weighted[int | None]] = _Weighted(((1, 15), (2, 40), (3, 35), (None, 10)))
_LEAD_TOPICS: Final = (
    "Demo request: Spend Analytics", "Pricing question", "Webinar follow-up: automating purchase approvals",
    "Whitepaper download: supplier risk playbook", "Met at Procurement Summit Amsterdam", "Partner referral",
    "Interested in Supplier Portal", "Request for proposal: e-invoicing", "Expansion to more sites",
    "Contract Manager trial", "Callback requested", "Budget planning next year",
)
_PRODUCTS: Final = ("Spend Analytics", "Supplier Portal", "Contract Manager", "e-Invoicing", "Procurement Suite")
# asset, content type, weight of a web visit landing there
_WEB_PAGES: Final = (
    ("Pricing", "pricing page", 7), ("Pricing: Enterprise plan", "pricing page", 3),
    ("Product: Spend Analytics", "product page", 8), ("Product: Supplier Portal", "product page", 7),
    ("Product: Contract Manager", "product page", 5), ("Product: e-Invoicing", "product page", 5),
    ("Blog: Five ways to cut tail spend", "blog", 9), ("Blog: What CSRD means for your suppliers", "blog", 7),
    ("Blog: Procurement KPIs that matter", "blog", 8), ("Blog: From purchase order to payment in a day", "blog", 6),
    ("Case study: Polder Logistics", "case study", 4), ("Case study: Nordlicht Manufacturing", "case study", 3),
    ("Case study: Wawel Foods", "case study", 3), ("Whitepaper: Supplier risk playbook", "whitepaper", 5),
    ("Whitepaper: Total cost of ownership guide", "whitepaper", 5),
    ("Webinar: Automating purchase approvals", "webinar", 4), ("Webinar: Spend analytics in 30 minutes", "webinar", 4),
    ("Event: Procurement Summit Amsterdam", "event", 4), ("Event: Supply Chain Roundtable Berlin", "event", 3),
)
# campaign name, content type, asset (plus twelve monthly newsletters linking to a blog post)
_CAMPAIGN_THEMES: Final = (
    ("Supplier Risk Playbook", "whitepaper", "Whitepaper: Supplier risk playbook"),
    ("TCO Guide", "whitepaper", "Whitepaper: Total cost of ownership guide"),
    ("Approval Automation Webinar", "webinar", "Webinar: Automating purchase approvals"),
    ("Spend Analytics Webinar", "webinar", "Webinar: Spend analytics in 30 minutes"),
    ("Procurement Summit Amsterdam", "event", "Event: Procurement Summit Amsterdam"),
    ("Supply Chain Roundtable Berlin", "event", "Event: Supply Chain Roundtable Berlin"),
    ("Customer Story: Polder Logistics", "case study", "Case study: Polder Logistics"),
    ("Customer Story: Nordlicht Manufacturing", "case study", "Case study: Nordlicht Manufacturing"),
    ("Customer Story: Wawel Foods", "case study", "Case study: Wawel Foods"),
    ("Pricing Update", "pricing page", "Pricing"),
    ("Enterprise Plan Launch", "pricing page", "Pricing: Enterprise plan"),
    ("Spend Analytics Launch", "product page", "Product: Spend Analytics"),
    ("Supplier Portal Launch", "product page", "Product: Supplier Portal"),
    ("Contract Manager Release", "product page", "Product: Contract Manager"),
    ("e-Invoicing Mandate", "product page", "Product: e-Invoicing"),
    ("Tail Spend Tips", "blog", "Blog: Five ways to cut tail spend"),
    ("CSRD Readiness", "blog", "Blog: What CSRD means for your suppliers"),
    ("Procurement KPIs", "blog", "Blog: Procurement KPIs that matter"),
    ("PO to Payment", "blog", "Blog: From purchase order to payment in a day"),
    ("Year-end Budget Planning", "pricing page", "Pricing"),
)
_MONTHS: Final = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November",
    "December",
)
_PAID_CHANNELS: Final = (
    "Paid search: procurement software", "LinkedIn Ads: procurement leaders", "Retargeting: pricing visitors",
    "Partner co-marketing: Benelux",
)
_GATED: Final = frozenset({"whitepaper", "case study"})
_EVENTS: Final = frozenset({"webinar", "event"})
_FOLD: Final = str.maketrans(
    {"ø": "o", "Ø": "O", "ł": "l", "Ł": "L", "ß": "ss", "æ": "ae", "Æ": "AE", "ı": "i", "œ": "oe", "đ": "d"}  # noqa: RUF001
)

# fmt: on

_PAGES: Final = _Weighted([((asset, content), weight) for asset, content, weight in _WEB_PAGES])


# --- helpers ----------------------------------------------------------------------------------------------------------


def _utc_seconds(moment: datetime) -> datetime:
    """`moment` in UTC, truncated to the second (naive = UTC)."""
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return aware.replace(microsecond=0)


@lru_cache(maxsize=4096)
def _ascii(text: str) -> str:
    """Fold to ASCII letters for e-mail addresses and domains (Müller -> Muller, Łukasz -> Lukasz)."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_FOLD))
    return "".join(ch for ch in decomposed if ch.isascii() and not unicodedata.combining(ch))


def _slug(text: str) -> str:
    folded = _ascii(text).lower()
    return "-".join("".join(ch if ch.isalnum() else " " for ch in folded).split())


def _local_part(*parts: str) -> str:
    """An e-mail local part: ASCII, lowercase, no spaces; apostrophes and hyphens kept (o'brien is valid)."""
    return ".".join(_ascii(part).lower().replace(" ", "") for part in parts)


def _unique(candidate: str, used: set[str]) -> str:
    """`candidate`, or `candidate` with the smallest suffix 2, 3, ... not yet in `used`; records it."""
    name, number = candidate, 1
    while name in used:
        number += 1
        name = f"{candidate}{number}"
    used.add(name)
    return name


def _unique_email(local: str, domain: str, used: set[str]) -> str:
    return f"{_unique(local, used)}@{domain}"


def _int(rng: Random, low: int, high: int) -> int:
    """An integer in [low, high]; `randint` costs ten times more and this runs millions of times."""
    return low + int(rng.random() * (high - low + 1))


def _quotas(rng: Random, n: int, weights: Sequence[float]) -> list[int]:
    """`n` category indexes in exact proportion to `weights` (largest remainder), shuffled."""
    total = sum(weights)
    exact = [n * w / total for w in weights]
    counts = [math.floor(x) for x in exact]
    by_remainder = sorted(range(len(weights)), key=lambda i: (counts[i] - exact[i], i))
    for i in by_remainder[: n - sum(counts)]:
        counts[i] += 1
    indexes = [i for i, count in enumerate(counts) for _ in range(count)]
    rng.shuffle(indexes)
    return indexes


def _spread(rng: Random, n: int, total: int, low: int, high: int) -> list[int]:
    """`n` right-skewed counts in [low, high] summing to `total` (which must lie in [n*low, n*high])."""
    if n == 0:
        return []
    width = high - low + 1
    exponent = max(0.05, width / (total / n - low + 0.5) - 1)  # E[low + floor(width * u**k)] ~ total / n
    counts = [low + min(high - low, int(width * rng.random() ** exponent)) for _ in range(n)]
    missing = total - sum(counts)
    while missing:
        i = rng.randrange(n)
        step = 1 if missing > 0 else -1
        if low <= counts[i] + step <= high:
            counts[i] += step
            missing -= step
    return counts


def _sample(rng: Random, cumulative: Sequence[float], limit: int | None = None) -> int:
    """An index drawn with the weights behind `cumulative` (only among the first `limit` if given)."""
    end = len(cumulative) if limit is None else limit
    return min(bisect_right(cumulative, rng.random() * cumulative[end - 1]), end - 1)


def _follow_up_delay(rng: Random, kind: str) -> int:
    """Seconds from the previous step of an e-mail funnel: delivery and clicks are quick, opening takes hours."""
    if kind == "EmailOpened":
        return min(10 * _DAY, int(rng.lognormvariate(math.log(3 * 3600), 1.3)))
    return _int(rng, 2, 240) if kind == "EmailDelivered" else _int(rng, 3, 900)


def _money(value: float) -> float:
    return round(value, 2)


def _batched(rows: Iterable[Row]) -> Iterator[Batch]:
    batch: Batch = []
    for row in rows:
        batch.append(row)
        if len(batch) == BATCH_SIZE:
            yield batch
            batch = []
    if batch:
        yield batch


def _lookup(name: str, target: str, guid: str | None) -> Row:
    return {name: guid, f"{name}__type": target if guid is not None else None}


@dataclass
class _Account:
    """What later tables need to know about one account (rows themselves are not kept)."""

    guid: str
    name: str
    domain: str
    city: str
    country: str
    owner: int
    created: int
    weight: float
    responsiveness: float
    trend: float
    industry: int | None
    revenue: float | None
    employees: int | None
    first_contact: int = 0
    contacts: int = 0


@dataclass
class _Contact:
    guid: str
    account: int  # -1: no account
    created: int
    owner: int
    firstname: str
    lastname: str
    email: str | None
    jobtitle: str | None
    phone: str | None
    donotbulkemail: bool
    bulk_email: bool  # may receive marketing e-mail: has an address, allows bulk e-mail, active


@dataclass(frozen=True)
class _Campaign:
    at: int
    name: str
    content: str
    asset: str


# (type, occurred, campaign, content type, asset)
_Event = tuple[str, int, str | None, str, str]


class _Tenant:
    """One generation run: the per-table random streams and the little state later tables need."""

    def __init__(self, size: TenantSize, seed: int, now: datetime) -> None:
        self.size = size
        self.seed = seed
        self.start = _utc_seconds(now) - timedelta(seconds=_SPAN)
        self.namespace = uuid.uuid5(TENANT_NAMESPACE, f"seed:{seed}")
        self._namespace_hash = hashlib.sha1(self.namespace.bytes, usedforsecurity=False)
        self.start_second = int(self.start.timestamp())
        self._days: dict[int, str] = {}
        self.reps: list[str] = []
        self.accounts_: list[_Account] = []
        self.contacts_: list[_Contact] = []
        self.contact_weights: list[float] = []
        self.contact_cumulative: list[float] = []
        self.account_cumulative: list[float] = []
        self.linked_contacts = 0
        self.company_bases: set[str] = set()
        self.qualified: list[tuple[int, int, int, int]] = []  # lead index, account, contact (-1), qualified at

    # -- primitives --

    def rng(self, stage: str) -> Random:
        """An independent stream per table, so changing one table's rules leaves the others' rows alone."""
        return Random(f"abm-tenant:{self.seed}:{stage}")

    def guid(self, table: str, index: int) -> str:
        """`str(uuid5(self.namespace, f"{table}:{index}"))`, computed without the UUID object (400,000 of them)."""
        sha1 = self._namespace_hash.copy()
        sha1.update(f"{table}:{index}".encode())
        octets = bytearray(sha1.digest()[:16])
        octets[6] = (octets[6] & 0x0F) | 0x50  # version 5
        octets[8] = (octets[8] & 0x3F) | 0x80  # RFC 4122 variant
        x = octets.hex()
        return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"

    def iso(self, t: int) -> str:
        """`YYYY-MM-DDTHH:MM:SSZ` of `t` seconds after the window start (day prefixes cached)."""
        day, second = divmod(self.start_second + t, _DAY)
        prefix = self._days.get(day)
        if prefix is None:
            prefix = self._days[day] = (self.start + timedelta(seconds=t)).strftime("%Y-%m-%dT")
        hour, rest = divmod(second, 3600)
        return f"{prefix}{hour:02d}:{rest // 60:02d}:{rest % 60:02d}Z"

    def date(self, t: int) -> str:
        return (self.start + timedelta(seconds=t)).strftime("%Y-%m-%d")

    def between(self, rng: Random, low: int, high: int = _SPAN, skew: float = 1.0) -> int:
        """A moment in [low, high] (seconds after the window start); skew > 1 leans early, < 1 late."""
        return low + int((high - low) * rng.random() ** skew)

    def modified(self, rng: Random, created: int) -> int:
        return created if rng.random() < 0.35 else self.between(rng, created, skew=2.0)

    def system(self, created: int, modified: int, created_by: str) -> Row:
        return {
            **_lookup("createdby", "systemuser", created_by),
            "createdon": self.iso(created),
            "modifiedon": self.iso(modified),
        }

    def owned(self, owner: str, created: int, modified: int, created_by: str) -> Row:
        return {**_lookup("ownerid", "systemuser", owner), **self.system(created, modified, created_by)}

    def phone(self, rng: Random, country: str) -> str:
        prefix, _ = _COUNTRIES[country]
        return f"{prefix} {_int(rng, 10, 99)} {_int(rng, 100, 999)} {_int(rng, 1000, 9999)}"

    # -- reference rows and users --

    def systemusers(self) -> Iterator[Batch]:
        rng = self.rng("systemuser")
        rows = [
            {
                "systemuserid": CALLER_USER_ID,
                "fullname": "ABM Engine (application user)",
                "firstname": "ABM Engine",
                "lastname": "(application user)",
                "internalemailaddress": "abm-engine@example.org",
                "azureactivedirectoryobjectid": _CALLER_AAD_OBJECT_ID,
                "applicationid": _CALLER_APPLICATION_ID,
                "isdisabled": False,
                **self.system(0, 0, CALLER_USER_ID),
            }
        ]
        used: set[str] = set()
        people = self.size.sales_reps + (1 if self.size.sales_reps else 0)  # the last one has left the company
        for i in range(people):
            first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
            guid = self.guid("systemuser", i)
            disabled = i == self.size.sales_reps
            if not disabled:
                self.reps.append(guid)
            rows.append(
                {
                    "systemuserid": guid,
                    "fullname": f"{first} {last}",
                    "firstname": first,
                    "lastname": last,
                    "internalemailaddress": _unique_email(_local_part(first, last), "sales.example.org", used),
                    "azureactivedirectoryobjectid": str(uuid.uuid5(self.namespace, f"aad:{i}")),
                    "applicationid": None,
                    "isdisabled": disabled,
                    **self.system(0, self.between(rng, 0) if disabled else 0, CALLER_USER_ID),
                }
            )
        yield from _batched(rows)

    def teams(self) -> Iterator[Batch]:
        yield [
            {"teamid": guid, "name": name, **self.owned(CALLER_USER_ID, 0, 0, CALLER_USER_ID)} for guid, name in _TEAMS
        ]

    def workflows(self) -> Iterator[Batch]:
        common = {"category": 0, "type": 1, "ondemand": True, "statecode": 1, "statuscode": 2}
        yield [
            {
                "workflowid": guid,
                "name": name,
                "primaryentity": entity,
                **common,
                **self.owned(CALLER_USER_ID, 0, 0, CALLER_USER_ID),
            }
            for guid, name, entity in REFERENCE_WORKFLOWS
        ]

    # -- accounts --

    def accounts(self) -> Iterator[Batch]:
        rng = self.rng("account")
        n = self.size.accounts
        if n == 0:
            return
        low, high = self.size.contacts_per_account
        counts = _spread(rng, n, self.size.contacts - self.size.orphan_contacts, low, high)
        cities = _quotas(rng, n, [weight for _, _, weight in _CITIES])
        rep_weights = [rng.uniform(0.5, 1.5) for _ in self.reps]
        subsidiaries = n // 16  # the last accounts belong to a parent among the first ones
        domains: set[str] = set()
        top_level: list[Row] = []
        children: list[Row] = []
        next_contact = 0
        for i in range(n):
            city, country, _ = _CITIES[cities[i]]
            industry = _INDUSTRIES.pick(rng)
            base = self._company_base(rng, industry, city)
            name = f"{base} {rng.choice(_COUNTRIES[country][1])}"
            domain = f"{_unique(_slug(base), domains)}.example.com"
            employees = max(counts[i], min(300_000, round(rng.lognormvariate(math.log(40), 1.6))))
            revenue = employees * rng.lognormvariate(math.log(35_000), 1.2)
            revenue_value = float(round(revenue, -3)) if revenue >= 10_000 else _money(revenue)
            weight = 0.05 if rng.random() < 0.15 else min(15.0, rng.paretovariate(1.8))  # a few hot accounts
            parent = rng.randrange(n - subsidiaries) if i >= n - subsidiaries else None
            created = self.between(rng, 0, skew=2.0)
            if parent is not None:
                created = max(created, self.accounts_[parent].created)
            account = _Account(
                guid=self.guid("account", i),
                name=name,
                domain=domain,
                city=city,
                country=country,
                owner=rng.choices(range(len(self.reps)), weights=rep_weights)[0],
                created=created,
                weight=weight,
                responsiveness=min(1.8, max(0.4, 0.7 + 0.3 * math.log1p(weight))),
                trend=math.exp(rng.gauss(0, 0.45)),
                industry=None if rng.random() < 0.05 else industry,
                revenue=None if rng.random() < 0.08 else revenue_value,
                employees=None if rng.random() < 0.05 else employees,
                first_contact=next_contact,
                contacts=counts[i],
            )
            next_contact += counts[i]
            self.accounts_.append(account)
            active = rng.random() >= 0.03
            row = {
                "accountid": account.guid,
                "name": name,
                "accountnumber": f"ACC-{i + 1:06d}",
                "revenue": account.revenue,
                "numberofemployees": account.employees,
                "industrycode": account.industry,
                "address1_city": city,
                "address1_country": country,
                "telephone1": self.phone(rng, country) if rng.random() < 0.9 else None,
                "websiteurl": f"https://www.{domain}",
                **_lookup("parentaccountid", "account", None if parent is None else self.accounts_[parent].guid),
                "statecode": 0 if active else 1,
                "statuscode": 1 if active else 2,
                **self.owned(
                    self.reps[account.owner],
                    created,
                    self.modified(rng, created),
                    self.reps[account.owner] if rng.random() < 0.7 else CALLER_USER_ID,
                ),
            }
            (top_level if parent is None else children).append(row)
        # a batch never references a row of the same batch: parents come in earlier batches
        yield from _batched(top_level)
        yield from _batched(children)

    def _company_base(self, rng: Random, industry: int, city: str) -> str:
        """A company name without legal form, unique among the tenant's accounts and lead companies."""
        used = self.company_bases
        sector = _SECTOR_WORDS.get(industry, _GENERIC_SECTOR_WORDS)
        base = ""
        for _ in range(20):
            pattern = rng.random()
            if pattern < 0.4:
                base = f"{rng.choice(_LAST_NAMES)} {rng.choice(sector)}"
            elif pattern < 0.55:
                first, second = rng.sample(_LAST_NAMES, 2)
                base = f"{first} & {second}"
            else:
                base = f"{rng.choice(_BRAND_WORDS)} {rng.choice(sector)}"
            if base not in used:
                break
        else:
            base = f"{base} {city} {len(used) + 1}"
        used.add(base)
        return base

    # -- contacts --

    def contacts(self) -> Iterator[Batch]:
        rng = self.rng("contact")
        emails: set[str] = set()
        orphans = self.size.orphan_contacts if self.size.accounts else 0
        owners = [(a, acc) for a, acc in enumerate(self.accounts_) for _ in range(acc.contacts)]
        rows = (self._contact(rng, k, a, acc, emails) for k, (a, acc) in enumerate(owners))
        orphan_rows = (self._contact(rng, len(owners) + j, -1, None, emails) for j in range(orphans))
        yield from _batched(row for part in (rows, orphan_rows) for row in part)
        self.finish_contacts()

    def _contact(self, rng: Random, k: int, a: int, account: _Account | None, emails: set[str]) -> Row:
        first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
        if account is not None:
            city = account.city if rng.random() < 0.85 else rng.choice(_CITIES)[0]
            country = account.country
            created = self.between(rng, account.created, skew=3.0)
            owner = account.owner
            domain = account.domain
            weight = account.weight
        else:
            city, country, _ = rng.choice(_CITIES)
            created = self.between(rng, 0)
            owner = _int(rng, 0, len(self.reps) - 1)
            domain = rng.choice(("mail.example.org", "inbox.example.org", "post.example.org"))
            weight = 1.0
        email = None if rng.random() < 0.01 else _unique_email(_local_part(first, last), domain, emails)
        jobtitle = _JOB_TITLES.pick(rng)
        consent = _CONSENT_LEVELS.pick(rng)
        no_bulk = rng.random() < 0.08
        active = rng.random() >= 0.04
        contact = _Contact(
            guid=self.guid("contact", k),
            account=a,
            created=created,
            owner=owner,
            firstname=first,
            lastname=last,
            email=email,
            jobtitle=jobtitle,
            phone=self.phone(rng, country) if rng.random() < 0.85 else None,
            donotbulkemail=no_bulk,
            bulk_email=email is not None and not no_bulk and active,
        )
        self.contacts_.append(contact)
        # engagement per day known: a contact created last week has had a week to interact
        exposure = (_SPAN - created) / _SPAN
        self.contact_weights.append(weight * exposure * rng.lognormvariate(0, 0.9) * (1.0 if active else 0.2))
        return {
            "contactid": contact.guid,
            "firstname": first,
            "lastname": last,
            "emailaddress1": email,
            "jobtitle": jobtitle,
            "telephone1": contact.phone,
            "address1_city": city,
            "donotbulkemail": no_bulk,
            "donotemail": rng.random() < 0.02,
            "donotphone": rng.random() < 0.05,
            "msgdpr_gdprconsent": None if consent is None else 587030000 + consent,
            **_lookup("parentcustomerid", "account", None if account is None else account.guid),
            "statecode": 0 if active else 1,
            "statuscode": 1 if active else 2,
            **self.owned(
                self.reps[owner],
                created,
                self.modified(rng, created),
                self.reps[owner] if rng.random() < 0.6 else CALLER_USER_ID,
            ),
        }

    def finish_contacts(self) -> None:
        """Cumulative engagement weights, for drawing engaged contacts and accounts more often."""
        self.contact_cumulative = list(accumulate(self.contact_weights))
        self.account_cumulative = list(accumulate(account.weight for account in self.accounts_))
        self.linked_contacts = sum(account.contacts for account in self.accounts_)

    # -- leads --

    def leads(self) -> Iterator[Batch]:
        rng = self.rng("lead")
        kinds = _quotas(rng, self.size.leads, [40, 25, 25, 10])  # contact only, account only, both, neither
        emails: set[str] = set()
        yield from _batched(self._lead(rng, i, kind, emails) for i, kind in enumerate(kinds))

    def _lead(self, rng: Random, i: int, kind: int, emails: set[str]) -> Row:
        contact_index = account_index = -1
        if kind == 0:
            contact_index = _sample(rng, self.contact_cumulative)
        elif kind == 1:
            account_index = _sample(rng, self.account_cumulative)
        elif kind == 2:
            contact_index = _sample(rng, self.contact_cumulative, self.linked_contacts)
            account_index = self.contacts_[contact_index].account
        contact = self.contacts_[contact_index] if contact_index >= 0 else None
        account = self.accounts_[account_index] if account_index >= 0 else None
        company_index = account_index if contact is None or account is not None else contact.account
        company = self.accounts_[company_index] if company_index >= 0 else None
        if contact is not None:
            first, last, email = contact.firstname, contact.lastname, contact.email
            jobtitle, phone = contact.jobtitle, contact.phone
        else:
            first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
            jobtitle = _JOB_TITLES.pick(rng)
            phone = (
                self.phone(rng, company.country if company else rng.choice(_CITIES)[1]) if rng.random() < 0.7 else None
            )
            email = None
        if company is not None:
            companyname, domain = company.name, company.domain
            industry, revenue, employees = (company.industry, company.revenue, company.employees)
            if rng.random() < 0.3:
                industry, revenue, employees = None, None, None
        else:
            city, country, _ = rng.choice(_CITIES)
            base = self._company_base(rng, _INDUSTRIES.pick(rng), city)
            companyname, domain = f"{base} {rng.choice(_COUNTRIES[country][1])}", f"{_slug(base)}.example.org"
            industry = None if rng.random() < 0.4 else _INDUSTRIES.pick(rng)
            employees = max(1, round(rng.lognormvariate(math.log(40), 1.5)))
            revenue = float(round(employees * rng.lognormvariate(math.log(40_000), 1.2), -3)) or None
        if contact is None:
            email = _unique_email(_local_part(first)[:1] + _local_part(last), domain, emails)
        created = self.between(rng, max(contact.created if contact else 0, account.created if account else 0))
        owner = self.reps[company.owner if company else contact.owner if contact else _int(rng, 0, len(self.reps) - 1)]
        closed = rng.random() < 0.1 + 0.55 * (_SPAN - created) / _SPAN
        closed_at = min(_SPAN, created + _int(rng, _DAY // 24, 45 * _DAY))
        customer: Row = _lookup("customerid", "account", None)
        if not closed:
            state, status, modified = 0, (1 if rng.random() < 0.6 else 2), self.modified(rng, created)
        elif rng.random() < 0.5:
            state, status, modified = 1, 3, closed_at
            if company is not None:
                self.qualified.append((i, company_index, contact_index, closed_at))
                customer = _lookup("customerid", "account", company.guid)
            elif contact is not None:
                customer = _lookup("customerid", "contact", contact.guid)
        else:
            state, status, modified = 2, rng.choice((4, 5, 6, 7)), closed_at
        return {
            "leadid": self.guid("lead", i),
            "subject": rng.choice(_LEAD_TOPICS),
            "firstname": first,
            "lastname": last,
            "companyname": companyname,
            "emailaddress1": email,
            "jobtitle": jobtitle,
            "telephone1": phone,
            "leadsourcecode": _LEAD_SOURCES.pick(rng),
            "leadqualitycode": _LEAD_QUALITIES.pick(rng),
            "revenue": revenue,
            "numberofemployees": employees,
            "industrycode": industry,
            "donotbulkemail": contact.donotbulkemail if contact else rng.random() < 0.07,
            "msdyn_gdproptout": rng.random() < 0.04,
            **_lookup("parentaccountid", "account", account.guid if account else None),
            **_lookup("parentcontactid", "contact", contact.guid if contact else None),
            **customer,
            "statecode": state,
            "statuscode": status,
            **self.owned(owner, created, modified, CALLER_USER_ID if rng.random() < 0.45 else owner),
        }

    # -- opportunities --

    def opportunities(self) -> Iterator[Batch]:
        rng = self.rng("opportunity")
        n = self.size.opportunities
        from_leads = rng.sample(self.qualified, min(len(self.qualified), round(n * 0.4)))
        yield from _batched(self._opportunity(rng, i, from_leads[i] if i < len(from_leads) else None) for i in range(n))

    def _opportunity(self, rng: Random, i: int, origin: tuple[int, int, int, int] | None) -> Row:
        lead: str | None = None
        if origin is not None:
            lead_index, account_index, contact_index, created = origin
            lead = self.guid("lead", lead_index)
        else:
            account_index, contact_index = _sample(rng, self.account_cumulative), -1
            created = self.between(rng, self.accounts_[account_index].created)
        account = self.accounts_[account_index]
        if contact_index < 0 and rng.random() < 0.7:
            contact_index = account.first_contact + _int(rng, 0, account.contacts - 1)
        product = rng.choice(_PRODUCTS)
        estimated = round(rng.lognormvariate(math.log(8_000), 0.8) * (account.employees or 50) ** 0.3, -2)
        closing = rng.random() < min(0.95, 0.2 + 0.8 * (_SPAN - created) / _SPAN)
        closed_at = min(_SPAN, created + min(_int(rng, 14, 150) * _DAY, int((_SPAN - created) * rng.uniform(0.3, 1))))
        actual: float | None = None
        close_date: str | None = None
        if not closing:
            state, status, modified = 0, (1 if rng.random() < 0.85 else 2), self.modified(rng, created)
        elif rng.random() < 0.6:
            state, status, modified = 1, 3, closed_at
            actual, close_date = _money(round(estimated * rng.lognormvariate(0, 0.2), -2)), self.date(closed_at)
        else:
            state, status, modified = 2, (4 if rng.random() < 0.7 else 5), closed_at
            close_date = self.date(closed_at)
        owner = self.reps[account.owner]
        return {
            "opportunityid": self.guid("opportunity", i),
            "name": f"{product} for {account.name} ({rng.choice((10, 25, 50, 100, 250, 500))} users)",
            "estimatedvalue": _money(estimated),
            "actualvalue": actual,
            "actualclosedate": close_date,
            "estimatedclosedate": self.date(created + _int(rng, 30, 180) * _DAY),
            **_lookup("customerid", "account", account.guid),
            **_lookup("parentaccountid", "account", account.guid),
            **_lookup("parentcontactid", "contact", self.contacts_[contact_index].guid if contact_index >= 0 else None),
            **_lookup("originatingleadid", "lead", lead),
            "statecode": state,
            "statuscode": status,
            **self.owned(owner, created, modified, owner),
        }

    # -- interactions --

    def interactions(self) -> Iterator[Batch]:
        rng = self.rng("abm_interaction")
        target = self.size.interactions
        if target == 0:
            return
        campaigns = self._campaigns(rng)
        times = [campaign.at for campaign in campaigns]
        sent: set[int] = set()
        produced = 0
        batch: Batch = []
        while produced < target:
            k = _sample(rng, self.contact_cumulative)
            for event in self._episode(rng, k, campaigns, times, sent)[: target - produced]:
                batch.append(self._interaction(rng, produced, k, event))
                produced += 1
                if len(batch) == BATCH_SIZE:
                    yield batch
                    batch = []
        if batch:
            yield batch

    def _campaigns(self, rng: Random) -> list[_Campaign]:
        """A newsletter early in every calendar month and the themed campaigns spread over the year, sent mornings."""
        latest = _SPAN - 4 * 3600
        blogs = [asset for asset, content, _ in _WEB_PAGES if content == "blog"]
        campaigns = []
        for step in range(1, 13):
            year, month = divmod(self.start.month - 1 + step, 12)
            sent = datetime(
                self.start.year + year, month + 1, _int(rng, 2, 8), _int(rng, 7, 10), _int(rng, 0, 59), tzinfo=UTC
            )
            at = int((sent - self.start).total_seconds())
            if 0 <= at <= latest:
                campaigns.append(_Campaign(at, f"Newsletter {_MONTHS[month]} {sent.year}", "blog", rng.choice(blogs)))
        themes = list(_CAMPAIGN_THEMES)
        rng.shuffle(themes)
        midnight = -(self.start.hour * 3600 + self.start.minute * 60 + self.start.second)
        for j, (name, content, asset) in enumerate(themes):
            day = 7 + int((j + rng.random()) * 348 / len(themes))
            at = midnight + day * _DAY + _int(rng, 7 * 3600, 11 * 3600)
            campaigns.append(_Campaign(min(latest, at), name, content, asset))
        return sorted(campaigns, key=lambda campaign: (campaign.at, campaign.name))

    def _episode(
        self, rng: Random, k: int, campaigns: list[_Campaign], times: list[int], sent: set[int]
    ) -> list[_Event]:
        """One contact's e-mail funnel for one campaign, or one web visit; events in time order."""
        contact = self.contacts_[k]
        account = self.accounts_[contact.account] if contact.account >= 0 else None
        responsiveness = account.responsiveness if account else 1.0
        trend = account.trend if account else 1.0
        if contact.bulk_email and rng.random() < 0.7:
            first = bisect_left(times, contact.created)
            eligible = len(campaigns) - first
            for _ in range(3 if eligible > 0 else 0):
                j = first + min(eligible - 1, int(eligible * rng.random() ** trend))
                if k * len(campaigns) + j not in sent:
                    sent.add(k * len(campaigns) + j)
                    return self._email(rng, campaigns[j], responsiveness)
        return self._visit(rng, contact.created, responsiveness, trend)

    def _email(self, rng: Random, campaign: _Campaign, responsiveness: float) -> list[_Event]:
        name, content, asset = campaign.name, campaign.content, campaign.asset
        t = campaign.at + _int(rng, 0, 3 * 3600 - 1)
        events: list[_Event] = [("EmailSent", t, name, content, asset)]
        for kind, chance in (
            ("EmailDelivered", 0.96),
            ("EmailOpened", min(0.85, 0.32 * responsiveness)),
            ("EmailClicked", min(0.6, 0.2 * responsiveness)),
            ("WebsiteVisited", 0.92),
        ):
            if rng.random() >= chance:
                return events
            t += _follow_up_delay(rng, kind)
            if t > _SPAN:
                return events
            events.append((kind, t, name, content, asset))
        t += _int(rng, 60, 600)
        if content in _EVENTS and rng.random() < min(0.8, 0.4 * responsiveness):
            events.append(("EventRegistered", t, name, content, asset))
        elif content in _GATED and rng.random() < min(0.8, 0.35 * responsiveness):
            events.append(("FormSubmitted", t, name, content, asset))
        elif rng.random() < 0.08 * responsiveness:
            events.append(("FormSubmitted", t, name, content, "Demo request form"))
        while rng.random() < 0.35:
            t += _int(rng, 20, 300)
            page, page_content = _PAGES.pick(rng)
            events.append(("WebsiteVisited", t, name, page_content, page))
        return [event for event in events if event[1] <= _SPAN]

    def _visit(self, rng: Random, created: int, responsiveness: float, trend: float) -> list[_Event]:
        t = created + int((_SPAN - created) * rng.random() ** trend)
        campaign = None if rng.random() < 0.5 else rng.choice(_PAID_CHANNELS)
        page, content = _PAGES.pick(rng)
        events: list[_Event] = [("WebsiteVisited", t, campaign, content, page)]
        while len(events) < 6 and rng.random() < 0.45:
            t += _int(rng, 20, 300)
            page, content = _PAGES.pick(rng)
            events.append(("WebsiteVisited", t, campaign, content, page))
        t += _int(rng, 30, 600)
        if content in _EVENTS and rng.random() < 0.15 * responsiveness:
            events.append(("EventRegistered", t, campaign, content, page))
        elif content in _GATED and rng.random() < 0.25 * responsiveness:
            events.append(("FormSubmitted", t, campaign, content, page))
        elif content in ("pricing page", "product page") and rng.random() < 0.06 * responsiveness:
            events.append(("FormSubmitted", t, campaign, content, "Demo request form"))
        return [event for event in events if event[1] <= _SPAN]

    def _interaction(self, rng: Random, i: int, k: int, event: _Event) -> Row:
        kind, t, campaign, content, asset = event
        created = self.iso(min(_SPAN, t + _int(rng, 30, 900)))  # logged a little after it happened
        return {
            "abm_interactionid": self.guid("abm_interaction", i),
            "abm_name": f"{kind}: {campaign or asset}"[:100],
            "abm_type": kind,
            "abm_occurredon": self.iso(t),
            "abm_asset": asset,
            "abm_campaign": campaign,
            "abm_contenttype": content,
            "abm_contactid": self.contacts_[k].guid,
            "abm_contactid__type": "contact",
            "statecode": 0,
            "statuscode": 1,
            "createdby": CALLER_USER_ID,
            "createdby__type": "systemuser",
            "createdon": created,
            "modifiedon": created,
        }
