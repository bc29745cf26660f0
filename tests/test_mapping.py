"""Rows become records once, at the boundary: typed lookups, consent levels, dates; the rest in attributes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from dataverse import mapping
from dataverse.mapping import InteractionColumns, MappingConfig, Placement
from journeys.segments import Member

CONFIG = MappingConfig(consent_levels={587030000: 0, 587030003: 3})


def test_a_lead_keeps_its_lookups_typed_and_its_columns_as_attributes() -> None:
    lead = mapping.lead(
        {
            "@odata.etag": 'W/"5"',
            "leadid": "AAAA0000-0000-4000-8000-000000000001",
            "_parentcontactid_value": "C0000000-0000-4000-8000-000000000001",
            "_parentaccountid_value": None,
            "statecode": 1,
            "abm_salesready": True,
            "subject": "Web",
            "subject@OData.Community.Display.V1.FormattedValue": "Web",
        }
    )
    assert lead.id == "aaaa0000-0000-4000-8000-000000000001"
    assert lead.contact_id == "c0000000-0000-4000-8000-000000000001" and lead.account_id is None
    assert not lead.is_open and lead.sales_ready
    assert lead.attributes == {
        "leadid": lead.attributes["leadid"],
        "statecode": 1,
        "abm_salesready": True,
        "subject": "Web",
    }


def test_contact_consent_comes_from_the_configured_column_and_mapping() -> None:
    row = {"contactid": "c1", "_parentcustomerid_value": "a1", "msgdpr_gdprconsent": 587030003}
    assert mapping.contact(row, CONFIG).consent_level == 3
    assert mapping.contact({**row, "msgdpr_gdprconsent": None}, CONFIG).consent_level is None
    assert mapping.contact({**row, "msgdpr_gdprconsent": 999}, CONFIG).consent_level is None


def test_a_contact_whose_company_is_a_contact_has_no_account() -> None:
    row = {
        "contactid": "c1",
        "_parentcustomerid_value": "c2",
        "_parentcustomerid_value@Microsoft.Dynamics.CRM.lookuplogicalname": "contact",
    }
    assert mapping.contact(row, CONFIG).account_id is None


def test_contact_point_consent_is_matched_by_email_and_the_most_restrictive_wins() -> None:
    config = MappingConfig(consent_source="contactpointconsent", contactpoint_levels={534120001: 5, 534120002: 0})
    rows = [
        {
            "msdynmkt_contactpointvalue": "Ada@Example.com",
            "msdynmkt_contactpointtype": 534120000,
            "msdynmkt_value": 534120001,
        },
        {
            "msdynmkt_contactpointvalue": "bob@example.com",
            "msdynmkt_contactpointtype": 534120000,
            "msdynmkt_value": 534120001,
        },
        {
            "msdynmkt_contactpointvalue": "bob@example.com",
            "msdynmkt_contactpointtype": 534120000,
            "msdynmkt_value": 534120002,
        },
        {
            "msdynmkt_contactpointvalue": "cy@example.com",
            "msdynmkt_contactpointtype": 534120000,
            "msdynmkt_value": 534120000,
        },
        {"msdynmkt_contactpointvalue": "+3120", "msdynmkt_contactpointtype": 534120001, "msdynmkt_value": 534120001},
    ]
    by_email = mapping.consent_by_email(rows, config)
    assert by_email == {"ada@example.com": 5, "bob@example.com": 0}
    ada = mapping.contact({"contactid": "c1", "emailaddress1": "ada@example.COM "}, config, by_email)
    assert ada.consent_level == 5
    assert (
        mapping.contact({"contactid": "c2", "emailaddress1": "cy@example.com"}, config, by_email).consent_level is None
    )
    assert "emailaddress1" in mapping.select_for("contact", (), config)


def test_an_interaction_maps_type_time_contact_and_named_attributes() -> None:
    row = {
        "abm_interactionid": "I1",
        "_abm_contactid_value": "C1",
        "abm_type": "EmailClicked",
        "abm_occurredon": "2026-11-01T10:00:00Z",
        "abm_campaign": "Spring",
        "abm_asset": None,
        "abm_contenttype": "webinar",
        "abm_channel": "email",
    }
    interaction = mapping.interaction(row, "abm_interactionid", MappingConfig())
    assert (interaction.id, interaction.contact_id, interaction.type) == ("i1", "c1", "EmailClicked")
    assert interaction.occurred_on == datetime(2026, 11, 1, 10, tzinfo=UTC)
    assert interaction.attributes == {
        "campaign": "Spring",
        "asset": None,
        "content_type": "webinar",
        "abm_channel": "email",
    }


def test_select_for_adds_the_columns_definitions_name() -> None:
    assert mapping.select_for("account", {"revenue", "address1_city", "name"}) == (
        "name",
        "_parentaccountid_value",
        "_primarycontactid_value",
        "_ownerid_value",
        "_createdby_value",
        "address1_city",
        "revenue",
    )
    columns = mapping.interaction_select(MappingConfig(), {"campaign", "abm_channel"})
    assert columns[-1] == "abm_channel" and columns.count("abm_campaign") == 1


def test_only_a_contact_read_asks_for_the_lookup_name_annotation() -> None:
    assert mapping.read_annotations("contact") == ("Microsoft.Dynamics.CRM.lookuplogicalname",)
    assert all(mapping.read_annotations(kind) == () for kind in ("account", "lead", "abm_interaction", "opportunity"))


def test_a_select_item_names_its_column_a_lookup_property_its_lookup() -> None:
    assert [mapping.column_of(c) for c in ("_parentcustomerid_value", "donotbulkemail", "msdynmkt_value")] == [
        "parentcustomerid",
        "donotbulkemail",
        "msdynmkt_value",
    ]


def test_a_segment_member_has_its_company_as_account_only_when_it_is_one() -> None:
    row = {"contactid": "C1", "_parentcustomerid_value": "A1"}
    assert mapping.segment_member(row) == Member("c1", "a1")
    annotated = {**row, "_parentcustomerid_value@Microsoft.Dynamics.CRM.lookuplogicalname": "contact"}
    assert mapping.segment_member(annotated) == Member("c1", None)


@pytest.mark.parametrize(
    ("kind", "row", "expected"),
    [
        ("account", {"accountid": "A1", "_parentaccountid_value": "A0"}, Placement("a1", account_id="a1")),
        ("contact", {"contactid": "C1", "_parentcustomerid_value": "A1"}, Placement("c1", account_id="a1")),
        (
            "contact",
            {
                "contactid": "C1",
                "_parentcustomerid_value": "C2",
                "_parentcustomerid_value@Microsoft.Dynamics.CRM.lookuplogicalname": "contact",
            },
            Placement("c1"),
        ),
        (
            "lead",
            {"leadid": "L1", "_parentaccountid_value": "A1", "_parentcontactid_value": "C1"},
            Placement("l1", account_id="a1", contact_id="c1"),
        ),
        (
            "opportunity",
            {"opportunityid": "O1", "_parentaccountid_value": None, "_parentcontactid_value": "C1"},
            Placement("o1", contact_id="c1"),
        ),
        (
            "abm_interaction",
            {"abm_interactionid": "I1", "_abm_contactid_value": "C1", "_parentaccountid_value": "A9"},
            Placement("i1", contact_id="c1"),
        ),
        ("abm_leadscore", {"abm_leadscoreid": "S1", "_abm_leadid_value": "L1"}, Placement("s1", lead_id="l1")),
        ("msdynmkt_contactpointconsent4", {"msdynmkt_contactpointconsent4id": "P1"}, Placement("p1")),
    ],
)
def test_a_rows_placement_reads_the_lookups_that_file_it(kind: str, row: dict[str, Any], expected: Placement) -> None:
    assert mapping.placement(kind, row, MappingConfig()) == expected


def test_an_interactions_placement_follows_the_configured_contact_column() -> None:
    config = MappingConfig(interactions=InteractionColumns(contact="new_personid"))
    row = {"abm_interactionid": "I1", "_new_personid_value": "C7", "_abm_contactid_value": "C1"}
    assert mapping.placement("abm_interaction", row, config) == Placement("i1", contact_id="c7")
    assert mapping.interaction_select(config)[0] == "_new_personid_value"
