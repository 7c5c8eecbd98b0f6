"""Did a campaign work: per step and channel, by day, and against its control group.

The launch decided, for every customer of the audience, ``scheduled`` (messaged), ``control`` (held out),
or ``skipped``; the decision log keeps each decision. The message log keeps every message with its outcome,
opens and clicks are the customer's events that name the message, and purchases come from the customers'
orders (an order is one purchase moment, its lines summed).

Conversions are measured the same way in both groups (intent to treat): a customer converts when they
place an order within ``attribution_days`` after the launch. Uplift is the treated group's rate minus the
control group's, with a 95% interval (Newcombe's, from Wilson intervals); revenue per customer likewise
(Welch's normal interval). Within the treated group, a conversion is credited to the last message delivered
before the customer's first order in the window (its step and channel), and its revenue to that message.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from kairos.domain.campaigns import ACTIVE_STATUSES, Campaign
from kairos.domain.messages import DELIVERED
from kairos.logic.stats import mean_difference_interval, uplift_interval, wilson
from kairos.timeutil import parse_ts

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from kairos.domain.customers import CustomerRecord
    from kairos.ports import CampaignStore, CustomerStore, DecisionLog, MessageLog

HOUR = 3600
STATUSES = ("sent", "unconfirmed", "failed", "skipped", "throttled", "unavailable", "sending")
# The launch writes its decisions within this many days of its start.
LAUNCH_DAYS = 3


def credit_last_touch(
    steps: dict[Any, dict[str, Any]],
    sends: Sequence[tuple[datetime, Any]],
    orders: Sequence[tuple[datetime, float]],
) -> None:
    """Credit a customer's conversion and the revenue of ``orders`` to the last of their delivered ``sends``
    (time, step key) before the first order (within its hour); nothing when no order or no send before it."""
    if not orders:
        return
    first = orders[0][0]
    before = [(t, k) for t, k in sends if t <= first + timedelta(hours=1)]
    if before:
        key = max(before)[1]
        steps[key]["converted"] += 1
        steps[key]["revenue"] = round(steps[key]["revenue"] + sum(a for _, a in orders), 2)


def launched_at(doc: dict[str, Any], campaign: Campaign) -> datetime:
    """When the campaign's audience was decided: its start, or its creation."""
    start = campaign.definition.starts_at or parse_ts(doc.get("created_at")) or datetime.now(UTC)
    return start.astimezone(UTC)


def orders_between(record: CustomerRecord | None, start: datetime, end: datetime) -> list[tuple[datetime, float]]:
    """The customer's orders (start of their purchase hour, amount) in ``[start, end)``."""
    if record is None:
        return []
    lo, hi = start.timestamp(), end.timestamp()
    out = []
    for hour, amount in record.aggregates.orders:
        at = hour * HOUR
        # An order in the launch's own hour counts when its hour ends after the launch.
        if lo - HOUR < at < hi:
            out.append((datetime.fromtimestamp(at, UTC), float(amount)))
    return out


def _event_time(ev: dict[str, Any]) -> datetime | None:
    ts = ev.get("ts")
    if ts is not None and not isinstance(ts, str):
        return datetime.fromtimestamp(float(ts), UTC)
    return parse_ts(ts or ev.get("timestamp"))


def _rate(n: int, d: int) -> float | None:
    return round(n / d, 6) if d else None


def _interval(pair: tuple[float, float]) -> list[float] | None:
    return None if any(math.isnan(x) for x in pair) else [round(pair[0], 6), round(pair[1], 6)]


def group_outcome(
    members: Iterable[tuple[str, datetime]], records: dict[str, CustomerRecord], window: timedelta
) -> dict[str, Any]:
    """Conversions and revenue of ``(customer, start)`` members within ``window`` after each start."""
    orders = [orders_between(records.get(c), t, t + window) for c, t in members]
    return outcome_summary([bool(o) for o in orders], [sum(a for _, a in o) for o in orders])


def outcome_summary(converted_flags: Sequence[bool], revenue: Sequence[float]) -> dict[str, Any]:
    """A group's customers, conversions (rate with its Wilson interval) and revenue, from each member's
    conversion and revenue; ``_revenue`` keeps the members' revenue for :func:`with_uplift`."""
    n = len(converted_flags)
    converted = sum(1 for c in converted_flags if c)
    revenue = list(revenue)
    return {
        "customers": n,
        "converted": converted,
        "conversion_rate": _rate(converted, n),
        "conversion_interval": _interval(wilson(converted, n)),
        "revenue": round(sum(revenue), 2),
        "revenue_per_customer": round(sum(revenue) / n, 4) if n else None,
        "_revenue": revenue,
    }


def campaign_results(
    campaign_id: str,
    campaigns: CampaignStore,
    decisions: DecisionLog,
    messages: MessageLog,
    customers: CustomerStore,
    now: datetime,
) -> dict[str, Any]:
    """The campaign's results (see the module's docstring); ``NotFoundError`` for an unknown campaign."""
    doc = campaigns.get_campaign(campaign_id)
    campaign = Campaign.from_doc(doc)
    definition = campaign.definition
    start = launched_at(doc, campaign)
    window = timedelta(days=definition.attribution_days)
    end = start + window
    days = {(start + timedelta(days=k)).date() for k in range(LAUNCH_DAYS + 1) if start + timedelta(days=k) <= now}
    plans = decisions.read(campaign_id, days | {start.date()})
    outcome = {p["customer_id"]: p.get("outcome") for p in plans}
    treated = sorted(c for c, o in outcome.items() if o == "scheduled")
    control = sorted(c for c, o in outcome.items() if o == "control")
    records = customers.get_customers(treated + control)

    logged = messages.for_campaign(campaign_id)
    steps: dict[tuple[int, str], dict[str, Any]] = {}
    by_day: dict[str, dict[str, Any]] = {}

    def day_row(day: str) -> dict[str, Any]:
        return by_day.setdefault(
            day, {"day": day, "sent": 0, "opened": 0, "clicked": 0, "converted": 0, "revenue": 0.0}
        )

    delivered_by_customer: dict[str, list[tuple[datetime, tuple[int, str]]]] = {}
    step_of: dict[str, tuple[int, str]] = {}
    for m in logged:
        key = (int(m.get("step") or 0), str(m.get("channel")))
        step_of[str(m["message_id"])] = key
        row = steps.setdefault(
            key,
            {"step": key[0], "channel": key[1], "messages": 0, **dict.fromkeys(STATUSES, 0), "opened": 0, "clicked": 0},
        )
        row["messages"] += 1
        status = str(m.get("status"))
        row[status] = row.get(status, 0) + 1
        sent_at = parse_ts(m.get("sent_at"))
        if status in DELIVERED and sent_at is not None:
            delivered_by_customer.setdefault(m["customer_id"], []).append((sent_at, key))
            day_row(sent_at.date().isoformat())["sent"] += 1

    # Opens and clicks: the customer's events that name one of this campaign's messages (once per message).
    for cid in sorted(delivered_by_customer):
        seen: set[tuple[str, str]] = set()
        for ev in customers.message_events(cid, f"{campaign_id}.{cid}."):
            kind = {"message_open": "opened", "message_click": "clicked"}.get(ev.get("type", ""))
            mid = str(ev.get("message_id"))
            if kind is None or mid not in step_of or (mid, kind) in seen:
                continue
            seen.add((mid, kind))
            steps[step_of[mid]][kind] += 1
            at = _event_time(ev)
            if at is not None:
                day_row(at.date().isoformat())[kind] += 1

    # Conversions credited to the last delivered message before the first order in the window.
    for row in steps.values():
        row.update(converted=0, revenue=0.0)
    for cid in treated:
        orders = orders_between(records.get(cid), start, end)
        if not orders:
            continue
        first = orders[0][0]
        for at, amount in orders:
            day = day_row(at.date().isoformat())
            day["revenue"] = round(day["revenue"] + amount, 2)
        day_row(first.date().isoformat())["converted"] += 1
        credit_last_touch(steps, delivered_by_customer.get(cid, []), orders)

    t = group_outcome([(cid, start) for cid in treated], records, window)
    c = group_outcome([(cid, start) for cid in control], records, window)
    return with_uplift(t, c) | {
        "campaign_id": campaign_id,
        "status": effective_status(doc, now),
        "launched_at": start.isoformat(),
        "attribution_days": definition.attribution_days,
        "attribution_ends_at": end.isoformat(),
        "audience": {
            "decided": len(outcome),
            "scheduled": len(treated),
            "control": len(control),
            "skipped": sum(1 for o in outcome.values() if o == "skipped"),
            **{f"launch_{k}": int(v) for k, v in (doc.get("launch") or {}).items() if isinstance(v, int | float)},
        },
        "steps": [steps[k] for k in sorted(steps)],
        "by_day": [by_day[d] for d in sorted(by_day)],
    }


def with_uplift(t: dict[str, Any], c: dict[str, Any]) -> dict[str, Any]:
    """``treatment``, ``control`` and ``uplift`` (conversion rate and revenue per customer, with intervals)."""
    t_rev, c_rev = t.pop("_revenue"), c.pop("_revenue")
    uplift = {
        "conversion": None
        if t["conversion_rate"] is None or c["conversion_rate"] is None
        else {
            "difference": round(t["conversion_rate"] - c["conversion_rate"], 6),
            "interval": _interval(uplift_interval(t["converted"], t["customers"], c["converted"], c["customers"])),
        },
        "revenue_per_customer": None
        if not t["customers"] or not c["customers"]
        else {
            "difference": round(t["revenue_per_customer"] - c["revenue_per_customer"], 4),
            "interval": _interval(mean_difference_interval(t_rev, c_rev)),
        },
    }
    return {"treatment": t, "control": c, "uplift": uplift}


def effective_status(doc: dict[str, Any], now: datetime) -> str:
    """A running campaign is ``completed`` once it has expired: nothing more is sent after ``expires_at``."""
    status = str(doc.get("status"))
    expires = parse_ts((doc.get("definition") or {}).get("expires_at"))
    if status in ACTIVE_STATUSES and status == "running" and expires is not None and now >= expires:
        return "completed"
    return status
