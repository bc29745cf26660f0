"""The synthetic tenant: deterministic, sized as configured, referentially whole, and shaped like a B2B tenant."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from devtools.emulator.schema import TABLES
from devtools.tenant import (
    BATCH_SIZE,
    CALLER_USER_ID,
    CONSENT_LEVEL_BY_OPTION,
    INTERACTION_TYPES,
    REFERENCE_WORKFLOWS,
    SIZES,
    TENANT_NAMESPACE,
    TenantSize,
    generate,
    size_from,
)

NOW = datetime(2026, 11, 23, 6, 30, 15, tzinfo=UTC)
SEED = 7
ORDER = ("systemuser", "team", "workflow", "account", "contact", "lead", "opportunity", "abm_interaction")
Rows = dict[str, list[dict[str, Any]]]
ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
EMAIL = re.compile(r"^[a-z0-9.'+-]+@([a-z0-9-]+\.)*example\.(com|org)$")


def tables_of(batches: list[tuple[str, list[dict[str, Any]]]]) -> Rows:
    rows: Rows = defaultdict(list)
    for name, batch in batches:
        rows[name].extend(batch)
    return rows


def digest(batches: Iterator[tuple[str, list[dict[str, Any]]]]) -> str:
    sha = hashlib.sha256()
    for name, batch in batches:
        sha.update(json.dumps([name, batch], sort_keys=True).encode())
    return sha.hexdigest()


def until(stop: str, size: TenantSize, seed: int) -> Rows:
    """The tables generated before `stop` (generation is lazy, so the rest is never built)."""
    rows: Rows = defaultdict(list)
    for name, batch in generate(size, seed=seed, now=NOW):
        if name == stop:
            break
        rows[name].extend(batch)
    return rows


@pytest.fixture(scope="module")
def batches() -> list[tuple[str, list[dict[str, Any]]]]:
    return list(generate(SIZES["small"], seed=SEED, now=NOW))


@pytest.fixture(scope="module")
def small(batches: list[tuple[str, list[dict[str, Any]]]]) -> Rows:
    return tables_of(batches)


# --- determinism ------------------------------------------------------------------------------------------------------


def test_the_same_size_seed_and_now_give_identical_rows(batches: list[tuple[str, list[dict[str, Any]]]]) -> None:
    assert digest(iter(batches)) == digest(generate(SIZES["small"], seed=SEED, now=NOW))


def test_another_seed_gives_other_rows_and_other_ids(small: Rows) -> None:
    other = tables_of(list(generate(SIZES["small"], seed=SEED + 1, now=NOW)))
    assert digest(iter(other.items())) != digest(iter(small.items()))
    for name in ("account", "contact", "lead", "opportunity", "abm_interaction"):
        key = TABLES[name].primary_key
        assert not {row[key] for row in small[name]} & {row[key] for row in other[name]}, name


def test_reference_rows_keep_their_ids_whatever_the_seed() -> None:
    one, two = until("account", SIZES["small"], 1), until("account", SIZES["small"], 2)
    assert one["systemuser"][0]["systemuserid"] == two["systemuser"][0]["systemuserid"] == CALLER_USER_ID
    assert one["team"] == two["team"]
    assert one["workflow"] == two["workflow"]


def test_a_naive_now_is_read_as_utc() -> None:
    naive = NOW.replace(tzinfo=None)
    assert digest(generate(SIZES["none"], seed=1, now=naive)) == digest(generate(SIZES["none"], seed=1, now=NOW))


def test_ids_are_lowercase_uuid5_of_the_seed_namespace_and_unique(small: Rows) -> None:
    namespace = uuid.uuid5(TENANT_NAMESPACE, f"seed:{SEED}")
    assert small["contact"][0]["contactid"] == str(uuid.uuid5(namespace, "contact:0"))
    ids = [row[TABLES[name].primary_key] for name, rows in small.items() for row in rows]
    assert len(ids) == len(set(ids))
    assert all(str(uuid.UUID(guid)) == guid for guid in ids)


# --- sizes ------------------------------------------------------------------------------------------------------------


def test_small_has_exactly_the_configured_counts(small: Rows) -> None:
    size = SIZES["small"]
    counts = {name: len(rows) for name, rows in small.items()}
    assert counts == {
        "systemuser": 1 + size.sales_reps + 1,
        "team": 2,
        "workflow": 3,
        "account": 60,
        "contact": size.contacts,
        "lead": 300,
        "opportunity": 90,
        "abm_interaction": 12_000,
    }
    assert size.contacts == 1_200


def test_tables_come_in_dependency_order(batches: list[tuple[str, list[dict[str, Any]]]]) -> None:
    names = list(dict.fromkeys(name for name, _ in batches))
    assert names == list(ORDER)


def test_none_has_only_the_reference_rows() -> None:
    rows = tables_of(list(generate(size_from("none"), seed=3, now=NOW)))
    assert {name: len(batch) for name, batch in rows.items()} == {"systemuser": 1, "team": 2, "workflow": 3}


def test_the_caller_is_the_first_system_user_and_an_application_user(small: Rows) -> None:
    caller, *others = small["systemuser"]
    assert caller["systemuserid"] == CALLER_USER_ID
    assert caller["applicationid"] is not None
    assert "application user" in caller["fullname"]
    assert all(user["applicationid"] is None for user in others)
    owners = {row["ownerid"] for name in ("account", "contact", "lead", "opportunity") for row in small[name]}
    assert CALLER_USER_ID not in owners
    assert owners <= {user["systemuserid"] for user in others if not user["isdisabled"]}


def test_the_reference_workflows_are_activated_on_demand_definitions(small: Rows) -> None:
    workflows = small["workflow"]
    assert [(w["workflowid"], w["name"], w["primaryentity"]) for w in workflows] == list(REFERENCE_WORKFLOWS)
    assert {w["primaryentity"] for w in workflows} == {"contact", "account"}
    for workflow in workflows:
        assert (workflow["category"], workflow["type"], workflow["ondemand"]) == (0, 1, True)
        assert (workflow["statecode"], workflow["statuscode"]) == (1, 2)


def test_ref_is_configured_with_the_documented_totals() -> None:
    ref = size_from("ref")
    assert (ref.accounts, ref.contacts, ref.leads, ref.interactions, ref.opportunities) == (
        2_000,
        40_000,
        10_000,
        400_000,
        3_000,
    )
    assert ref.contacts_per_account == (5, 50)


def test_a_number_of_accounts_scales_everything_to_ref_ratios() -> None:
    size = size_from(" 100 ")
    assert (size.accounts, size.contacts, size.leads, size.interactions, size.opportunities) == (
        100,
        2_000,
        500,
        20_000,
        150,
    )
    zero = size_from("0")
    assert (zero.accounts, zero.contacts, zero.leads, zero.interactions, zero.opportunities) == (0, 0, 0, 0, 0)
    assert size_from("SMALL") == SIZES["small"]


@pytest.mark.parametrize("text", ["huge", "", "1.5", "-5", "100001", "ten"])
def test_a_size_that_is_neither_a_name_nor_a_count_is_a_clear_error(text: str) -> None:
    with pytest.raises(ValueError, match="tenant size"):
        size_from(text)


def test_a_tenant_size_refuses_negative_counts_and_rows_without_accounts() -> None:
    with pytest.raises(ValueError, match="leads must be >= 0"):
        TenantSize(accounts=1, leads=-1, interactions=0, opportunities=0)
    with pytest.raises(ValueError, match="need at least one account"):
        TenantSize(accounts=0, leads=0, interactions=5, opportunities=0)
    with pytest.raises(ValueError, match="contacts_per_account"):
        TenantSize(accounts=1, leads=0, interactions=0, opportunities=0, contacts_per_account=(9, 3))


def test_batches_never_exceed_5000_rows() -> None:
    size = TenantSize(accounts=300, leads=0, interactions=10_001, opportunities=0)  # 6,000 contacts
    sizes: dict[str, list[int]] = defaultdict(list)
    for name, batch in generate(size, seed=SEED, now=NOW):
        sizes[name].append(len(batch))
    assert BATCH_SIZE == 5_000
    assert sizes["contact"] == [5_000, 1_000]
    assert sizes["abm_interaction"] == [5_000, 5_000, 1]
    assert max(n for counts in sizes.values() for n in counts) <= BATCH_SIZE


# --- schema and references --------------------------------------------------------------------------------------------


def test_rows_use_only_schema_columns_with_the_same_keys_throughout_a_table(small: Rows) -> None:
    for name, rows in small.items():
        table = TABLES[name]
        allowed = set(table.all_columns) | {lk.name for lk in table.all_lookups}
        allowed |= {f"{lk.name}__type" for lk in table.all_lookups}
        keys = set(rows[0])
        assert keys <= allowed, (name, keys - allowed)
        assert all(set(row) == keys for row in rows), name
        assert "versionnumber" not in keys
        assert {"createdby", "createdon", "modifiedon", table.primary_key} <= keys
        assert ("ownerid" in keys) == table.owned
        if table.computed_fullname:
            assert "fullname" not in keys


def test_every_lookup_points_to_a_generated_row_of_the_named_type(small: Rows) -> None:
    ids = {name: {row[TABLES[name].primary_key] for row in rows} for name, rows in small.items()}
    checked = 0
    for name, rows in small.items():
        for lookup in TABLES[name].all_lookups:
            for row in rows:
                target, kind = row.get(lookup.name), row.get(f"{lookup.name}__type")
                assert (target is None) == (kind is None), (name, lookup.name)
                if target is not None:
                    assert kind in lookup.targets
                    assert target in ids[kind], (name, lookup.name, target)
                    checked += 1
    assert checked > 20_000


def test_no_batch_refers_to_a_row_of_the_same_batch(batches: list[tuple[str, list[dict[str, Any]]]]) -> None:
    for name, batch in batches:
        own = {row[TABLES[name].primary_key] for row in batch}
        for lookup in TABLES[name].lookups:
            assert not own & {row.get(lookup.name) for row in batch}, (name, lookup.name)


def test_option_values_are_those_of_the_reference(small: Rows) -> None:
    accounts, contacts, leads, opportunities = (small[n] for n in ("account", "contact", "lead", "opportunity"))
    assert {a["industrycode"] for a in accounts} - {None} <= set(range(1, 34))
    assert {(a["statecode"], a["statuscode"]) for a in accounts} <= {(0, 1), (1, 2)}
    assert {(c["statecode"], c["statuscode"]) for c in contacts} <= {(0, 1), (1, 2)}
    assert {lead["leadsourcecode"] for lead in leads} - {None} <= set(range(1, 11))
    assert {lead["leadqualitycode"] for lead in leads} <= {1, 2, 3, None}
    assert {(o["statecode"], o["statuscode"]) for o in opportunities} <= {(0, 1), (0, 2), (1, 3), (2, 4), (2, 5)}
    assert {i["abm_type"] for i in small["abm_interaction"]} == set(INTERACTION_TYPES)
    contents = {i["abm_contenttype"] for i in small["abm_interaction"]}
    assert contents == {"whitepaper", "webinar", "case study", "pricing page", "blog", "product page", "event"}


# --- B2B shape --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_amsterdam_accounts_with_revenue_of_100000_have_purchasers_at_small(seed: int) -> None:
    rows = until("lead", SIZES["small"], seed)
    big_in_amsterdam = {
        a["accountid"] for a in rows["account"] if a["address1_city"] == "Amsterdam" and (a["revenue"] or 0) >= 100_000
    }
    members = [
        c
        for c in rows["contact"]
        if c["parentcustomerid"] in big_in_amsterdam and c["jobtitle"] in ("Purchaser", "Purchasing Manager")
    ]
    assert len({c["parentcustomerid"] for c in members}) >= 2
    assert any(c["jobtitle"] == "Purchaser" for c in members)


def test_accounts_have_5_to_50_contacts_and_a_few_contacts_have_none(small: Rows) -> None:
    per_account = Counter(c["parentcustomerid"] for c in small["contact"])
    orphans = per_account.pop(None)
    assert orphans == SIZES["small"].orphan_contacts
    assert len(per_account) == 60
    assert min(per_account.values()) >= 5
    assert max(per_account.values()) <= 50
    assert max(per_account.values()) >= 3 * min(per_account.values())


def test_revenue_and_employees_are_skewed_with_some_unknown(small: Rows) -> None:
    for column in ("revenue", "numberofemployees"):
        values = sorted(a[column] for a in small["account"] if a[column] is not None)
        assert sum(values) / len(values) > 1.5 * values[len(values) // 2], column
    assert any(a["revenue"] is None for a in small["account"])
    assert all(a["revenue"] is None or a["revenue"] == round(a["revenue"], 2) for a in small["account"])


def test_leads_come_in_all_four_linkages_in_the_configured_shares(small: Rows) -> None:
    contacts = {c["contactid"]: c for c in small["contact"]}
    kinds = Counter(
        (lead["parentcontactid"] is not None, lead["parentaccountid"] is not None) for lead in small["lead"]
    )
    assert kinds == {(True, False): 120, (False, True): 75, (True, True): 75, (False, False): 30}
    for lead in small["lead"]:
        if lead["parentcontactid"] and lead["parentaccountid"]:
            assert contacts[lead["parentcontactid"]]["parentcustomerid"] == lead["parentaccountid"]
        assert lead["subject"]


def test_leads_are_mostly_open_with_some_qualified_and_disqualified(small: Rows) -> None:
    states = Counter(lead["statecode"] for lead in small["lead"])
    assert states[0] > len(small["lead"]) / 2
    assert states[1] > 0 and states[2] > 0
    statuses = {(lead["statecode"], lead["statuscode"]) for lead in small["lead"]}
    assert statuses <= {(0, 1), (0, 2), (1, 3), (2, 4), (2, 5), (2, 6), (2, 7)}


def test_opportunities_are_won_lost_and_open_in_realistic_shares(small: Rows) -> None:
    opportunities = small["opportunity"]
    states = Counter(o["statecode"] for o in opportunities)
    assert 0.15 <= states[1] / len(opportunities) <= 0.45
    assert 0.08 <= states[2] / len(opportunities) <= 0.35
    assert states[0] > 0
    for o in opportunities:
        assert o["customerid__type"] == "account" and o["customerid"] == o["parentaccountid"]
        assert (o["actualvalue"] is not None) == (o["statecode"] == 1)
        assert (o["actualclosedate"] is not None) == (o["statecode"] != 0)
    leads = {lead["leadid"]: lead for lead in small["lead"]}
    from_leads = [o for o in opportunities if o["originatingleadid"]]
    assert from_leads
    assert all(leads[o["originatingleadid"]]["statecode"] == 1 for o in from_leads)
    assert all(leads[o["originatingleadid"]]["customerid"] == o["customerid"] for o in from_leads)


def test_every_consent_level_appears_and_some_contacts_have_none(small: Rows) -> None:
    assert {587030000 + level: level for level in range(6)} == CONSENT_LEVEL_BY_OPTION
    values = Counter(c["msgdpr_gdprconsent"] for c in small["contact"])
    assert set(values) == {*CONSENT_LEVEL_BY_OPTION, None}


def test_about_one_contact_in_twelve_refuses_bulk_email(small: Rows) -> None:
    share = sum(c["donotbulkemail"] for c in small["contact"]) / len(small["contact"])
    assert 0.04 <= share <= 0.12
    assert all(isinstance(c["donotbulkemail"], bool) for c in small["contact"])


def test_names_have_apostrophes_and_non_ascii_letters(small: Rows) -> None:
    account_names = [a["name"] for a in small["account"]]
    contact_names = [f"{c['firstname']} {c['lastname']}" for c in small["contact"]]
    for names in (account_names, contact_names):
        assert any("'" in name for name in names)
        assert any(not name.isascii() for name in names)
    assert len(set(account_names)) == len(account_names)


def test_emails_are_unique_valid_looking_and_on_example_domains(small: Rows) -> None:
    emails = [c["emailaddress1"] for c in small["contact"] if c["emailaddress1"] is not None]
    assert len(emails) == len(set(emails))
    others = [row["emailaddress1"] for row in small["lead"] if row["emailaddress1"]]
    others += [u["internalemailaddress"] for u in small["systemuser"]]
    assert all(EMAIL.match(email) for email in emails + others)
    assert any("'" in email for email in emails)
    assert all(re.match(r"^https://www\.[a-z0-9-]+\.example\.com$", a["websiteurl"]) for a in small["account"])


def test_every_timestamp_lies_within_the_year_before_now(small: Rows) -> None:
    start, end = ((NOW - timedelta(days=365)).strftime("%Y-%m-%dT%H:%M:%SZ"), NOW.strftime("%Y-%m-%dT%H:%M:%SZ"))
    seen = 0
    for rows in small.values():
        for row in rows:
            for column in ("createdon", "modifiedon", "abm_occurredon"):
                if column in row:
                    assert ISO.match(row[column]), row[column]
                    assert start <= row[column] <= end, (column, row[column])  # ISO strings sort as times
                    seen += 1
            assert row["modifiedon"] >= row["createdon"]
    assert seen > 30_000
    assert datetime.strptime(min(row["createdon"] for row in small["account"]), "%Y-%m-%dT%H:%M:%SZ").year == 2025
    dates = [o[c] for o in small["opportunity"] for c in ("actualclosedate", "estimatedclosedate") if o[c]]
    assert all(re.match(r"^\d{4}-\d{2}-\d{2}$", d) for d in dates)
    months = {i["abm_occurredon"][:7] for i in small["abm_interaction"]}
    assert len(months) >= 11


def test_records_are_created_after_what_they_belong_to(small: Rows) -> None:
    created = {row[TABLES[name].primary_key]: row["createdon"] for name, rows in small.items() for row in rows}
    for c in small["contact"]:
        assert c["parentcustomerid"] is None or c["createdon"] >= created[c["parentcustomerid"]]
    for lead in small["lead"]:
        for parent in (lead["parentcontactid"], lead["parentaccountid"]):
            assert parent is None or lead["createdon"] >= created[parent]
    for o in small["opportunity"]:
        assert o["createdon"] >= created[o["customerid"]]
        assert o["originatingleadid"] is None or o["createdon"] >= created[o["originatingleadid"]]


def test_the_email_funnel_narrows_for_every_campaign_and_contact(small: Rows) -> None:
    interactions = small["abm_interaction"]
    totals = Counter(i["abm_type"] for i in interactions)
    assert totals["EmailSent"] >= totals["EmailDelivered"] > totals["EmailOpened"] > totals["EmailClicked"] > 0
    steps = ("EmailSent", "EmailDelivered", "EmailOpened", "EmailClicked")
    funnels: dict[tuple[str, str], dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    campaigns: dict[str, Counter[str]] = defaultdict(Counter)
    for i in interactions:
        if i["abm_type"] in steps:
            funnels[i["abm_contactid"], i["abm_campaign"]][i["abm_type"]].append(i["abm_occurredon"])
            campaigns[i["abm_campaign"]][i["abm_type"]] += 1
    for funnel in funnels.values():
        counts = [len(funnel[step]) for step in steps]
        assert counts == sorted(counts, reverse=True) and counts[0] == 1
        firsts = [min(funnel[step]) for step in steps if funnel[step]]
        assert firsts == sorted(firsts)
    for per_type in campaigns.values():
        assert [per_type[step] for step in steps] == sorted((per_type[step] for step in steps), reverse=True)


def test_interactions_follow_their_contact_and_respect_bulk_email_refusal(small: Rows) -> None:
    contacts = {c["contactid"]: c for c in small["contact"]}
    for i in small["abm_interaction"]:
        contact = contacts[i["abm_contactid"]]
        assert i["abm_occurredon"] >= contact["createdon"]
        if i["abm_type"] == "EmailSent":
            assert not contact["donotbulkemail"] and contact["emailaddress1"]
        assert i["abm_name"] and i["abm_asset"] and i["abm_contenttype"]
        assert i["abm_campaign"] or not i["abm_type"].startswith("Email")


def test_some_accounts_are_far_more_engaged_than_others(small: Rows) -> None:
    account_of = {c["contactid"]: c["parentcustomerid"] for c in small["contact"]}
    per_account = Counter(account_of[i["abm_contactid"]] for i in small["abm_interaction"])
    per_account.pop(None, None)
    ranked = sorted(per_account.values(), reverse=True)
    assert sum(ranked[:6]) > 0.3 * sum(ranked)
    assert ranked[0] > 5 * ranked[len(ranked) // 2]
