"""A shop's own event types through the real template: stored, counted, listed, and usable in journeys and
segments; a type that breaks the name rule is rejected by its index, the others stored."""

from __future__ import annotations

import pytest

from kairos_local.stepfunctions import SimulatedClock, local_stepfunctions
from tests.conftest import Client
from tests.functional.journey_stack import settle
from tests.functional.test_triggered_journeys import START

SHIPPED_JOURNEY = {
    "name": "Shipped: how to use it",
    "entry": {"event": "order_shipped", "where": [{"field": "properties.carrier", "op": "eq", "value": "DHL"}]},
    "reentry": {"mode": "every_time"},
    "exit_on": ["review_left"],
    "start": "wait_delivered",
    "nodes": {
        "wait_delivered": {
            "type": "wait_for",
            "event": "order_delivered",
            "timeout_hours": 72,
            "on_event": "how_to",
            "on_timeout": "done",
        },
        "how_to": {
            "type": "message",
            "channel": "email",
            "content": {"email": {"subject": "How to get the most of it", "text": "Hello"}},
            "next": "done",
        },
        "done": {"type": "exit"},
    },
}


@pytest.fixture
def shop(runtime):
    clock = SimulatedClock(START)
    with local_stepfunctions(runtime, clock) as sfn:
        client = Client(runtime)
        profile = {"timezone": "Europe/London", "contact": {"email": "ana@example.com"}, "consent": {"email": True}}
        assert client.request("PUT", "/v1/customers/ana", profile).status == 200
        yield client, clock, sfn, runtime


def _event(clock, event_id: str, type_: str, **extra):
    return {"event_id": event_id, "customer_id": "ana", "type": type_, "timestamp": clock.now().isoformat(), **extra}


def test_custom_event_types_are_stored_counted_listed_and_bad_names_rejected_by_index(shop):
    client, clock, _, _ = shop
    # WHEN a shop posts its own types beside a built-in one, and one name that breaks the rule
    batch = [
        _event(clock, "s1", "order_shipped", properties={"order_id": "o-1", "carrier": "DHL"}),
        _event(clock, "bad", "Order Shipped!"),
        _event(clock, "s2", "order_shipped", properties={"order_id": "o-2", "tracking": "T2"}),
        _event(clock, "p1", "session"),
    ]
    resp = client.post_events(batch)
    # THEN the valid ones are stored and the bad one is named by its index and field
    assert resp.status == 200, resp.body
    body = resp.json()
    assert body["accepted"] == 3 and [(r["index"], r["field"]) for r in body["rejected"]] == [(1, "type")]
    # AND the types are listed with their counts and property names; a duplicate is not counted twice
    assert client.post_events([batch[0]]).json()["duplicates"] == 1
    types = {t["type"]: t for t in client.request("GET", "/v1/event-types").json()["event_types"]}
    shipped = types["order_shipped"]
    assert (shipped["count"], shipped["builtin"]) == (2, False)
    assert shipped["properties"] == ["carrier", "order_id", "tracking"]
    assert types["session"]["builtin"] is True and types["session"]["count"] == 1
    # AND the customer's aggregates count them
    assert client.request("GET", "/v1/customers/ana").json()["aggregates"]["event_counts"]["order_shipped"] == 2


def test_a_journey_enters_waits_and_exits_on_custom_events_and_segments_count_them(shop):
    client, clock, sfn, runtime = shop
    # GIVEN a post-purchase journey entered on order_shipped (DHL), waiting for order_delivered
    resp = client.request("POST", "/v1/journeys", SHIPPED_JOURNEY)
    assert resp.status == 201, resp.body
    jid = resp.json()["journey_id"]
    assert client.request("POST", f"/v1/journeys/{jid}/status", {"status": "active"}).status == 200
    # WHEN the order ships with DHL, then is delivered
    client.post_events([_event(clock, "s1", "order_shipped", properties={"carrier": "DHL", "order_id": "o-1"})])
    settle(runtime, clock, sfn)
    clock.advance(3600)
    client.post_events([_event(clock, "d1", "order_delivered", properties={"order_id": "o-1"})])
    settle(runtime, clock, sfn)
    # THEN the how-to email went once the delivery came
    msgs = client.request("GET", "/v1/customers/ana/messages").json()["messages"]
    assert [(m["channel"], m["status"], m["node"]) for m in msgs] == [("email", "sent", "how_to")]
    res = client.request("GET", f"/v1/journeys/{jid}/results").json()
    assert res["entries"] == 1 and res["exited"] == {"exit at done": 1}
    # AND a segment filter counts the customer's shipped orders within a window
    preview = client.request(
        "POST",
        "/v1/segments/preview",
        {"filters": [{"field": "events.order_shipped", "op": "gte", "value": 1, "within_days": 30}]},
    ).json()
    assert preview["count"] == 1 and preview["sample"] == ["ana"]
    # AND a type that breaks the rule is refused in a journey, naming the field
    bad = {**SHIPPED_JOURNEY, "exit_on": ["Review Left"]}
    resp = client.request("POST", "/v1/journeys", bad)
    assert resp.status == 400 and resp.json()["message"].startswith("exit_on.0")
