"""Triggered journeys on the fakes: entry, branches, waits with timeouts, cycles until expiry, re-entry, exits."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from kairos.core.errors import InvalidInputError
from kairos.customers.ingest import ingest_events
from kairos.customers.profiles import erase_customer
from kairos.journeys.intents import enrich
from kairos.journeys.results import journey_results
from tests.unit.conftest import NOW, RETENTION, SKEW, make_event
from tests.unit.journey_world import example, jl


def test_abandoned_cart_small_cart_gets_an_email_then_an_sms_a_day_later(world):
    # GIVEN the abandoned-cart journey, active
    jid = world.journey(example("abandoned_cart"))
    # WHEN c1 abandons a cart of 5,000
    out = world.event("a1", "c1", "cart_abandon", amount=5000)
    # THEN the email goes at once
    assert out["entered"] == 1
    assert [ch for ch, _ in world.sent()] == ["email"]
    assert "Ana" in world.providers["email"].sent[0][0].body
    # AND without an open, the SMS goes 24 hours later, and the path ends
    world.advance_clock(23)
    assert [ch for ch, _ in world.sent()] == ["email"]
    world.advance_clock(2)
    assert [ch for ch, _ in world.sent()] == ["email", "sms"]
    (path,) = world.paths("c1")
    assert path["status"] == "done" and path["exit_reason"] == "exit at done"
    assert journey_results(jid, world.store, world.messages)["messages"] == {"email": {"sent": 1}, "sms": {"sent": 1}}


def test_abandoned_cart_big_cart_goes_to_a_manager_and_no_message(world):
    world.journey(example("abandoned_cart"))
    world.event("a1", "c1", "cart_abandon", amount=25000)
    assert world.sent() == []
    ((detail_type, detail),) = world.tasks.tasks
    assert detail_type == "kairos.big_cart" and detail["customer_id"] == "c1"
    assert detail["trigger"]["amount"] == 25000 and detail["queue"] == "sales-managers"


def test_an_open_ends_the_wait_before_its_timeout(world):
    world.journey(example("abandoned_cart"))
    world.event("a1", "c1", "cart_abandon", amount=5000)
    ((_, email_id),) = world.sent()
    # WHEN the customer opens the email two hours later
    world.advance_clock(2)
    out = world.event("o1", "c1", "message_open", message_id=email_id, channel="email")
    # THEN the path is woken at once and ends; no SMS ever
    assert out["woken"] == 1
    assert world.paths("c1")[0]["status"] == "done"
    world.advance_clock(48)
    assert [ch for ch, _ in world.sent()] == ["email"]


def test_an_open_of_another_journeys_message_does_not_count(world):
    world.journey(example("abandoned_cart"))
    world.event("a1", "c1", "cart_abandon", amount=5000)
    world.event("o1", "c1", "message_open", message_id="other-campaign.c1.0", channel="email")
    world.advance_clock(25)
    assert [ch for ch, _ in world.sent()] == ["email", "sms"]


def test_a_purchase_exits_every_path_at_once(world):
    world.journey(example("abandoned_cart"))
    world.event("a1", "c1", "cart_abandon", amount=5000)
    world.advance_clock(1)
    world.event("p1", "c1", "purchase", amount=5000)
    (path,) = world.paths("c1")
    assert path["status"] == "done" and path["exit_reason"] == "exit_on purchase"
    world.advance_clock(48)
    assert [ch for ch, _ in world.sent()] == ["email"]


def test_a_second_cart_inside_the_reentry_window_starts_nothing(world):
    world.journey(example("abandoned_cart"))
    world.event("a1", "c1", "cart_abandon", amount=5000)
    world.advance_clock(30)
    out = world.event("a2", "c1", "cart_abandon", amount=7000)
    assert out["already_entered"] == 1 and out["entered"] == 0
    # AND after the window (7 days) the next cart enters again
    world.advance_clock(24 * 7)
    assert world.event("a3", "c1", "cart_abandon", amount=7000)["entered"] == 1
    assert len(world.paths("c1")) == 2


def test_the_same_event_delivered_twice_enters_once(world):
    body = {**example("abandoned_cart"), "reentry": {"mode": "every_time"}}
    jid = world.journey(body)
    world.event("a1", "c1", "cart_abandon", amount=5000)
    stored = next(e for e in world.customers.customer_events("c1") if e["event_id"] == "a1")
    again = jl.on_events([stored], world.active(), world.entrance(), world.now)
    assert again["already_entered"] == 1
    assert len(world.paths("c1")) == 1 and journey_results(jid, world.store, world.messages)["entries"] == 1


def test_a_retried_step_sends_nothing_twice(world):
    world.journey(example("abandoned_cart"))
    world.event("a1", "c1", "cart_abandon", amount=5000)
    # WHEN the first step is run again with its old seq (a duplicate delivery) and with the current one
    name, payload = next(iter(world.starter.started.items()))
    assert jl.advance(payload["customer_id"], payload["key"], payload["seq"], world.deps(), world.now)["status"] == (
        "stale"
    )
    assert len(world.providers["email"].sent) == 1


def test_entry_needs_consent_for_a_channel_of_the_journey(world, add_customer):
    add_customer("c2", consent={"email": False})
    world.journey(example("abandoned_cart"))
    out = world.event("a1", "c2", "cart_abandon", amount=5000)
    assert out["skipped"] == 1 and world.sent() == []


def test_control_group_enters_but_is_never_messaged(world, add_customer):
    body = {**example("abandoned_cart"), "control_share": 0.5, "reentry": {"mode": "every_time"}}
    jid = world.journey(body)
    for i in range(40):
        add_customer(f"k{i}")
        world.event(f"a{i}", f"k{i}", "cart_abandon", amount=100)
    res = journey_results(jid, world.store, world.messages)
    assert res["entries"] == 40 and 10 <= res["control"] <= 30
    assert len(world.providers["email"].sent) == 40 - res["control"]


def test_a_draft_or_paused_journey_lets_nobody_in_and_paused_paths_hold(world):
    jid = world.journey(example("abandoned_cart"), activate=False)
    assert world.event("a1", "c1", "cart_abandon", amount=5000)["entered"] == 0
    jl.set_status(jid, "active", world.store, world.now)
    world.event("a2", "c1", "cart_abandon", amount=5000)
    jl.set_status(jid, "paused", world.store, world.now)
    world.advance_clock(30)
    assert [ch for ch, _ in world.sent()] == ["email"]
    jl.set_status(jid, "active", world.store, world.now)
    world.advance_clock(2)
    assert [ch for ch, _ in world.sent()] == ["email", "sms"]


def test_cycle_repeats_channels_until_the_offer_expires(world):
    # GIVEN points that expire 60 hours after the entering event
    world.journey(example("expiring_promo"))
    expires = (world.now + timedelta(hours=60)).isoformat()
    world.event("p1", "c1", "cart_add", properties={"points_expire_at": expires})
    # WHEN nobody engages
    world.advance_clock(24 * 5)
    # THEN email, messenger and sms go a day apart, and the cycle stops at the expiry
    assert [ch for ch, _ in world.sent()] == ["email", "messenger", "sms"]
    (path,) = world.paths("c1")
    assert path["status"] == "done"


def test_cycle_stops_when_the_customer_engages(world):
    world.journey(example("expiring_promo"))
    expires = (world.now + timedelta(days=10)).isoformat()
    world.event("p1", "c1", "cart_add", properties={"points_expire_at": expires})
    world.advance_clock(25)
    (_, first), (_, second) = world.sent()
    world.event("c1", "c1", "message_click", message_id=second, channel="messenger")
    world.advance_clock(24 * 5)
    assert [ch for ch, _ in world.sent()] == ["email", "messenger"]
    (path,) = world.paths("c1")
    assert path["exit_reason"] == "exit at done" and path["visits"]["used"] == 1
    assert world.customers.get_customer("c1").profile["attributes"]["points_reminder"] == "engaged"


def test_intent_without_payment_gets_a_reminder_after_14_days_unless_paid(world, add_customer):
    add_customer("c2", consent={"messenger": True}, contact={"messenger_chat_id": "1002"})
    world.journey(example("intent_reminder"))
    price = [{"name": "price_question", "keywords": ["сколько", "цена", "price"], "phrases": ["how much"]}]
    for cid, text in (("c1", "How much is it?"), ("c2", "Сколько стоит доставка?")):
        tagged = enrich({"type": "message_inbound", "text": text}, price)
        world.event(f"q-{cid}", cid, "message_inbound", text=text, properties=tagged["properties"])
    world.advance_clock(24 * 3)
    world.event("buy", "c1", "purchase", amount=10)
    world.advance_clock(24 * 12)
    assert [mid.split(".")[2] for _, mid in world.sent("messenger")] == ["e-q-c2"]


def test_random_split_assignment_is_stable_and_logged(world, add_customer):
    jid = world.journey(example("post_purchase"))
    for i in range(30):
        add_customer(f"b{i}")
        world.event(f"buy{i}", f"b{i}", "purchase", amount=10)
    world.advance_clock(24 * 5)
    variants = journey_results(jid, world.store, world.messages)["variants"]
    assert set(variants) == {"short", "long"} and sum(variants.values()) == 30


def test_erasure_removes_the_customers_paths(world, archive, decisions):
    world.journey(example("abandoned_cart"))
    world.event("a1", "c1", "cart_abandon", amount=5000)
    erase_customer("c1", world.customers, archive, world.messages, decisions, world.now, journeys=world.store)
    assert world.paths("c1") == []
    world.advance_clock(30)
    assert len(world.providers["sms"].sent) == 0


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda b: b["nodes"]["wait_open"].update(on_timeout="smss"), "nodes.wait_open.on_timeout"),
        (lambda b: b.update(start="nowhere"), "start"),
        (lambda b: b["nodes"].update(orphan={"type": "exit"}), "nodes.orphan"),
    ],
)
def test_a_bad_graph_names_the_node_and_field(world, change, field):
    body = example("abandoned_cart")
    change(body)
    with pytest.raises(InvalidInputError) as err:
        world.journey(body)
    assert err.value.field == field


def test_a_loop_that_never_waits_is_refused(world):
    body = example("abandoned_cart")
    body["nodes"]["sms"]["next"] = "by_amount"
    body["nodes"]["email"]["next"] = "sms"
    with pytest.raises(InvalidInputError) as err:
        world.journey(body)
    assert "never waits" in err.value.reason


def test_steps_per_message_on_the_common_path(world):
    # One step (one Step Functions execution of one state) per message sent, plus one per wait that ends.
    world.journey(example("abandoned_cart"))
    world.event("a1", "c1", "cart_abandon", amount=5000)
    world.advance_clock(25)
    assert len(world.sent()) == 2 and world.steps == 2


def _welcome(entry: dict[str, Any], reentry: str = "every_time") -> dict[str, Any]:
    return {
        "name": "w",
        "entry": entry,
        "reentry": {"mode": reentry},
        "start": "hello",
        "nodes": {
            "hello": {
                "type": "message",
                "channel": "email",
                "content": {"email": {"subject": "Hi", "text": "Hello {{first_name}}"}},
                "next": "done",
            },
            "done": {"type": "exit"},
        },
    }


def test_entering_and_leaving_a_segment_at_ingest(world, campaigns):
    # GIVEN a segment of buyers, a journey on entering it and one on leaving it
    campaigns.put_segment({"name": "buyers", "filters": [{"field": "purchase_count", "op": "gte", "value": 1}]})
    enter_id = world.journey(_welcome({"segment": "buyers", "on": "enter"}))
    leave_id = world.journey(_welcome({"segment": "buyers", "on": "leave"}))

    filters = jl.segment_filters(campaigns)

    def event(eid, type_, **extra):
        raw = make_event(eid, "c1", type_, ts=world.now, **extra)
        ingest_events([raw], world.customers, world.now, RETENTION, SKEW)
        stored = next(e for e in world.customers.customer_events("c1") if e["event_id"] == eid)
        return jl.on_events([stored], world.active(), world.entrance(filters), world.now)

    # WHEN a session (still outside), then a purchase (inside), then another purchase (still inside)
    assert event("s1", "session")["entered"] == 0
    assert event("p1", "purchase", amount=10)["entered"] == 1
    assert event("p2", "purchase", amount=10)["entered"] == 0
    world.drain()
    # THEN the enter journey has one path, the leave journey none (nobody left)
    assert journey_results(enter_id, world.store, world.messages)["entries"] == 1
    assert journey_results(leave_id, world.store, world.messages)["entries"] == 0


def test_date_attribute_entry_is_once_per_date_and_birthdays_recur(world, add_customer):
    # GIVEN points that expire in 7 days for c2, in 30 days for c3, and c4's birthday tomorrow
    expire = (world.now + timedelta(days=7)).date().isoformat()
    add_customer("c2", attributes={"points_expire_at": expire})
    add_customer("c3", attributes={"points_expire_at": (world.now + timedelta(days=30)).date().isoformat()})
    birthday = (world.now + timedelta(days=1)).replace(year=1990).date().isoformat()
    add_customer("c4", attributes={"birthday": birthday})
    points = world.journey(_welcome({"date_attribute": "points_expire_at", "days_before": 7}))
    birthdays = world.journey(_welcome({"date_attribute": "birthday", "days_before": 1, "yearly": True}))
    # WHEN the hourly scan runs through a day
    for _ in range(30):
        jl.scan_entries(world.active(), world.entrance(), world.now)
        world.drain()
        world.now += timedelta(hours=1)
    # THEN c2 entered the points journey once, c3 not yet, and c4 the birthday journey once
    assert journey_results(points, world.store, world.messages)["entries"] == 1
    assert [p["customer_id"] for p in world.store.journey_paths(points)] == ["c2"]
    assert [p["customer_id"] for p in world.store.journey_paths(birthdays)] == ["c4"]


def test_scheduled_entry_runs_for_the_segment_at_each_run(world, add_customer, campaigns):
    campaigns.put_segment({"name": "gold", "filters": [{"field": "attributes.tier", "op": "eq", "value": "gold"}]})
    add_customer("g1", attributes={"tier": "gold"})
    add_customer("s1", attributes={"tier": "silver"})
    sched = {"schedule": {"at": (world.now + timedelta(hours=2)).isoformat(), "every_hours": 24}, "segment": "gold"}
    jid = world.journey(_welcome(sched))

    filters = jl.segment_filters(campaigns)

    for _ in range(60):  # two and a half days, a scan every hour
        jl.scan_entries(world.active(), world.entrance(filters), world.now, page_size=1)
        world.drain()
        world.now += timedelta(hours=1)
    paths = world.store.journey_paths(jid)
    assert sorted(p["entry_id"] for p in paths) == sorted({p["entry_id"] for p in paths})  # one entry per run
    assert {p["customer_id"] for p in paths} == {"g1"} and len(paths) == 3


def test_quiet_hours_hold_the_sms_but_not_the_email_at_night(world):
    # GIVEN the abandoned cart (quiet 22:00-08:00 for SMS only) and a cart abandoned at 23:00 the day before
    world.journey(example("abandoned_cart"))
    world.now = NOW.replace(hour=23, minute=0) - timedelta(days=1)
    world.event("a1", "c1", "cart_abandon", amount=5000)
    # THEN the email goes at once; the SMS, due at 23:00 the next day, waits for 08:00
    assert [ch for ch, _ in world.sent()] == ["email"]
    world.advance_clock(24.5)
    assert [ch for ch, _ in world.sent()] == ["email"]
    world.advance_clock(9)
    assert [ch for ch, _ in world.sent()] == ["email", "sms"]
    sms = next(m for m in world.messages.records.values() if m["channel"] == "sms")
    assert sms["claimed_at"].startswith(f"{(NOW + timedelta(days=1)).date().isoformat()}T08:")  # the next timer tick


def test_best_channel_message_follows_the_customers_channel_ranking(world, customers):
    # GIVEN the welcome series (best of email and push) and a customer scored as answering on push
    world.journey({**example("welcome_series"), "control_share": 0})
    customers.put_recommendation("c1", {"channel_ranking": ["push", "email", "sms", "messenger"]})
    # WHEN they enter (a first visit)
    assert world.event("v1", "c1", "session", properties={"first_visit": True})["entered"] == 1
    # THEN the welcome goes by push; without a ranking it would go by email, the first of the node's channels
    assert [ch for ch, _ in world.sent()] == ["push"]


def test_a_journey_entered_on_a_purchase_may_exit_on_the_next_one(world):
    # GIVEN post-purchase communication that stops when the customer buys again
    world.journey({**example("post_purchase"), "exit_on": ["purchase"], "reentry": {"mode": "once"}})
    # WHEN a purchase lets the customer in, even one stamped a few seconds ahead of the server
    world.event("buy1", "c1", "purchase", amount=10)
    # THEN the delivery notice goes (the entering purchase does not end the path) ...
    assert [ch for ch, _ in world.sent()] == ["email"]
    # ... and the next purchase ends it before the how-to
    world.advance_clock(24)
    world.event("buy2", "c1", "purchase", amount=10)
    world.advance_clock(72)
    assert [ch for ch, _ in world.sent()] == ["email"]
    assert world.paths("c1")[0]["exit_reason"] == "exit_on purchase"


def test_a_campaign_is_a_journey_with_a_scheduled_entry(world, add_customer, campaigns):
    # GIVEN the weekly offer (a segment at a time, each at their best hour, email then push then SMS)
    campaigns.put_segment({"name": "gold", "filters": [{"field": "attributes.tier", "op": "eq", "value": "gold"}]})
    add_customer("g1", attributes={"tier": "gold"}, consent={"email": True})
    body = example("weekly_offer")
    body["entry"]["schedule"]["at"] = (world.now + timedelta(hours=1)).isoformat()
    body["control_share"] = 0
    jid = world.journey(body)

    filters = jl.segment_filters(campaigns)

    # WHEN the timer scans each hour for two days
    for _ in range(48):
        jl.scan_entries(world.active(), world.entrance(filters), world.now)
        world.advance_clock(1)
    # THEN the gold customer with email consent got the offer once by email (push and SMS are not allowed)
    assert [ch for ch, _ in world.sent()] == ["email"]
    (path,) = world.store.journey_paths(jid)
    assert path["customer_id"] == "g1"
