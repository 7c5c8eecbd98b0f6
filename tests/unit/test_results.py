"""Campaign results against the control group, segment previews (filter groups), deletion, RFM in the scoring run."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from kairos.audiences.domain import Filter, SegmentIn
from kairos.audiences.segments import delete_segment, preview_segment, save_segment
from kairos.core.errors import InUseError, NotFoundError
from kairos.insights.analyses import rfm_report
from kairos.journeys.campaign_domain import CampaignIn
from kairos.models.scoring import prepare_rfm, score_shard
from kairos.models.serving import KairosModel
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


def test_a_segment_in_use_is_not_deleted(campaigns, journeys, add_campaign):
    save_segment(SegmentIn(name="gold", filters=[]), campaigns, NOW)
    save_segment(SegmentIn(name="spare", filters=[]), campaigns, NOW)
    cid = add_campaign(audience={"segment": "gold"})
    with pytest.raises(InUseError, match=f"campaign {cid}"):
        delete_segment("gold", campaigns, journeys)
    delete_segment("spare", campaigns, journeys)
    with pytest.raises(NotFoundError):
        delete_segment("spare", campaigns, journeys)


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
    # WHEN a scoring run prepares RFM: before any shard has scored, the report says it only has cut points
    assert prepare_rfm(customers, insights, NOW) == 10
    early = rfm_report(insights)
    assert early["status"] == "thresholds_only" and early["customers"] == 0 and early["note"]
    # WHEN it scores two scan shards
    for shard in range(2):
        score_shard(customers, model, NOW, shard, 2, None, lambda: 10**9, insight_store=insights)
    report = rfm_report(insights)
    # THEN the summary counts every purchaser once and the most recent, most frequent buyer is a champion
    assert report["customers"] == 10 == sum(g["customers"] for g in report["groups"])
    assert report["parts"] == 2 and report["status"] == "complete"
    assert customers.get_customer("c0").recommendation["rfm"]["group"] == "champions"
    assert "rfm" not in (customers.get_customer("browser").recommendation or {})
    # AND the RFM fields filter segments
    champions = Filter.model_validate({"field": "rfm.group", "value": "champions"})
    assert "c0" in preview_segment([champions], customers, NOW)["sample"]
    # AND the next run reports movement from this one
    later = NOW + timedelta(days=200)
    prepare_rfm(customers, insights, later)
    score_shard(customers, model, later, 0, 1, None, lambda: 10**9, insight_store=insights)
    moved = rfm_report(insights)["movement"]
    assert moved.get("champions") and "none" not in moved


@pytest.mark.parametrize(
    "body",
    [{"field": "rfm.segment", "value": "champions"}, {"any": [{"field": "rfm.segment", "value": "lost"}]}],
    ids=["condition", "in a group"],
)
def test_a_filter_on_rfm_segment_is_refused_naming_rfm_group(body):
    # GIVEN a filter on the RFM group under its former field name  WHEN it is read
    with pytest.raises(ValidationError) as err:
        Filter.model_validate(body)
    # THEN the error says which field to use instead
    assert "'rfm.segment' was renamed: use 'rfm.group'" in str(err.value)


def test_answers_stored_before_the_rfm_group_was_named_group_still_filter_and_move(customers, add_customer, ingest):
    # GIVEN a champion whose stored answer still names its RFM group "segment", as answers written before did
    model = KairosModel.load(MODEL_DIR)
    insights = InMemoryInsightStore()
    for i in range(5):
        add_customer(f"c{i}")
        ingest(
            [make_event(f"p{i}-{k}", f"c{i}", "purchase", NOW - timedelta(days=5 * i + 30 * k)) for k in range(5 - i)]
        )
    prepare_rfm(customers, insights, NOW)
    score_shard(customers, model, NOW, 0, 1, None, lambda: 10**9, insight_store=insights)
    stored = customers.customers["c0"].recommendation["rfm"]
    stored["segment"] = stored.pop("group")
    # WHEN it is filtered on rfm.group, and the next scoring run reports movement
    champions = Filter.model_validate({"field": "rfm.group", "value": "champions"})
    matched = preview_segment([champions], customers, NOW)["sample"]
    later = NOW + timedelta(days=1)
    prepare_rfm(customers, insights, later)
    score_shard(customers, model, later, 0, 1, None, lambda: 10**9, insight_store=insights)
    # THEN it is in the audience, it moved from its group (not from "none"), and its answer now says "group"
    assert "c0" in matched
    assert "none" not in rfm_report(insights)["movement"]
    rewritten = customers.customers["c0"].recommendation["rfm"]
    assert rewritten["group"] == "champions" and "segment" not in rewritten
