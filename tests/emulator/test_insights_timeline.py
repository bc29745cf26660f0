"""The insights' timeline as the sync keeps it, over the synthetic tenant in the emulator: after a full sync, an
incremental one and an upgrade it holds exactly the events the whole mirror gives (`insights.timeline.timeline` over
every record), and what the run itself wrote is in it: the leads it found sales-ready are marketing qualified at the
run's moment, and their scores are in their accounts' KPIs."""

from __future__ import annotations

import uuid
from datetime import timedelta

from abm.jobs.mirror import load_snapshot
from abm.jobs.pipeline import RunSetup
from abm.jobs.sync import EVALUATION, sync
from abm.views.insights import account_insights, paths
from dataverse.query import Query, eq
from dataverse.tables import table
from insights.timeline import MARKETING_QUALIFIED, Event, event_order, timeline
from statestore.port import TimelineQuery
from statestore.sqlite import SqliteStateStore
from tests.runtime_support import NOW, demo_setup, fresh_client, tenant


def from_the_mirror(store: SqliteStateStore, setup: RunSetup) -> list[Event]:
    """The events of every record the mirror holds, built at once (what the insights read before the timeline)."""
    records = load_snapshot(store, setup.config)
    return timeline(records.contacts, records.leads, records.opportunities, records.interactions)


def test_the_timeline_is_the_mirrors_events_after_a_full_an_incremental_sync_and_an_upgrade() -> None:
    setup = demo_setup()
    with tenant() as (emulator, client):
        store = SqliteStateStore()
        sync(fresh_client(emulator), store, setup, now=NOW)
        kept = store.timeline()
        assert len(kept) > 10_000 and kept == from_the_mirror(store, setup)

        # A new interaction and a contact moving to another account reach it with the next tick.
        contact = next(r for r in store.mirror("contact") if r.data.get("_parentcustomerid_value"))
        other = next(r.id for r in store.mirror("account") if r.id != contact.partition)
        new = uuid.uuid4()
        client.create(
            table("abm_interaction"),
            {
                "abm_type": "WebinarAttended",
                "abm_occurredon": "2026-11-20T10:00:00Z",
                "abm_contenttype": "webinar",
                "abm_contactid@odata.bind": f"/contacts({contact.id})",
            },
            id=new,
        )
        active = {e.contact_id for e in kept if not e.milestone}
        moved = next(r.id for r in store.mirror("contact", [contact.partition]) if r.id in active - {contact.id})
        client.update(
            table("contact"), uuid.UUID(moved), {"parentcustomerid_account@odata.bind": f"/accounts({other})"}
        )
        tick = sync(fresh_client(emulator), store, setup, now=NOW + timedelta(minutes=5))
        assert tick.sync["mode"] == "incremental" and 0 < tick.sync["evaluated"] < 10
        found = store.timeline(TimelineQuery(types=frozenset({"WebinarAttended"})))
        assert [(e.source, e.account_id, e.content_type) for e in found] == [(str(new), contact.partition, "webinar")]
        assert {e.account_id for e in store.timeline() if e.contact_id == moved and not e.milestone} == {other}
        assert store.timeline() == from_the_mirror(store, setup)

        # A state store from before the timeline (or one that lost it) is evaluated whole once, which rebuilds it.
        store.clear_timeline()
        store.save_checkpoints({EVALUATION: "a fingerprint from before the timeline"})
        upgraded = sync(fresh_client(emulator), store, setup, now=NOW + timedelta(minutes=10))
        assert "evaluated" not in upgraded.sync  # every partition
        assert store.timeline() == from_the_mirror(store, setup)
        assert upgraded.writes.get("tasks", {}).get("created", 0) == 0  # evaluating again wrote nothing twice


def test_the_leads_a_run_finds_sales_ready_are_qualified_in_its_timeline_and_scored_in_their_accounts() -> None:
    setup = demo_setup()
    with tenant() as (emulator, client):
        store = SqliteStateStore()
        report = sync(fresh_client(emulator), store, setup, now=NOW)
        leads = table("lead")
        flagged = {
            str(r["leadid"]).lower(): r
            for r in client.iter_rows(
                Query(leads.entity_set)
                .select("leadid", "abm_salesreadyon", "_parentaccountid_value")
                .where(eq("abm_salesready", True))
            )
        }
        now_flagged = {id for id, r in flagged.items() if r["abm_salesreadyon"] == "2026-11-23T00:00:00Z"}
        assert len(now_flagged) == report.writes["leads"]["updated"] > 0
        qualified = store.timeline(TimelineQuery(types=frozenset({MARKETING_QUALIFIED}), start=NOW))
        assert {e.source for e in qualified} == now_flagged
        assert all(e.at == NOW for e in qualified)
        assert qualified == sorted(qualified, key=event_order)

        # The path from a lead's creation to its qualification counts them in the same run.
        span = {"from": "2020-01-01", "to": "2026-11-23", "steps": "LeadCreated,MarketingQualified"}
        nodes = paths(store, setup, span, NOW)["nodes"]
        assert nodes[1]["reached"] >= len({e.account_id for e in qualified if e.account_id})

        # Their accounts' KPIs show the scores the run wrote (kept in the mirror as written).
        lead_id = sorted(now_flagged)[0]
        account = next(e.account_id for e in qualified if e.source == lead_id)
        assert account is not None
        best = account_insights(store, setup, account, {"from": "2026-01-01", "to": "2026-11-23"}, NOW)["best_scores"]
        written = [r for r in store.mirror("abm_leadscore", [account]) if r.data["_abm_leadid_value"] == lead_id]
        assert written and best
        for row in written:
            assert best[row.data["abm_model"]]["score"] >= row.data["abm_score"]
