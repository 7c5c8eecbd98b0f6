"""One engine: a campaign runs as a journey; a step that dies after the provider accepted goes on; no loop floods
a customer; the deployment's send policy holds back every marketing message."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from kairos.core.errors import InvalidInputError
from kairos.journeys import campaigns, definitions, entry, runner
from kairos.journeys.campaign_domain import CampaignIn
from kairos.journeys.domain import Journey, JourneyIn
from kairos.journeys.results import journey_results
from kairos.messaging.policy import SendPolicy
from kairos.models.timing import stable_unit
from tests.helpers import DiesAfterAccept
from tests.unit.conftest import NOW, campaign_body
from tests.unit.journey_world import World, example

EMAIL_SMS = {"email": True, "sms": True}


def _people(add_customer, n: int) -> list[str]:
    ids = [f"p{i:02d}" for i in range(n)]
    for cid in ids:
        add_customer(cid, consent=EMAIL_SMS, contact={"email": f"{cid}@example.com", "phone": "+447700900123"})
    return ids


def _enter_scheduled(world: World) -> dict[str, int]:
    out = entry.scan_entries(world.active(), world.entrance(), world.now)
    world.drain()
    return out


def test_campaign_runs_on_the_journey_engine_email_then_sms_to_who_did_not_open(world, add_customer):
    # GIVEN 30 customers and a campaign: email, then SMS a day later, 30% held out as control
    ids = _people(add_customer, 30)
    body = campaign_body(
        channels=["email", "sms"],
        messages={"email": {"subject": "Hi", "text": "Hello"}, "sms": {"text": "Hello"}},
        wait_hours=[24.0],
        control_share=0.3,
        send_time={"mode": "immediate"},
        expires_at=(NOW + timedelta(days=3)).isoformat(),
    )
    view = campaigns.create_campaign(CampaignIn.model_validate(body), world.store, world.campaigns, world.now)
    cid = view["campaign_id"]
    assert view["status"] == "running" and world.store.get_journey(cid)["kind"] == "campaign"
    # WHEN the timer lets the audience in
    out = _enter_scheduled(world)
    # THEN every treated customer gets one email, control customers none
    treated = {p["customer_id"] for p in world.store.journey_paths(cid) if p["status"] != "control"}
    assert out["entered"] == len(treated) and 0 < out["control"] < 30
    emailed = [m for m in world.messages.records.values() if m["channel"] == "email"]
    assert sorted(m["customer_id"] for m in emailed) == sorted(treated)
    # AND half of them open it; a day later only the others get the SMS, once
    openers = sorted(treated)[::2]
    for m in emailed:
        if m["customer_id"] in openers:
            world.event(f"open-{m['customer_id']}", m["customer_id"], "message_open", message_id=m["message_id"])
    world.advance_clock(26)
    texted = sorted(m["customer_id"] for m in world.messages.records.values() if m["channel"] == "sms")
    assert texted == sorted(set(treated) - set(openers))
    world.advance_clock(72)
    # AND the campaign's results count sends, opens and the control group
    res = campaigns.campaign_results(cid, world.store, world.messages, world.customers, world.now)
    steps = {s["channel"]: s for s in res["steps"]}
    assert steps["email"]["sent"] == len(treated) and steps["email"]["opened"] == len(openers)
    assert steps["sms"]["sent"] == len(texted)
    assert res["audience"]["control"] + res["audience"]["global_control"] == len(ids) + 1 - len(treated)
    assert res["control"]["customers"] == res["audience"]["control"]
    assert campaigns.get_campaign(cid, world.store, world.now)["launch"]["scheduled"] == len(treated)
    assert world.store.get_scan(cid)["done"]


def test_campaign_cancel_archives_its_journey_and_nothing_more_is_sent(world, add_customer):
    _people(add_customer, 3)
    body = campaign_body(channels=["email"], send_time={"mode": "fixed", "local_time": "18:00"})
    cid = campaigns.create_campaign(CampaignIn.model_validate(body), world.store, world.campaigns, world.now)[
        "campaign_id"
    ]
    _enter_scheduled(world)
    assert not world.sent()  # waiting for 18:00, without an execution
    assert campaigns.cancel_campaign(cid, world.store, world.now)["status"] == "cancelled"
    world.advance_clock(24)
    assert not world.sent()
    with pytest.raises(InvalidInputError, match="cancelled"):
        campaigns.cancel_campaign(cid, world.store, world.now)


def test_a_step_that_dies_after_the_provider_accepted_settles_and_sends_the_follow_up_once(world):
    # GIVEN the abandoned-cart journey (email, then an SMS a day later unless opened)
    jid = definitions.create_journey(JourneyIn.model_validate(example("abandoned_cart")), world.store, world.now)
    definitions.set_status(jid["journey_id"], "active", world.store, world.now)
    deps = world.deps()
    deps.messages = DiesAfterAccept(world.messages)  # type: ignore[assignment]
    world.deps = lambda: deps  # type: ignore[method-assign]
    # WHEN the step dies after SES accepted the email (not a provider error: the state machine gives up)
    with pytest.raises(RuntimeError):
        world.event("a1", "c1", "cart_abandon", amount=5000)
    (path,) = world.paths("c1")
    assert len(world.providers["email"].sent) == 1
    # AND the state machine's Catch recovers it
    out = runner.recover(
        "c1", path["key"], "RuntimeError: the Lambda ran out of time writing the outcome", deps, world.now
    )
    # THEN the email is settled unconfirmed, the path waits at its next node, and the SMS follows once
    assert out["recovered"] and out["status"] == "waiting"
    (email,) = [m for m in world.messages.records.values() if m["channel"] == "email"]
    assert email["status"] == "unconfirmed"
    world.advance_clock(25)
    assert len(world.providers["email"].sent) == 1 and len(world.providers["sms"].sent) == 1
    res = journey_results(jid["journey_id"], world.store, world.messages)
    assert res["messages"] == {"email": {"unconfirmed": 1}, "sms": {"sent": 1}}


FAST_LOOP = {
    "name": "flood",
    "entry": {"event": "cart_abandon"},
    "start": "mail",
    "nodes": {
        "mail": {
            "type": "message",
            "channel": "email",
            "content": {"email": {"subject": "s", "text": "t"}},
            "next": "pause",
        },
        "pause": {"type": "delay", "hours": 0.0001, "next": "mail"},
    },
}


def test_a_loop_that_sends_faster_than_hourly_is_refused_at_save_time(world):
    with pytest.raises(InvalidInputError) as err:
        definitions.create_journey(JourneyIn.model_validate(FAST_LOOP), world.store, world.now)
    assert err.value.field == "nodes.mail" and "at least 1 hour" in str(err.value)
    slow = {**FAST_LOOP, "nodes": {**FAST_LOOP["nodes"], "pause": {"type": "delay", "hours": 1, "next": "mail"}}}
    definitions.create_journey(JourneyIn.model_validate(slow), world.store, world.now)


def test_a_stored_fast_loop_still_sends_at_most_hourly(world):
    # GIVEN a fast loop stored as an older version could have stored it (no check at save time)
    doc = {
        "journey_id": "flood",
        "status": "active",
        "version": 1,
        "definition": JourneyIn.model_validate(FAST_LOOP).model_dump(mode="json", by_alias=True),
        "created_at": world.now.isoformat(),
        "updated_at": world.now.isoformat(),
    }
    world.store.create_journey(doc)
    assert isinstance(Journey.from_doc(doc), Journey)
    # WHEN it runs for 80 minutes, the timer ticking every minute
    world.event("a1", "c1", "cart_abandon")
    world.advance_clock(80 / 60, tick_minutes=1)
    # THEN the customer got 2 emails, not 72
    assert len(world.providers["email"].sent) == 2


def _journey_now(world: World, name: str, channel: str = "email", **over: Any) -> str:
    body = {
        "name": name,
        "entry": {"event": "cart_abandon"},
        "reentry": {"mode": "every_time"},
        "start": "m",
        "nodes": {
            "m": {
                "type": "message",
                "channel": channel,
                "content": {channel: {"subject": "s", "text": "t"} if channel == "email" else {"text": "t"}},
                "next": "x",
            },
            "x": {"type": "exit"},
        },
        **over,
    }
    doc = definitions.create_journey(JourneyIn.model_validate(body), world.store, world.now)
    definitions.set_status(doc["journey_id"], "active", world.store, world.now)
    return doc["journey_id"]


def test_the_send_policy_caps_marketing_across_journeys_but_not_transactional(world):
    # GIVEN a policy of 2 messages a day across channels, and a marketing and a transactional journey
    policy = SendPolicy.model_validate({"frequency_caps": {"all": {"per_day": 2}}})
    deps = world.deps()
    deps.policy = lambda: policy
    world.deps = lambda: deps  # type: ignore[method-assign]
    _journey_now(world, "offers")
    _journey_now(world, "receipts", transactional=True)
    # WHEN three carts are abandoned in an hour
    for i in range(3):
        world.event(f"a{i}", "c1", "cart_abandon")
    # THEN the third marketing email is skipped by the cap; every transactional one goes
    statuses = sorted((m["journey_id"], m["status"], m["reason"][:13]) for m in world.messages.records.values())
    marketing = [s for s in statuses if world.store.get_journey(s[0])["definition"]["name"] == "offers"]
    receipts = [s for s in statuses if world.store.get_journey(s[0])["definition"]["name"] == "receipts"]
    assert [s[1] for s in receipts] == ["sent"] * 3
    assert sorted(s[1] for s in marketing).count("skipped") >= 1
    assert any(s[2] == "frequency cap" for s in marketing)


def test_the_default_policy_holds_a_marketing_sms_until_the_quiet_hours_end(world):
    # GIVEN 22:00 in the customer's zone (UTC) and a marketing SMS journey
    world.now = NOW.replace(hour=22)
    _journey_now(world, "texts", channel="sms")
    # WHEN it is triggered
    world.event("a1", "c1", "cart_abandon")
    # THEN nothing goes until 08:00, then the SMS goes
    world.advance_clock(10.5)
    (sms,) = world.providers["sms"].sent
    sent_at = [m for m in world.messages.records.values() if m["channel"] == "sms"][0]["claimed_at"]
    assert "T08:" in sent_at and sms


def test_the_global_control_group_is_held_out_of_every_campaign(world, add_customer):
    # GIVEN a deployment holding 30% of all customers out, and a campaign without its own control group
    ids = _people(add_customer, 40)
    body = campaign_body(send_time={"mode": "immediate"})
    cid = campaigns.create_campaign(CampaignIn.model_validate(body), world.store, world.campaigns, world.now)[
        "campaign_id"
    ]
    # WHEN its audience enters
    entry.scan_entries(world.active(), world.entrance(global_control_share=0.3), world.now)
    world.drain()
    # THEN exactly the stable draw is held out and never messaged; everyone else gets the email
    held = {c for c in [*ids, "c1"] if stable_unit("global-control", c) < 0.3}
    paths = world.store.journey_paths(cid)
    assert held and {p["customer_id"] for p in paths if p.get("global_control")} == held
    assert {m["customer_id"] for m in world.messages.records.values()} == {*ids, "c1"} - held
    res = campaigns.campaign_results(cid, world.store, world.messages, world.customers, world.now)
    assert res["audience"]["global_control"] == len(held) and res["audience"]["control"] == 0


def test_a_large_scheduled_entry_is_paced_over_shards_and_ticks_and_resumes_where_it_stopped(world, add_customer):
    # GIVEN 120 customers and a campaign at a fixed hour (nobody is due at entry)
    ids = _people(add_customer, 120)
    body = campaign_body(send_time={"mode": "fixed", "local_time": "18:00"})
    cid = campaigns.create_campaign(CampaignIn.model_validate(body), world.store, world.campaigns, world.now)[
        "campaign_id"
    ]
    # WHEN each timer invocation has time for three pages of 7 customers per shard, over 4 shards and 4 threads
    budget = {"pages": 0}

    def time_left() -> int:
        budget["pages"] += 1
        return 60_000 if budget["pages"] % 3 else 0

    ticks = 0
    while not (world.store.get_scan(cid) or {}).get("done"):
        entry.scan_entries(world.active(), world.entrance(), world.now, time_left, page_size=7, shards=4, workers=4)
        ticks += 1
        assert ticks < 50
    # THEN it took several ticks, every customer entered exactly once, and the counts add up
    paths = world.store.journey_paths(cid)
    assert ticks > 1 and sorted(p["customer_id"] for p in paths) == sorted([*ids, "c1"])
    counts = world.store.get_scan(cid)["counts"]
    assert counts["scanned"] == counts["matched"] == len(ids) + 1 == counts["entered"] + counts["control"]
    assert world.starter.started == {}  # everybody waits for 18:00 as a record, not as an execution
    # AND a tick after the run is done scans nothing more
    assert entry.scan_entries(world.active(), world.entrance(), world.now, shards=4, workers=4)["scanned"] == 0


def test_the_timer_starts_many_due_steps_at_once_and_each_once(world, add_customer):
    # GIVEN 40 customers waiting for the same hour
    _people(add_customer, 40)
    body = campaign_body(send_time={"mode": "fixed", "local_time": "18:00"})
    campaigns.create_campaign(CampaignIn.model_validate(body), world.store, world.campaigns, world.now)
    entry.scan_entries(world.active(), world.entrance(), world.now)
    # WHEN the hour comes and the timer starts them 8 at a time, twice
    at = world.now.replace(hour=18)
    first = entry.start_due(world.store, world.starter, at, workers=8)
    again = entry.start_due(world.store, world.starter, at, workers=8)
    # THEN every waiting path's step started once
    waiting = [p for p in world.store.journey_paths(world.active()[0].journey_id) if p["status"] == "waiting"]
    assert first == len(waiting) == len(world.starter.started) > 30 and again == 0


def test_a_campaigns_journey_changes_only_through_its_campaign(world, add_customer):
    cid = campaigns.create_campaign(
        CampaignIn.model_validate(campaign_body()), world.store, world.campaigns, world.now
    )["campaign_id"]
    definition = JourneyIn.model_validate(world.store.get_journey(cid)["definition"])
    for change in (
        lambda: definitions.update_journey(cid, definition, world.store, world.now),
        lambda: definitions.set_status(cid, "paused", world.store, world.now),
    ):
        with pytest.raises(InvalidInputError, match="/v1/campaigns") as err:
            change()
        assert err.value.field == "journey_id"
    assert campaigns.get_campaign(cid, world.store, world.now)["status"] == "running"
