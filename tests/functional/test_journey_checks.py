"""What a journey asks between steps: engaged, converted, unsubscribed, expired, cancelled, or go on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from kairos.adapters.campaigns import DynamoSegmentStore
from kairos.adapters.dynamo import DynamoStore
from kairos.logic.journey import check_journey, wait_until
from tests.helpers import event, now


def picked(result):
    return {k: result[k] for k in ("stop", "reason")}


@pytest.fixture
def journey(runtime, client):
    client.request(
        "PUT",
        "/v1/customers/c1",
        {"timezone": "UTC", "contact": {"email": "a@example.com"}, "consent": {"email": True}},
    )
    body = {
        "name": "j",
        "audience": {"filters": []},
        "messages": {"email": {"subject": "s", "text": "t"}},
        "channels": ["email"],
        "wait_hours": [24],
        "expires_at": (datetime.now(UTC) + timedelta(days=2)).isoformat(),
    }
    cid = client.request("POST", "/v1/campaigns", body).json()["campaign_id"]
    dep = runtime.dep
    customers = DynamoStore(
        dep.physical["EventsTable"], dep.physical["CustomersTable"], client=runtime.session.client("dynamodb")
    )
    campaigns = DynamoSegmentStore(
        dep.physical["CampaignsTable"], dep.physical["SegmentsTable"], runtime.session.client("dynamodb")
    )
    started = now() - timedelta(hours=2)

    def check(at=None):
        return check_journey(cid, "c1", started, customers, campaigns, at or datetime.now(UTC))

    return cid, check, campaigns, started


def test_check_journey_goes_on_without_engagement(journey):
    _, check, _, _ = journey
    assert check()["stop"] is False
    assert check()["reason"] == "no engagement yet" and check()["defer"] is False


def test_check_journey_stops_on_open_of_this_journeys_message(journey, client):
    cid, check, _, started = journey
    # an open of another campaign's message does not count
    client.post_events(
        [event("o0", type="message_open", ts=started + timedelta(minutes=5), channel="email", message_id="other.c1.0")]
    )
    assert check()["stop"] is False
    client.post_events(
        [
            event(
                "o1", type="message_open", ts=started + timedelta(minutes=30), channel="email", message_id=f"{cid}.c1.0"
            )
        ]
    )
    assert picked(check()) == {"stop": True, "reason": f"engaged: message_open on {cid}.c1.0"}


def test_check_journey_stops_on_purchase_unsubscribe_expiry_cancel(journey, client):
    cid, check, campaigns, started = journey
    client.post_events([event("p-old", ts=started - timedelta(days=3))])
    assert check()["stop"] is False  # bought before the journey began
    client.post_events([event("u1", type="unsubscribe", ts=started + timedelta(minutes=1), channel="email")])
    assert picked(check()) == {"stop": True, "reason": "unsubscribed from email"}
    assert check(datetime.now(UTC) + timedelta(days=3))["reason"] in ("offer expired",)
    client.request("POST", f"/v1/campaigns/{cid}/cancel")
    assert picked(check()) == {"stop": True, "reason": "campaign cancelled"}
    until = datetime.fromisoformat(wait_until(cid, 0, campaigns, datetime.now(UTC))["until"].replace("Z", "+00:00"))
    assert timedelta(hours=23) < until - datetime.now(UTC) <= timedelta(hours=24)
    late = datetime.now(UTC) + timedelta(days=1, hours=12)
    capped = wait_until(cid, 0, campaigns, late)["until"]
    assert datetime.fromisoformat(capped.replace("Z", "+00:00")) <= late + timedelta(hours=12)


def test_check_journey_stops_on_conversion(journey, client):
    _, check, _, started = journey
    client.post_events([event("p1", ts=started + timedelta(minutes=40), product_id="SKU")])
    assert picked(check()) == {"stop": True, "reason": "converted"}
