"""Create, read, list and cancel campaigns; save segments."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from kairos.domain.campaigns import ACTIVE_STATUSES
from kairos.errors import ConflictError, InvalidInputError, NotFoundError

if TYPE_CHECKING:
    from datetime import datetime

    from kairos.domain.campaigns import CampaignIn, SegmentIn
    from kairos.ports import CampaignLauncher, CampaignStore


def save_segment(segment: SegmentIn, store: CampaignStore, now: datetime) -> dict[str, Any]:
    """Save (create or replace) a named segment; returns the stored document with its ``updated_at``."""
    doc = {**segment.model_dump(mode="json"), "updated_at": now.isoformat()}
    store.put_segment(doc)
    return doc


def create_campaign(
    campaign: CampaignIn, store: CampaignStore, now: datetime, launcher: CampaignLauncher | None = None
) -> dict[str, Any]:
    """Store a new campaign (status ``scheduled``) and start its launch; a named segment must exist.

    The launch waits until ``starts_at`` (or starts now), so the audience is the one of the start time. When the
    launch cannot be started the campaign is cancelled, so nothing half-made is left behind, and the error
    propagates (the client may retry: the campaign id is new each time).
    """
    if campaign.audience.segment is not None:
        try:
            store.get_segment(campaign.audience.segment)
        except NotFoundError as exc:
            raise InvalidInputError("audience.segment", f"no saved segment '{campaign.audience.segment}'") from exc
    if campaign.expires_at <= now:
        raise InvalidInputError("expires_at", "the campaign would already be expired")
    doc = {
        "campaign_id": uuid.uuid4().hex,
        "status": "scheduled",
        "created_at": now.isoformat(),
        "definition": campaign.model_dump(mode="json"),
    }
    store.create_campaign(doc)
    if launcher is not None:
        launch_at = max(campaign.starts_at, now) if campaign.starts_at else now
        try:
            launcher.launch(doc["campaign_id"], launch_at)
        except Exception:
            store.set_status(doc["campaign_id"], "cancelled", ACTIVE_STATUSES, now.isoformat())
            raise
    return doc


def cancel_campaign(campaign_id: str, store: CampaignStore, now: datetime) -> dict[str, Any]:
    """Stop a campaign: journeys check the status before every send and end."""
    store.get_campaign(campaign_id)
    try:
        store.set_status(campaign_id, "cancelled", ACTIVE_STATUSES, now.isoformat())
    except ConflictError as exc:
        status = store.get_campaign(campaign_id)["status"]
        raise InvalidInputError("status", f"a {status} campaign cannot be cancelled") from exc
    return store.get_campaign(campaign_id)
