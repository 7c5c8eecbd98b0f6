"""Triggered journeys on the real template: the API, the events stream, the trigger and timer functions, and the
journey step state machine's real ASL in moto's interpreter, with simulated time."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from kairos_local.stepfunctions import SimulatedClock, local_stepfunctions
from tests.functional.journey_stack import JourneyStack

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "journeys"
START = datetime(2026, 3, 2, 9, tzinfo=UTC)  # a Monday, 09:00 UTC (outside the example's quiet hours)


class Stack(JourneyStack):
    def journey(self, name: str, **over: Any) -> str:
        return self.start_journey({**json.loads((EXAMPLES / f"{name}.json").read_text()), **over})

    def customer(self, cid: str) -> None:
        body = {
            "timezone": "Europe/London",
            "contact": {"email": f"{cid}@example.com", "phone": "+447700900123"},
            "consent": {"email": True, "sms": True},
            "attributes": {"first_name": "Ana"},
        }
        self.put_customer(cid, body)

    def messages(self, cid: str) -> list[tuple[str, str]]:
        resp = self.client.request("GET", f"/v1/customers/{cid}/messages")
        assert resp.status == 200, resp.body
        return [(m["channel"], m["status"]) for m in reversed(resp.json()["messages"])]


@pytest.fixture
def stack(runtime):
    clock = SimulatedClock(START)
    with local_stepfunctions(runtime, clock) as sfn:
        yield Stack(runtime, clock, sfn)


def test_abandoned_cart_end_to_end(stack):
    # GIVEN the example journey, active, and a customer who may get email and SMS
    jid = stack.journey("abandoned_cart")
    stack.customer("c1")
    # WHEN they abandon a cart of 5,000
    stack.event("cart-1", "c1", "cart_abandon", amount=5000)
    # THEN the email is sent at once
    assert stack.messages("c1") == [("email", "sent")]
    # AND a second cart inside the re-entry window starts nothing
    stack.later(1)
    stack.event("cart-2", "c1", "cart_abandon", amount=6000)
    assert stack.messages("c1") == [("email", "sent")]
    # AND with no open, the SMS goes after 24 hours, then the path ends
    stack.later(24)
    assert stack.messages("c1") == [("email", "sent"), ("sms", "sent")]
    res = stack.client.request("GET", f"/v1/journeys/{jid}/results").json()
    assert res["entries"] == 1 and res["completed"] == 1 and res["messages"]["sms"] == {"sent": 1}


def test_an_open_ends_the_wait_and_a_purchase_exits(stack):
    stack.journey("abandoned_cart")
    for cid in ("c1", "c2"):
        stack.customer(cid)
        stack.event(f"cart-{cid}", cid, "cart_abandon", amount=5000)
    (msg,) = stack.client.request("GET", "/v1/customers/c1/messages").json()["messages"]
    stack.later(2)
    stack.event("open-1", "c1", "message_open", channel="email", message_id=msg["message_id"])
    stack.event("buy-2", "c2", "purchase", amount=5000)
    stack.later(30)
    assert stack.messages("c1") == [("email", "sent")]
    assert stack.messages("c2") == [("email", "sent")]


def test_a_big_cart_goes_to_the_managers_queue_as_an_eventbridge_event(stack):
    # GIVEN a rule that routes the journey's tasks to a queue
    sqs = stack.runtime.session.client("sqs")
    events = stack.runtime.session.client("events")
    url = sqs.create_queue(QueueName="managers")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="big-carts", EventPattern=json.dumps({"source": ["kairos.journeys"]}))
    events.put_targets(Rule="big-carts", Targets=[{"Id": "q", "Arn": arn}])
    stack.journey("abandoned_cart")
    stack.customer("c1")
    # WHEN a cart of 25,000 is abandoned
    stack.event("cart-1", "c1", "cart_abandon", amount=25000)
    # THEN the managers' queue has the task, and the customer gets no message
    (msg,) = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    task = json.loads(msg["Body"])
    assert task["detail-type"] == "kairos.big_cart" and task["detail"]["customer_id"] == "c1"
    assert task["detail"]["trigger"]["amount"] == 25000
    assert stack.messages("c1") == []


def test_invalid_journey_names_the_node_and_field(stack):
    body = json.loads((EXAMPLES / "abandoned_cart.json").read_text())
    body["nodes"]["wait_open"]["on_timeout"] = "smss"
    resp = stack.client.request("POST", "/v1/journeys", body)
    assert resp.status == 400
    assert resp.json()["message"].startswith("nodes.wait_open.on_timeout: unknown node 'smss'")


def test_versions_and_lifecycle(stack):
    jid = stack.journey("abandoned_cart")
    body = json.loads((EXAMPLES / "abandoned_cart.json").read_text())
    body["name"] = "Abandoned cart v2"
    resp = stack.client.request("PUT", f"/v1/journeys/{jid}", body)
    assert resp.status == 200 and resp.json()["version"] == 2
    first = stack.runtime.http("GET", f"/v1/journeys/{jid}", stack.client.headers, None, {"version": "1"})
    assert first.json()["definition"]["name"] == "Abandoned cart" and first.json()["version"] == 1
    assert stack.client.request("POST", f"/v1/journeys/{jid}/status", {"status": "archived"}).status == 200
    again = stack.client.request("POST", f"/v1/journeys/{jid}/status", {"status": "active"})
    assert again.status == 400 and "archived" in again.json()["message"]


def test_erasure_removes_paths_and_stops_the_journey(stack):
    stack.journey("abandoned_cart")
    stack.customer("c1")
    stack.event("cart-1", "c1", "cart_abandon", amount=5000)
    resp = stack.client.request("DELETE", "/v1/customers/c1")
    assert resp.status == 200 and resp.json()["journey_paths"] == 1
    stack.later(30)
    assert stack.messages("c1") == []


def test_an_inbound_message_tagged_with_an_intent_starts_a_journey(stack):
    # GIVEN an intent and the "asked about the price, did not pay" journey
    intent = {"keywords": ["сколько", "цена", "price"], "phrases": ["how much"], "stage": "question"}
    assert stack.client.request("PUT", "/v1/intents/price_question", intent).status == 200
    jid = stack.journey("intent_reminder")
    body = {
        "timezone": "Europe/Moscow",
        "contact": {"messenger_chat_id": "1001"},
        "consent": {"messenger": True},
    }
    assert stack.client.request("PUT", "/v1/customers/c1", body).status == 200
    # WHEN the customer writes in Russian, in a form of the keyword
    stack.event("in-1", "c1", "message_inbound", channel="messenger", text="Скажите, а какие цены на доставку?")
    # THEN they enter the journey, and 14 days later without a purchase get the reminder
    assert stack.client.request("GET", f"/v1/journeys/{jid}/results").json()["entries"] == 1
    stack.later(14 * 24 + 1)
    # (no Telegram bot is configured locally: the attempt is logged as failed with that reason)
    assert stack.messages("c1") == [("messenger", "failed")]


def test_a_scheduled_entry_messages_a_saved_segment_through_the_timer(stack):
    # GIVEN a segment of gold customers and a journey that greets it an hour from now
    seg = {"filters": [{"field": "attributes.tier", "op": "eq", "value": "gold"}]}
    assert stack.client.request("PUT", "/v1/segments/gold", seg).status == 200
    for cid, tier in (("g1", "gold"), ("s1", "silver")):
        body = {
            "timezone": "UTC",
            "contact": {"email": f"{cid}@example.com"},
            "consent": {"email": True},
            "attributes": {"tier": tier},
        }
        assert stack.client.request("PUT", f"/v1/customers/{cid}", body).status == 200
    journey = {
        "name": "Gold greeting",
        "entry": {"schedule": {"at": (stack.clock.now() + timedelta(hours=1)).isoformat()}, "segment": "gold"},
        "start": "hello",
        "nodes": {
            "hello": {
                "type": "message",
                "channel": "email",
                "content": {"email": {"subject": "Hello", "text": "For our gold members"}},
                "next": "done",
            },
            "done": {"type": "exit"},
        },
    }
    jid = stack.client.request("POST", "/v1/journeys", journey).json()["journey_id"]
    stack.client.request("POST", f"/v1/journeys/{jid}/status", {"status": "active"})
    # WHEN the timer runs before and after the hour
    stack.later(0.5)
    assert stack.messages("g1") == []
    stack.later(1)
    stack.later(1)
    # THEN the gold customer got the email once, the silver one nothing
    assert stack.messages("g1") == [("email", "sent")] and stack.messages("s1") == []


def test_a_channel_cycle_repeats_until_the_offer_expires(stack):
    # GIVEN the expiring-points journey and a customer reachable by email and SMS only
    stack.journey("expiring_promo")
    stack.customer("c1")
    expires = (stack.clock.now() + timedelta(hours=60)).isoformat()
    # WHEN points that expire in 60 hours are credited and nobody engages
    stack.event("pts-1", "c1", "cart_add", properties={"points_expire_at": expires})
    for _ in range(4):
        stack.later(24)
    # THEN email, SMS a day later (messenger is passed over: no chat id), email again in round two, then expiry
    assert stack.messages("c1") == [("email", "sent"), ("sms", "sent"), ("email", "sent")]


def test_a_record_the_trigger_cannot_handle_is_retried_from_it_then_sent_to_the_dead_letter_queue(stack, monkeypatch):
    # GIVEN the abandoned-cart journey, and a trigger that cannot handle customer c2's events
    stack.journey("abandoned_cart")
    for cid in ("c1", "c2", "c3"):
        stack.customer(cid)
    import kairos.journeys.entry as logic

    real = logic.on_events
    seen: list[str] = []

    def failing(events, *args, **kwargs):
        seen.extend(e["customer_id"] for e in events)
        if any(e["customer_id"] == "c2" for e in events):
            raise RuntimeError("cannot handle c2")
        return real(events, *args, **kwargs)

    monkeypatch.setattr(logic, "on_events", failing)
    # WHEN one batch brings a cart of each
    at = stack.clock.now().isoformat()
    carts = [
        {"event_id": f"cart-{c}", "customer_id": c, "type": "cart_abandon", "amount": 5000, "timestamp": at}
        for c in ("c1", "c2", "c3")
    ]
    assert stack.client.post_events(carts).json()["accepted"] == 3
    stack.settle()
    # THEN c1 is handled once; the batch is retried from c2 (4 tries), and c2 onwards go to the dead-letter queue
    assert seen.count("c1") == 1 and seen.count("c2") == 4
    assert stack.messages("c1") == [("email", "sent")] and stack.messages("c3") == []
    sqs = stack.runtime.session.client("sqs")
    url = sqs.get_queue_url(QueueName=stack.runtime.dep.physical["JourneyDeadLetterQueue"].rsplit("/", 1)[-1])
    (msg,) = sqs.receive_message(QueueUrl=url["QueueUrl"], MaxNumberOfMessages=10)["Messages"]
    assert json.loads(msg["Body"])["DDBStreamBatchInfo"]["batchSize"] == 2
