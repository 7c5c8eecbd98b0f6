"""What a journey or a campaign brought: where its customers are, what it sent, against its control group.

One module for both (a campaign is a journey with a scheduled entry). Paths say who entered, who was held out
as control and where each customer is; the message log says what was sent and how it ended (a message settled
``unconfirmed`` counts as delivered); opens and clicks are the customer's events that name a message; purchases
come from the customers' orders (an order is one purchase moment, its lines summed).

Conversions are measured alike in both groups (intent to treat): a customer converts when they place an order
within ``attribution_days`` after entering. Uplift is the treated group's rate minus the control group's, with
a 95% interval (Newcombe's, from Wilson intervals); revenue per customer likewise (Welch's normal interval).
Within the treated group, a conversion is credited to the last message delivered before the customer's first
order in the window (its node and channel), and its revenue to that message. A node with content variants is also
measured per variant (:func:`kairos.journeys.variants.variants_by_node`).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from kairos.core.timeutil import parse_ts
from kairos.insights.stats import mean_difference_interval, uplift_interval, wilson
from kairos.journeys.domain import JourneyIn
from kairos.journeys.paths import MEMBER, WAITING_STATUS
from kairos.journeys.variants import variants_by_node
from kairos.messaging.domain import DELIVERED

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from kairos.customers.domain import CustomerRecord
    from kairos.customers.ports import CustomerStore
    from kairos.journeys.ports import JourneyStore
    from kairos.messaging.ports import MessageLog

HOUR = 3600
STATUSES = ("sent", "unconfirmed", "failed", "skipped", "throttled", "unavailable", "sending")
ENGAGED = {"message_open": "opened", "message_click": "clicked"}


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


def journey_results(
    journey_id: str,
    store: JourneyStore,
    messages: MessageLog | None = None,
    customers: CustomerStore | None = None,
) -> dict[str, Any]:
    """Where the journey's customers are, how their paths ended, what was sent, and (with ``customers``) what it
    brought: opens, clicks and conversions per node and channel, by day, and against the control group."""
    doc = store.get_journey(journey_id)
    definition = JourneyIn.model_validate(doc["definition"])
    out: dict[str, Any] = {
        "journey_id": journey_id,
        "entries": 0,
        "control": 0,
        "active": 0,
        "completed": 0,
        "exited": {},
        "at_node": {},
        "visits": {},
        "messages": {},
        "variants": {},
        "skipped": 0,
    }
    treated: list[tuple[str, datetime]] = []
    held_out: list[tuple[str, datetime]] = []
    global_control = 0
    for p in store.journey_paths(journey_id):
        if p.get("entry_id") == MEMBER:
            continue  # a segment journey's record of who is in the segment, not a path
        out["entries"] += 1
        status = p.get("status")
        entered = parse_ts(p.get("entered_at"))
        member = (p["customer_id"], entered) if entered is not None else None
        if status == "control":
            out["control"] += 1
            if p.get("global_control"):
                global_control += 1
            elif member:
                held_out.append(member)
        elif status == "skipped":
            out["skipped"] += 1  # no channel it could reach: never messaged, outside both groups
            reason = p.get("exit_reason") or status
            out["exited"][reason] = out["exited"].get(reason, 0) + 1
        else:
            if member:
                treated.append(member)
            if status == WAITING_STATUS:
                out["active"] += 1
                out["at_node"][p["node"]] = out["at_node"].get(p["node"], 0) + 1
            else:
                out["completed"] += 1
                reason = p.get("exit_reason") or status
                out["exited"][reason] = out["exited"].get(reason, 0) + 1
        for node, n in (p.get("visits") or {}).items():
            out["visits"][node] = out["visits"].get(node, 0) + int(n)
        for name in (p.get("variants") or {}).values():
            out["variants"][name] = out["variants"].get(name, 0) + 1
    out["global_control"] = global_control
    out["held_out"] = out["control"]  # entries held out (``control`` becomes the control group's outcome below)
    out["status"] = "completed" if doc.get("status") == "archived" and out["active"] == 0 else str(doc.get("status"))
    out["attribution_days"] = definition.attribution_days
    steps: dict[tuple[str, str], dict[str, Any]] = {}
    by_day: dict[str, dict[str, Any]] = {}

    def day_row(day: str) -> dict[str, Any]:
        return by_day.setdefault(
            day,
            {"day": day, "entries": 0, "sent": 0, "opened": 0, "clicked": 0, "converted": 0, "revenue": 0.0},
        )

    for _, at in treated + held_out:
        day_row(at.date().isoformat())["entries"] += 1
    delivered: dict[str, list[tuple[datetime, tuple[str, str]]]] = {}
    step_of: dict[str, tuple[str, str]] = {}
    # Content variants: their messages, and each delivered message by id (the last touch names one).
    varied: list[dict[str, Any]] = []
    touches: dict[str, list[tuple[datetime, str]]] = {}
    for m in messages.for_campaign(journey_id) if messages is not None else []:
        if m.get("variant"):
            varied.append(m)
        key = (str(m.get("node") or m.get("step")), str(m.get("channel")))
        step_of[str(m["message_id"])] = key
        row = steps.setdefault(
            key,
            {
                "node": key[0],
                "step": int(m.get("step") or 0),
                "channel": key[1],
                "messages": 0,
                **dict.fromkeys(STATUSES, 0),
                "opened": 0,
                "clicked": 0,
                "converted": 0,
                "revenue": 0.0,
            },
        )
        row["step"] = min(row["step"], int(m.get("step") or 0))
        row["messages"] += 1
        status = str(m.get("status"))
        row[status] = row.get(status, 0) + 1
        by = out["messages"].setdefault(key[1], {})
        by[status] = by.get(status, 0) + 1
        sent_at = parse_ts(m.get("sent_at"))
        if status in DELIVERED and sent_at is not None:
            delivered.setdefault(m["customer_id"], []).append((sent_at, key))
            touches.setdefault(m["customer_id"], []).append((sent_at, str(m["message_id"])))
            day_row(sent_at.date().isoformat())["sent"] += 1
    promoted = doc.get("promoted") or {}
    if customers is None:
        out["variants_by_node"] = variants_by_node(definition, varied, promoted)
        return out | {"steps": [steps[k] for k in sorted(steps)], "by_day": [by_day[d] for d in sorted(by_day)]}
    engaged: dict[str, set[str]] = {}
    # Opens and clicks: the customer's events that name one of this journey's messages (once per message).
    for cid in sorted(delivered):
        seen: set[tuple[str, str]] = set()
        for ev in customers.message_events(cid, f"{journey_id}."):
            kind = ENGAGED.get(ev.get("type", ""))
            mid = str(ev.get("message_id"))
            if kind is None or mid not in step_of or (mid, kind) in seen:
                continue
            seen.add((mid, kind))
            engaged.setdefault(mid, set()).add(kind)
            steps[step_of[mid]][kind] += 1
            at = _event_time(ev)
            if at is not None:
                day_row(at.date().isoformat())[kind] += 1
    window = timedelta(days=definition.attribution_days)
    by_message = {mid: {"converted": 0, "revenue": 0.0} for mid in step_of} if varied else {}
    records = customers.get_customers(sorted({c for c, _ in treated + held_out}))
    for cid, entered in treated:
        orders = orders_between(records.get(cid), entered, entered + window)
        if not orders:
            continue
        day = day_row(orders[0][0].date().isoformat())
        day["converted"] += 1
        day["revenue"] = round(day["revenue"] + sum(a for _, a in orders), 2)
        credit_last_touch(steps, delivered.get(cid, []), orders)
        if varied:
            credit_last_touch(by_message, touches.get(cid, []), orders)
    measured = with_uplift(group_outcome(treated, records, window), group_outcome(held_out, records, window))
    credited = {mid: c["revenue"] for mid, c in by_message.items() if c["converted"]}
    out["variants_by_node"] = variants_by_node(definition, varied, promoted, engaged, credited)
    return out | measured | {"steps": [steps[k] for k in sorted(steps)], "by_day": [by_day[d] for d in sorted(by_day)]}
