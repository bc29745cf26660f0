"""The declared tables: how an alternate key is written into a URL, and text fitted to a column's maximum length."""

from __future__ import annotations

import uuid

import pytest

from dataverse.tables import TABLES, AlternateKey, fit, row_path, table
from devtools.emulator.schema import by_logical_name


def test_a_key_segment_follows_the_declaration_not_the_values_order() -> None:
    key = AlternateKey(("abm_leadid", "abm_model"), lookups=frozenset({"abm_leadid"}))
    lead = uuid.UUID(int=1)
    assert key.segment({"abm_model": "a'b", "abm_leadid": str(lead)}) == f"_abm_leadid_value={lead},abm_model='a''b'"


def test_row_path_encodes_the_values_but_keeps_the_key_readable() -> None:
    path = row_path(table("abm_leadscore"), {"abm_leadid": uuid.UUID(int=2), "abm_model": "fit & co"})
    assert path == f"abm_leadscores(_abm_leadid_value={uuid.UUID(int=2)},abm_model='fit%20%26%20co')"


def test_text_is_fitted_to_the_documented_maximum_with_an_ellipsis() -> None:
    row = fit(table("task"), {"subject": "x" * 250, "description": "short", "abm_idempotencykey": "k" * 500})
    assert len(row["subject"]) == 200 and row["subject"].endswith("x…")
    assert row["description"] == "short"
    assert row["abm_idempotencykey"] == "k" * 500  # not declared: a key is never cut


def test_lengths_count_utf16_units_and_never_split_a_surrogate_pair() -> None:
    name = "🚀" * 60  # 120 UTF-16 units: over the lead's 100 for companyname
    fitted = fit(table("lead"), {"companyname": name, "firstname": "Zoë"})
    assert len(fitted["companyname"].encode("utf-16-le")) // 2 <= 100
    assert fitted["companyname"] == "🚀" * 49 + "…"
    assert fitted["firstname"] == "Zoë"


@pytest.mark.parametrize("value", [None, 12, True])
def test_values_that_are_not_text_pass_unchanged(value: object) -> None:
    assert fit(table("lead"), {"subject": value}) == {"subject": value}


def test_the_lengths_fitted_to_are_the_emulators_which_both_take_from_the_table_reference() -> None:
    for declared in {t.logical_name: t for t in TABLES.values()}.values():
        emulated = by_logical_name(declared.logical_name)
        for column, limit in declared.max_lengths.items():
            assert emulated is not None and emulated.max_length(column) == limit, (declared.logical_name, column)
