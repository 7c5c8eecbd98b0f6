"""A campaign is a journey: a scheduled entry for an audience, the best hour (or a fixed local time), then the
campaign's channels in turn until the customer engages, buys, or the offer expires.

``POST /v1/campaigns`` keeps its body (:class:`~kairos.journeys.campaign_domain.CampaignIn`); the campaign is stored as
a journey whose ``kind`` is ``campaign``, so it runs on the same engine, paths, message log, caps, control
groups and results as every journey. Its status follows from the journey and the clock: ``scheduled`` before
its start, ``running`` until it expires, then ``completed``; ``cancelled`` when it was stopped before.
"""

from __future__ import annotations

import math
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from kairos.core.errors import ConflictError, InvalidInputError, NotFoundError
from kairos.core.timeutil import parse_ts, utc_iso
from kairos.journeys.campaign_domain import MAX_SCHEDULE_DAYS, CampaignIn
from kairos.journeys.definitions import validate
from kairos.journeys.domain import JourneyIn
from kairos.journeys.promotion import promote_variant
from kairos.journeys.results import journey_results

if TYPE_CHECKING:
    from datetime import datetime

    from kairos.audiences.ports import SegmentStore
    from kairos.customers.ports import CustomerStore
    from kairos.journeys.ports import JourneyStore
    from kairos.messaging.ports import MessageLog

KIND = "campaign"
OFFER = "offer"  # the node that sends: the campaign's channels in turn


def campaign_journey(campaign: CampaignIn, now: datetime) -> JourneyIn:
    """The journey that runs ``campaign``: enter at its start, wait for each customer's hour, cycle its channels.

    The best hour is looked for within ``send_time.within_hours`` of the start and never past the expiry; a
    purchase ends a customer's path (converted), and so does an open or click of any of its messages.
    """
    start = max(campaign.starts_at or now, now)
    nodes: dict[str, Any] = {}
    first = OFFER
    mode = campaign.send_time.mode
    if mode == "optimized":
        hours_left = (campaign.expires_at - start).total_seconds() / 3600
        within = max(1, min(campaign.send_time.within_hours, math.floor(hours_left) or 1))
        nodes["best_hour"] = {
            "type": "delay",
            "best_hour_within_hours": within,
            "explore_share": campaign.send_time.explore_share,
            "next": OFFER,
        }
        first = "best_hour"
    elif mode == "fixed":
        nodes["fixed_time"] = {"type": "delay", "local_time": campaign.send_time.local_time, "next": OFFER}
        first = "fixed_time"
    nodes[OFFER] = {
        "type": "cycle",
        "channels": campaign.channels,
        "content": campaign.messages.model_dump(mode="json", exclude_none=True) if campaign.messages else None,
        "variants": [v.model_dump(mode="json", exclude_none=True) for v in campaign.variants or []] or None,
        "auto_promote": campaign.auto_promote.model_dump(mode="json") if campaign.auto_promote else None,
        "wait_hours": campaign.wait_hours,
        "expires_at": campaign.expires_at,
        "promo_pool": campaign.promo_pool,
        "next": "engaged",
        "on_expiry": "expired",
    }
    nodes["engaged"] = {"type": "exit"}
    nodes["expired"] = {"type": "exit"}
    days = (campaign.expires_at - start).total_seconds() / 86400
    return JourneyIn.model_validate(
        {
            "name": campaign.name,
            "entry": {
                "schedule": {"at": start},
                "segment": campaign.audience.segment,
                "filters": [f.model_dump(mode="json", by_alias=True) for f in campaign.audience.filters],
            },
            "reentry": {"mode": "once"},
            "control_share": campaign.control_share,
            "exit_on": ["purchase"],
            "quiet_hours": campaign.quiet_hours.model_dump(mode="json") if campaign.quiet_hours else None,
            "frequency_cap": campaign.frequency_cap.model_dump(mode="json") if campaign.frequency_cap else None,
            "max_days": min(365.0, max(days, 0.01) + 1),
            "attribution_days": campaign.attribution_days,
            "topic": campaign.topic,
            "start": first,
            "nodes": nodes,
        }
    )


def create_campaign(
    campaign: CampaignIn, journeys: JourneyStore, segments: SegmentStore, now: datetime
) -> dict[str, Any]:
    """Store the campaign as an active journey; its customers enter at ``starts_at`` (or at the timer's next
    tick). A named segment must exist. Returns the campaign as the API shows it."""
    if campaign.audience.segment is not None:
        try:
            segments.get_segment(campaign.audience.segment)
        except NotFoundError as exc:
            raise InvalidInputError("audience.segment", f"no saved segment '{campaign.audience.segment}'") from exc
    if campaign.expires_at <= now:
        raise InvalidInputError("expires_at", "the campaign would already be expired")
    horizon = timedelta(days=MAX_SCHEDULE_DAYS)
    if campaign.starts_at is not None and campaign.starts_at > now + horizon:
        raise InvalidInputError("starts_at", f"at most {MAX_SCHEDULE_DAYS} days ahead")
    if campaign.expires_at > (campaign.starts_at or now) + horizon:
        raise InvalidInputError("expires_at", f"at most {MAX_SCHEDULE_DAYS} days after the start")
    journey = campaign_journey(campaign, now)
    validate(journey)
    doc = {
        "journey_id": uuid.uuid4().hex,
        "kind": KIND,
        "campaign": campaign.model_dump(mode="json"),
        "status": "active",
        "version": 1,
        "definition": journey.model_dump(mode="json", by_alias=True),
        "created_at": now.isoformat(),
        "updated_at": now.isoformat(),
    }
    journeys.create_journey(doc)
    return campaign_view(doc, None, now)


def campaign_status(doc: dict[str, Any], now: datetime) -> str:
    """``scheduled``, ``running``, ``completed`` or ``cancelled``, from the journey's status and the clock."""
    campaign = doc["campaign"]
    expires = parse_ts(campaign["expires_at"])
    if doc["status"] == "archived":
        changed = parse_ts(doc.get("updated_at"))
        return "completed" if expires is not None and changed is not None and changed >= expires else "cancelled"
    starts = parse_ts(campaign.get("starts_at")) or parse_ts(doc["created_at"])
    if expires is not None and now >= expires:
        return "completed"
    if starts is not None and now < starts:
        return "scheduled"
    return "running"


def campaign_view(doc: dict[str, Any], scan: dict[str, Any] | None, now: datetime) -> dict[str, Any]:
    """The campaign as ``GET /v1/campaigns/{id}`` shows it; ``launch`` counts its audience once it has entered."""
    if doc.get("kind") != KIND:
        raise NotFoundError(f"campaign '{doc['journey_id']}' not found")
    counts = (scan or {}).get("counts") or {}
    launch = None
    if scan and scan.get("done"):
        launch = {
            "scheduled": int(counts.get("entered", 0)),
            "control": int(counts.get("control", 0)),
            "skipped": int(counts.get("skipped", 0)),
            "already_started": int(counts.get("already_entered", 0)),
            "outside_audience": int(counts.get("scanned", 0)) - int(counts.get("matched", 0)),
        }
    status = campaign_status(doc, now)
    return {
        "campaign_id": doc["journey_id"],
        "status": status,
        "created_at": doc["created_at"],
        "definition": doc["campaign"],
        "status_changed_at": doc.get("updated_at") if status == "cancelled" else None,
        "launch": launch,
    }


def get_campaign(campaign_id: str, journeys: JourneyStore, now: datetime) -> dict[str, Any]:
    """The campaign (``NotFoundError`` for an unknown id, or a journey that is not a campaign)."""
    try:
        doc = journeys.get_journey(campaign_id)
    except NotFoundError as exc:
        raise NotFoundError(f"campaign '{campaign_id}' not found") from exc
    return campaign_view(doc, journeys.get_scan(campaign_id), now)


def list_campaigns(
    journeys: JourneyStore, limit: int, token: str | None, now: datetime
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of campaigns and the token of the next."""
    docs, next_token = journeys.list_journeys(limit, token, KIND)
    return [campaign_view(d, journeys.get_scan(d["journey_id"]), now) for d in docs], next_token


def cancel_campaign(campaign_id: str, journeys: JourneyStore, now: datetime) -> dict[str, Any]:
    """Stop a campaign: its journey is archived, so every path ends at its next step and nothing more is sent."""
    current = get_campaign(campaign_id, journeys, now)
    if current["status"] not in ("scheduled", "running"):
        raise InvalidInputError("status", f"a {current['status']} campaign cannot be cancelled")
    try:
        journeys.set_journey_status(campaign_id, "archived", ("active", "paused"), utc_iso(now))
    except ConflictError as exc:
        raise InvalidInputError("status", "the campaign was stopped meanwhile") from exc
    return get_campaign(campaign_id, journeys, now)


def promote_campaign_variant(
    campaign_id: str, variant: str | None, journeys: JourneyStore, now: datetime
) -> dict[str, Any]:
    """Promote one of the campaign's content variants (``None``: split by weight again) at its offer node;
    ``NotFoundError`` for an unknown campaign, ``InvalidInputError`` naming ``variant`` for an unknown variant."""
    get_campaign(campaign_id, journeys, now)
    return promote_variant(campaign_id, OFFER, variant, journeys)


def campaign_results(
    campaign_id: str, journeys: JourneyStore, messages: MessageLog, customers: CustomerStore, now: datetime
) -> dict[str, Any]:
    """The campaign's results: the journey's (:func:`kairos.journeys.results.journey_results`) with its launch."""
    view = get_campaign(campaign_id, journeys, now)
    res = journey_results(campaign_id, journeys, messages, customers)
    definition = CampaignIn.model_validate(view["definition"])
    start = definition.starts_at or parse_ts(view["created_at"])
    assert start is not None
    end = start + timedelta(days=definition.attribution_days)
    launch = view.get("launch") or {}
    return {
        **{k: res[k] for k in ("treatment", "control", "uplift", "steps", "by_day", "variants_by_node")},
        "campaign_id": campaign_id,
        "status": view["status"],
        "launched_at": utc_iso(start),
        "attribution_days": definition.attribution_days,
        "attribution_ends_at": utc_iso(end),
        "audience": {
            "decided": res["entries"],
            "scheduled": res["entries"] - res["held_out"] - res["skipped"],
            "control": res["held_out"] - res["global_control"],
            "global_control": res["global_control"],
            "skipped": res["skipped"],
            **{f"launch_{k}": int(v) for k, v in launch.items()},
        },
        "paths": {k: res[k] for k in ("active", "completed", "exited", "at_node")},
    }
