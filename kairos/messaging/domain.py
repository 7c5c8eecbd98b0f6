"""A message on its way: the send request a journey makes, and the rendered message a provider delivers."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate
from typing import Any

# Outcomes of the message log. Transient ones may be claimed again by a retry. ``unconfirmed``: the provider
# may have accepted the message (an attempt died or lost the answer after the call), so it counts as sent for
# frequency caps, journeys wait for engagement as after a send, and it is never sent again.
FINAL = ("sent", "unconfirmed", "failed", "skipped")
TRANSIENT = ("throttled", "unavailable")
DELIVERED = ("sent", "unconfirmed")
IN_FLIGHT = "sending"


@dataclass(frozen=True)
class Rendered:
    """A message ready for one channel."""

    channel: str
    to: str
    subject: str | None = None
    title: str | None = None
    body: str = ""
    html: str | None = None
    # Email headers beyond From/To/Subject (List-Unsubscribe, List-Unsubscribe-Post), in order.
    headers: tuple[tuple[str, str], ...] = ()
    # An order or account message (SMS carriers route it apart from promotions).
    transactional: bool = False

    def mime(self, sender: str) -> bytes:
        """The email as a mailbox receives it: headers, a plain-text part and (when there is one) an HTML
        alternative, UTF-8, CRLF line ends."""
        msg = EmailMessage(policy=SMTP)
        msg["From"] = sender
        msg["To"] = self.to
        msg["Subject"] = (self.subject or "").replace("\r", " ").replace("\n", " ")
        msg["Date"] = formatdate(usegmt=True)
        for name, value in self.headers:
            msg[name] = value
        msg.set_content(self.body or "", subtype="plain", charset="utf-8", cte="quoted-printable")
        if self.html:
            msg.add_alternative(self.html, subtype="html", charset="utf-8", cte="quoted-printable")
        return msg.as_bytes()


@dataclass
class SendRequest:
    """One message of a journey (a campaign is a journey): which message, from which journey, to whom, on which
    channel, and the send-time decision behind it."""

    message_id: str
    journey_id: str
    customer_id: str
    channel: str
    step: int
    decision: dict[str, Any] | None


def encode_tag(value: str) -> str:
    """SES tag values allow ``[A-Za-z0-9_-]`` only: URL-safe base64 without padding keeps any id intact."""
    return base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


def decode_tag(value: str) -> str:
    """The id an :func:`encode_tag` value carries."""
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
