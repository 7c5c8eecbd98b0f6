"""Sending one journey step on the fakes: at most once, only with consent and inside caps, transient errors retried."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from kairos.core.errors import ProviderOutcomeUnknown, ProviderThrottled, ProviderUnavailable, SendInProgress
from kairos.core.timeutil import utc_iso
from kairos.messaging.domain import SendRequest
from kairos.messaging.send import SENDING_LEASE
from tests.fakes import FakeProvider
from tests.helpers import send_message
from tests.unit.conftest import NOW, make_event

if TYPE_CHECKING:
    from kairos.messaging.domain import Rendered

DECISION = {
    "send_at": "2026-03-02T12:00:00Z",
    "hour_of_week": 12,
    "probability": 0.9,
    "policy": "optimized",
    "model_version": "m1",
    "timezone": "UTC",
    "features": {"engagement_moments": 3},
}


class DyingProvider(FakeProvider):
    """A provider call during which the send function dies (Lambda timeout, crash): no outcome is recorded."""

    def send(self, message: Rendered, message_id: str, tags: dict[str, str]) -> str:
        self.sent.append((message, message_id, dict(tags)))
        raise RuntimeError("Task timed out after 30.00 seconds")


class LostAnswerProvider(FakeProvider):
    """A provider whose answer is lost (read timeout): the message may have gone out."""

    def send(self, message: Rendered, message_id: str, tags: dict[str, str]) -> str:
        self.sent.append((message, message_id, dict(tags)))
        raise ProviderOutcomeUnknown("read timeout")


@pytest.fixture
def send(customers, journeys, messages, email_provider):
    """``send(campaign_id, customer_id, step=0, channel="email", at=NOW)`` through the email provider."""

    def _send(campaign_id, customer_id="c1", step=0, channel="email", at=NOW, providers=None, population=None):
        req = SendRequest(f"{campaign_id}.{customer_id}.{step}", campaign_id, customer_id, channel, step, DECISION)
        chosen = providers if providers is not None else {"email": email_provider}
        return send_message(req, customers, journeys, chosen, messages, at, population)

    return _send


def test_send_message_sends_once_and_logs_what_the_model_saw(
    send, add_customer, add_campaign, messages, email_provider
):
    # GIVEN a customer who may be emailed and an active campaign
    add_customer("c1", attributes={"first_name": "Ada"})
    cid = add_campaign()
    mid = f"{cid}.c1.0"
    # WHEN the step is sent, and the task is retried (a duplicate invocation)
    first = send(cid)
    again = send(cid)
    # THEN the provider was called once, with the message id and ids as tags
    assert first == {"message_id": mid, "status": "sent", "reason": "ok", "duplicate": False}
    assert again == {"message_id": mid, "status": "sent", "reason": "ok", "duplicate": True}
    ((message, sent_id, tags),) = email_provider.sent
    assert sent_id == mid and tags == {"message_id": mid, "campaign_id": cid, "customer_id": "c1"}
    assert message.to == "c1@example.com" and message.subject == "Hi Ada"
    # AND the log holds one sent record with the provider's id and the send-time decision
    record = messages.records[mid]
    assert record["status"] == "sent" and record["provider_message_id"] == "email-1"
    assert record["sent_at"] == utc_iso(NOW) and record["attempt"] == 1
    assert (record["hour_of_week"], record["probability"], record["model_version"]) == (12, 0.9, "m1")
    assert record["features"] == {"engagement_moments": 3}
    assert len(messages.archived) == 1


@pytest.mark.parametrize(
    ("profile", "reason"),
    [
        ({"consent": {"email": False}}, "no consent for email"),
        ({"consent": {"email": True}, "contact": {}}, "no email on the profile"),
    ],
)
def test_send_message_skips_without_consent(
    send, add_customer, add_campaign, messages, email_provider, profile, reason
):
    # GIVEN a customer without email consent, or without an address
    add_customer("c1", **profile)
    cid = add_campaign()
    # WHEN the step is sent
    result = send(cid)
    # THEN it is skipped with the reason, for good, and nothing reaches the provider
    assert (result["status"], result["reason"]) == ("skipped", reason)
    assert send(cid)["duplicate"] is True
    assert email_provider.sent == []
    assert messages.records[result["message_id"]]["status"] == "skipped"


def test_send_message_to_an_unknown_customer_writes_nothing(send, add_campaign, messages, email_provider):
    # GIVEN a campaign step for an id the store does not hold (never stored, or erased: the store cannot tell)
    cid = add_campaign()
    # WHEN the step is sent
    result = send(cid)
    # THEN it is skipped and nothing is written about the id, nor sent
    assert (result["status"], result["reason"]) == ("skipped", "no such customer (never stored, or erased)")
    assert messages.records == {} and email_provider.sent == []


def test_send_message_skips_after_an_unsubscribe(send, add_customer, add_campaign, ingest, email_provider):
    # GIVEN a customer who consented, then unsubscribed from email
    add_customer("c1", at=NOW - timedelta(days=1))
    ingest([make_event("u", "c1", "unsubscribe", NOW - timedelta(hours=1), channel="email")])
    cid = add_campaign()
    # WHEN / THEN
    assert (send(cid)["status"], send(cid, step=1)["reason"]) == ("skipped", "unsubscribed from email")
    assert email_provider.sent == []


def test_send_message_skips_when_the_offer_expired(send, add_customer, add_campaign, email_provider):
    # GIVEN a campaign expiring two days after NOW
    add_customer("c1")
    cid = add_campaign()
    # WHEN the step comes at the expiry
    result = send(cid, at=NOW + timedelta(days=2))
    # THEN it is skipped
    assert (result["status"], result["reason"]) == ("skipped", "offer expired")
    assert email_provider.sent == []


def test_send_message_respects_the_frequency_cap_per_channel(send, add_customer, add_campaign, email_provider):
    # GIVEN one email a week at most, and an email sent eight days ago (outside the window)
    add_customer(
        "c1", consent={"email": True, "sms": True}, contact={"email": "c1@example.com", "phone": "+447700900123"}
    )
    cid = add_campaign(
        frequency_cap={"max_messages": 1, "per_days": 7},
        channels=["email", "sms"],
        messages={"email": {"subject": "s", "text": "t"}, "sms": {"text": "t"}},
    )
    sms = FakeProvider("sms")
    providers = {"email": email_provider, "sms": sms}
    assert send(cid, step=0, at=NOW - timedelta(days=8), providers=providers)["status"] == "sent"
    # WHEN three more steps come now: email, email, then SMS
    first = send(cid, step=1, providers=providers)
    second = send(cid, step=2, providers=providers)
    other = send(cid, step=3, channel="sms", providers=providers)
    # THEN the first email of the week goes, the next is over the cap, and SMS has its own count
    assert first["status"] == "sent"
    assert second["status"] == "skipped" and second["reason"].startswith("frequency cap")
    assert other["status"] == "sent"
    assert len(email_provider.sent) == 2 and len(sms.sent) == 1


def test_send_message_records_a_provider_rejection_as_failed(send, add_customer, add_campaign, messages):
    # GIVEN a provider that refuses the address for good
    add_customer("c1")
    cid = add_campaign()
    provider = FakeProvider("email", ["reject"])
    # WHEN the step is sent, and retried
    result = send(cid, providers={"email": provider})
    again = send(cid, providers={"email": provider})
    # THEN it failed, returned rather than raised (the journey moves to the next channel), and is not retried
    assert result["status"] == "failed" and result["duplicate"] is False
    assert again == {**result, "duplicate": True}
    assert provider.sent == [] and provider.outcomes == []
    assert messages.records[result["message_id"]]["status"] == "failed"


@pytest.mark.parametrize(
    ("outcome", "error", "status"),
    [("throttle", ProviderThrottled, "throttled"), ("unavailable", ProviderUnavailable, "unavailable")],
)
def test_send_message_transient_error_raises_then_a_retry_sends(
    send, add_customer, add_campaign, messages, outcome, error, status
):
    # GIVEN a provider that fails transiently once, then works
    add_customer("c1")
    cid = add_campaign()
    provider = FakeProvider("email", [outcome])
    mid = f"{cid}.c1.0"
    # WHEN the step is sent
    with pytest.raises(error):
        send(cid, providers={"email": provider})
    # THEN the transient outcome is recorded and archived, and nothing was sent
    assert messages.records[mid]["status"] == status and provider.sent == []
    assert [r["status"] for r in messages.archived] == [status]
    # AND the state machine's retry claims the message again and sends it, once
    later = NOW + timedelta(seconds=30)
    result = send(cid, at=later, providers={"email": provider})
    assert result == {"message_id": mid, "status": "sent", "reason": "ok", "duplicate": False}
    assert len(provider.sent) == 1
    assert messages.records[mid]["attempt"] == 2 and messages.records[mid]["claimed_at"] == utc_iso(later)
    assert [r["status"] for r in messages.archived] == [status, "sent"]
    assert send(cid, providers={"email": provider})["duplicate"] is True


def test_send_message_lost_provider_answer_is_unconfirmed_and_never_resent(send, add_customer, add_campaign, messages):
    # GIVEN a provider whose answer is lost after the call
    add_customer("c1")
    cid = add_campaign()
    provider = LostAnswerProvider("email")
    # WHEN the step is sent, and retried
    result = send(cid, providers={"email": provider})
    again = send(cid, at=NOW + timedelta(minutes=1), providers={"email": provider})
    # THEN it is unconfirmed (returned, not raised: the journey waits as after a send), and not sent again
    assert (result["status"], result["duplicate"]) == ("unconfirmed", False)
    assert (again["status"], again["duplicate"]) == ("unconfirmed", True)
    assert len(provider.sent) == 1
    assert messages.records[result["message_id"]]["sent_at"] == utc_iso(NOW)


def test_send_message_waits_for_a_live_claim_then_settles_a_dead_one(send, add_customer, add_campaign, messages):
    # GIVEN an attempt that died inside the provider call, leaving its claim "sending"
    add_customer("c1")
    cid = add_campaign()
    dying = DyingProvider("email")
    with pytest.raises(RuntimeError):
        send(cid, providers={"email": dying})
    mid = f"{cid}.c1.0"
    assert messages.records[mid]["status"] == "sending" and messages.archived == []
    healthy = FakeProvider("email")
    # WHEN a retry comes while the claim's lease still runs
    # THEN it is told to come back later, and sends nothing
    with pytest.raises(SendInProgress):
        send(cid, at=NOW + SENDING_LEASE - timedelta(seconds=1), providers={"email": healthy})
    assert healthy.sent == []
    # WHEN a retry comes after the lease
    result = send(cid, at=NOW + SENDING_LEASE, providers={"email": healthy})
    # THEN the message is settled as unconfirmed (it may have reached the customer), archived, never re-sent
    assert (result["status"], result["duplicate"]) == ("unconfirmed", True)
    assert healthy.sent == []
    assert messages.records[mid]["status"] == "unconfirmed" and messages.records[mid]["sent_at"] == utc_iso(NOW)
    assert [r["status"] for r in messages.archived] == ["unconfirmed"]
    assert send(cid, at=NOW + timedelta(hours=1), providers={"email": healthy})["status"] == "unconfirmed"
    assert healthy.sent == []


def test_send_message_counts_unconfirmed_messages_in_the_frequency_cap(send, add_customer, add_campaign):
    # GIVEN one email a week at most, and an email whose provider answer was lost
    add_customer("c1")
    cid = add_campaign(frequency_cap={"max_messages": 1, "per_days": 7})
    assert send(cid, step=0, providers={"email": LostAnswerProvider("email")})["status"] == "unconfirmed"
    # WHEN the next step comes
    provider = FakeProvider("email")
    result = send(cid, step=1, at=NOW + timedelta(days=1), providers={"email": provider})
    # THEN it is over the cap: the customer may have had the first one
    assert result["status"] == "skipped" and provider.sent == []


def test_send_message_without_a_provider_for_the_channel_fails(send, add_customer, add_campaign, email_provider):
    # GIVEN an SMS step and only an email provider
    add_customer("c1", consent={"sms": True}, contact={"phone": "+447700900123"})
    cid = add_campaign(channels=["sms"], messages={"sms": {"text": "t"}})
    # WHEN / THEN
    result = send(cid, channel="sms")
    assert (result["status"], result["reason"]) == ("failed", "no provider configured for sms")
    assert email_provider.sent == []


def test_send_message_renders_templates_per_customer(send, add_customer, add_campaign, customers, email_provider):
    # GIVEN a template with a name, a product, an attribute and an unknown field, and two customers
    add_customer("c1", attributes={"first_name": "Ada", "city": "Paris"})
    add_customer("c2")
    customers.put_recommendation("c1", {"next_products": [{"product_id": "SKU9", "score": 1.0}]})
    cid = add_campaign(
        messages={
            "email": {
                "subject": "Hi {{first_name}}",
                "text": "{{ first_name }}: {{next_product}} in {{attributes.city}}{{unknown}}!",
                "html": "<p>{{first_name}}{{attributes.nope}}</p>",
            }
        }
    )
    population = {"next_products": [{"product_id": "POP1", "score": 1.0}]}
    # WHEN both are sent, with a population answer for the unscored one
    send(cid, "c1", population=lambda: population)
    send(cid, "c2", population=lambda: population)
    # THEN each sees its own fields, a missing name is "there", and unknown fields render empty
    ada, other = (m for m, _, _ in email_provider.sent)
    assert (ada.subject, ada.body, ada.html) == ("Hi Ada", "Ada: SKU9 in Paris!", "<p>Ada</p>")
    assert (other.subject, other.body, other.html) == ("Hi there", "there: POP1 in !", "<p>there</p>")


def test_send_message_renders_fields_whatever_their_case(send, add_customer, add_campaign, email_provider):
    # GIVEN a camelCase attribute used in a template, and an unknown capitalised field
    add_customer("c1", attributes={"firstName": "Ada"})
    cid = add_campaign(messages={"email": {"subject": "Hi {{attributes.firstName}}", "text": "x{{FirstName}}"}})
    # WHEN it is sent
    send(cid)
    # THEN no braces reach the customer
    ((message, _, _),) = email_provider.sent
    assert (message.subject, message.body) == ("Hi Ada", "x")


def test_next_product_renders_the_catalogue_name_url_and_picture():
    from kairos.customers.domain import CustomerRecord
    from kairos.messaging.templates import template_context
    from tests.fakes import InMemoryProductCatalogue

    # GIVEN a customer whose next products are SKU-7 (in the catalogue) and SKU-9 (not yet)
    catalogue = InMemoryProductCatalogue()
    catalogue.put_product(
        {
            "product_id": "SKU-7",
            "name": "Espresso beans 1 kg",
            "url": "https://shop.example/p/7",
            "image": "https://shop.example/i/7.jpg",
        }
    )
    record = CustomerRecord(
        "c1",
        profile={"attributes": {"first_name": "Ana"}},
        recommendation={"next_products": [{"product_id": "SKU-7"}, {"product_id": "SKU-9"}]},
    )

    def fields(products):
        return template_context(
            record,
            trigger=None,
            latest=None,
            recommendation=record.recommendation,
            products=products,
            promo=None,
            links={},
            now=datetime(2026, 3, 2, tzinfo=UTC),
        )

    # WHEN the template fields are made
    found = fields(catalogue.get_products)
    # THEN the name shows, with its page and picture, and an unknown product falls back to its id
    assert found["next_product"] == "Espresso beans 1 kg" and found["next_product_id"] == "SKU-7"
    assert found["next_product_url"] == "https://shop.example/p/7"
    assert found["next_product_image"] == "https://shop.example/i/7.jpg"
    assert found["next_products"] == "Espresso beans 1 kg, SKU-9"
    assert fields(None)["next_product"] == "SKU-7"
