"""When a delay node ends: after its ``hours``, at its ``local_time`` in the customer's zone, or at the customer's
best hour within ``best_hour_within_hours`` (the send-time model's decision, asked at this node).

A best-hour decision comes with what the model saw when it chose (the hour's score, its probability under the
policy, the model version, a few features): the runner keeps it on the path, the next message's log record
carries it, and retraining reads it to correct for the policy that chose the hour.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from kairos.core.timeutil import utc_iso
from kairos.models.timing import decide, decision_inputs

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from kairos.customers.domain import CustomerRecord
    from kairos.journeys.domain import Delay
    from kairos.models.timing import QuietHours


def delay_end(
    node: Delay,
    record: CustomerRecord,
    population: Callable[[], dict[str, Any] | None] | None,
    now: datetime,
    quiet: QuietHours | None,
    seed: tuple[str, ...],
) -> tuple[datetime, dict[str, Any] | None]:
    """When the delay ends, and the send-time decision behind it (``None`` for fixed hours or no decision).

    Parameters
    ----------
    node
        The delay node.
    record
        The customer: time zone, recommendation (hour scores) and aggregates.
    population
        The population's recommendation, for a customer without one of their own.
    now
        The time of the step.
    quiet
        The journey's quiet hours: no best hour falls inside them.
    seed
        Fixes the exploration draw (journey, customer, entry).

    Returns
    -------
    tuple
        The end of the delay, and the decision to note on the path.
    """
    if node.hours is not None:
        return now + timedelta(hours=node.hours), None
    tz = record.timezone
    rec = record.recommendation or (population() if population else None) or {}
    scores, window = decision_inputs(rec)
    if node.local_time is not None:
        mode = "fixed"
    else:
        mode = "optimized" if scores else "immediate"  # nothing scored yet: no hour is known to be better
    window_end = now + timedelta(hours=node.best_hour_within_hours or 24 * 8)
    d = decide(
        mode=mode,
        fixed_local=node.local_time,
        now=now,
        tz=tz,
        window_end=window_end,
        hour_scores=scores,
        window=window,
        quiet=quiet,
        explore_share=node.explore_share,
        seed=seed,
    )
    if d is None:
        return now, None
    # What the model saw when it chose this hour: logged with the message, read by retraining.
    return d.send_at, {
        "send_at": utc_iso(d.send_at),
        "hour_of_week": d.hour_of_week,
        "probability": d.probability,
        "policy": d.policy,
        "candidates": d.candidates,
        "model_version": rec.get("model_version"),
        "timezone": tz,
        "score_of_hour": float(rec["hour_scores"][d.hour_of_week]) if rec.get("hour_scores") else None,
        "confidence": rec.get("confidence"),
        "features": {
            "engagement_moments": record.aggregates.engagement_moments,
            "purchase_count": record.aggregates.purchase_count,
            "best_hour_of_week": rec.get("best_hour_of_week"),
            # The hours the policy could choose from: an off-policy estimate asks another model the same question
            # (training/ope.py), so it is credited only on hours this decision could have sent at.
            "window": [utc_iso(now), utc_iso(window_end)],
            "quiet": None if quiet is None else [quiet.start.isoformat("minutes"), quiet.end.isoformat("minutes")],
        },
    }
