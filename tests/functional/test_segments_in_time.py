"""Segment journeys on the real template: a profile PUT or time alone moves a customer into a segment, and the
trigger (from the events table's stream) or the timer (from the paths' wake index) lets them in, once."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from kairos_local.stepfunctions import SimulatedClock, local_stepfunctions
from tests.functional.test_triggered_journeys import EXAMPLES, START, Stack


def _journey(segment: str) -> dict[str, Any]:
    return {
        "name": f"on entering {segment}",
        "entry": {"segment": segment, "on": "enter"},
        "reentry": {"mode": "once_per", "days": 30},
        "start": "hello",
        "nodes": {
            "hello": {
                "type": "message",
                "channel": "email",
                "content": {"email": {"subject": "We miss you", "text": "Hello {{first_name}}"}},
                "next": "done",
            },
            "done": {"type": "exit"},
        },
    }


@pytest.fixture
def stack(runtime):
    clock = SimulatedClock(START)
    with local_stepfunctions(runtime, clock) as sfn:
        yield Stack(runtime, clock, sfn)


def _segment(stack: Stack, name: str, filters: list[dict[str, Any]]) -> None:
    resp = stack.client.request("PUT", f"/v1/segments/{name}", {"filters": filters})
    assert resp.status in (200, 201), resp.body


def test_a_customer_enters_the_win_back_journey_when_day_90_passes_with_no_event(stack):
    # GIVEN a win-back journey on "no purchase for 90 days", and c1 whose last purchase was 89 days ago
    _segment(stack, "lapsed", [{"field": "days_since_last_purchase", "op": "gte", "value": 90}])
    jid = stack.start_journey(_journey("lapsed"))
    stack.customer("c1")
    bought = (stack.clock.now() - timedelta(days=89)).isoformat()
    resp = stack.client.post_events(
        [{"event_id": "p1", "customer_id": "c1", "type": "purchase", "timestamp": bought, "amount": 10}]
    )
    assert resp.json()["accepted"] == 1, resp.body
    stack.settle()
    assert stack.messages("c1") == []
    # WHEN day 90 passes with no new event (the timer runs)
    stack.later(25)
    # THEN c1 entered and got the message, once, however long the timer keeps running
    assert stack.messages("c1") == [("email", "sent")]
    stack.later(24)
    stack.later(24 * 10)
    assert stack.messages("c1") == [("email", "sent")]
    res = stack.client.request("GET", f"/v1/journeys/{jid}/results").json()
    assert res["entries"] == 1


def test_a_put_of_an_attribute_enters_a_segment_entry_journey(stack):
    # GIVEN a journey on entering the gold segment, and c2 who is silver
    _segment(stack, "gold", [{"field": "attributes.tier", "op": "eq", "value": "gold"}])
    jid = stack.start_journey(_journey("gold"))
    profile = {
        "timezone": "Europe/London",
        "contact": {"email": "c2@example.com"},
        "consent": {"email": True},
        "attributes": {"first_name": "Bo", "tier": "silver"},
    }
    stack.put_customer("c2", profile)
    stack.settle()
    assert stack.messages("c2") == []
    # WHEN a PUT makes c2 gold (no event)
    stack.put_customer("c2", {**profile, "attributes": {"first_name": "Bo", "tier": "gold"}})
    stack.settle()
    # THEN c2 entered the journey and got its message
    assert stack.messages("c2") == [("email", "sent")]
    assert stack.client.request("GET", f"/v1/journeys/{jid}/results").json()["entries"] == 1


def test_points_left_unused_start_the_expiry_chain_which_stops_when_they_are_redeemed(stack):
    # GIVEN the loyalty example on "points expire within 7 days", and c3 and c4 who earn 200 points expiring in
    # 10 days (reachable by email and SMS: the chain passes over messenger without a chat id)
    _segment(stack, "points_expiring", [{"field": "points.days_to_expiry", "op": "lte", "value": 7}])
    stack.start_journey(json.loads((EXAMPLES / "loyalty_points_expiry.json").read_text()))
    expires = (stack.clock.now() + timedelta(days=10)).isoformat()
    for cid in ("c3", "c4"):
        stack.customer(cid)
        stack.event(f"earn-{cid}", cid, "points_earned", properties={"points": 200, "expires_at": expires})
    stack.later(24)
    assert stack.messages("c3") == stack.messages("c4") == []
    # WHEN they stay unused until 7 days before they expire
    stack.later(24 * 2 + 1)
    # THEN both get the email, naming the points and the date
    assert stack.messages("c3") == stack.messages("c4") == [("email", "sent")]
    # AND c3 redeems them: the chain stops there, while c4's goes on to the SMS
    stack.event("spend-c3", "c3", "points_spent", properties={"points": 200})
    stack.later(49)
    stack.later(24 * 5)
    assert stack.messages("c3") == [("email", "sent")]
    assert stack.messages("c4") == [("email", "sent"), ("sms", "sent")]
    points = stack.client.request("GET", "/v1/customers/c3").json()["aggregates"]["points"]
    assert (points["balance"], points["spent"]) == (0, 200)
