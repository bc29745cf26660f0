"""The product's own schema in Dataverse, as data: the tables, columns, lookups and keys the engine reads and writes.

Derived from the code that uses them (publisher prefix `abm_`):

- `abm_interaction`: the default interaction table (dataverse.mapping.InteractionColumns: contact lookup, type, time,
  asset, campaign, content type), plus an idempotency key for interactions posted to the service;
- `abm_leadscore`: one row per (lead, model), upserted by the alternate key (abm_leadid, abm_model) in
  abm.jobs.scoring (score, grade, sales-ready flag, model version, consent rule, fitness for automated decisions,
  explanation as JSON, scored on);
- on `lead`: the sales-ready flag and when it was set (abm.jobs.scoring), and the idempotency key of leads the
  journeys create; on the activities journeys create (task, phonecall, appointment, email): the idempotency key
  (abm.jobs.journeys).

`abm provision` creates what is missing; the health check and the emulator's schema are tested against this module.
"""

from __future__ import annotations

from dataclasses import dataclass

from dataverse.metadata import ColumnSpec, KeySpec, LookupSpec, TableSpec

__all__ = [
    "ADDED_COLUMNS",
    "CHANGE_TRACKED",
    "LEADSCORE_KEY",
    "PRODUCT_TABLES",
    "ProductTable",
    "all_columns",
]

IDEMPOTENCY_KEY = ColumnSpec(
    "abm_IdempotencyKey",
    "ABM idempotency key",
    "string",
    "Deterministic key of the engine's effect that created this row: a retry finds it instead of creating it again",
    max_length=400,
)


@dataclass(frozen=True)
class ProductTable:
    """One of the product's own tables: its definition, then its other columns, lookups and alternate keys."""

    table: TableSpec
    columns: tuple[ColumnSpec, ...] = ()
    lookups: tuple[LookupSpec, ...] = ()
    keys: tuple[KeySpec, ...] = ()

    @property
    def logical_name(self) -> str:
        return self.table.logical_name


INTERACTION = ProductTable(
    TableSpec(
        "abm_Interaction",
        "Interaction",
        "Interactions",
        ColumnSpec("abm_Name", "Name", "string", "Short description of the interaction", max_length=200),
        "A marketing interaction of a contact (email opened, form submitted, web visit, ...), read by the ABM engine",
    ),
    columns=(
        ColumnSpec("abm_Type", "Type", "string", "Kind of interaction, e.g. EmailOpened", max_length=100),
        ColumnSpec("abm_OccurredOn", "Occurred on", "datetime", "When the interaction happened (UTC)"),
        ColumnSpec("abm_Asset", "Asset", "string", "The asset interacted with (email, page, form)", max_length=200),
        ColumnSpec("abm_Campaign", "Campaign", "string", "The campaign the interaction belongs to", max_length=200),
        ColumnSpec("abm_ContentType", "Content type", "string", "Kind of content, e.g. whitepaper", max_length=100),
        IDEMPOTENCY_KEY,
    ),
    lookups=(
        LookupSpec(
            "abm_ContactId",
            "Contact",
            "contact",
            "contactid",
            "abm_contact_abm_interaction",
            "The contact who interacted",
            cascade_delete=True,  # forgetting a contact forgets its interactions
        ),
    ),
)

LEADSCORE_KEY = KeySpec("abm_LeadModel", "Lead and model", ("abm_leadid", "abm_model"))

LEADSCORE = ProductTable(
    TableSpec(
        "abm_LeadScore",
        "Lead score",
        "Lead scores",
        ColumnSpec("abm_Model", "Model", "string", "Name of the scoring model", max_length=100),
        "A lead's score by one ABM scoring model, with its explanation; written by the ABM engine",
    ),
    columns=(
        ColumnSpec("abm_Score", "Score", "integer", "Points the model gives the lead"),
        ColumnSpec("abm_Grade", "Grade", "string", "Grade of the score (e.g. A to D)", max_length=100),
        ColumnSpec("abm_SalesReady", "Sales-ready", "boolean", "The score reached the model's sales-ready threshold"),
        ColumnSpec("abm_ModelVersion", "Model version", "integer", "Version of the model that scored", min_value=0),
        ColumnSpec("abm_ConsentRule", "Consent rule", "string", "How consent limited the score", max_length=100),
        ColumnSpec(
            "abm_FitForAutomatedDecisions",
            "Fit for automated decisions",
            "boolean",
            "False for account-based scores: not fit for automated decisions about individuals",
        ),
        ColumnSpec(
            "abm_Explanation",
            "Explanation",
            "memo",
            "The rules that gave points, as JSON",
            max_length=1048576,  # the largest multiline text column Dataverse allows
        ),
        ColumnSpec("abm_ScoredOn", "Scored on", "datetime", "When the score was computed (UTC)"),
    ),
    lookups=(
        LookupSpec(
            "abm_LeadId",
            "Lead",
            "lead",
            "leadid",
            "abm_lead_abm_leadscore",
            "The lead scored",
            cascade_delete=True,  # a deleted lead's scores mean nothing
        ),
    ),
    keys=(LEADSCORE_KEY,),
)

PRODUCT_TABLES: tuple[ProductTable, ...] = (INTERACTION, LEADSCORE)

# Columns the product adds to existing tables.
ADDED_COLUMNS: dict[str, tuple[ColumnSpec, ...]] = {
    "lead": (
        ColumnSpec("abm_SalesReady", "Sales-ready (ABM)", "boolean", "An ABM scoring model found the lead sales-ready"),
        ColumnSpec("abm_SalesReadyOn", "Sales-ready on (ABM)", "datetime", "When the lead first became sales-ready"),
        IDEMPOTENCY_KEY,
    ),
    "task": (IDEMPOTENCY_KEY,),
    "phonecall": (IDEMPOTENCY_KEY,),
    "appointment": (IDEMPOTENCY_KEY,),
    "email": (IDEMPOTENCY_KEY,),
}

# The tables the sync reads through change tracking (abm.jobs.mirror.KINDS without the score and consent tables).
CHANGE_TRACKED: tuple[str, ...] = ("contact", "account", "lead", "abm_interaction", "opportunity", "abm_leadscore")


def all_columns() -> dict[str, tuple[str, ...]]:
    """Logical names of every product column by table (the primary name and lookups included, the id not): what the
    engine needs to exist, for the health check and the emulator's tests."""
    columns: dict[str, tuple[str, ...]] = {}
    for product in PRODUCT_TABLES:
        names = [product.table.primary_name.logical_name, *(c.logical_name for c in product.columns)]
        columns[product.logical_name] = (*names, *(lk.logical_name for lk in product.lookups))
    for table_name, added in ADDED_COLUMNS.items():
        columns[table_name] = tuple(c.logical_name for c in added)
    return columns
