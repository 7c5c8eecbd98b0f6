"""Send-path faults: a crash after the provider accepted, a lost answer, SDK retries of non-idempotent calls."""

from __future__ import annotations

from datetime import timedelta

import pytest
from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError

from kairos.core.errors import ProviderOutcomeUnknown, ProviderUnavailable, SendInProgress
from kairos.messaging.adapters import providers
from kairos.messaging.domain import Rendered, SendRequest
from kairos.messaging.send import SENDING_LEASE
from tests.fakes import FakeProvider
from tests.helpers import send_message
from tests.unit.conftest import NOW


class DiesAfterAccepting(FakeProvider):
    """The provider accepts the message, then the sandbox dies before the outcome is written."""

    def send(self, message, message_id, tags):
        super().send(message, message_id, tags)
        raise SystemExit("sandbox killed after the provider accepted")


class LosesTheAnswer(FakeProvider):
    def send(self, message, message_id, tags):
        super().send(message, message_id, tags)
        raise ProviderOutcomeUnknown("SES gave no answer: ReadTimeoutError")


@pytest.fixture
def step(customers, journeys, messages):
    def _send(campaign_id, provider, at=NOW, channel="email"):
        req = SendRequest(f"{campaign_id}.c1.0", campaign_id, "c1", channel, 0, {"send_at": "2026-03-02T12:00:00Z"})
        return send_message(req, customers, journeys, {channel: provider}, messages, at)

    return _send


def test_send_message_crash_after_acceptance_is_settled_unconfirmed_and_never_resent(
    step, add_customer, add_campaign, messages
):
    # GIVEN an attempt that dies after the provider accepted the email
    add_customer("c1")
    cid = add_campaign(frequency_cap={"max_messages": 1, "per_days": 7})
    dying = DiesAfterAccepting("email")
    with pytest.raises(SystemExit):
        step(cid, dying)
    assert messages.records[f"{cid}.c1.0"]["status"] == "sending"
    # WHEN the state machine retries within the lease
    healthy = FakeProvider("email")
    with pytest.raises(SendInProgress):
        step(cid, healthy, at=NOW + timedelta(seconds=30))
    # AND again once the lease is over
    result = step(cid, healthy, at=NOW + SENDING_LEASE + timedelta(seconds=1))
    # THEN the message is unconfirmed (treated as sent), the provider was called once in all
    assert result["status"] == "unconfirmed" and result["duplicate"] is True
    assert len(dying.sent) == 1 and healthy.sent == []
    # AND it counts for the frequency cap and reaches the archive the training reads
    assert messages.sent_since("c1", "email", NOW - timedelta(days=1)) == 1
    assert [r["status"] for r in messages.archived] == ["unconfirmed"]


def test_send_message_a_claim_in_flight_counts_for_the_cap(step, add_customer, add_campaign, messages):
    # GIVEN a message being sent right now (claimed, no outcome yet)
    add_customer("c1")
    cid = add_campaign()
    with pytest.raises(SystemExit):
        step(cid, DiesAfterAccepting("email"))
    # THEN the cap already counts it: a concurrent step on the channel cannot slip past the cap
    assert messages.sent_since("c1", "email", NOW - timedelta(minutes=1)) == 1


def test_send_message_a_lost_answer_is_unconfirmed_and_not_retried(step, add_customer, add_campaign, messages):
    # GIVEN a provider that took the message but whose answer was lost
    add_customer("c1")
    cid = add_campaign()
    lossy = LosesTheAnswer("email")
    # WHEN the step runs, and is run again
    first = step(cid, lossy)
    again = step(cid, lossy, at=NOW + timedelta(minutes=1))
    # THEN it is unconfirmed, returned (no retry raised), and the provider saw it once
    assert first["status"] == "unconfirmed" and first["duplicate"] is False
    assert again["status"] == "unconfirmed" and again["duplicate"] is True
    assert len(lossy.sent) == 1


def test_provider_errors_retry_only_what_proves_nothing_was_sent():
    # A connection never made proves nothing went out: retry. A read timeout may follow acceptance: do not.
    assert isinstance(providers._classify(ConnectTimeoutError(endpoint_url="x"), "SES"), ProviderUnavailable)
    assert isinstance(providers._classify(EndpointConnectionError(endpoint_url="x"), "SES"), ProviderUnavailable)
    assert isinstance(providers._classify(ReadTimeoutError(endpoint_url="x"), "SES"), ProviderOutcomeUnknown)


class TimesOutReading:
    def __init__(self):
        self.calls = 0

    def send_email(self, **kwargs):
        self.calls += 1
        raise ReadTimeoutError(endpoint_url="https://email.eu-west-1.amazonaws.com")


def test_ses_read_timeout_is_not_retried_by_the_sdk_or_by_us():
    # GIVEN SES answering nothing after the request went out
    client = TimesOutReading()
    ses = providers.SesEmail("from@example.com", None, client=client)
    # WHEN a message is sent
    with pytest.raises(ProviderOutcomeUnknown):
        ses.send(Rendered("email", "to@example.com", subject="s", body="b"), "m1", {"message_id": "m1"})
    # THEN it was tried once, and real clients are built without SDK retries for these calls
    assert client.calls == 1
    real = providers.SesEmail("from@example.com", None).client
    assert real.meta.config.retries["total_max_attempts"] == 1
