"""Whether a customer may be messaged on a channel right now: consent, unsubscribes, topics, contact point."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from kairos.customers.subscription_domain import SUPPRESSED_KEY, TOPIC_KEY, withdrawn

if TYPE_CHECKING:
    from kairos.customers.domain import CustomerRecord

CONTACT_FIELD = {"email": "email", "sms": "phone", "push": "push_token", "messenger": "messenger_chat_id"}


def may_send(
    record: CustomerRecord | None, channel: str, topic: str | None = None, transactional: bool = False
) -> tuple[bool, str]:
    """``(True, "ok")`` or ``(False, reason)``.

    Consent is opt-in per channel in the profile. An ``unsubscribe`` event (for the channel, or without a
    channel for all of them; an SMS reply of STOP) withdraws it until the profile grants consent again after
    that event, or a ``subscribe`` event (the preference page, START) does. A marketing message on ``topic``
    is not sent to a customer who unsubscribed from the topic; a ``transactional`` one is. A permanent bounce
    or a complaint stops every message on the channel until consent is given again.
    """
    if record is None or not record.profile:
        return False, "no profile"
    profile = record.profile
    if not (profile.get("consent") or {}).get(channel):
        return False, f"no consent for {channel}"
    if not (profile.get("contact") or {}).get(CONTACT_FIELD[channel]):
        return False, f"no {CONTACT_FIELD[channel]} on the profile"
    granted = datetime.fromisoformat(record.consent_at).timestamp() if record.consent_at else float("-inf")
    agg = record.aggregates
    if withdrawn(agg.unsubscribed, agg.subscribed, f"{SUPPRESSED_KEY}{channel}", granted) is not None:
        return False, f"{channel} suppressed (bounce or complaint)"
    for key in (channel, "all"):
        if withdrawn(agg.unsubscribed, agg.subscribed, key, granted) is not None:
            return False, f"unsubscribed from {key}"
    if topic and not transactional:
        # A topic is the customer's own choice about content: the profile's consent does not override it.
        if withdrawn(agg.unsubscribed, agg.subscribed, f"{TOPIC_KEY}{topic}", float("-inf")) is not None:
            return False, f"unsubscribed from topic {topic}"
    return True, "ok"
