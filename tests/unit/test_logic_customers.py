"""Customer profiles on the in-memory store: create, replace, re-bucket on a time-zone change, read, erase."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from kairos.core.errors import NotFoundError
from kairos.core.timeutil import hour_of_week
from kairos.customers.aggregates import rebucket
from kairos.customers.archive import archive_stream_records
from kairos.customers.profiles import erase_customer, get_customer
from tests.unit.conftest import NOW, make_event


def test_put_profile_creates_a_customer(customers, add_customer):
    # GIVEN no customer c1
    assert customers.get_customer("c1") is None
    # WHEN a profile is PUT
    view = add_customer("c1", timezone="Europe/Paris", attributes={"first_name": "Ada"})
    # THEN the customer exists with that profile, and consent is stamped with the server time
    assert view.customer_id == "c1"
    assert view.profile.timezone == "Europe/Paris"
    assert view.profile.attributes == {"first_name": "Ada"}
    assert view.aggregates is None  # no events yet
    stored = customers.get_customer("c1")
    assert stored.version == 1 and stored.consent_at == NOW.isoformat()


def test_put_profile_replaces_the_whole_profile(customers, add_customer):
    # GIVEN a customer with attributes and email consent
    add_customer("c1", attributes={"tier": "gold", "first_name": "Ada"})
    # WHEN a new profile without those attributes and with SMS consent is PUT later
    later = NOW + timedelta(hours=1)
    view = add_customer(
        "c1", consent={"sms": True}, contact={"phone": "+447700900123"}, attributes={"tier": "basic"}, at=later
    )
    # THEN the old profile is gone entirely, not merged
    assert view.profile.attributes == {"tier": "basic"}
    assert view.profile.consent.email is False and view.profile.consent.sms is True
    assert view.profile.contact.email is None
    stored = customers.get_customer("c1")
    assert stored.version == 2
    # AND the consent change moved the consent time
    assert stored.consent_at == later.isoformat()


def test_put_profile_keeps_consent_time_when_consent_is_unchanged(customers, add_customer):
    # GIVEN a customer who consented at NOW
    add_customer("c1", attributes={"a": "1"})
    # WHEN only an attribute changes later
    add_customer("c1", attributes={"a": "2"}, at=NOW + timedelta(days=1))
    # THEN consent was not granted again (an unsubscribe in between still holds)
    assert customers.get_customer("c1").consent_at == NOW.isoformat()


def test_put_profile_rebuckets_the_histogram_when_the_time_zone_changes(customers, ingest, add_customer):
    # GIVEN a customer whose engagement was counted in UTC, before the zone was known
    t = NOW - timedelta(days=2)
    ingest([make_event(f"s{i}", "c1", "session", t + timedelta(hours=3 * i)) for i in range(5)])
    before = customers.get_customer("c1").aggregates
    assert before.timezone == "UTC" and before.how_counts[hour_of_week(t, "UTC")] == 1
    # WHEN the profile gives the zone Asia/Tokyo (UTC+9)
    view = add_customer("c1", timezone="Asia/Tokyo")
    # THEN the histogram is recounted from the stored moments in the new zone, nothing else changes
    after = customers.get_customer("c1").aggregates
    assert after == rebucket(before, customers.engagement_moments("c1"), "Asia/Tokyo")
    assert after.how_counts != before.how_counts
    assert after.how_counts[hour_of_week(t, "Asia/Tokyo")] == 1
    assert sum(after.how_counts) == sum(before.how_counts) == 5
    assert view.aggregates.timezone == "Asia/Tokyo"
    # AND later events are counted in the new zone
    late = NOW - timedelta(minutes=30)
    ingest([make_event("s9", "c1", "session", late)])
    assert customers.get_customer("c1").aggregates.how_counts[hour_of_week(late, "Asia/Tokyo")] >= 1


def test_put_profile_same_zone_leaves_aggregates_alone(customers, ingest, add_customer):
    # GIVEN a Tokyo customer with counted engagement
    add_customer("c1", timezone="Asia/Tokyo")
    ingest([make_event("s1", "c1", "session")])
    before = customers.get_customer("c1").aggregates
    # WHEN the profile is PUT again in the same zone
    add_customer("c1", timezone="Asia/Tokyo", attributes={"x": "y"})
    # THEN the aggregates are the same
    assert customers.get_customer("c1").aggregates == before


def test_get_customer_unknown_raises_not_found(customers):
    # GIVEN an empty store
    # WHEN / THEN
    with pytest.raises(NotFoundError):
        get_customer("nobody", customers, NOW)


def test_get_customer_shows_profile_and_aggregates(ingest, add_customer, customers):
    # GIVEN a customer with a profile and a purchase
    add_customer("c1")
    ingest([make_event("p1", "c1", "purchase", product_id="SKU1", amount=12.5)])
    # WHEN it is read
    view = get_customer("c1", customers, NOW)
    # THEN both are shown
    assert view.profile.contact.email == "c1@example.com"
    assert view.aggregates.purchase_count == 1 and view.aggregates.monetary_total == 12.5
    assert view.aggregates.recent_products[0]["product_id"] == "SKU1"


def _stream_insert(seq: int, customer_id: str, record: dict) -> dict:
    return {
        "eventName": "INSERT",
        "eventSourceARN": "arn:aws:dynamodb:eu-west-1:123456789012:table/events/stream/x",
        "dynamodb": {
            "SequenceNumber": str(seq),
            "Keys": {"customer_id": {"S": customer_id}, "sk": {"S": f"e#{record['event_id']}"}},
            "NewImage": {"record": {"S": json.dumps(record)}},
        },
    }


def test_erase_customer_removes_customer_events_messages_and_archive_lines(
    customers, archive, messages, decisions, ingest, add_customer
):
    # GIVEN two customers with events on two dates, archived through the stream, and c1 with a logged message
    add_customer("c1")
    add_customer("c2")
    days = [NOW - timedelta(days=2), NOW - timedelta(hours=1)]
    ingest([make_event(f"{c}-{i}", c, "session", ts) for c in ("c1", "c2") for i, ts in enumerate(days)])
    stored = [r for c in ("c1", "c2") for r in customers.customer_events(c)]
    archive_stream_records([_stream_insert(i, r["customer_id"], r) for i, r in enumerate(stored)], archive, customers)
    assert len(archive.records()) == 4
    messages.claim({"message_id": "k.c1.0", "customer_id": "c1", "campaign_id": "k", "channel": "email"})
    messages.finish({"message_id": "k.c1.0", "customer_id": "c1", "campaign_id": "k", "status": "sent"})
    # WHEN c1 is erased
    report = erase_customer("c1", customers, archive, messages, decisions, NOW)
    # THEN profile, aggregates, events, moments and messages of c1 are gone, and its archive lines
    assert customers.get_customer("c1").erased and customers.get_customers(["c1"]) == {}
    assert customers.customer_events("c1") == [] and customers.engagement_moments("c1") == []
    assert messages.for_customer("c1") == [] and messages.archived == []
    assert {r["customer_id"] for r in archive.records()} == {"c2"}
    assert report.profile is True and report.aggregates is True
    assert (report.events, report.engagement_moments) == (2, 2)
    assert (report.archive_objects_rewritten, report.archive_lines_removed) == (2, 2)
    assert (report.messages, report.message_archive_objects) == (1, 1)
    # AND c2 is untouched
    assert len(customers.customer_events("c2")) == 2


def test_erase_customer_with_profile_only_reports_no_aggregates(customers, archive, messages, decisions, add_customer):
    # GIVEN a customer made by a UTC profile alone (nothing was ever aggregated for it)
    add_customer("c1")
    # WHEN it is erased
    report = erase_customer("c1", customers, archive, messages, decisions, NOW)
    # THEN the profile was erased, and there were no aggregates, events or archive lines
    assert (report.profile, report.aggregates, report.events) == (True, False, 0)
    assert report.archive_lines_removed == 0


def test_erase_customer_unknown_raises_not_found(customers, archive, messages, decisions, add_customer):
    # GIVEN another customer only
    add_customer("c2")
    # WHEN / THEN erasing an unknown customer is a not found, and nothing else is touched
    with pytest.raises(NotFoundError):
        erase_customer("nobody", customers, archive, messages, decisions, NOW)
    assert customers.get_customer("c2") is not None
    # AND no tombstone is left for an id that never existed
    assert customers.get_customer("nobody") is None
