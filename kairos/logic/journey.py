"""Decisions a running journey asks for: stop now or go on, and how long to wait for engagement."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from kairos.domain.campaigns import Campaign, CampaignIn
from kairos.errors import NotFoundError
from kairos.logic.timing import QuietHours
from kairos.timeutil import parse_ts, utc_iso, zone

if TYPE_CHECKING:
    from kairos.ports import CampaignStore, CustomerStore

ENGAGED_TYPES = ("message_open", "message_click", "message_inbound", "purchase")


def message_prefix(campaign_id: str, customer_id: str) -> str:
    """The prefix of every message id of one customer's journey in a campaign (``<campaign>.<customer>.<step>``)."""
    return f"{campaign_id}.{customer_id}."


def quiet_until(campaign: CampaignIn, tz: str, now: datetime) -> datetime | None:
    """The end of the quiet hours ``now`` falls in (customer's local time), or ``None`` outside them."""
    if campaign.quiet_hours is None:
        return None
    quiet = QuietHours(campaign.quiet_hours.start, campaign.quiet_hours.end)
    local = now.astimezone(zone(tz))
    if not quiet.contains(local):
        return None
    for days in (0, 1):
        day = local.date() + timedelta(days=days)
        end = datetime.combine(day, campaign.quiet_hours.end, tzinfo=zone(tz))
        if end > local:
            return end.astimezone(UTC)
    return None  # pragma: no cover - an end time is always within a day


def check_journey(
    campaign_id: str,
    customer_id: str,
    journey_started_at: datetime,
    customers: CustomerStore,
    campaigns: CampaignStore,
    now: datetime,
) -> dict[str, Any]:
    """Stop or go on, and whether to hold the next send until the customer's quiet hours end.

    ``{"stop": bool, "reason": ..., "defer": bool, "send_after": ISO time}``: stop when the campaign ended,
    the offer expired, or the customer engaged with a message of this journey, converted (bought anything
    since it began), unsubscribed, or was erased; defer when it is quiet time where the customer lives
    (a step that follows a retry or a long wait may land there)."""
    result = _check(campaign_id, customer_id, journey_started_at, customers, campaigns, now)
    result.setdefault("defer", False)
    result.setdefault("send_after", utc_iso(now))
    return result


def _check(
    campaign_id: str,
    customer_id: str,
    journey_started_at: datetime,
    customers: CustomerStore,
    campaigns: CampaignStore,
    now: datetime,
) -> dict[str, Any]:
    doc = campaigns.get_campaign(campaign_id)
    stored = Campaign.from_doc(doc)
    if not stored.is_active:
        return {"stop": True, "reason": f"campaign {stored.status}"}
    campaign = stored.definition
    if now >= campaign.expires_at:
        return {"stop": True, "reason": "offer expired"}
    record = customers.get_customer(customer_id)
    started = journey_started_at.timestamp()
    if record is None or record.erased or (record.erased_at and parse_ts(record.erased_at).timestamp() >= started):
        return {"stop": True, "reason": "customer erased"}
    for key, at in record.aggregates.unsubscribed.items():
        if at >= started and (key == "all" or key in campaign.channels):
            return {"stop": True, "reason": f"unsubscribed from {key}"}
    events = customers.message_events(customer_id, message_prefix(campaign_id, customer_id))
    engaged = sorted((e for e in events if e.get("type") in ENGAGED_TYPES), key=lambda e: e.get("ts", 0))
    if engaged:
        return {"stop": True, "reason": f"engaged: {engaged[0]['type']} on {engaged[0]['message_id']}"}
    last = record.aggregates.last_purchase_s
    if last is not None and last >= started:
        return {"stop": True, "reason": "converted"}
    tz = record.timezone
    until = quiet_until(campaign, tz, now)
    if until is not None:
        if until >= campaign.expires_at:
            return {"stop": True, "reason": "offer expires before the quiet hours end"}
        return {"stop": False, "reason": "quiet hours", "defer": True, "send_after": utc_iso(until)}
    return {"stop": False, "reason": "no engagement yet"}


def wait_until(campaign_id: str, step: int, campaigns: CampaignStore, now: datetime) -> dict[str, Any]:
    """When to look again after step ``step`` was sent: its wait, but never past the campaign's expiry."""
    try:
        campaign = Campaign.from_doc(campaigns.get_campaign(campaign_id)).definition
    except NotFoundError:
        return {"until": utc_iso(now)}
    until = min(now + timedelta(hours=campaign.wait_after(step)), campaign.expires_at)
    return {"until": utc_iso(until)}
