"""Erasure on the fakes: every store, safe to repeat, and nothing brings the customer back."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from kairos.core.errors import NotFoundError, StoreError
from kairos.customers.archive import archive_stream_records
from kairos.customers.profiles import erase_customer, get_customer
from kairos.messaging.domain import SendRequest, encode_tag
from kairos.messaging.feedback import ingest_feedback
from tests.helpers import send_message
from tests.unit.conftest import NOW, RETENTION, SKEW, make_event


def _insert(seq: int, record: dict) -> dict:
    return {
        "eventName": "INSERT",
        "eventSourceARN": "arn:aws:dynamodb:eu-west-1:123456789012:table/events/stream/x",
        "dynamodb": {
            "SequenceNumber": str(seq),
            "Keys": {"customer_id": {"S": record["customer_id"]}, "sk": {"S": f"e#{record['event_id']}"}},
            "NewImage": {"record": {"S": json.dumps(record)}},
        },
    }


def _ses_open(customer_id: str, sent_at, opened_at) -> dict:
    tags = {"kairos_message_id": [encode_tag(f"k.{customer_id}.0")], "kairos_customer_id": [encode_tag(customer_id)]}
    return {
        "detail": {
            "eventType": "Open",
            "mail": {"messageId": f"ses-{customer_id}", "timestamp": sent_at.isoformat(), "tags": tags},
            "open": {"timestamp": opened_at.isoformat()},
        }
    }


@pytest.fixture
def erase(customers, archive, messages, decisions):
    def _erase(customer_id: str = "c1", at=NOW):
        return erase_customer(customer_id, customers, archive, messages, decisions, at)

    return _erase


def test_erasure_removes_the_customer_from_decision_records(customers, decisions, add_customer, erase):
    # GIVEN a launch page that decided about c1 and c2
    add_customer("c1")
    add_customer("c2")
    decisions.write("k", "0-0", [{"customer_id": "c1", "outcome": "scheduled"}, {"customer_id": "c2"}])
    # WHEN c1 is erased
    report = erase("c1")
    # THEN its decision line is gone and c2's stays
    assert [r["customer_id"] for r in decisions.records()] == ["c2"]
    assert (report.decision_objects_rewritten, report.decision_lines_removed) == (1, 1)


def test_a_decision_page_written_while_the_customer_is_erased_drops_them(customers, decisions, add_customer, erase):
    # GIVEN c1 was scanned by a launch, then erased before the page was written
    add_customer("c1")
    add_customer("c2")
    erase("c1")
    # WHEN the page is written
    decisions.write("k", "0-0", [{"customer_id": "c1"}, {"customer_id": "c2"}])
    # THEN the page does not name c1
    assert [r["customer_id"] for r in decisions.records()] == ["c2"]


def test_a_retried_erasure_finishes_what_a_failed_one_began(customers, archive, messages, add_customer, erase):
    # GIVEN a customer with a message, and a message log that fails while the erasure runs
    add_customer("c1")
    messages.claim({"message_id": "k.c1.0", "customer_id": "c1", "campaign_id": "k", "channel": "email"})
    messages.finish({"message_id": "k.c1.0", "customer_id": "c1", "campaign_id": "k", "status": "sent"})
    real = messages.erase_customer

    def failing(customer_id):
        raise StoreError("message archive delete_object failed")

    messages.erase_customer = failing
    with pytest.raises(StoreError):
        erase("c1")
    # THEN the customer is already unreadable
    with pytest.raises(NotFoundError):
        get_customer("c1", customers, NOW)
    # WHEN the erasure is retried
    messages.erase_customer = real
    report = erase("c1", at=NOW + timedelta(minutes=1))
    # THEN it succeeds, removes the message and says it repeats an erasure
    assert report.messages == 1 and messages.for_customer("c1") == [] and messages.archived == []
    assert report.erased_before == NOW.isoformat()


def test_an_event_archived_after_the_erasure_is_purged_again(customers, archive, add_customer, ingest, erase):
    # GIVEN an event accepted before the erasure, whose stream record is archived after it
    add_customer("c1")
    ingest([make_event("e1", "c1", ts=NOW - timedelta(hours=1))])
    (record,) = customers.customer_events("c1")
    erase("c1")
    # WHEN the stream batch arrives, with an event of c2 and a new event of c1 after the erasure
    later = {**make_event("e2", "c1", ts=NOW + timedelta(hours=1)), "customer_id": "c1"}
    other = make_event("e3", "c2", ts=NOW - timedelta(hours=1))
    result = archive_stream_records([_insert(1, record), _insert(2, later), _insert(3, other)], archive, customers)
    # THEN only what happened before the erasure is purged
    assert sorted(r["event_id"] for r in archive.records()) == ["e2", "e3"]
    assert result["purged_lines"] == 1


def test_late_feedback_about_a_message_sent_before_erasure_does_not_recreate_the_customer(
    customers, add_customer, erase
):
    # GIVEN c1 was emailed, then erased
    add_customer("c1")
    erase("c1")
    # WHEN SES reports an open an hour later
    result = ingest_feedback(
        [_ses_open("c1", NOW - timedelta(hours=2), NOW + timedelta(hours=1))],
        customers,
        NOW + timedelta(hours=1),
        RETENTION,
        SKEW,
    )
    # THEN nothing is stored and the customer stays gone
    assert result["accepted"] == 0 and result["ignored"] == 1
    with pytest.raises(NotFoundError):
        get_customer("c1", customers, NOW)
    assert customers.customer_events("c1") == []


def test_a_send_after_erasure_writes_nothing(
    customers, journeys, messages, add_customer, add_campaign, erase, email_provider
):
    # GIVEN a journey step of a customer erased since the launch
    add_customer("c1")
    cid = add_campaign()
    erase("c1")
    # WHEN the step runs
    req = SendRequest(f"{cid}.c1.0", cid, "c1", "email", 0, {})
    result = send_message(req, customers, journeys, {"email": email_provider}, messages, NOW)
    # THEN nothing is sent and nothing about the customer is logged
    assert (result["status"], result["reason"]) == ("skipped", "customer erased")
    assert email_provider.sent == [] and messages.for_customer("c1") == []


def test_a_scoring_run_does_not_recreate_an_erased_customer(customers, add_customer, erase):
    # GIVEN an erased customer
    add_customer("c1")
    erase("c1")
    # WHEN a scoring run stores a recommendation for it, and the launch scans
    customers.put_recommendation("c1", {"best_hours": []})
    # THEN the customer stays invisible
    assert customers.scan_customers(0, 1)[0] == [] and customers.get_customers(["c1"]) == {}


def test_events_from_before_an_erasure_are_rejected_by_index_and_later_ones_kept(
    customers, add_customer, ingest, erase
):
    # GIVEN c1 had an event and was erased
    add_customer("c1")
    ingest([make_event("e1", "c1", ts=NOW - timedelta(hours=2))])
    erase("c1", at=NOW)
    # WHEN a client sends the old event again, with one from after the erasure and one of another customer
    result = ingest(
        [
            make_event("e1", "c1", ts=NOW - timedelta(hours=2)),
            make_event("e2", "c1", ts=NOW + timedelta(minutes=1)),
            make_event("e3", "c2", ts=NOW - timedelta(hours=2)),
        ],
        at=NOW + timedelta(minutes=2),
    )
    # THEN the old one is rejected on its customer_id, and the others are stored
    assert [(r.index, r.field) for r in result.rejected] == [(0, "customer_id")]
    assert "erased" in result.rejected[0].reason
    assert result.accepted == 2
    assert [e["event_id"] for e in customers.customer_events("c1")] == ["e2"]
