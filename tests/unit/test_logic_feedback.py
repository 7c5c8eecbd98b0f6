"""SES feedback becomes Kairos events: opens and clicks engage, permanent bounces and complaints unsubscribe."""

from __future__ import annotations

import copy
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from kairos.messaging.consent import may_send
from kairos.messaging.domain import decode_tag, encode_tag
from kairos.messaging.feedback import ingest_feedback, to_event
from tests.unit.conftest import NOW, RETENTION, SKEW

EVENTS_DIR = Path(__file__).resolve().parents[2] / "events"
SES_MESSAGE_ID = "010201234567890a-11111111-2222-3333-4444-555555555555-000000"


def load_event(name: str) -> dict[str, Any]:
    """A sample event of ``events/`` (the ones ``sam local invoke`` reads)."""
    return json.loads((EVENTS_DIR / name).read_text())


def ses_event(kind: str, key: str, customer_id: str = "c1", **detail: Any) -> dict[str, Any]:
    """The sample open turned into another SES event type (``key`` holds its details and timestamp)."""
    ev = load_event("ses_open.json")
    ev["detail"]["eventType"] = kind
    ev["detail"].pop("open")
    ev["detail"][key] = {"timestamp": (NOW - timedelta(hours=1)).isoformat(), **detail}
    ev["detail"]["mail"]["tags"]["kairos_customer_id"] = [encode_tag(customer_id)]
    ev["detail"]["mail"]["tags"]["kairos_message_id"] = [encode_tag(f"camp.{customer_id}.0")]
    return ev


def test_to_event_open_is_a_message_open_of_the_tagged_message():
    # GIVEN the sample SES open of message camp.c1.0
    detail = load_event("ses_open.json")["detail"]
    # WHEN / THEN it becomes a message_open of that message, with an id derived from the SES message id
    assert to_event(detail) == {
        "customer_id": "c1",
        "channel": "email",
        "message_id": "camp.c1.0",
        "event_id": f"ses-open-{SES_MESSAGE_ID}",
        "type": "message_open",
        "timestamp": "2026-03-02T10:15:00.000Z",
    }


def test_to_event_click_is_a_message_click():
    # GIVEN an SES click
    detail = ses_event("Click", "click", link="https://example.com/x")["detail"]
    # WHEN / THEN
    ev = to_event(detail)
    assert (ev["type"], ev["message_id"], ev["event_id"]) == (
        "message_click",
        "camp.c1.0",
        f"ses-click-{SES_MESSAGE_ID}",
    )
    assert ev["timestamp"] == detail["click"]["timestamp"]


@pytest.mark.parametrize(
    ("kind", "key", "extra", "reason"),
    [
        ("Bounce", "bounce", {"bounceType": "Permanent"}, "permanent bounce"),
        ("Complaint", "complaint", {}, "complaint"),
    ],
)
def test_to_event_permanent_bounce_and_complaint_unsubscribe_from_email(kind, key, extra, reason):
    # GIVEN a permanent bounce or a complaint
    detail = ses_event(kind, key, **extra)["detail"]
    # WHEN / THEN it is an unsubscribe from email, with the reason
    ev = to_event(detail)
    assert (ev["type"], ev["channel"], ev["customer_id"]) == ("unsubscribe", "email", "c1")
    assert ev["properties"] == {"reason": reason}
    assert ev["event_id"] == f"ses-{kind.lower()}-{SES_MESSAGE_ID}"


@pytest.mark.parametrize(
    "detail",
    [
        ses_event("Bounce", "bounce", bounceType="Transient")["detail"],
        ses_event("Delivery", "delivery")["detail"],
        {**load_event("ses_open.json")["detail"], "mail": {"messageId": "x", "tags": {"campaign": ["spring"]}}},
        {**load_event("ses_open.json")["detail"], "mail": {"messageId": "x"}},
    ],
    ids=["transient-bounce", "delivery", "other-tags", "no-tags"],
)
def test_to_event_ignores_transient_bounces_and_non_kairos_mail(detail):
    # GIVEN an SES event that is no engagement or suppression, or is about mail Kairos did not send
    # WHEN / THEN
    assert to_event(detail) is None


def test_tags_carry_any_id_through_ses():
    # GIVEN ids with characters SES tags refuse
    for value in ("camp-1.c@x.com.0", "a+b:c", "é"):
        # WHEN / THEN the tag is SES-safe and decodes to the id
        tag = encode_tag(value)
        assert set(tag) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
        assert decode_tag(tag) == value


def test_ingest_feedback_stores_an_open_once(customers, add_customer):
    # GIVEN a customer and the sample open, delivered twice (EventBridge is at least once)
    add_customer("c1")
    sample = load_event("ses_open.json")
    # WHEN both deliveries are ingested
    first = ingest_feedback([sample], customers, NOW, RETENTION, SKEW)
    again = ingest_feedback([copy.deepcopy(sample)], customers, NOW, RETENTION, SKEW)
    # THEN the open is stored and counted once, as an engagement with the message (the message's answer,
    # not an engagement moment of the customer's own: kairos.customers.aggregates.makes_moment)
    assert (first["accepted"], first["duplicates"], first["ignored"]) == (1, 0, 0)
    assert (again["accepted"], again["duplicates"]) == (0, 1)
    (ev,) = customers.message_events("c1", "camp.c1.")
    assert (ev["type"], ev["message_id"]) == ("message_open", "camp.c1.0")
    agg = customers.get_customer("c1").aggregates
    assert agg.channel_engagements == {"email": 1} and agg.engagement_moments == 0


def test_ingest_feedback_suppresses_email_after_a_complaint(customers, add_customer):
    # GIVEN a customer who consented to email yesterday
    add_customer("c1", at=NOW - timedelta(days=1))
    assert may_send(customers.get_customer("c1"), "email") == (True, "ok")
    # WHEN a complaint about a Kairos email arrives
    result = ingest_feedback([ses_event("Complaint", "complaint")], customers, NOW, RETENTION, SKEW)
    # THEN nothing more is emailed until consent is given again
    assert result["accepted"] == 1
    assert may_send(customers.get_customer("c1"), "email") == (False, "email suppressed (bounce or complaint)")


def test_ingest_feedback_counts_what_it_ignores(customers):
    # GIVEN an open, a transient bounce and an SES event about another sender's mail
    other = load_event("ses_open.json")
    other["detail"]["mail"]["tags"] = {}
    batch = [load_event("ses_open.json"), ses_event("Bounce", "bounce", bounceType="Transient"), other]
    # WHEN they are ingested
    result = ingest_feedback(batch, customers, NOW, RETENTION, SKEW)
    # THEN the open is accepted and the other two are ignored
    assert (result["accepted"], result["ignored"], result["rejected"]) == (1, 2, [])
    # AND a batch of nothing Kairos cares about stores nothing
    assert ingest_feedback(batch[1:], customers, NOW, RETENTION, SKEW) == {
        "accepted": 0,
        "duplicates": 0,
        "rejected": [],
        "ignored": 2,
    }
