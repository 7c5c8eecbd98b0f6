"""Consent at send time: opt-in per channel, withdrawn by unsubscribe events until granted again."""

from __future__ import annotations

from datetime import UTC, datetime

from kairos.customers.aggregates import CustomerAggregates
from kairos.customers.domain import CustomerRecord
from kairos.messaging.consent import may_send

PROFILE = {"contact": {"email": "a@example.com", "phone": "+447700900123"}, "consent": {"email": True, "sms": False}}


def _record(unsub: dict[str, int] | None = None, consent_at: str | None = "2026-01-01T00:00:00+00:00"):
    return CustomerRecord(
        "c",
        exists=True,
        profile=PROFILE,
        aggregates=CustomerAggregates(unsubscribed=unsub or {}),
        consent_at=consent_at,
    )


def test_may_send_needs_consent_and_contact_point():
    assert may_send(_record(), "email") == (True, "ok")
    assert may_send(_record(), "sms") == (False, "no consent for sms")
    assert may_send(None, "email")[0] is False
    no_contact = CustomerRecord("c", profile={"consent": {"push": True}, "contact": {}})
    assert may_send(no_contact, "push") == (False, "no push_token on the profile")


def test_may_send_unsubscribe_after_consent_blocks_until_consent_again():
    after = int(datetime(2026, 2, 1, tzinfo=UTC).timestamp())
    assert may_send(_record({"email": after}), "email") == (False, "unsubscribed from email")
    assert may_send(_record({"all": after}), "email") == (False, "unsubscribed from all")
    # consent granted again after the unsubscribe
    assert may_send(_record({"email": after}, consent_at="2026-03-01T00:00:00+00:00"), "email") == (True, "ok")
