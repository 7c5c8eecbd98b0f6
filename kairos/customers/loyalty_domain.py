"""Loyalty points: a ledger per customer folded from events, that never goes negative and counts each event once.

Three event types carry points (``properties.points``, a positive whole number):

- ``points_earned``: a lot of points, expiring at ``properties.expires_at`` (an ISO date or time) or never;
- ``points_spent``: points redeemed, taken from the lots that expire first;
- ``points_expired``: points the shop's own system expired, taken the same way.

The ledger is the customer's lots (``[expires_at, points left]``, Unix seconds, 0 for never) on the aggregates:
the balance at a time is what the lots not expired by then hold, so points expire when their time comes with no
event. Ingestion refuses (by index, naming the field) a spend or an expiry of more points than the customer holds
at the event's time, and a points event without a valid ``points``; each event is folded once, as every event is.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time
from typing import Any, Protocol


class CustomerAggregates(Protocol):
    """The ledger's fields of a customer's aggregates (``kairos.customers.aggregates``)."""

    points_lots: list[list[int]]
    points_earned: int
    points_spent: int
    points_expired: int


EARNED, SPENT, EXPIRED = "points_earned", "points_spent", "points_expired"
LOYALTY_TYPES = frozenset({EARNED, SPENT, EXPIRED})
MAX_POINTS = 10**9  # points in one event
MAX_LOTS = 200  # lots kept per customer; past it the two that expire last are merged (the later expiry kept)
NEVER = 0


def _points(properties: dict[str, Any] | None) -> int | None:
    value = (properties or {}).get("points")
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        return None
    return int(value) if 0 < value <= MAX_POINTS else None


def expiry_of(properties: dict[str, Any] | None) -> int | None:
    """``properties.expires_at`` as Unix seconds (a bare date: its end, UTC); ``NEVER`` when absent, ``None`` when
    it is not a date."""
    raw = (properties or {}).get("expires_at")
    if raw is None:
        return NEVER
    if not isinstance(raw, str):
        return None
    try:
        if len(raw) == 10:
            return int(datetime.combine(datetime.fromisoformat(raw).date(), time.max, UTC).timestamp())
        at = datetime.fromisoformat(raw)
    except ValueError:
        return None
    if at.utcoffset() is None:
        return None
    return int(at.timestamp())


def _live(lot: list[int], at_s: int) -> bool:
    return lot[0] == NEVER or lot[0] > at_s


def balance(agg: CustomerAggregates, at_s: int) -> int:
    """The points the customer holds at ``at_s`` (lots expired by then do not count)."""
    return sum(points for expires, points in agg.points_lots if _live([expires, points], at_s))


def next_expiry(agg: CustomerAggregates, at_s: int) -> tuple[int, int] | None:
    """When the next points expire after ``at_s`` and how many: ``(Unix seconds, points)``, or ``None``."""
    dated = sorted(lot for lot in agg.points_lots if lot[0] != NEVER and lot[0] > at_s and lot[1] > 0)
    if not dated:
        return None
    first = dated[0][0]
    return first, sum(points for expires, points in dated if expires == first)


def refusal(event_type: str, properties: dict[str, Any] | None, agg: CustomerAggregates, at_s: int) -> tuple[str, str]:
    """Why a points event cannot be folded into these aggregates: ``(field, reason)``, or ``("", "")`` when it can."""
    points = _points(properties)
    if points is None:
        return "properties.points", f"{event_type} needs properties.points, a whole number from 1 to {MAX_POINTS}"
    if event_type == EARNED and expiry_of(properties) is None:
        return "properties.expires_at", "properties.expires_at must be an ISO date or a time with a UTC offset"
    if event_type in (SPENT, EXPIRED):
        held = balance(agg, at_s)
        if points > held:
            return "properties.points", f"the customer holds {held} points at the event's time, not {points}"
    return "", ""


def screen(events: list[Any], agg: CustomerAggregates) -> tuple[list[Any], list[tuple[Any, str, str]]]:
    """The events a customer's ledger can take, in order, and those it refuses with ``(event, field, reason)``: a
    batch that earns then spends is taken whole, one that spends more than was earned loses the spend."""
    ledger = replace(agg, points_lots=[list(lot) for lot in agg.points_lots])  # type: ignore[type-var]
    kept, refused = [], []
    for ev in events:
        if ev.type in LOYALTY_TYPES:
            at_s = int(ev.timestamp.timestamp())
            field, reason = refusal(ev.type, ev.properties, ledger, at_s)
            if field:
                refused.append((ev, field, reason))
                continue
            apply(ledger, ev.type, ev.properties, at_s)
        kept.append(ev)
    return kept, refused


def apply(agg: CustomerAggregates, event_type: str, properties: dict[str, Any] | None, at_s: int) -> None:
    """Fold one points event (checked with :func:`refusal` first) into the ledger."""
    points = _points(properties)
    if points is None:
        return
    _drop_expired(agg, at_s)
    if event_type == EARNED:
        agg.points_earned += points
        agg.points_lots.append([expiry_of(properties) or NEVER, points])
        agg.points_lots.sort(key=lambda lot: (lot[0] == NEVER, lot[0]))
        while len(agg.points_lots) > MAX_LOTS:
            last = agg.points_lots.pop()
            agg.points_lots[-1][1] += last[1]
            agg.points_lots[-1][0] = last[0]
        return
    left = points
    for lot in agg.points_lots:  # the lots that expire first go first
        if left == 0:
            break
        if _live(lot, at_s):
            take = min(left, lot[1])
            lot[1] -= take
            left -= take
    taken = points - left
    if event_type == SPENT:
        agg.points_spent += taken
    else:
        agg.points_expired += taken
    agg.points_lots = [lot for lot in agg.points_lots if lot[1] > 0]


def _drop_expired(agg: CustomerAggregates, at_s: int) -> None:
    """Count the lots whose time came as expired and forget them."""
    gone = [lot for lot in agg.points_lots if not _live(lot, at_s)]
    if gone:
        agg.points_expired += sum(points for _, points in gone)
        agg.points_lots = [lot for lot in agg.points_lots if _live(lot, at_s)]


def summary(agg: CustomerAggregates, at_s: int) -> dict[str, Any]:
    """The ledger as profiles, segments and templates show it at ``at_s``."""
    nxt = next_expiry(agg, at_s)
    lapsed = sum(lot[1] for lot in agg.points_lots if not _live(lot, at_s))
    return {
        "balance": balance(agg, at_s),
        "earned": agg.points_earned,
        "spent": agg.points_spent,
        "expired": agg.points_expired + lapsed,
        "next_expiry_at": datetime.fromtimestamp(nxt[0], UTC).isoformat() if nxt else None,
        "next_expiry_points": nxt[1] if nxt else 0,
    }
