"""Segments that change with time alone, or with a profile, let customers into journeys without a new event."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from kairos.audiences.domain import Filter
from kairos.audiences.matching import CustomerHistory, matches, next_change
from kairos.customers.adapters import layout
from kairos.customers.ingest import ingest_events
from kairos.journeys import entry, membership
from kairos.journeys.results import journey_results
from tests.unit.conftest import RETENTION, SKEW, make_event
from tests.unit.journey_world import jl
from tests.unit.test_journeys import _welcome

LAPSED = {"name": "lapsed", "filters": [{"field": "days_since_last_purchase", "op": "gte", "value": 90}]}


def _purchase(world: Any, event_id: str, customer_id: str, days_ago: float, filters: Any = None) -> dict[str, int]:
    raw = make_event(event_id, customer_id, "purchase", ts=world.now - timedelta(days=days_ago), amount=10)
    assert ingest_events([raw], world.customers, world.now, RETENTION, SKEW).accepted == 1
    stored = next(e for e in world.customers.customer_events(customer_id) if e["event_id"] == event_id)
    return jl.on_events([stored], world.active(), world.entrance(filters), world.now)


def _entries(world: Any, journey_id: str) -> list[str]:
    return sorted(p["customer_id"] for p in world.store.journey_paths(journey_id) if p["entry_id"] != "member")


def test_next_change_is_when_a_threshold_is_crossed_or_an_event_leaves_its_window(world):
    # GIVEN c1's purchase 89 days ago, and a session 3 days ago
    _purchase(world, "p1", "c1", 89)
    raw = make_event("s1", "c1", "session", ts=world.now - timedelta(days=3))
    ingest_events([raw], world.customers, world.now, RETENTION, SKEW)
    record = world.customers.get_customer("c1")
    history = CustomerHistory(world.customers)
    lapsed = [Filter.model_validate(f) for f in LAPSED["filters"]]
    active = [Filter.model_validate({"field": "events.session", "op": "gte", "value": 1, "within_days": 7})]
    # WHEN / THEN the lapsed filter changes 90 days after the purchase, the window one 7 days after the session
    purchase_at = world.now - timedelta(days=89)
    assert next_change(record, lapsed, world.now) == purchase_at + timedelta(days=90, seconds=1)
    assert next_change(record, active, world.now, history) == world.now + timedelta(days=4, seconds=1)
    # AND at each of those moments the filter holds differently than just before
    at = next_change(record, lapsed, world.now)
    assert not matches(record, lapsed, at - timedelta(seconds=2)) and matches(record, lapsed, at)
    # AND a filter on data alone never changes with time
    tier = [Filter.model_validate({"field": "attributes.tier", "op": "eq", "value": "gold"})]
    assert next_change(record, tier, world.now) is None


def test_a_customer_enters_the_win_back_journey_when_day_90_passes_without_an_event_once(world, campaigns):
    # GIVEN a win-back journey on entering "no purchase for 90 days", and c1's last purchase 89 days ago
    campaigns.put_segment(LAPSED)
    win_back = world.journey(_welcome({"segment": "lapsed", "on": "enter"}, reentry="once_per"))
    filters = jl.segment_filters(campaigns)
    assert _purchase(world, "p1", "c1", 89, filters)["entered"] == 0
    # WHEN two days pass with no event (the timer ticking hourly)
    world.advance_clock(48, segment_filters=filters)
    # THEN c1 entered once, when day 90 passed, and got the message
    assert _entries(world, win_back) == ["c1"]
    (path,) = [p for p in world.store.journey_paths(win_back) if p["entry_id"] != "member"]
    assert path["trigger"]["type"] == "time" and path["trigger"]["segment_change"] == "enter"
    assert len(world.sent("email")) == 1
    # AND ten more days change nothing: the marker sleeps until a purchase moves it
    world.advance_clock(240, segment_filters=filters)
    assert _entries(world, win_back) == ["c1"]
    (marker,) = [p for p in world.store.journey_paths(win_back) if p["entry_id"] == "member"]
    assert marker["status"] == "member" and "wake_at" not in marker


def test_a_new_purchase_moves_the_time_the_customer_is_looked_at_again(world, campaigns):
    campaigns.put_segment(LAPSED)
    win_back = world.journey(_welcome({"segment": "lapsed", "on": "enter"}))
    filters = jl.segment_filters(campaigns)
    _purchase(world, "p1", "c1", 89, filters)
    # WHEN c1 buys again before day 90
    _purchase(world, "p2", "c1", 0, filters)
    world.advance_clock(48, segment_filters=filters)
    # THEN nobody entered, and the marker now wakes 90 days after the new purchase
    assert _entries(world, win_back) == []
    (marker,) = world.store.journey_paths(win_back)
    assert marker["wake_at"].startswith((world.now - timedelta(hours=48) + timedelta(days=90)).date().isoformat())


def test_a_profile_change_enters_a_segment_journey_without_an_event(world, campaigns, add_customer):
    # GIVEN a journey on entering the gold segment, and c2 who is not gold
    campaigns.put_segment({"name": "gold", "filters": [{"field": "attributes.tier", "op": "eq", "value": "gold"}]})
    gold = world.journey(_welcome({"segment": "gold", "on": "enter"}))
    filters = jl.segment_filters(campaigns)
    add_customer("c2", attributes={"tier": "silver"})
    assert membership.on_profile_change("c2", "1", world.active(), world.entrance(filters), world.now)["entered"] == 0
    # WHEN a PUT makes c2 gold (the stream delivers the change twice)
    add_customer("c2", attributes={"tier": "gold"})
    first = membership.on_profile_change("c2", "2", world.active(), world.entrance(filters), world.now)
    again = membership.on_profile_change("c2", "2", world.active(), world.entrance(filters), world.now)
    # THEN c2 entered once
    assert (first["entered"], again["entered"]) == (1, 0)
    assert _entries(world, gold) == ["c2"]


def test_the_stream_tells_a_profile_change_by_the_store_s_profile_item(world, campaigns, add_customer):
    # The trigger reads the customer store's profile item from the stream: the name must be the store's own.
    assert layout.part_sk(layout.PROFILE) == membership.PROFILE_ITEM
    campaigns.put_segment({"name": "gold", "filters": [{"field": "attributes.tier", "op": "eq", "value": "gold"}]})
    gold = world.journey(_welcome({"segment": "gold", "on": "enter"}))
    add_customer("c2", attributes={"tier": "gold"})
    record = {
        "eventName": "MODIFY",
        "dynamodb": {"Keys": {"customer_id": {"S": "c2"}, "sk": {"S": "a#profile"}}, "SequenceNumber": "42"},
    }
    out = entry.on_stream([record], world.active(), world.entrance(jl.segment_filters(campaigns)), world.now)
    assert out["profile_changes"] == 1 and out["entered"] == 1
    assert _entries(world, gold) == ["c2"]


def test_activating_a_segment_journey_enters_members_and_marks_who_time_will_bring_in(world, campaigns):
    # GIVEN c1 lapsed 120 days ago and c3 89 days ago, both before the journey existed
    campaigns.put_segment(LAPSED)
    _purchase(world, "p1", "c1", 120)
    _purchase(world, "p3", "c3", 89)
    # WHEN the journey is activated and the timer's scan runs (twice: a finished scan is not run again)
    win_back = world.journey(_welcome({"segment": "lapsed", "on": "enter"}))
    filters = jl.segment_filters(campaigns)
    for _ in range(2):
        jl.scan_entries(world.active(), world.entrance(filters), world.now)
    # THEN c1 entered at once; c3 enters when its day 90 passes
    assert _entries(world, win_back) == ["c1"]
    world.advance_clock(48, segment_filters=filters)
    assert _entries(world, win_back) == ["c1", "c3"]
    assert journey_results(win_back, world.store, world.messages)["entries"] == 2
