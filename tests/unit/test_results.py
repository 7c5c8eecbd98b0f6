"""Campaign results against the control group, segment previews with groups, deletion, RFM in the scoring run."""

from __future__ import annotations

from datetime import timedelta

import pytest

from kairos.domain.campaigns import CampaignIn, Filter, SegmentIn
from kairos.errors import InUseError, NotFoundError
from kairos.logic.analyses import rfm_report
from kairos.logic.campaigns import delete_segment, preview_segment, refresh_status, save_segment
from kairos.logic.results import campaign_results
from kairos.logic.schedule import launch_page
from kairos.logic.scoring import prepare_rfm, score_segment
from kairos.logic.timing import stable_unit
from kairos.serving import KairosModel
from tests.fakes import InMemoryInsightStore
from tests.unit.conftest import NOW, campaign_body, make_event
from tests.unit.test_logic_scoring import MODEL_DIR

CAMPAIGN_ID = "camp-results"


def _campaign(campaigns, **over) -> None:
    definition = CampaignIn.model_validate(campaign_body(control_share=0.3, **over)).model_dump(mode="json")
    campaigns.create_campaign(
        {"campaign_id": CAMPAIGN_ID, "status": "running", "created_at": NOW.isoformat(), "definition": definition}
    )


def _send(messages, cid: str, status: str = "sent", at=NOW) -> str:
    mid = f"{CAMPAIGN_ID}.{cid}.0"
    record = {"message_id": mid, "campaign_id": CAMPAIGN_ID, "customer_id": cid, "channel": "email", "step": 0}
    messages.claim({**record, "status": "sending"})
    messages.finish({**record, "status": status, "sent_at": (at + timedelta(hours=1)).isoformat()})
    return mid


def test_results_match_the_message_log_and_the_control_groups_purchases(
    customers, campaigns, starter, decisions, messages, add_customer, ingest
):
    # GIVEN 30 customers launched into a campaign with a 30% control group
    for i in range(30):
        add_customer(f"c{i:02d}", contact={"email": f"c{i:02d}@example.com"})
    _campaign(campaigns)
    out = launch_page(CAMPAIGN_ID, customers, campaigns, starter, decisions, NOW, 0, 1, None, lambda: 10**9)
    plans = {r["customer_id"]: r["outcome"] for r in decisions.read(CAMPAIGN_ID, [NOW.date()])}
    treated = sorted(c for c, o in plans.items() if o == "scheduled")
    control = sorted(c for c, o in plans.items() if o == "control")
    assert out["done"] and treated and control
    # AND every treated customer was emailed (one bounced), a few opened, some of each group bought
    for cid in treated:
        _send(messages, cid, "failed" if cid == treated[0] else "sent")
    opened = treated[1:4]
    ingest(
        [
            make_event(
                f"o-{c}",
                c,
                "message_open",
                NOW + timedelta(hours=2),
                channel="email",
                message_id=f"{CAMPAIGN_ID}.{c}.0",
            )
            for c in opened
        ],
        at=NOW + timedelta(hours=3),
    )
    buyers = dict.fromkeys(treated[1:7], 40.0) | dict.fromkeys(control[:1], 25.0)
    late = treated[8]  # buys after the attribution window: not a conversion
    purchases = [make_event(f"p-{c}", c, "purchase", NOW + timedelta(days=1), amount=a) for c, a in buyers.items()] + [
        make_event("p-late", late, "purchase", NOW + timedelta(days=9), amount=99.0)
    ]
    ingest(purchases, at=NOW + timedelta(days=10))
    # WHEN the results are read after the campaign expired
    res = campaign_results(CAMPAIGN_ID, campaigns, decisions, messages, customers, NOW + timedelta(days=10))
    # THEN the step counts are the message log's, opens the customers' events
    [step] = res["steps"]
    assert step["messages"] == len(treated) and step["sent"] == len(treated) - 1 and step["failed"] == 1
    assert step["opened"] == len(opened) and step["clicked"] == 0
    # AND conversions and revenue are each group's purchases within the attribution window
    treated_buyers = [c for c in buyers if c in treated]
    assert res["treatment"]["customers"] == len(treated) and res["treatment"]["converted"] == len(treated_buyers)
    assert res["treatment"]["revenue"] == pytest.approx(40.0 * len(treated_buyers))
    assert res["control"]["customers"] == len(control) and res["control"]["converted"] == 1
    assert res["control"]["revenue"] == pytest.approx(25.0)
    # AND the conversions are credited to the email step, and the uplift carries a 95% interval around it
    assert step["converted"] == len(treated_buyers)
    rate_t, rate_c = len(treated_buyers) / len(treated), 1 / len(control)
    assert res["uplift"]["conversion"]["difference"] == pytest.approx(rate_t - rate_c, abs=1e-6)
    low, high = res["uplift"]["conversion"]["interval"]
    assert low < rate_t - rate_c < high
    assert res["status"] == "completed"  # expired: nothing more is sent
    assert refresh_status(CAMPAIGN_ID, campaigns, NOW + timedelta(days=10))["status"] == "completed"


def test_preview_counts_an_or_group_as_the_union(customers, add_customer, ingest):
    # GIVEN customers tagged vip, customers with a big order, and both
    for i in range(12):
        add_customer(f"c{i:02d}", attributes={"tier": "vip" if i < 5 else "basic"})
    ingest([make_event(f"p{i}", f"c{i:02d}", "purchase", amount=200.0) for i in range(3, 9)])
    vip = Filter.model_validate({"field": "attributes.tier", "value": "vip"})
    big = Filter.model_validate({"field": "orders.last_amount", "op": "gte", "value": 100})
    either = Filter.model_validate({"any": [vip.model_dump(), big.model_dump()]})
    neither = Filter.model_validate({"not": either.model_dump()})
    # WHEN previewed
    count = {name: preview_segment([f], customers, NOW)["count"] for name, f in (("vip", vip), ("big", big))}
    union = preview_segment([either], customers, NOW)
    rest = preview_segment([neither], customers, NOW)
    # THEN OR is the union (5 + 6 - 2 in both), NOT its complement, and the sample lists members in id order
    assert (count["vip"], count["big"], union["count"], rest["count"]) == (5, 6, 9, 3)
    assert union["sample"] == [f"c{i:02d}" for i in range(9)]


def test_history_filters_count_events_and_messages_in_a_window(customers, messages, add_customer, ingest):
    add_customer("c1")
    add_customer("c2")
    ingest([make_event("o1", "c1", "message_open", NOW - timedelta(days=2), channel="email")])
    ingest([make_event("o2", "c2", "message_open", NOW - timedelta(days=20), channel="email")])
    _send(messages, "c2", at=NOW - timedelta(days=1))
    opened_this_week = Filter.model_validate(
        {"field": "events.message_open", "channel": "email", "within_days": 7, "op": "gte", "value": 1}
    )
    coupon_sent = Filter.model_validate(
        {"field": "messages.sent", "campaign_id": CAMPAIGN_ID, "within_days": 7, "op": "gte", "value": 1}
    )
    assert preview_segment([opened_this_week], customers, NOW, messages)["sample"] == ["c1"]
    assert preview_segment([coupon_sent], customers, NOW, messages)["sample"] == ["c2"]


def test_a_segment_in_use_is_not_deleted(campaigns):
    save_segment(SegmentIn(name="gold", filters=[]), campaigns, NOW)
    save_segment(SegmentIn(name="spare", filters=[]), campaigns, NOW)
    _campaign(campaigns, audience={"segment": "gold"})
    with pytest.raises(InUseError, match=f"campaign {CAMPAIGN_ID}"):
        delete_segment("gold", campaigns)
    delete_segment("spare", campaigns)
    with pytest.raises(NotFoundError):
        delete_segment("spare", campaigns)


def test_the_scoring_run_writes_rfm_and_its_summary_counts_the_purchasers(customers, add_customer, ingest):
    # GIVEN buyers of different recency and frequency, and a customer who never bought
    model = KairosModel.load(MODEL_DIR)
    insights = InMemoryInsightStore()
    for i in range(10):
        add_customer(f"c{i}")
        ingest(
            [
                make_event(f"p{i}-{k}", f"c{i}", "purchase", NOW - timedelta(days=5 * i + 30 * k), amount=10.0)
                for k in range(10 - i)
            ]
        )
    add_customer("browser")
    # WHEN a scoring run prepares RFM and scores two segments
    assert prepare_rfm(customers, insights, NOW) == 10
    for seg in range(2):
        score_segment(customers, model, NOW, seg, 2, None, lambda: 10**9, insight_store=insights)
    report = rfm_report(insights)
    # THEN the summary counts every purchaser once and the most recent, most frequent buyer is a champion
    assert report["customers"] == 10 == sum(s["customers"] for s in report["segments"])
    assert report["parts"] == 2
    assert customers.get_customer("c0").recommendation["rfm"]["segment"] == "champions"
    assert "rfm" not in (customers.get_customer("browser").recommendation or {})
    # AND the RFM fields filter segments
    champions = Filter.model_validate({"field": "rfm.segment", "value": "champions"})
    assert "c0" in preview_segment([champions], customers, NOW)["sample"]
    # AND the next run reports movement from this one
    later = NOW + timedelta(days=200)
    prepare_rfm(customers, insights, later)
    score_segment(customers, model, later, 0, 1, None, lambda: 10**9, insight_store=insights)
    moved = rfm_report(insights)["movement"]
    assert moved.get("champions") and "none" not in moved


def test_the_global_control_group_is_held_out_of_every_campaign(
    customers, campaigns, starter, decisions, add_customer, monkeypatch
):
    # GIVEN a deployment holding 30% of all customers out, and a campaign without its own control group
    monkeypatch.setenv("KAIROS_GLOBAL_CONTROL_SHARE", "0.3")
    for i in range(40):
        add_customer(f"c{i:02d}", contact={"email": f"c{i:02d}@example.com"})
    definition = CampaignIn.model_validate(campaign_body(control_share=0.0)).model_dump(mode="json")
    campaigns.create_campaign(
        {"campaign_id": CAMPAIGN_ID, "status": "running", "created_at": NOW.isoformat(), "definition": definition}
    )
    # WHEN it launches
    out = launch_page(CAMPAIGN_ID, customers, campaigns, starter, decisions, NOW, 0, 1, None, lambda: 10**9)
    # THEN exactly the stable draw is held out, none of them gets a journey, everyone else does
    held = {f"c{i:02d}" for i in range(40) if stable_unit("global-control", f"c{i:02d}") < 0.3}
    plans = {r["customer_id"]: r["outcome"] for r in decisions.read(CAMPAIGN_ID, [NOW.date()])}
    assert held and {c for c, o in plans.items() if o == "global_control"} == held
    assert out["global_control"] == len(held) and out["scheduled"] == 40 - len(held)
    assert len(starter.started) == 40 - len(held)
