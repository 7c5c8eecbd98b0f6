"""Launch a campaign: expand its audience, hold out the control group, decide each send time, start journeys.

Work goes one scan page at a time (a segment of a parallel scan, resumed from a cursor), so a large
audience is spread over many invocations, and a retried page changes nothing: control assignment and
exploration draws are hashes of (campaign, customer), and each journey has a name derived from them, so
starting it again is refused by Step Functions as a duplicate.

Every decision (scheduled, control, skipped with its reason) is archived with the propensity of the chosen
hour, the model version and the features the model saw, so retraining and uplift measurement can use them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from kairos.domain.campaigns import Campaign, CampaignIn, SegmentIn
from kairos.logic.consent import may_send
from kairos.logic.recommendations import POPULATION_KEY
from kairos.logic.segments import CustomerHistory, matches, needs_history
from kairos.logic.timing import QuietHours, decide, decision_inputs, in_global_control, stable_unit
from kairos.timeutil import utc_iso

if TYPE_CHECKING:
    from collections.abc import Callable

    from kairos.domain.customers import CustomerRecord
    from kairos.ports import CampaignStore, CustomerStore, DecisionLog, JourneyStarter, MessageLog

LAUNCH_COUNTS = ("scheduled", "control", "global_control", "skipped", "already_started", "outside_audience")


@dataclass
class Plan:
    """What a launch does with one audience member: schedule a journey, hold out as control, or skip (why)."""

    customer_id: str
    outcome: str  # scheduled | control | skipped
    reason: str
    channels: list[str]
    decision: dict[str, Any] | None

    def record(self, campaign_id: str, now: datetime) -> dict[str, Any]:
        return {
            "campaign_id": campaign_id,
            "customer_id": self.customer_id,
            "outcome": self.outcome,
            "reason": self.reason,
            "channels": self.channels,
            "decision": self.decision,
            "decided_at": now.isoformat(),
        }


def journey_name(campaign_id: str, customer_id: str) -> str:
    """An execution name (<= 80 chars of [A-Za-z0-9-_]) fixed by campaign and customer."""
    return f"{campaign_id[:40]}-{hashlib.sha256(customer_id.encode()).hexdigest()[:32]}"


def plan_customer(
    campaign_id: str,
    campaign: CampaignIn,
    record: CustomerRecord,
    now: datetime,
    population: dict[str, Any] | None,
) -> Plan:
    """What to do with one customer of the audience."""
    cid = record.customer_id
    if in_global_control(cid):
        return Plan(cid, "global_control", "in the global control group", [], None)
    if stable_unit("control", campaign_id, cid) < campaign.control_share:
        return Plan(cid, "control", "held out as control", [], None)
    channels = [c for c in campaign.channels if may_send(record, c)[0]]
    if not channels:
        reasons = "; ".join(may_send(record, c)[1] for c in campaign.channels)
        return Plan(cid, "skipped", f"no channel allowed ({reasons})", [], None)
    rec = record.recommendation or population or {}
    tz = record.timezone
    quiet = QuietHours(campaign.quiet_hours.start, campaign.quiet_hours.end) if campaign.quiet_hours else None
    mode = campaign.send_time.mode
    scores, window = decision_inputs(rec, channels[0])
    if mode == "optimized" and not scores:
        mode = "immediate"  # nothing scored yet: no better hour is known than the first allowed one
    d = decide(
        mode=mode,
        now=now,
        tz=tz,
        window_end=(
            min(
                campaign.expires_at,
                max(now, campaign.starts_at or now) + timedelta(hours=campaign.send_time.within_hours),
            )
            if mode == "optimized"
            else campaign.expires_at
        ),
        window_start=campaign.starts_at,
        hour_scores=scores,
        window=window,
        quiet=quiet,
        fixed_local=campaign.send_time.local_time,
        explore_share=campaign.send_time.explore_share,
        seed=(campaign_id, cid),
    )
    if d is None:
        return Plan(cid, "skipped", "no allowed send hour before the campaign expires", channels, None)
    decision = {
        "send_at": utc_iso(d.send_at),
        "hour_of_week": d.hour_of_week,
        "probability": d.probability,
        "policy": d.policy,
        "candidates": d.candidates,
        "timezone": tz,
        "model_version": rec.get("model_version"),
        # The calibrated probability of the chosen hour (what the model believed, for retraining).
        "score_of_hour": float(rec["hour_scores"][d.hour_of_week]) if rec.get("hour_scores") else None,
        "confidence": rec.get("confidence"),
        "steps": len(channels),
        "features": {
            "engagement_moments": record.aggregates.engagement_moments,
            "purchase_count": record.aggregates.purchase_count,
            "best_hour_of_week": rec.get("best_hour_of_week"),
        },
    }
    return Plan(cid, "scheduled", "ok", channels, decision)


def launch_page(
    campaign_id: str,
    customers: CustomerStore,
    campaigns: CampaignStore,
    starter: JourneyStarter,
    log: DecisionLog,
    now: datetime,
    segment: int,
    total_segments: int,
    cursor: str | None,
    time_left_ms: Callable[[], int],
    page_size: int = 500,
    reserve_ms: int = 60_000,
    carried: dict[str, Any] | None = None,
    messages: MessageLog | None = None,
) -> dict[str, Any]:
    """Plan and start journeys for one scan segment, page by page, until it ends or time runs short.

    ``messages`` (the message log) lets ``messages.<status>`` filters count a customer's past messages.

    ``carried`` holds the counts of the segment's earlier invocations (the launch state machine passes the
    previous result back in), so the result counts the whole segment so far.
    """
    doc = campaigns.get_campaign(campaign_id)
    counts = {k: int((carried or {}).get(k) or 0) for k in LAUNCH_COUNTS}
    stored = Campaign.from_doc(doc)
    if not stored.is_active:
        return {
            "campaign_id": campaign_id,
            "segment": segment,
            "total_segments": total_segments,
            "cursor": None,
            "done": True,
            "stopped": stored.status,
            **counts,
        }
    campaign = stored.definition
    filters = list(campaign.audience.filters)
    if campaign.audience.segment:
        filters += SegmentIn.model_validate(
            {k: v for k, v in campaigns.get_segment(campaign.audience.segment).items() if k != "updated_at"}
        ).filters
    population = customers.get_recommendation(POPULATION_KEY)
    history = CustomerHistory(customers, messages) if needs_history(filters) else None
    while True:
        page_start = cursor or ""
        records, cursor = customers.scan_customers(segment, total_segments, cursor, page_size)
        plans = []
        for record in records:
            if not matches(record, filters, now, history):
                counts["outside_audience"] += 1
                continue
            plan = plan_customer(campaign_id, campaign, record, now, population)
            if plan.outcome == "scheduled":
                payload = {
                    "campaign_id": campaign_id,
                    "customer_id": record.customer_id,
                    "send_at": plan.decision["send_at"],
                    "channels": plan.channels,
                    "step": 0,
                    "decision": plan.decision,
                }
                if not starter.start(journey_name(campaign_id, record.customer_id), payload):
                    counts["already_started"] += 1
            counts[plan.outcome] += 1
            plans.append(plan.record(campaign_id, now))
        if plans:
            page_key = f"{segment}-{hashlib.sha256(page_start.encode()).hexdigest()[:16]}"
            log.write(campaign_id, page_key, plans)
        if cursor is None or time_left_ms() < reserve_ms:
            break
    return {
        "campaign_id": campaign_id,
        "segment": segment,
        "total_segments": total_segments,
        "cursor": cursor,
        "done": cursor is None,
        **counts,
    }


def finish_launch(
    campaign_id: str, pages: list[dict[str, Any]], campaigns: CampaignStore, now: datetime
) -> dict[str, Any]:
    """Sum the final results of every segment, store them, and mark the campaign ``running``.

    ``pages`` holds one result per segment (the Map's output), each counting its whole segment.
    """
    totals = {k: sum(int(p.get(k, 0)) for p in pages) for k in LAUNCH_COUNTS}
    totals["segments"] = len(pages)
    doc = campaigns.record_launch(campaign_id, totals, now.isoformat())
    return {"campaign_id": campaign_id, "status": doc["status"], "totals": totals}


def record_failure(
    campaign_id: str,
    kind: str,
    error: dict[str, Any] | None,
    campaigns: CampaignStore,
    now: datetime,
    customer_id: str | None = None,
) -> dict[str, Any]:
    """Make a failure of the launch or of one journey visible on its campaign.

    A launch that fails (its retries spent) leaves the campaign ``failed`` with the reason, instead of
    ``scheduled`` forever; a journey that fails counts in ``journey_failures`` and the campaign goes on for
    everybody else. ``error`` is what a Step Functions ``Catch`` hands over (``Error`` and ``Cause``).

    Parameters
    ----------
    kind
        ``launch`` or ``journey``.
    customer_id
        The journey's customer; kept out of the stored reason (no personal data on the campaign).
    """
    if kind not in ("launch", "journey"):
        raise ValueError(f"unknown failure kind {kind!r}")
    error = error or {}
    name = str(error.get("Error") or "Error")
    cause = str(error.get("Cause") or "")
    try:  # a Lambda error's Cause is JSON with errorMessage; keep the message, not the stack
        cause = str(json.loads(cause).get("errorMessage") or cause)
    except (ValueError, AttributeError):
        pass
    reason = f"{name}: {cause}"[:1000] if cause else name
    campaigns.record_failure(campaign_id, kind, reason, now.isoformat(), fail=kind == "launch")
    return {"campaign_id": campaign_id, "kind": kind, "reason": reason, "customer": customer_id is not None}
