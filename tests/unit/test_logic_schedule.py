"""Launching a campaign on the fakes: audience pages, control group, consent, journeys started once, totals."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from kairos.domain.campaigns import CampaignIn, SegmentIn
from kairos.logic.campaigns import save_segment
from kairos.logic.recommendations import POPULATION_KEY
from kairos.logic.schedule import LAUNCH_COUNTS, finish_launch, journey_name, launch_page, record_failure
from kairos.logic.timing import stable_unit
from kairos.timeutil import hour_of_week, parse_ts
from tests.unit.conftest import NOW, campaign_body

CAMPAIGN_ID = "camp-1"  # fixed, so the control draws (hashes of campaign and customer) are the same every run
SEGMENTS = 2
CONTROL_SHARE = 0.25


def _store_campaign(campaigns, **over) -> str:
    definition = CampaignIn.model_validate(campaign_body(**over)).model_dump(mode="json")
    campaigns.create_campaign(
        {"campaign_id": CAMPAIGN_ID, "status": "scheduled", "created_at": NOW.isoformat(), "definition": definition}
    )
    return CAMPAIGN_ID


@pytest.fixture
def audience(add_customer, campaigns):
    """20 customers; the 14 gold ones form the segment; every fourth has no consent; every third allows SMS too."""
    for i in range(20):
        consent = {"email": i % 4 != 0, "sms": i % 3 == 0 and i % 4 != 0}
        add_customer(
            f"c{i:02d}",
            consent=consent,
            contact={"email": f"c{i:02d}@example.com", "phone": "+447700900123"},
            attributes={"tier": "gold" if i < 14 else "basic"},
        )
    save_segment(SegmentIn(name="gold", filters=[{"field": "attributes.tier", "value": "gold"}]), campaigns, NOW)
    return [f"c{i:02d}" for i in range(14)]


def _launch(customers, campaigns, starter, decisions, page_size=3, at=NOW):
    """Run every segment to the end, one page per invocation (no time left), as the launch state machine does."""
    finals = []
    for seg in range(SEGMENTS):
        out = launch_page(
            CAMPAIGN_ID, customers, campaigns, starter, decisions, at, seg, SEGMENTS, None, lambda: 0, page_size
        )
        while not out["done"]:
            out = launch_page(
                CAMPAIGN_ID,
                customers,
                campaigns,
                starter,
                decisions,
                at,
                seg,
                SEGMENTS,
                out["cursor"],
                lambda: 0,
                page_size,
                carried=out,
            )
        finals.append(out)
    return finals


def _sum(finals):
    return {k: sum(f[k] for f in finals) for k in LAUNCH_COUNTS}


def test_launch_page_plans_every_audience_member_once(customers, campaigns, starter, decisions, audience):
    # GIVEN the gold segment and an email-then-SMS campaign with a 25 % control group
    _store_campaign(
        campaigns,
        audience={"segment": "gold"},
        channels=["email", "sms"],
        messages={"email": {"subject": "Hi", "text": "Hello"}, "sms": {"text": "Hello"}},
        control_share=CONTROL_SHARE,
    )
    # WHEN it is launched over two scan segments, three customers a page
    totals = _sum(_launch(customers, campaigns, starter, decisions))
    # THEN everyone outside the segment is counted out, and each member is planned exactly once
    by_customer = {r["customer_id"]: r for r in decisions.records()}
    assert len(decisions.records()) == len(by_customer) == len(audience)
    assert set(by_customer) == set(audience)
    assert totals["outside_audience"] == 20 - len(audience)
    assert totals["scheduled"] + totals["control"] + totals["skipped"] == len(audience)
    assert totals["already_started"] == 0
    # AND the control group is the deterministic draw of (campaign, customer), held out before anything else
    control = {c for c in audience if stable_unit("control", CAMPAIGN_ID, c) < CONTROL_SHARE}
    assert control and {c for c, r in by_customer.items() if r["outcome"] == "control"} == control
    assert totals["control"] == len(control)
    # AND customers without consent on any channel are skipped with the reason
    no_consent = {c for c in audience if int(c[1:]) % 4 == 0} - control
    skipped = {c: r for c, r in by_customer.items() if r["outcome"] == "skipped"}
    assert set(skipped) == no_consent
    assert all("no consent for email" in r["reason"] for r in skipped.values())
    # AND every other member has a journey named by campaign and customer, on the channels they allow
    scheduled = set(audience) - control - no_consent
    assert totals["scheduled"] == len(scheduled)
    assert set(starter.started) == {journey_name(CAMPAIGN_ID, c) for c in scheduled}
    for c in scheduled:
        payload = starter.started[journey_name(CAMPAIGN_ID, c)]
        assert payload["customer_id"] == c and payload["campaign_id"] == CAMPAIGN_ID and payload["step"] == 0
        assert payload["channels"] == (["email", "sms"] if int(c[1:]) % 3 == 0 else ["email"])
        assert payload["send_at"] == by_customer[c]["decision"]["send_at"]
        assert "@" not in str(payload)  # journeys carry ids, not contact points


def test_launch_page_rerun_starts_nothing_new(customers, campaigns, starter, decisions, audience):
    # GIVEN a campaign launched once
    _store_campaign(campaigns, audience={"segment": "gold"}, control_share=CONTROL_SHARE)
    first = _sum(_launch(customers, campaigns, starter, decisions))
    started = dict(starter.started)
    pages = dict(decisions.pages)
    # WHEN the whole launch runs again (a retried state machine)
    second = _sum(_launch(customers, campaigns, starter, decisions))
    # THEN the same decisions are made, no journey starts again, and every retried page overwrote its own log
    assert first["scheduled"] > 0
    assert {k: v for k, v in second.items() if k != "already_started"} == {
        k: v for k, v in first.items() if k != "already_started"
    }
    assert second["already_started"] == first["scheduled"]
    assert starter.started == started
    assert decisions.pages == pages


def test_launch_page_resumes_from_its_cursor_and_carries_counts(customers, campaigns, starter, decisions, audience):
    # GIVEN a campaign for everybody
    _store_campaign(campaigns)
    # WHEN segment 0 is launched one page at a time, passing each result back in
    out = launch_page(CAMPAIGN_ID, customers, campaigns, starter, decisions, NOW, 0, SEGMENTS, None, lambda: 0, 2)
    calls = 1
    while not out["done"]:
        assert out["cursor"] is not None
        out = launch_page(
            CAMPAIGN_ID,
            customers,
            campaigns,
            starter,
            decisions,
            NOW,
            0,
            SEGMENTS,
            out["cursor"],
            lambda: 0,
            2,
            carried=out,
        )
        calls += 1
    # THEN it took several invocations, and the last result counts the whole segment
    in_segment, _ = customers.scan_customers(0, SEGMENTS, None, 1000)
    assert calls > 2
    assert out["scheduled"] + out["skipped"] + out["control"] == len(in_segment)
    assert out["cursor"] is None


def test_launch_page_with_time_left_runs_the_whole_segment_in_one_call(
    customers, campaigns, starter, decisions, audience
):
    # GIVEN a campaign for everybody and plenty of time left
    _store_campaign(campaigns)
    # WHEN segment 1 is launched with small pages
    out = launch_page(CAMPAIGN_ID, customers, campaigns, starter, decisions, NOW, 1, SEGMENTS, None, lambda: 10**9, 2)
    # THEN one call went through every page
    in_segment, _ = customers.scan_customers(1, SEGMENTS, None, 1000)
    assert out["done"] is True
    assert out["scheduled"] + out["skipped"] + out["control"] == len(in_segment)


def test_launch_page_uses_the_customers_best_hour_else_the_populations(
    customers, campaigns, starter, decisions, add_customer
):
    # GIVEN a scored Tokyo customer whose best hour is Tuesday 09:00 local, an unscored UTC customer, and a
    # population answer whose best hour is Tuesday 06:00
    add_customer("tokyo", timezone="Asia/Tokyo")
    add_customer("london", timezone="UTC")
    own = [0.0] * 168
    own[24 + 9] = 1.0
    customers.put_recommendation("tokyo", {"hour_scores": own, "best_hour_of_week": 33, "model_version": "m1"})
    population = [0.0] * 168
    population[24 + 6] = 1.0
    customers.put_fallback(POPULATION_KEY, {"hour_scores": population, "best_hour_of_week": 30, "model_version": "m0"})
    _store_campaign(campaigns, send_time={"mode": "optimized", "explore_share": 0})
    # WHEN the campaign is launched
    _launch(customers, campaigns, starter, decisions)
    # THEN each journey is set for that hour in the customer's own zone, logged with the model that chose it
    tokyo = starter.started[journey_name(CAMPAIGN_ID, "tokyo")]["decision"]
    london = starter.started[journey_name(CAMPAIGN_ID, "london")]["decision"]
    assert parse_ts(tokyo["send_at"]) == NOW + timedelta(hours=12)  # Tuesday 00:00 UTC = 09:00 in Tokyo
    assert hour_of_week(parse_ts(tokyo["send_at"]), "Asia/Tokyo") == 33 and tokyo["model_version"] == "m1"
    assert parse_ts(london["send_at"]) == NOW + timedelta(hours=18)
    assert london["model_version"] == "m0" and london["policy"] == "optimized"


def test_launch_page_of_a_cancelled_campaign_stops(customers, campaigns, starter, decisions, audience):
    # GIVEN a campaign cancelled after its first page
    _store_campaign(campaigns)
    first = launch_page(CAMPAIGN_ID, customers, campaigns, starter, decisions, NOW, 0, SEGMENTS, None, lambda: 0, 2)
    started = len(starter.started)
    campaigns.set_status(CAMPAIGN_ID, "cancelled", ("scheduled",), NOW.isoformat())
    # WHEN the next page runs
    out = launch_page(
        CAMPAIGN_ID,
        customers,
        campaigns,
        starter,
        decisions,
        NOW,
        0,
        SEGMENTS,
        first["cursor"],
        lambda: 0,
        2,
        carried=first,
    )
    # THEN it stops at once, starts nothing, and keeps the counts so far
    assert out["done"] is True and out["stopped"] == "cancelled" and out["cursor"] is None
    assert len(starter.started) == started
    assert {k: out[k] for k in LAUNCH_COUNTS} == {k: first[k] for k in LAUNCH_COUNTS}


def test_finish_launch_sums_segments_and_marks_the_campaign_running(customers, campaigns, starter, decisions, audience):
    # GIVEN a launched campaign's final result per segment
    _store_campaign(campaigns, audience={"segment": "gold"}, control_share=CONTROL_SHARE)
    finals = _launch(customers, campaigns, starter, decisions)
    # WHEN the launch finishes
    later = NOW + timedelta(minutes=5)
    out = finish_launch(CAMPAIGN_ID, finals, campaigns, later)
    # THEN the totals are the sums over segments, stored on the campaign, which is now running
    expected = {**_sum(finals), "segments": SEGMENTS}
    assert out == {"campaign_id": CAMPAIGN_ID, "status": "running", "totals": expected}
    doc = campaigns.get_campaign(CAMPAIGN_ID)
    assert doc["status"] == "running" and doc["launch"] == expected and doc["status_changed_at"] == later.isoformat()
    assert expected["scheduled"] == len(starter.started)


def test_finish_launch_leaves_a_cancelled_campaign_cancelled(campaigns):
    # GIVEN a campaign cancelled while it launched
    _store_campaign(campaigns)
    campaigns.set_status(CAMPAIGN_ID, "cancelled", ("scheduled",), NOW.isoformat())
    # WHEN the launch finishes
    out = finish_launch(CAMPAIGN_ID, [{"scheduled": 3}, {"scheduled": 2, "control": 1}], campaigns, NOW)
    # THEN the totals are kept but the campaign does not come back to life
    assert out["status"] == "cancelled"
    assert out["totals"]["scheduled"] == 5 and out["totals"]["control"] == 1 and out["totals"]["segments"] == 2


def test_record_failure_of_the_launch_fails_the_campaign_with_the_reason(campaigns):
    # GIVEN a scheduled campaign whose launch ran out of retries, with a Lambda error as Step Functions hands it
    _store_campaign(campaigns)
    cause = json.dumps({"errorMessage": "segment 'gold' not found", "errorType": "NotFoundError", "stackTrace": []})
    # WHEN the failure is recorded
    out = record_failure(CAMPAIGN_ID, "launch", {"Error": "NotFoundError", "Cause": cause}, campaigns, NOW)
    # THEN the campaign is failed, not scheduled forever, with the message (not the stack) as its reason
    reason = "NotFoundError: segment 'gold' not found"
    assert out == {"campaign_id": CAMPAIGN_ID, "kind": "launch", "reason": reason, "customer": False}
    doc = campaigns.get_campaign(CAMPAIGN_ID)
    assert doc["status"] == "failed" and doc["launch_failures"] == 1
    assert doc["last_failure"] == {"kind": "launch", "reason": reason, "at": NOW.isoformat()}


def test_record_failure_of_a_journey_counts_and_the_campaign_goes_on(campaigns):
    # GIVEN a running campaign
    _store_campaign(campaigns)
    campaigns.set_status(CAMPAIGN_ID, "running", ("scheduled",), NOW.isoformat())
    # WHEN two journeys fail
    for _ in range(2):
        out = record_failure(CAMPAIGN_ID, "journey", {"Error": "States.Timeout"}, campaigns, NOW, customer_id="c1")
    # THEN they are counted, the customer is kept out of the reason, and the campaign still runs
    assert out["reason"] == "States.Timeout" and out["customer"] is True
    doc = campaigns.get_campaign(CAMPAIGN_ID)
    assert doc["status"] == "running" and doc["journey_failures"] == 2
    assert "c1" not in json.dumps(doc["last_failure"])


def test_record_failure_leaves_a_cancelled_campaign_cancelled(campaigns):
    # GIVEN a campaign cancelled while its launch failed
    _store_campaign(campaigns)
    campaigns.set_status(CAMPAIGN_ID, "cancelled", ("scheduled",), NOW.isoformat())
    # WHEN the launch failure is recorded
    record_failure(CAMPAIGN_ID, "launch", None, campaigns, NOW)
    # THEN the cancellation stands, and the failure is still counted
    doc = campaigns.get_campaign(CAMPAIGN_ID)
    assert doc["status"] == "cancelled" and doc["launch_failures"] == 1


def test_record_failure_of_an_unknown_campaign_or_kind(campaigns):
    # GIVEN no campaign
    # WHEN / THEN a missing campaign is ignored, an unknown kind is a programming error
    assert record_failure("nope", "launch", {"Error": "X"}, campaigns, NOW)["reason"] == "X"
    assert campaigns.campaigns == {}
    with pytest.raises(ValueError):
        record_failure("nope", "send", None, campaigns, NOW)
