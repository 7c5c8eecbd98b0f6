"""Provider feedback: SES events (through the configuration set's EventBridge destination) become events.

An open or a click of a Kairos email is a ``message_open`` or ``message_click`` event with the message's id;
a permanent bounce or a complaint is an ``unsubscribe`` from email (suppression: nothing more is sent to
that address until the profile grants consent again). They go through the same ingest logic as
``POST /v1/events``: validated, deduplicated (event ids derive from the SES message id), aggregated, archived.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kairos.core.observability import logger
from kairos.core.timeutil import parse_ts
from kairos.customers.ingest import ingest_events
from kairos.messaging.domain import decode_tag

if TYPE_CHECKING:
    from datetime import datetime, timedelta

    from kairos.customers.ports import CustomerStore


ENGAGEMENT = {"Open": "message_open", "Click": "message_click"}
SUPPRESSION_REASON = {"Bounce": "permanent bounce", "Complaint": "complaint"}


def _tag(mail: dict[str, Any], name: str) -> str | None:
    values = (mail.get("tags") or {}).get(f"kairos_{name}") or []
    try:
        return decode_tag(values[0]) if values else None
    except ValueError:  # not a tag Kairos wrote (UnicodeDecodeError and binascii.Error are ValueErrors)
        return None


def to_event(detail: dict[str, Any]) -> dict[str, Any] | None:
    """The Kairos event of one SES event, or ``None`` when it is not about a Kairos message or not engagement."""
    mail = detail.get("mail") or {}
    message_id, customer_id = _tag(mail, "message_id"), _tag(mail, "customer_id")
    if not message_id or not customer_id:
        return None
    kind = detail.get("eventType") or detail.get("notificationType")
    ses_id = mail.get("messageId", message_id)
    base = {"customer_id": customer_id, "channel": "email", "message_id": message_id}
    if kind in ENGAGEMENT:
        return {
            **base,
            "event_id": f"ses-{kind.lower()}-{ses_id}",
            "type": ENGAGEMENT[kind],
            "timestamp": detail[kind.lower()]["timestamp"],
        }
    # Suppression: a permanent bounce or a complaint withdraws email until consent is given again.
    permanent = kind == "Complaint" or (
        kind == "Bounce" and (detail.get("bounce") or {}).get("bounceType") == "Permanent"
    )
    if permanent:
        return {
            **base,
            "event_id": f"ses-{kind.lower()}-{ses_id}",
            "type": "unsubscribe",
            "timestamp": detail[kind.lower()]["timestamp"],
            "properties": {"reason": SUPPRESSION_REASON[kind]},
        }
    return None


def _about_erased(customer_id: str, sent_at: str | None, tombstones: dict[str, str]) -> bool:
    """The message was sent (or, without a send time, may have been sent) before the customer was erased."""
    erased_at = tombstones.get(customer_id)
    if erased_at is None:
        return False
    return sent_at is None or parse_ts(sent_at) <= parse_ts(erased_at)


def ingest_feedback(
    events: list[dict[str, Any]], store: CustomerStore, now: datetime, retention: timedelta, skew: timedelta
) -> dict[str, Any]:
    """Turn SES events (EventBridge envelopes) into Kairos events and ingest them like ``POST /v1/events``.

    Returns
    -------
    dict
        The ingest result (``accepted``, ``duplicates``, ``rejected``) and how many SES events were ``ignored``.
    """
    pairs = [(to_event(ev.get("detail") or {}), (ev.get("detail") or {}).get("mail") or {}) for ev in events]
    found = [(e, mail.get("timestamp")) for e, mail in pairs if e is not None]
    # Feedback about a message sent before its customer was erased must not bring the customer back.
    tombstones = store.erased_at({e["customer_id"] for e, _ in found}) if found else {}
    made = [e for e, sent_at in found if not _about_erased(e["customer_id"], sent_at, tombstones)]
    if not made:
        return {"accepted": 0, "duplicates": 0, "rejected": [], "ignored": len(events)}
    result = ingest_events(made, store, now, retention, skew)
    out = result.model_dump(mode="json")
    out["ignored"] = len(events) - len(made)
    if result.rejected:
        logger.warning("feedback events rejected", extra={"rejected": out["rejected"]})
    return out
