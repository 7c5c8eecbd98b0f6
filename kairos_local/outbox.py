"""Every message the embedded providers received, as they received it: the local outbox (``GET /_local/outbox``).

Email is the raw MIME SES was given (headers included: List-Unsubscribe, List-Unsubscribe-Post) with its
parts decoded beside it; SMS the text SNS was asked to deliver; push the payload published to the device's
endpoint. Nothing here is made up: it is read from moto's own records of the calls.
"""

from __future__ import annotations

import email
import email.policy
from typing import Any


def _email(message: Any) -> dict[str, Any]:
    raw = getattr(message, "raw_data", None)
    if raw is None:  # a simple (non-raw) send: moto keeps the fields
        return {
            "channel": "email",
            "message_id": message.id,
            "to": list(message.destinations.get("ToAddresses", [])) if isinstance(message.destinations, dict) else [],
            "subject": getattr(message, "subject", None),
            "text": getattr(message, "body", None),
        }
    parsed = email.message_from_string(raw, policy=email.policy.default)
    text = parsed.get_body(("plain",))
    html = parsed.get_body(("html",))
    return {
        "channel": "email",
        "message_id": message.id,
        # moto lists the envelope's recipients and the MIME To header's: SES delivers once to each address
        "to": list(dict.fromkeys(message.destinations)),
        "subject": str(parsed["Subject"] or ""),
        "headers": {k: str(v) for k, v in parsed.items()},
        "text": text.get_content() if text is not None else None,
        "html": html.get_content() if html is not None else None,
        "raw": raw,
    }


def outbox(account: str, region: str) -> list[dict[str, Any]]:
    """What embedded SES and SNS were asked to deliver, in the order they were (email, SMS, then push)."""
    from moto.ses.models import ses_backends
    from moto.sns.models import sns_backends

    out = [_email(m) for m in ses_backends[account][region].sent_messages]
    sns = sns_backends[account][region]
    for message_id, (phone, text) in list(sns.sms_messages.items()):
        out.append({"channel": "sms", "message_id": message_id, "to": [phone], "text": text})
    for endpoint in list(sns.platform_endpoints.values()):
        for message_id, payload in list(endpoint.messages.items()):
            out.append({"channel": "push", "message_id": message_id, "to": [endpoint.token], "payload": payload})
    return out
