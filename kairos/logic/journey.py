"""Decisions a running journey asks for: stop now or go on, and how long to wait for engagement."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from kairos.campaigns.model import CampaignIn
from kairos.errors import NotFoundError

if TYPE_CHECKING:
    from kairos.adapters.campaigns import DynamoCampaignStore
    from kairos.adapters.dynamo import DynamoStore

ENGAGED_TYPES = ("message_open", "message_click", "message_inbound", "purchase")


def message_prefix(campaign_id: str, customer_id: str) -> str:
    return f"{campaign_id}.{customer_id}."


def check_journey(
    campaign_id: str,
    customer_id: str,
    journey_started_at: datetime,
    customers: DynamoStore,
    campaigns: DynamoCampaignStore,
    now: datetime,
) -> dict[str, Any]:
    """``{"stop": bool, "reason": ...}``: stop when the campaign ended, the offer expired, or the customer
    engaged with a message of this journey, converted (bought anything since it began), unsubscribed,
    or was erased."""
    doc = campaigns.get_campaign(campaign_id)
    if doc["status"] not in ("scheduled", "running"):
        return {"stop": True, "reason": f"campaign {doc['status']}"}
    campaign = CampaignIn.model_validate(doc["definition"])
    if now >= campaign.expires_at:
        return {"stop": True, "reason": "offer expired"}
    record = customers.get_customer(customer_id)
    if record is None:
        return {"stop": True, "reason": "customer erased"}
    started = journey_started_at.timestamp()
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
    return {"stop": False, "reason": "no engagement yet"}


def wait_until(campaign_id: str, step: int, campaigns: DynamoCampaignStore, now: datetime) -> dict[str, Any]:
    """When to look again after step ``step`` was sent: its wait, but never past the campaign's expiry."""
    try:
        campaign = CampaignIn.model_validate(campaigns.get_campaign(campaign_id)["definition"])
    except NotFoundError:
        return {"until": now.astimezone(UTC).isoformat().replace("+00:00", "Z")}
    until = min(now + timedelta(hours=campaign.wait_after(step)), campaign.expires_at)
    return {"until": until.astimezone(UTC).isoformat().replace("+00:00", "Z")}
