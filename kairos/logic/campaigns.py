"""Create, read, list and cancel campaigns; save, preview and delete segments."""

from __future__ import annotations

import bisect
import uuid
from typing import TYPE_CHECKING, Any

from kairos.domain.campaigns import ACTIVE_STATUSES
from kairos.errors import ConflictError, InUseError, InvalidInputError, NotFoundError
from kairos.logic.customers import all_customers
from kairos.logic.results import effective_status
from kairos.logic.segments import CustomerHistory, matches, needs_history

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from datetime import datetime

    from kairos.domain.campaigns import CampaignIn, Filter, SegmentIn
    from kairos.ports import CampaignLauncher, CampaignStore, CustomerStore, JourneyStore, MessageLog


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


def refresh_status(campaign_id: str, store: CampaignStore, now: datetime) -> dict[str, Any]:
    """The campaign, marked ``completed`` once a running campaign has expired (nothing more is sent)."""
    doc = store.get_campaign(campaign_id)
    if doc.get("status") == "running" and effective_status(doc, now) == "completed":
        try:
            store.set_status(campaign_id, "completed", ("running",), now.isoformat())
        except ConflictError:
            pass  # cancelled or completed meanwhile
        doc = store.get_campaign(campaign_id)
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


PREVIEW_SAMPLE = 20


def every_item(list_page: Callable[[int, str | None], tuple[list[dict[str, Any]], str | None]]) -> Iterator[dict]:
    """Every item of a paged listing (``CampaignStore.list_campaigns``, ``JourneyStore.list_journeys``)."""
    token: str | None = None
    while True:
        page, token = list_page(100, token)
        yield from page
        if token is None:
            return


def preview_segment(
    filters: list[Filter],
    customers: CustomerStore,
    now: datetime,
    messages: MessageLog | None = None,
    sample: int = PREVIEW_SAMPLE,
    page_size: int = 1000,
) -> dict[str, Any]:
    """How many customers a segment holds now, and a sample of their ids (the first in id order).

    Every stored customer is read once (a scan); counts over a window (``events.``, ``messages.``) read the
    history of the customers that reach them.
    """
    history = CustomerHistory(customers, messages) if needs_history(filters) else None
    count = scanned = 0
    ids: list[str] = []
    for record in all_customers(customers, page_size):
        scanned += 1
        if matches(record, filters, now, history):
            count += 1
            bisect.insort(ids, record.customer_id)
            del ids[sample:]
    return {"count": count, "scanned": scanned, "sample": ids, "as_of": now.isoformat()}


def _names_segment(doc: Any, name: str) -> bool:
    """Whether a definition (nested dicts and lists) uses the segment ``name``."""
    if isinstance(doc, dict):
        if doc.get("segment") == name or (doc.get("field") == "segment" and doc.get("value") == name):
            return True
        return any(_names_segment(v, name) for v in doc.values())
    if isinstance(doc, list):
        return any(_names_segment(v, name) for v in doc)
    return False


def delete_segment(name: str, store: CampaignStore, journeys: JourneyStore | None = None) -> None:
    """Delete a saved segment, unless a scheduled or running campaign or an active or paused journey uses it."""
    store.get_segment(name)
    users = [
        f"campaign {c['campaign_id']}"
        for c in every_item(store.list_campaigns)
        if c.get("status") in ACTIVE_STATUSES and _names_segment(c.get("definition"), name)
    ]
    if journeys is not None:
        users += [
            f"journey {j['journey_id']}"
            for j in every_item(journeys.list_journeys)
            if j.get("status") in ("active", "paused") and _names_segment(j.get("definition"), name)
        ]
    if users:
        raise InUseError(f"segment '{name}' is used by {', '.join(sorted(users))}: stop or change them first")
    store.delete_segment(name)
