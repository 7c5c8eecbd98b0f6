"""Two-way SMS: replies to the deployment's number -> ``message_inbound`` events on ``sms``.

AWS End User Messaging delivers each reply to the number's two-way SNS topic as JSON
(``originationNumber``, ``destinationNumber``, ``messageBody``, ``inboundMessageId``, ...). The sender is found
by the number a profile gave (``contact.phone``, linked when the profile is written); a reply from a number no
profile gave is dropped. The event's id is made from ``inboundMessageId``, so a delivery SNS repeats counts
once; its text is tagged with intents like any inbound message, and STOP or START change the SMS subscription.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from kairos.core.timeutil import parse_ts

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from kairos.messaging.ports import ContactLinks


def handle_record(
    record: dict[str, Any], links: ContactLinks, ingest: Callable[[dict[str, Any]], Any], now: datetime
) -> str:
    """Take one SNS record of a reply; say what became of it (``event``, ``unknown_number``, ``ignored``)."""
    sns = record.get("Sns") or {}
    try:
        reply = json.loads(sns.get("Message") or "")
    except ValueError:
        return "ignored"
    if not isinstance(reply, dict):
        return "ignored"
    phone, text, message_id = reply.get("originationNumber"), reply.get("messageBody"), reply.get("inboundMessageId")
    if not (isinstance(phone, str) and isinstance(text, str) and isinstance(message_id, str)):
        return "ignored"
    customer_id = links.customer_of_phone(phone)
    if customer_id is None:
        return "unknown_number"
    sent = parse_ts(sns["Timestamp"]) if sns.get("Timestamp") else None
    ingest(
        {
            "event_id": f"sms-{message_id}"[:128],
            "customer_id": customer_id,
            "type": "message_inbound",
            "channel": "sms",
            "timestamp": min(sent or now, now).isoformat(),
            "text": text[:4096],
        }
    )
    return "event"
