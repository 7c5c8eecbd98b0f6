"""The four providers of the send function, behind one port (``kairos.messaging.ports.Provider``).

- email: Amazon SES v2 ``SendEmail`` with a configuration set, whose event destination (EventBridge) brings
  opens, clicks, bounces and complaints back as events (``functions/feedback/app.py``);
- sms: AWS End User Messaging SMS (``pinpoint-sms-voice-v2`` ``SendTextMessage``), or Amazon SNS ``Publish`` to a
  phone number where no origination identity is set up (and locally: moto has no End User Messaging);
- push: Amazon SNS mobile push, through a platform endpoint made (idempotently) from the device token;
- messenger: the Telegram Bot API ``sendMessage`` over HTTPS, the bot token read once from SSM Parameter Store.

Each maps its provider's errors onto three outcomes: ``ProviderThrottled`` and ``ProviderUnavailable`` are
retried by the state machine, ``ProviderError`` is final for this channel (the journey moves on).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ConnectTimeoutError, EndpointConnectionError

from kairos.core.aws import LazyClient
from kairos.core.errors import ProviderError, ProviderOutcomeUnknown, ProviderThrottled, ProviderUnavailable
from kairos.messaging.domain import encode_tag
from kairos.messaging.ports import Provider

if TYPE_CHECKING:
    from collections.abc import Callable

    from kairos.messaging.domain import Rendered

# No retries inside the SDK: SendEmail, Publish and SendTextMessage are not idempotent, so an SDK retry after a
# lost answer could deliver twice. The state machine's Retry owns backoff, with jitter, across minutes, and
# only for failures that prove nothing was accepted (see _classify).
_CLIENT_CONFIG = Config(retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=5, read_timeout=10)
_THROTTLED = {"TooManyRequestsException", "ThrottlingException", "Throttling", "Throttled", "LimitExceededException"}
_UNAVAILABLE = {"InternalFailure", "InternalServerException", "InternalError", "ServiceUnavailable", "KMSThrottling"}


def _classify(exc: Exception, what: str, permanent: set[str] | None = None) -> Exception:
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        message = exc.response.get("Error", {}).get("Message", "")
        if code in _THROTTLED or status == 429:
            return ProviderThrottled(f"{what} throttled: {code}")
        if code in _UNAVAILABLE or status >= 500:
            return ProviderUnavailable(f"{what} unavailable: {code}")
        return ProviderError(f"{what} rejected: {code} {message}".strip())
    if isinstance(exc, ConnectTimeoutError | EndpointConnectionError):  # never connected: nothing was sent
        return ProviderUnavailable(f"{what} unreachable: {type(exc).__name__}")
    if isinstance(exc, BotoCoreError):  # sent, but the answer was lost (read timeout, connection dropped)
        return ProviderOutcomeUnknown(f"{what} gave no answer: {type(exc).__name__}")
    return exc


class SesEmail(Provider):
    channel = "email"
    client = LazyClient("sesv2", _CLIENT_CONFIG)

    def __init__(self, sender: str, configuration_set: str | None, client: Any = None) -> None:
        self.sender = sender
        self.configuration_set = configuration_set
        self.client = client

    def send(self, message: Rendered, message_id: str, tags: dict[str, str]) -> str:
        # Raw MIME: the only content type that carries our own headers (List-Unsubscribe, List-Unsubscribe-Post)
        # exactly as built, the same bytes the local outbox shows.
        kwargs: dict[str, Any] = {
            "FromEmailAddress": self.sender,
            "Destination": {"ToAddresses": [message.to]},
            "Content": {"Raw": {"Data": message.mime(self.sender)}},
            "EmailTags": [{"Name": f"kairos_{k}", "Value": encode_tag(v)} for k, v in sorted(tags.items())],
        }
        if self.configuration_set:
            kwargs["ConfigurationSetName"] = self.configuration_set
        try:
            return str(self.client.send_email(**kwargs)["MessageId"])
        except (ClientError, BotoCoreError) as exc:
            raise _classify(exc, "SES") from exc


class EndUserMessagingSms(Provider):
    """AWS End User Messaging SMS (the API is still named ``pinpoint-sms-voice-v2``)."""

    channel = "sms"
    client = LazyClient("pinpoint-sms-voice-v2", _CLIENT_CONFIG)

    def __init__(self, origination_identity: str, configuration_set: str | None = None, client: Any = None) -> None:
        self.origination_identity = origination_identity
        self.configuration_set = configuration_set
        self.client = client

    def send(self, message: Rendered, message_id: str, tags: dict[str, str]) -> str:
        kwargs: dict[str, Any] = {
            "DestinationPhoneNumber": message.to,
            "OriginationIdentity": self.origination_identity,
            "MessageBody": message.body,
            "MessageType": "TRANSACTIONAL" if message.transactional else "PROMOTIONAL",
            "Context": {k: v[:256] for k, v in tags.items()},
        }
        if self.configuration_set:
            kwargs["ConfigurationSetName"] = self.configuration_set
        try:
            return str(self.client.send_text_message(**kwargs)["MessageId"])
        except (ClientError, BotoCoreError) as exc:
            raise _classify(exc, "End User Messaging SMS") from exc


class SnsSms(Provider):
    channel = "sms"
    client = LazyClient("sns", _CLIENT_CONFIG)

    def __init__(self, client: Any = None) -> None:
        self.client = client

    def send(self, message: Rendered, message_id: str, tags: dict[str, str]) -> str:
        try:
            return str(
                self.client.publish(
                    PhoneNumber=message.to,
                    Message=message.body,
                    MessageAttributes={
                        "AWS.SNS.SMS.SMSType": {
                            "DataType": "String",
                            "StringValue": "Transactional" if message.transactional else "Promotional",
                        }
                    },
                )["MessageId"]
            )
        except (ClientError, BotoCoreError) as exc:
            raise _classify(exc, "SNS SMS") from exc


class SnsPush(Provider):
    """Mobile push through an SNS platform application (FCM or APNs) and one endpoint per device token."""

    channel = "push"
    client = LazyClient("sns", _CLIENT_CONFIG)

    def __init__(self, platform_application_arn: str, client: Any = None) -> None:
        self.platform_application_arn = platform_application_arn
        self.client = client
        self._endpoints: dict[str, str] = {}

    def _endpoint(self, token: str) -> str:
        if token not in self._endpoints:
            # CreatePlatformEndpoint is idempotent for a token with the same attributes.
            self._endpoints[token] = self.client.create_platform_endpoint(
                PlatformApplicationArn=self.platform_application_arn, Token=token
            )["EndpointArn"]
        return self._endpoints[token]

    def send(self, message: Rendered, message_id: str, tags: dict[str, str]) -> str:
        data = {"message_id": message_id, **tags}
        payload = {
            "default": message.body,
            "GCM": json.dumps({"notification": {"title": message.title, "body": message.body}, "data": data}),
            "APNS": json.dumps({"aps": {"alert": {"title": message.title, "body": message.body}}, **data}),
        }
        try:
            return str(
                self.client.publish(
                    TargetArn=self._endpoint(message.to), Message=json.dumps(payload), MessageStructure="json"
                )["MessageId"]
            )
        except (ClientError, BotoCoreError) as exc:
            if isinstance(exc, ClientError) and exc.response["Error"]["Code"] == "EndpointDisabled":
                self._endpoints.pop(message.to, None)
                raise ProviderError("push endpoint disabled (stale device token)") from exc
            raise _classify(exc, "SNS push") from exc


class TelegramMessenger(Provider):
    """Telegram Bot API ``sendMessage``. ``opener`` is injectable (tests); the token comes from ``token()``."""

    channel = "messenger"
    API = "https://api.telegram.org"

    def __init__(
        self,
        token: Callable[[], str],
        opener: Callable[..., Any] | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self._token = token
        self._opener = opener or urllib.request.urlopen
        self.timeout_s = timeout_s

    def send(self, message: Rendered, message_id: str, tags: dict[str, str]) -> str:
        req = urllib.request.Request(
            f"{self.API}/bot{self._token()}/sendMessage",
            data=json.dumps({"chat_id": message.to, "text": message.body}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with self._opener(req, timeout=self.timeout_s) as resp:
                out = json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as err:
            try:
                detail = json.loads(err.read() or b"{}")
            except ValueError:
                detail = {}
            text = detail.get("description") or err.reason
            if err.code == 429:
                raise ProviderThrottled(f"Telegram: {text}") from err
            if err.code >= 500:
                raise ProviderUnavailable(f"Telegram: HTTP {err.code}") from err
            raise ProviderError(f"Telegram: HTTP {err.code} {text}") from err
        except urllib.error.URLError as err:  # no connection: nothing was sent
            raise ProviderUnavailable(f"Telegram unreachable: {err.reason}") from err
        except (TimeoutError, OSError) as err:  # the request went out, the answer did not come back
            raise ProviderOutcomeUnknown(f"Telegram gave no answer: {err}") from err
        if not out.get("ok"):
            raise ProviderError(f"Telegram: {out.get('description', 'not ok')}")
        return str(out["result"]["message_id"])


def ssm_secret(name: str, client: Any = None, what: str = "SSM (Telegram token)") -> Callable[[], str]:
    """A getter that reads a SecureString parameter once, on first use."""
    cache: dict[str, str] = {}

    def get() -> str:
        if "value" not in cache:
            ssm = client or boto3.client("ssm", config=_CLIENT_CONFIG)
            try:
                cache["value"] = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
            except (ClientError, BotoCoreError) as exc:
                raise _classify(exc, what) from exc
        return cache["value"]

    return get
