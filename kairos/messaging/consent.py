"""Whether a customer may be messaged on a channel right now: consent, unsubscribes, contact point."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kairos.customers.domain import CustomerRecord

CONTACT_FIELD = {"email": "email", "sms": "phone", "push": "push_token", "messenger": "messenger_chat_id"}


def may_send(record: CustomerRecord | None, channel: str) -> tuple[bool, str]:
    """``(True, "ok")`` or ``(False, reason)``.

    Consent is opt-in per channel in the profile. An ``unsubscribe`` event (for the channel, or without a
    channel for all of them) withdraws it until the profile grants consent again after that event.
    """
    if record is None or not record.profile:
        return False, "no profile"
    profile = record.profile
    if not (profile.get("consent") or {}).get(channel):
        return False, f"no consent for {channel}"
    if not (profile.get("contact") or {}).get(CONTACT_FIELD[channel]):
        return False, f"no {CONTACT_FIELD[channel]} on the profile"
    granted = datetime.fromisoformat(record.consent_at).timestamp() if record.consent_at else float("-inf")
    for key in (channel, "all"):
        unsub = record.aggregates.unsubscribed.get(key)
        if unsub is not None and unsub >= granted:
            return False, f"unsubscribed from {key}"
    return True, "ok"
