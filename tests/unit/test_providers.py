"""Provider adapters: each maps its provider's answers onto sent, retry (throttled, unavailable) or give up."""

from __future__ import annotations

import io
import json
import urllib.error

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from kairos.core.errors import ProviderError, ProviderThrottled, ProviderUnavailable
from kairos.messaging.adapters.providers import EndUserMessagingSms, SesEmail, SnsPush, TelegramMessenger
from kairos.messaging.domain import Rendered, decode_tag, encode_tag

SMS = Rendered("sms", "+447700900123", body="hello")


@pytest.fixture
def sms_client():
    return boto3.client(
        "pinpoint-sms-voice-v2", region_name="eu-west-1", aws_access_key_id="a", aws_secret_access_key="b"
    )


def test_end_user_messaging_sends_with_origination_identity_and_context(sms_client):
    stub = Stubber(sms_client)
    stub.add_response(
        "send_text_message",
        {"MessageId": "m-1"},
        {
            "DestinationPhoneNumber": "+447700900123",
            "OriginationIdentity": "pool-1",
            "MessageBody": "hello",
            "MessageType": "PROMOTIONAL",
            "Context": {"message_id": "c.1.0"},
        },
    )
    with stub:
        assert EndUserMessagingSms("pool-1", client=sms_client).send(SMS, "c.1.0", {"message_id": "c.1.0"}) == "m-1"


@pytest.mark.parametrize(
    ("code", "status", "raised"),
    [
        ("ThrottlingException", 429, ProviderThrottled),
        ("InternalServerException", 500, ProviderUnavailable),
        ("ValidationException", 400, ProviderError),
        ("ConflictException", 409, ProviderError),  # e.g. the destination opted out
    ],
)
def test_end_user_messaging_errors_map_to_retry_or_give_up(sms_client, code, status, raised):
    stub = Stubber(sms_client)
    stub.add_client_error("send_text_message", service_error_code=code, http_status_code=status)
    with stub, pytest.raises(raised):
        EndUserMessagingSms("pool-1", client=sms_client).send(SMS, "c.1.0", {})


class FakeResponse(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def telegram(answer):
    calls = []

    def opener(req, timeout):
        calls.append(json.loads(req.data))
        if isinstance(answer, Exception):
            raise answer
        return FakeResponse(json.dumps(answer).encode())

    return TelegramMessenger(lambda: "123:abc", opener=opener), calls


def http_error(code, description):
    return urllib.error.HTTPError(
        "https://api.telegram.org", code, "err", {}, io.BytesIO(json.dumps({"description": description}).encode())
    )


def test_telegram_sends_to_the_chat():
    provider, calls = telegram({"ok": True, "result": {"message_id": 42}})
    assert provider.send(Rendered("messenger", "987654", body="hi"), "c.1.1", {}) == "42"
    assert calls == [{"chat_id": "987654", "text": "hi"}]


@pytest.mark.parametrize(
    ("error", "raised"),
    [
        (http_error(429, "Too Many Requests: retry after 5"), ProviderThrottled),
        (http_error(403, "Forbidden: bot was blocked by the user"), ProviderError),
        (http_error(502, "Bad Gateway"), ProviderUnavailable),
        (urllib.error.URLError("connection refused"), ProviderUnavailable),
    ],
)
def test_telegram_errors_map_to_retry_or_give_up(error, raised):
    provider, _ = telegram(error)
    with pytest.raises(raised):
        provider.send(Rendered("messenger", "987654", body="hi"), "c.1.1", {})


def test_ses_tags_carry_ids_through_the_allowed_alphabet():
    for value in ("abc.cust@example.com+x:1.0", "ü-ñ", "a" * 150):
        tag = encode_tag(value)
        assert all(ch.isalnum() or ch in "-_" for ch in tag)
        assert decode_tag(tag) == value


@mock_aws
def test_ses_sends_from_a_verified_identity_and_rejects_otherwise():
    ses = boto3.client("sesv2", region_name="eu-west-1")
    ses.create_email_identity(EmailIdentity="news@example.com")
    ses.create_configuration_set(ConfigurationSetName="kairos-messages")
    msg = Rendered("email", "a@example.com", subject="s", body="t", html="<p>t</p>")
    assert SesEmail("news@example.com", "kairos-messages", client=ses).send(msg, "c.1.0", {"message_id": "c.1.0"})
    with pytest.raises(ProviderError):
        SesEmail("unknown@example.org", None, client=ses).send(msg, "c.1.0", {})


@mock_aws
def test_push_goes_to_a_platform_endpoint_made_once_per_token():
    sns = boto3.client("sns", region_name="eu-west-1")
    app = sns.create_platform_application(Name="p", Platform="GCM", Attributes={"PlatformCredential": "k"})
    provider = SnsPush(app["PlatformApplicationArn"], client=sns)
    msg = Rendered("push", "device-token-1", title="t", body="b")
    provider.send(msg, "c.1.1", {})
    provider.send(msg, "c.1.2", {})
    endpoints = sns.list_endpoints_by_platform_application(PlatformApplicationArn=app["PlatformApplicationArn"])
    assert len(endpoints["Endpoints"]) == 1
    sns.set_endpoint_attributes(EndpointArn=endpoints["Endpoints"][0]["EndpointArn"], Attributes={"Enabled": "false"})
    with pytest.raises(ProviderError, match="disabled"):
        provider.send(msg, "c.1.3", {})
