"""Between journey steps: stop (cancelled, expired, erased, unsubscribed, engaged, converted), defer, or go on."""

from __future__ import annotations

from datetime import timedelta

import pytest

from kairos.logic.customers import erase_customer
from kairos.logic.journey import check_journey, message_prefix, wait_until
from kairos.timeutil import utc_iso
from tests.unit.conftest import NOW, make_event

STARTED = NOW - timedelta(hours=2)


@pytest.fixture
def journey(customers, campaigns, add_customer, add_campaign):
    """A UTC customer c1 on a two-day email campaign; ``check(at)`` asks the journey's question."""
    add_customer("c1")
    cid = add_campaign()

    def check(at=NOW, campaign_id=cid):
        return check_journey(campaign_id, "c1", STARTED, customers, campaigns, at)

    return cid, check


def test_check_journey_goes_on_without_engagement(journey):
    # GIVEN a journey and nothing new from the customer
    _, check = journey
    # WHEN it is checked
    result = check()
    # THEN it goes on now
    assert result == {"stop": False, "reason": "no engagement yet", "defer": False, "send_after": utc_iso(NOW)}


def test_check_journey_stops_on_cancelled_campaign(journey, campaigns):
    # GIVEN the campaign was cancelled
    cid, check = journey
    campaigns.set_status(cid, "cancelled", ("scheduled", "running"), NOW.isoformat())
    # WHEN / THEN
    result = check()
    assert (result["stop"], result["reason"]) == (True, "campaign cancelled")


def test_check_journey_stops_when_the_offer_expired(journey):
    # GIVEN a campaign that expires two days after NOW
    _, check = journey
    # WHEN it is checked at and after the expiry
    # THEN it stops
    for at in (NOW + timedelta(days=2), NOW + timedelta(days=3)):
        assert (check(at)["stop"], check(at)["reason"]) == (True, "offer expired")
    assert check(NOW + timedelta(days=2) - timedelta(seconds=1))["stop"] is False


def test_check_journey_stops_when_the_customer_was_erased(journey, customers, archive, messages, decisions):
    # GIVEN the customer was erased during the journey
    _, check = journey
    erase_customer("c1", customers, archive, messages, decisions, NOW)
    # WHEN / THEN
    assert (check()["stop"], check()["reason"]) == (True, "customer erased")


@pytest.mark.parametrize(
    ("channel", "offset", "reason"),
    [
        ("email", timedelta(minutes=1), "unsubscribed from email"),
        (None, timedelta(minutes=1), "unsubscribed from all"),
        ("email", -timedelta(minutes=1), None),  # before the journey began: consent is the send step's business
        ("sms", timedelta(minutes=1), None),  # a channel this campaign does not use
    ],
)
def test_check_journey_stops_on_unsubscribe_after_start(journey, ingest, channel, offset, reason):
    # GIVEN an unsubscribe, on a channel or from everything, before or after the journey began
    _, check = journey
    extra = {"channel": channel} if channel else {}
    assert ingest([make_event("u1", "c1", "unsubscribe", STARTED + offset, **extra)]).accepted == 1
    # WHEN it is checked
    result = check()
    # THEN only an unsubscribe after the start, from a channel of this campaign, stops it
    if reason is None:
        assert result["stop"] is False
    else:
        assert (result["stop"], result["reason"]) == (True, reason)


def test_check_journey_stops_on_engagement_with_this_journeys_message(journey, ingest):
    # GIVEN an open of another campaign's message, and of another customer's message of this campaign
    cid, check = journey
    ingest(
        [
            make_event(
                "o0", "c1", "message_open", STARTED + timedelta(minutes=5), channel="email", message_id="x.c1.0"
            ),
            make_event("o1", "c1", "message_click", STARTED, channel="email", message_id=f"{cid}.c10.0"),
        ]
    )
    assert check()["stop"] is False
    # WHEN the customer clicks this journey's first message
    mid = f"{message_prefix(cid, 'c1')}0"
    ingest([make_event("o2", "c1", "message_click", STARTED + timedelta(minutes=30), channel="email", message_id=mid)])
    # THEN the journey stops, naming the engagement
    result = check()
    assert (result["stop"], result["reason"]) == (True, f"engaged: message_click on {mid}")


def test_check_journey_stops_on_purchase_after_start(journey, ingest):
    # GIVEN a purchase from before the journey began
    _, check = journey
    ingest([make_event("p0", "c1", "purchase", STARTED - timedelta(days=1), product_id="SKU1")])
    assert check()["stop"] is False
    # WHEN the customer buys during the journey
    ingest([make_event("p1", "c1", "purchase", STARTED + timedelta(minutes=40), product_id="SKU2")])
    # THEN it stops as converted
    assert (check()["stop"], check()["reason"]) == (True, "converted")


def test_check_journey_defers_in_quiet_hours_of_the_customers_zone(customers, campaigns, add_customer, add_campaign):
    # GIVEN quiet hours 21:00-08:00, and at NOW (12:00 UTC) it is 21:00 in Tokyo but noon in London
    add_customer("tokyo", timezone="Asia/Tokyo")
    add_customer("london", timezone="Europe/London")
    cid = add_campaign(quiet_hours={"start": "21:00", "end": "08:00"})
    # WHEN both journeys are checked
    tokyo = check_journey(cid, "tokyo", STARTED, customers, campaigns, NOW)
    london = check_journey(cid, "london", STARTED, customers, campaigns, NOW)
    # THEN Tokyo's waits until 08:00 there (23:00 UTC), London's goes on now
    assert tokyo == {"stop": False, "reason": "quiet hours", "defer": True, "send_after": "2026-03-02T23:00:00Z"}
    assert (london["defer"], london["send_after"]) == (False, utc_iso(NOW))


def test_check_journey_stops_when_the_offer_expires_before_quiet_hours_end(
    customers, campaigns, add_customer, add_campaign
):
    # GIVEN a Tokyo customer in quiet hours until 23:00 UTC, and a campaign expiring at 17:00 UTC
    add_customer("tokyo", timezone="Asia/Tokyo")
    cid = add_campaign(
        quiet_hours={"start": "21:00", "end": "08:00"}, expires_at=(NOW + timedelta(hours=5)).isoformat()
    )
    # WHEN / THEN there is no point waiting
    result = check_journey(cid, "tokyo", STARTED, customers, campaigns, NOW)
    assert (result["stop"], result["reason"]) == (True, "offer expires before the quiet hours end")


@pytest.mark.parametrize(("step", "hours"), [(0, 6), (1, 24), (5, 24)])
def test_wait_until_follows_the_steps_wait(campaigns, add_campaign, step, hours):
    # GIVEN waits of 6 h after the first step and 24 h after later ones
    cid = add_campaign(wait_hours=[6, 24])
    # WHEN / THEN each step waits its time (the last value repeats)
    assert wait_until(cid, step, campaigns, NOW) == {"until": utc_iso(NOW + timedelta(hours=hours))}


def test_wait_until_caps_at_expiry(campaigns, add_campaign):
    # GIVEN a campaign that expires in 10 hours and waits 24 hours
    expires = NOW + timedelta(hours=10)
    cid = add_campaign(wait_hours=[24], expires_at=expires.isoformat())
    # WHEN / THEN the wait ends at the expiry
    assert wait_until(cid, 0, campaigns, NOW) == {"until": utc_iso(expires)}


def test_wait_until_unknown_campaign_is_now(campaigns):
    # GIVEN no campaign: the next check will stop the journey, so do not wait
    # WHEN / THEN
    assert wait_until("nope", 0, campaigns, NOW) == {"until": utc_iso(NOW)}
