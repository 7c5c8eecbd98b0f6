"""Audience filters evaluated on a customer's profile, aggregates, latest RFM and history.

Most fields read the customer record alone. Counts over a window (``events.<type>``, ``messages.<status>``)
read the customer's stored events and message log through a :class:`CustomerHistory`, fetched only for
customers that reach such a filter (groups short-circuit: put cheap filters first).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from kairos.core.timeutil import parse_ts
from kairos.customers.loyalty_domain import balance as points_balance
from kairos.customers.loyalty_domain import next_expiry as points_next_expiry
from kairos.insights.measures import rfm_group_of

if TYPE_CHECKING:
    from collections.abc import Iterable

    from kairos.audiences.domain import Filter
    from kairos.customers.domain import CustomerRecord
    from kairos.customers.ports import CustomerStore
    from kairos.messaging.ports import MessageLog

DAY = 86400


class CustomerHistory:
    """A customer's stored events and messages, read once while the filters of that customer are evaluated
    (only the current customer's are kept: an audience is evaluated one customer at a time)."""

    def __init__(self, customers: CustomerStore, messages: MessageLog | None = None) -> None:
        self._customers = customers
        self._messages = messages
        self._customer: str | None = None
        self._events: list[dict[str, Any]] | None = None
        self._logged: list[dict[str, Any]] | None = None

    def _switch(self, customer_id: str) -> None:
        if customer_id != self._customer:
            self._customer, self._events, self._logged = customer_id, None, None

    def events(self, customer_id: str) -> list[dict[str, Any]]:
        self._switch(customer_id)
        if self._events is None:
            self._events = self._customers.customer_events(customer_id)
        return self._events

    def messages(self, customer_id: str) -> list[dict[str, Any]]:
        if self._messages is None:
            raise ValueError("messages.<status> filters need the message log here")
        self._switch(customer_id)
        if self._logged is None:
            self._logged = self._messages.for_customer(customer_id)
        return self._logged


def _history_count(record: CustomerRecord, f: Filter, now: datetime, history: CustomerHistory | None) -> int:
    if history is None:
        raise ValueError(f"'{f.field}' needs the customer's history, which is not available here")
    since = (now - timedelta(days=f.within_days or 0)).timestamp()
    return sum(1 for at in _history_times(record, f, history) if since <= at <= now.timestamp())


# Fields that are an aggregate as it is stored.
_PLAIN = {
    "purchase_count": "purchase_count",
    "monetary_total": "monetary_total",
    "engagement_moments": "engagement_moments",
    "cart_abandon_amount": "last_cart_abandon_amount",
    "stage": "stage",
    "previous_stage": "previous_stage",
}
# Fields whose value grows with time alone: the moment each counts from (Unix seconds), or None.
_SINCE = {
    "days_since_last_purchase": lambda agg: agg.last_purchase_s,
    "days_since_last_engagement": lambda agg: agg.last_engaged_s,
    "days_since_cart_abandon": lambda agg: agg.last_cart_abandon_s,
    "days_in_stage": lambda agg: agg.stage_at,
}


def field_value(record: CustomerRecord, field: str, now: datetime) -> Any:
    """The value a filter field reads, or ``None`` when the customer has none."""
    agg = record.aggregates
    now_s = now.timestamp()
    if field in _PLAIN:
        return getattr(agg, _PLAIN[field])
    if field in _SINCE:
        start = _SINCE[field](agg)
        return None if start is None else (now_s - start) / DAY
    if field.startswith("points."):
        return _points_value(agg, field, int(now_s))
    if field in ("orders.last_amount", "orders.max_amount"):
        if not agg.orders:
            return None
        return agg.orders[-1][1] if field == "orders.last_amount" else max(a for _, a in agg.orders)
    if field == "rfm.group":
        return rfm_group_of((record.recommendation or {}).get("rfm"))
    if field.startswith("rfm."):
        rfm = (record.recommendation or {}).get("rfm") or {}
        return rfm.get(field.split(".", 1)[1])
    if field == "lifecycle.days_to_next_purchase":
        soonest = next_purchase_s(record)
        return None if soonest is None else (soonest - now_s) / DAY
    if field.startswith("lifecycle."):
        return ((record.recommendation or {}).get("lifecycle") or {}).get(field.split(".", 1)[1])
    if field.startswith("attributes."):
        return ((record.profile or {}).get("attributes") or {}).get(field.split(".", 1)[1])
    if field.startswith("consent."):
        return bool(((record.profile or {}).get("consent") or {}).get(field.split(".", 1)[1]))
    raise ValueError(f"unknown filter field {field}")


def next_purchase_s(record: CustomerRecord, product_id: str | None = None) -> float | None:
    """When the latest scoring run expects the customer's soonest repurchase of a consumable (of ``product_id``
    when given): the start of that UTC day, Unix seconds; ``None`` when none is expected."""
    dates = ((record.recommendation or {}).get("lifecycle") or {}).get("next_purchase_at") or {}
    if product_id is not None:
        dates = {product_id: dates[product_id]} if product_id in dates else {}
    days = [d for d in dates.values() if isinstance(d, str)]
    return datetime.fromisoformat(min(days)).replace(tzinfo=UTC).timestamp() if days else None


def _points_value(agg: Any, field: str, now_s: int) -> Any:
    if field == "points.balance":
        return points_balance(agg, now_s)
    nxt = points_next_expiry(agg, now_s)
    if field == "points.expiring":
        return nxt[1] if nxt else 0
    if field == "points.days_to_expiry":
        return None if nxt is None else (nxt[0] - now_s) / DAY
    raise ValueError(f"unknown filter field {field}")


def matches_filter(record: CustomerRecord, f: Filter, now: datetime, history: CustomerHistory | None = None) -> bool:
    """Whether one filter (or group) holds for the customer at ``now``; a missing value never matches (except
    ``not_exists``)."""
    if f.field is None:
        if f.all_of is not None:
            return all(matches_filter(record, g, now, history) for g in f.all_of)
        if f.any_of is not None:
            return any(matches_filter(record, g, now, history) for g in f.any_of)
        assert f.not_ is not None
        return not matches_filter(record, f.not_, now, history)
    if f.field.startswith(("events.", "messages.")):
        return compare(_history_count(record, f, now, history), f.op, f.value)
    if f.field == "bought_product":
        hit = f.value in record.aggregates.product_purchases
        return hit if f.op != "ne" else not hit
    if f.field == "viewed_product":
        hit = any(p == f.value for p, *_ in record.aggregates.recent_products)
        return hit if f.op != "ne" else not hit
    return compare(field_value(record, f.field, now), f.op, f.value)


def compare(value: Any, op: str, expected: Any) -> bool:
    """Whether ``value`` meets ``op expected``; a missing value never matches (except ``not_exists``).

    ``contains``: a list holds ``expected``, or a string contains it (case-insensitive).
    """
    if op == "exists":
        return value is not None
    if op == "not_exists":
        return value is None
    if value is None:
        return False
    try:
        if op == "eq":
            return value == expected
        if op == "ne":
            return value != expected
        if op == "in":
            return value in expected
        if op == "contains":
            return expected in value if isinstance(value, list) else str(expected).lower() in str(value).lower()
        if op == "gt":
            return value > expected
        if op == "gte":
            return value >= expected
        if op == "lt":
            return value < expected
        if op == "lte":
            return value <= expected
    except TypeError:
        return False  # a value of another type than the condition's: no match, not an error
    raise ValueError(f"unknown operator {op}")


def matches(
    record: CustomerRecord, filters: Iterable[Filter], now: datetime, history: CustomerHistory | None = None
) -> bool:
    """All filters hold (an empty list matches everybody)."""
    return all(matches_filter(record, f, now, history) for f in filters)


def next_change(
    record: CustomerRecord, filters: Iterable[Filter], now: datetime, history: CustomerHistory | None = None
) -> datetime | None:
    """The first time after ``now`` at which the filters may hold differently with no new data, or ``None``.

    Time alone moves ``days_since_*`` values (a threshold is crossed at the moment counted from plus the
    condition's days) and the windows of ``events.<type>`` and ``messages.<status>`` counts (an event leaves the
    window ``within_days`` after it happened, one dated ahead enters it at its time). Between two such moments
    every filter holds as it does now, so evaluating again at the earliest one is exact; every other field
    changes only with the customer's data (an event, a profile, a scoring run).
    """
    moments: list[float] = []
    for f in filters:
        _change_moments(record, f, now, history, moments)
    after = [m for m in moments if m > now.timestamp()]
    return datetime.fromtimestamp(min(after) + 1, UTC) if after else None


def _change_moments(
    record: CustomerRecord, f: Filter, now: datetime, history: CustomerHistory | None, out: list[float]
) -> None:
    if f.field is None:
        for g in [*(f.all_of or []), *(f.any_of or []), *([f.not_] if f.not_ else [])]:
            _change_moments(record, g, now, history, out)
        return
    if f.field.startswith("points."):
        # The balance and what expires next change when a lot expires; the days left cross the condition's days
        # before that.
        expiries = [expires for expires, points in record.aggregates.points_lots if expires and points > 0]
        out.extend(expiries)
        if f.field == "points.days_to_expiry" and isinstance(f.value, int | float) and not isinstance(f.value, bool):
            out.extend(e - float(f.value) * DAY for e in expiries)
        return
    if f.field == "lifecycle.days_to_next_purchase":
        soonest = next_purchase_s(record)
        if soonest is not None and isinstance(f.value, int | float) and not isinstance(f.value, bool):
            out.append(soonest - float(f.value) * DAY)
        return
    if f.field in _SINCE:
        start = _SINCE[f.field](record.aggregates)
        if start is not None and isinstance(f.value, int | float) and not isinstance(f.value, bool):
            out.append(start + float(f.value) * DAY)
        return
    if f.field.startswith(("events.", "messages.")) and history is not None:
        window = (f.within_days or 0) * DAY
        for at in _history_times(record, f, history):
            out.extend((at, at + window))


def _history_times(record: CustomerRecord, f: Filter, history: CustomerHistory) -> list[float]:
    """When each event or message a window count of ``f`` reads happened (Unix seconds)."""
    kind, _, what = (f.field or "").partition(".")
    if kind == "events":
        return [
            parse_ts(ev["timestamp"]).timestamp()
            for ev in history.events(record.customer_id)
            if ev.get("type") == what and not (f.channel and ev.get("channel") != f.channel)
        ]
    out = []
    for m in history.messages(record.customer_id):
        if what != "any" and m.get("status") != what:
            continue
        if (f.channel and m.get("channel") != f.channel) or (f.campaign_id and m.get("campaign_id") != f.campaign_id):
            continue
        at = m.get("sent_at") or m.get("claimed_at")
        if at:
            out.append(parse_ts(at).timestamp())
    return out


def needs_history(filters: Iterable[Filter]) -> bool:
    """Whether any filter (or group member) counts events or messages over a window."""
    for f in filters:
        if f.field is not None and f.field.startswith(("events.", "messages.")):
            return True
        if f.field is None and needs_history([*(f.all_of or []), *(f.any_of or []), *([f.not_] if f.not_ else [])]):
            return True
    return False
