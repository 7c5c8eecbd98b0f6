"""Conversations on the real template: a Telegram update through the public webhook becomes a tagged
``message_inbound`` event that moves the customer's stage and starts a stage journey."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from kairos_local.stepfunctions import SimulatedClock, local_stepfunctions
from tests.functional.test_triggered_journeys import EXAMPLES, START, Stack


@pytest.fixture
def stack(runtime):
    clock = SimulatedClock(START)
    with local_stepfunctions(runtime, clock) as sfn:
        yield Stack(runtime, clock, sfn)


def _update(update_id: int, chat_id: int, text: str, at: int) -> dict[str, Any]:
    """An update as Telegram posts it to a webhook."""
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "from": {"id": chat_id, "is_bot": False, "first_name": "Анна", "language_code": "ru"},
            "chat": {"id": chat_id, "first_name": "Анна", "type": "private"},
            "date": at,
            "text": text,
        },
    }


def _post(stack: Stack, update: dict[str, Any], secret: str | None) -> Any:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    return stack.runtime.http("POST", "/v1/inbound/telegram", headers, json.dumps(update, ensure_ascii=False))


def test_a_telegram_question_is_tagged_moves_the_stage_and_starts_the_stage_journey(stack):
    client = stack.client
    # GIVEN an intent in the "question" stage, a journey on entering that stage, and a customer with a start link
    intent = {"keywords": ["сколько", "стоимость", "price"], "phrases": ["how much"], "stage": "question"}
    assert client.request("PUT", "/v1/intents/delivery_price", intent).status == 200
    seg = {"filters": [{"field": "stage", "op": "eq", "value": "question"}]}
    assert client.request("PUT", "/v1/segments/asked", seg).status in (200, 201)
    journey = {
        "name": "answer a question",
        "entry": {"segment": "asked", "on": "enter"},
        "reentry": {"mode": "once"},
        "start": "manager",
        "nodes": {
            "manager": {"type": "task", "detail_type": "kairos.question", "next": "done"},
            "done": {"type": "exit"},
        },
    }
    jid = stack.start_journey(journey)
    stack.put_customer("c1", {"timezone": "Europe/Moscow", "attributes": {"first_name": "Анна"}})
    link = client.request("POST", "/v1/customers/c1/messenger-link")
    assert link.status == 201, link.body
    secret = client.request("GET", "/v1/channels/telegram").json()["secret_token"]
    at = int(stack.clock.now().timestamp())
    # WHEN a request without the secret arrives THEN it is refused and changes nothing
    assert _post(stack, _update(1, 555, "сколько стоит доставка?", at), None).status == 401
    assert _post(stack, _update(1, 555, "сколько стоит доставка?", at), "wrong").status == 401
    # WHEN the customer opens the start link, then asks in the chat (Telegram delivers the question twice)
    started = _post(stack, _update(2, 555, f"/start {link.json()['start_parameter']}", at), secret)
    assert (started.status, json.loads(started.body)["outcome"]) == (200, "linked")
    for _ in range(2):
        asked = _post(stack, _update(3, 555, "сколько стоит доставка?", at + 60), secret)
        assert asked.status == 200
    stack.settle()
    # THEN the chat is on the profile, the question is one event tagged with the intent and its stage ...
    customer = client.request("GET", "/v1/customers/c1").json()
    assert customer["profile"]["contact"]["messenger_chat_id"] == "555"
    assert customer["profile"]["consent"]["messenger"] is True
    assert customer["aggregates"]["event_counts"] == {"message_inbound": 1}
    assert customer["aggregates"]["stage"]["name"] == "question"
    # ... AND the customer entered the stage journey once
    assert client.request("GET", f"/v1/journeys/{jid}/results").json()["entries"] == 1
    # AND a chat nobody linked is acknowledged and dropped
    other = _post(stack, _update(4, 777, "сколько?", at + 120), secret)
    assert json.loads(other.body)["outcome"] == "unlinked_chat"


def test_erasing_a_customer_unlinks_their_chat(stack):
    client = stack.client
    stack.put_customer("ana.telegram", {"timezone": "UTC"})
    token = client.request("POST", "/v1/customers/ana.telegram/messenger-link").json()["start_parameter"]
    secret = client.request("GET", "/v1/channels/telegram").json()["secret_token"]
    at = int(stack.clock.now().timestamp())
    assert json.loads(_post(stack, _update(10, 999, f"/start {token}", at), secret).body)["outcome"] == "linked"
    assert client.request("DELETE", "/v1/customers/ana.telegram").status == 200
    # THEN the chat's next message finds nobody, and nothing names the customer any more
    later = _post(stack, _update(11, 999, "hello", at + 60), secret)
    assert json.loads(later.body)["outcome"] == "unlinked_chat"
    ddb = stack.runtime.session.client("dynamodb")
    items = ddb.scan(TableName=stack.runtime.dep.physical["CustomersTable"])["Items"]
    assert "ana.telegram" not in json.dumps(items)


def test_the_stages_report_counts_each_move_and_the_days_it_took(stack):
    client = stack.client
    t0 = stack.clock.now()
    # GIVEN two customers who asked a question, one of whom was ready to pay 15 days later (their own events)
    for cid in ("s1", "s2"):
        stack.put_customer(cid, {"timezone": "UTC"})
    events = [
        {"event_id": "q1", "customer_id": "s1", "type": "message_inbound", "properties": {"stage": "question"}},
        {"event_id": "q2", "customer_id": "s2", "type": "message_inbound", "properties": {"stage": "question"}},
    ]
    for ev in events:
        ev["timestamp"] = (t0 - timedelta(days=20)).isoformat()
    ready = {"event_id": "r1", "customer_id": "s1", "type": "order_started", "properties": {"stage": "ready"}}
    ready["timestamp"] = (t0 - timedelta(days=5)).isoformat()
    assert client.post_events([*events, ready]).json()["accepted"] == 3
    stack.settle()
    # WHEN the report is asked for (a query on the archive: poll until it answers)
    resp = client.request("GET", "/v1/insights/stages")
    if resp.status == 202:
        resp = stack.runtime.http("GET", resp.headers["Location"], client.headers)
    assert resp.status == 200, resp.body
    report = resp.json()
    # THEN each stage has who is in it now and who reached it, and the move its conversion and delay
    assert report["stages"] == [
        {"stage": "question", "now": 1, "reached": 2},
        {"stage": "ready", "now": 1, "reached": 1},
    ]
    (move,) = report["moves"]
    assert (move["from"], move["to"], move["customers"], move["conversion"]) == ("question", "ready", 1, 0.5)
    assert move["days"]["p50"] == move["days"]["mean"] == 15.0
    assert client.request("GET", "/v1/customers/s1").json()["aggregates"]["stage"]["previous"] == "question"


def test_a_question_goes_to_an_operator_and_the_chain_resumes_when_they_are_done(stack):
    client = stack.client
    # GIVEN the hand-off example, and a queue the operators' tool reads the hand-offs from
    sqs, events = stack.runtime.session.client("sqs"), stack.runtime.session.client("events")
    url = sqs.create_queue(QueueName="operators")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="handoffs", EventPattern=json.dumps({"detail-type": ["kairos.operator_handoff"]}))
    events.put_targets(Rule="handoffs", Targets=[{"Id": "q", "Arn": arn}])
    jid = stack.start_journey(json.loads((EXAMPLES / "question_to_operator.json").read_text()))
    profile = {"timezone": "UTC", "contact": {"messenger_chat_id": "808"}, "consent": {"messenger": True}}
    stack.put_customer("o1", profile)
    # WHEN the customer asks a question, and a manager answers it and says so within the hour
    stack.event("ask-1", "o1", "message_inbound", channel="messenger", text="?", properties={"stage": "question"})
    (msg,) = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    assert json.loads(msg["Body"])["detail"]["customer_id"] == "o1"
    stack.later(1)
    stack.event("done-1", "o1", "operator_done")
    # THEN no holding reply goes, the path waits for a purchase, and the automated reminder follows 3 days later
    stack.later(5)
    assert stack.messages("o1") == []
    results = client.request("GET", f"/v1/journeys/{jid}/results").json()
    assert (results["entries"], results["completed"]) == (1, 0)
    stack.later(72)
    # (no Telegram bot is configured locally: the reminder's attempt is logged as failed with that reason)
    assert stack.messages("o1") == [("messenger", "failed")]


def _sms_reply(message_id: str, phone: str, text: str) -> dict[str, Any]:
    """A reply as End User Messaging publishes it to the number's two-way SNS topic, as SNS delivers it."""
    body = {
        "originationNumber": phone,
        "destinationNumber": "+447700900000",
        "messageKeyword": "KEYWORD_123456789012",
        "messageBody": text,
        "inboundMessageId": message_id,
        "previousPublishedMessageId": "wJ0Ku5BsXDK0MM3x7ypr2Ryx0c",
    }
    sns = {"Type": "Notification", "MessageId": message_id, "Message": json.dumps(body, ensure_ascii=False)}
    return {"Records": [{"EventSource": "aws:sns", "EventVersion": "1.0", "Sns": sns}]}


def test_sms_replies_become_tagged_events_of_the_customer_whose_profile_gave_the_number(stack):
    client = stack.client
    intent = {"keywords": ["сколько", "price"], "stage": "question"}
    assert client.request("PUT", "/v1/intents/price", intent).status == 200
    profile = {"timezone": "UTC", "contact": {"phone": "+447700900123"}, "consent": {"sms": True}}
    stack.put_customer("m1", profile)
    # WHEN the customer replies to the number, SNS delivering the reply twice, then replies STOP
    for _ in range(2):
        out = stack.runtime.invoke("PreferencesFunction", _sms_reply("in-1", "+447700900123", "Сколько стоит?"))
        assert out["outcomes"] == ["event"]
    stack.runtime.invoke("PreferencesFunction", _sms_reply("in-2", "+447700900123", "STOP"))
    # AND someone no profile knows replies
    stranger = stack.runtime.invoke("PreferencesFunction", _sms_reply("in-3", "+447700900999", "hi"))
    # THEN the question is one event, tagged, that moved the stage; STOP withdrew SMS; the stranger left nothing
    agg = client.request("GET", "/v1/customers/m1").json()["aggregates"]
    assert agg["event_counts"] == {"message_inbound": 2}
    assert agg["stage"]["name"] == "question" and "sms" in agg["unsubscribed"]
    assert stranger["outcomes"] == ["unknown_number"]
    # AND a number given to another profile now leads there; erasing that customer forgets it
    stack.put_customer("m2", profile)
    stack.put_customer("m1", {"timezone": "UTC"})
    assert client.request("DELETE", "/v1/customers/m2").status == 200
    gone = stack.runtime.invoke("PreferencesFunction", _sms_reply("in-4", "+447700900123", "hello"))
    assert gone["outcomes"] == ["unknown_number"]
