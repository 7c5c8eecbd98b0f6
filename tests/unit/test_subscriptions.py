"""Unsubscribes by topic and channel, SMS keywords, suppression, and the signed links that carry them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from kairos.core.errors import InvalidInputError
from kairos.customers.aggregates import fold_events
from kairos.customers.domain import CustomerRecord
from kairos.customers.schemas import Event
from kairos.customers.subscription_domain import sms_keyword
from kairos.messaging.consent import may_send
from kairos.messaging.domain import Rendered
from kairos.messaging.unsubscribe import ONE_CLICK, links, sign, verify

PROFILE = {
    "contact": {"email": "a@example.com", "phone": "+447700900123"},
    "consent": {"email": True, "sms": True},
}
CONSENT_AT = "2026-01-01T00:00:00+00:00"


def _event(i: int, kind: str, day: int, **more: object) -> Event:
    return Event.model_validate(
        {
            "event_id": f"e{i}",
            "customer_id": "c",
            "type": kind,
            "timestamp": datetime(2026, 2, day, 12, tzinfo=UTC).isoformat(),
            **more,
        }
    )


def _customer(*events: Event) -> CustomerRecord:
    agg, _ = fold_events(CustomerRecord("c").aggregates, list(events), counted=set())
    return CustomerRecord("c", exists=True, profile=PROFILE, aggregates=agg, consent_at=CONSENT_AT)


def test_may_send_topic_unsubscribe_stops_marketing_but_not_transactional():
    # GIVEN a customer who unsubscribed from "offers" with the one-click link
    record = _customer(_event(1, "unsubscribe", 2, channel="email", properties={"topic": "offers"}))
    # WHEN marketing and transactional email on the topic, and marketing on another topic, are considered
    # THEN only the marketing message on "offers" is held back
    assert may_send(record, "email", "offers") == (False, "unsubscribed from topic offers")
    assert may_send(record, "email", "offers", transactional=True) == (True, "ok")
    assert may_send(record, "email", "news") == (True, "ok")
    assert may_send(record, "sms", "offers") == (False, "unsubscribed from topic offers")


def test_may_send_subscribe_after_unsubscribe_grants_the_topic_again_whatever_the_order():
    # GIVEN an unsubscribe on day 2 and a subscribe on day 5, folded in both orders
    off, on = (
        _event(1, "unsubscribe", 2, properties={"topic": "offers"}),
        _event(2, "subscribe", 5, properties={"topic": "offers"}),
    )
    # WHEN / THEN the later choice wins either way
    assert may_send(_customer(off, on), "email", "offers") == (True, "ok")
    assert may_send(_customer(on, off), "email", "offers") == (True, "ok")
    # and an unsubscribe newer than the subscribe withdraws it again
    again = _event(3, "unsubscribe", 7, properties={"topic": "offers"})
    assert may_send(_customer(off, on, again), "email", "offers")[0] is False


def test_may_send_a_complaint_stops_even_transactional_and_no_subscribe_lifts_it():
    # GIVEN a complaint (as the SES feedback records it) followed by a subscribe from the preference page
    complaint = _event(1, "unsubscribe", 2, channel="email", properties={"reason": "complaint"})
    resubscribe = _event(2, "subscribe", 3, channel="email")
    record = _customer(complaint, resubscribe)
    # WHEN / THEN no email goes, transactional or not
    assert may_send(record, "email", transactional=True) == (False, "email suppressed (bounce or complaint)")
    # until the profile grants consent again after the complaint
    regranted = CustomerRecord(
        "c", exists=True, profile=PROFILE, aggregates=record.aggregates, consent_at="2026-03-01T00:00:00+00:00"
    )
    assert may_send(regranted, "email") == (True, "ok")


@pytest.mark.parametrize(
    ("text", "word"),
    [
        ("STOP", "stop"),
        (" stop. ", "stop"),
        ("Стоп", "stop"),
        ("unsubscribe", "stop"),
        ("OPT-OUT", "stop"),
        ("start", "start"),
        ("СТАРТ", "start"),
        ("stop sending me this", None),
        ("yes please", None),
        ("", None),
    ],
)
def test_sms_keyword_knows_the_carriers_words(text, word):
    assert sms_keyword(text) == word


def test_may_send_stop_reply_stops_sms_and_start_resumes_it():
    # GIVEN a customer who replied STOP to a text
    stop = _event(1, "message_inbound", 2, channel="sms", text="STOP")
    # WHEN / THEN no SMS goes, marketing or transactional; email is untouched
    assert may_send(_customer(stop), "sms") == (False, "unsubscribed from sms")
    assert may_send(_customer(stop), "sms", transactional=True)[0] is False
    assert may_send(_customer(stop), "email") == (True, "ok")
    # and START, later, resumes it
    start = _event(2, "message_inbound", 4, channel="sms", text="start")
    assert may_send(_customer(stop, start), "sms") == (True, "ok")
    # a STOP by email means nothing for SMS
    assert may_send(_customer(_event(3, "message_inbound", 2, channel="email", text="STOP")), "sms")[0] is True


def test_verify_accepts_its_own_links_and_refuses_altered_ones():
    # GIVEN a token for a customer and topic
    key = b"k" * 32
    token = sign(key, "cust-1", "offers")
    # WHEN it is verified THEN it names them
    assert verify(key, token) == ("cust-1", "offers")
    # a token for another customer cannot be made by changing the payload, nor checked with another key
    other = sign(key, "cust-2", "offers")
    forged = other.split(".")[0] + "." + token.split(".")[1]
    for bad in (forged, token[:-2], "nonsense", token + "x"):
        with pytest.raises(InvalidInputError):
            verify(key, bad)
    with pytest.raises(InvalidInputError):
        verify(b"x" * 32, token)


def test_mime_of_a_marketing_email_carries_both_list_unsubscribe_headers():
    # GIVEN the links of a customer and an email rendered with them
    found = links("https://api.example.com/prod", b"k" * 32, "c1", "offers", mailto="unsub@example.com")
    rendered = Rendered(
        "email",
        "a@example.com",
        subject="Your cart",
        body="plain",
        html="<p>html</p>",
        headers=(("List-Unsubscribe", found["list_unsubscribe"]), ("List-Unsubscribe-Post", ONE_CLICK)),
    )
    # WHEN the MIME is built
    import email
    import email.policy

    parsed = email.message_from_bytes(rendered.mime("Shop <shop@example.com>"), policy=email.policy.default)
    # THEN both headers are there (HTTPS first, then mailto), with a text and an HTML part
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert str(parsed["List-Unsubscribe"]).startswith("<https://api.example.com/prod/v1/unsubscribe/")
    assert "<mailto:unsub@example.com?subject=unsubscribe%20" in str(parsed["List-Unsubscribe"])
    assert parsed.get_body(("plain",)).get_content().strip() == "plain"
    assert parsed.get_body(("html",)).get_content().strip() == "<p>html</p>"
