"""Audience filters evaluated on a customer's profile and aggregates."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import datetime

    from kairos.domain.campaigns import Filter
    from kairos.domain.customers import CustomerRecord

DAY = 86400


def field_value(record: CustomerRecord, field: str, now: datetime) -> Any:
    """The value a filter field reads, or ``None`` when the customer has none."""
    agg = record.aggregates
    now_s = now.timestamp()
    if field == "purchase_count":
        return agg.purchase_count
    if field == "monetary_total":
        return agg.monetary_total
    if field == "engagement_moments":
        return agg.engagement_moments
    if field == "days_since_last_purchase":
        return None if agg.last_purchase_s is None else (now_s - agg.last_purchase_s) / DAY
    if field == "days_since_last_engagement":
        h = agg.last_engagement_h
        return None if h is None else (now_s - h * 3600) / DAY
    if field == "cart_abandon_amount":
        return agg.last_cart_abandon_amount
    if field == "days_since_cart_abandon":
        return None if agg.last_cart_abandon_s is None else (now_s - agg.last_cart_abandon_s) / DAY
    if field.startswith("attributes."):
        return ((record.profile or {}).get("attributes") or {}).get(field.split(".", 1)[1])
    if field.startswith("consent."):
        return bool(((record.profile or {}).get("consent") or {}).get(field.split(".", 1)[1]))
    raise ValueError(f"unknown filter field {field}")


def matches_filter(record: CustomerRecord, f: Filter, now: datetime) -> bool:
    """Whether one filter holds for the customer at ``now``; a missing value never matches (except ``not_exists``)."""
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


def matches(record: CustomerRecord, filters: Iterable[Filter], now: datetime) -> bool:
    """All filters hold (an empty list matches everybody)."""
    return all(matches_filter(record, f, now) for f in filters)
