"""Lifecycle features: what a customer's purchase history says about their next 90 days.

One row per customer (``LIFECYCLE_FEATURES``), computed from :class:`CustomerAggregates` and the scoring time
only, as every feature of Kairos is: training folds archived events to each snapshot time and calls
:func:`lifecycle_features`, the score function calls it on the stored aggregates. The same module gives the
``(frequency, recency, T, mean order value)`` summary the BG/NBD and Gamma-Gamma baselines read
(:func:`repeat_summary`) and each product's own repurchase interval (:func:`product_intervals`), which the
next purchase dates of consumable products start from.

Purchases are counted as *purchase days* (UTC days with a purchase, ``purchase_days``): a customer who orders
twice in an afternoon has bought once, as in Fader and Hardie's BG/NBD data preparation.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

import numpy as np

from kairos.core.timeutil import HOUR
from kairos.models.features.shared import DAY_S

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from kairos.customers.aggregates import CustomerAggregates

# Windows (days before the scoring time) of the recent spend and purchase-day counts.
WINDOWS = (30, 90, 180, 365)

LIFECYCLE_FEATURES: tuple[str, ...] = (
    "recency_days",
    "tenure_days",
    "purchase_moments",
    "purchase_days",
    "days_per_month",
    "monetary_total",
    "order_value_mean",
    "order_value_last",
    *(f"spend_{w}d" for w in WINDOWS),
    *(f"days_{w}d" for w in WINDOWS),
    "spend_trend_90d",
    "gap_mean_days",
    "gap_median_days",
    "gap_std_days",
    "gap_last_days",
    "overdue_ratio",
    "products",
    "repeat_product_share",
    "engagement_moments",
    "engagement_recency_days",
    "spend_year_ago_90d",
    "days_year_ago_90d",
    "day_of_year",
)


_EPOCH_DAY = date(1970, 1, 1).toordinal()


def _day_start(day: str) -> float:
    """Unix seconds of a UTC day's start (``YYYY-MM-DD``)."""
    return float((date.fromisoformat(day).toordinal() - _EPOCH_DAY) * DAY_S)


def _days_before(agg: CustomerAggregates, now: float) -> tuple[np.ndarray, np.ndarray]:
    """Age in days (at ``now``, from the day's start) and revenue of each purchase day before ``now``."""
    if not agg.purchase_days:
        return np.empty(0), np.empty(0)
    # In day order: the sums must not depend on the order the days arrived in (float addition is not associative).
    days = sorted(agg.purchase_days.items())
    starts = np.fromiter((_day_start(d) for d, _ in days), dtype=np.float64, count=len(days))
    revenue = np.fromiter((v[1] for _, v in days), dtype=np.float64, count=len(days))
    keep = starts < now
    return (now - starts[keep]) / DAY_S, revenue[keep]


def lifecycle_row(agg: CustomerAggregates, as_of: datetime) -> list[float]:
    """One customer's features in ``LIFECYCLE_FEATURES`` order (``nan`` where there is nothing to measure: the
    boosters route missing values on their own)."""
    nan = float("nan")
    now = as_of.timestamp()
    ages, revenue = _days_before(agg, now)
    recency = (now - agg.last_purchase_s) / DAY_S if agg.last_purchase_s is not None else nan
    tenure = (now - agg.first_purchase_s) / DAY_S if agg.first_purchase_s is not None else nan
    n_days = float(ages.size)
    spends = [float(revenue[ages < w].sum()) for w in WINDOWS]
    counts = [float((ages < w).sum()) for w in WINDOWS]
    previous_90 = float(revenue[(ages >= 90) & (ages < 180)].sum())
    # Orders before the scoring time (an order = one purchase moment), oldest first.
    orders = [o for o in agg.orders if o[0] * HOUR < now]
    values = np.array([o[1] for o in orders], dtype=np.float64)
    gaps = np.diff(np.array([o[0] for o in orders], dtype=np.float64)) * HOUR / DAY_S
    gaps = gaps[gaps >= 1.0]  # orders on the same day are one visit
    gap_mean = float(gaps.mean()) if gaps.size else nan
    products = agg.product_purchases
    repeated = sum(1 for rec in products.values() if rec[0] >= 2)
    last_moment = agg.recent_moments[-1] if agg.recent_moments else None
    return [
        recency,
        tenure,
        float(agg.purchase_count),
        n_days,
        n_days / max(tenure, 1.0) * 30.0 if n_days else 0.0,
        float(agg.monetary_total),
        float(agg.monetary_total) / agg.purchase_count if agg.purchase_count else nan,
        float(values[-1]) if values.size else nan,
        *spends,
        *counts,
        (spends[1] - previous_90) / (spends[1] + previous_90) if spends[1] + previous_90 > 0 else 0.0,
        gap_mean,
        float(np.median(gaps)) if gaps.size else nan,
        float(gaps.std()) if gaps.size > 1 else nan,
        float(gaps[-1]) if gaps.size else nan,
        recency / gap_mean if gaps.size and gap_mean > 0 else nan,
        float(len(products)),
        repeated / len(products) if products else 0.0,
        float(agg.engagement_moments),
        (now / HOUR - last_moment) / 24.0 if last_moment is not None else nan,
        # The coming 90 days a year ago, and the season: buyers who stock up before Christmas do so every year.
        float(revenue[(ages >= 275) & (ages < 365)].sum()),
        float(((ages >= 275) & (ages < 365)).sum()),
        float(as_of.timetuple().tm_yday),
    ]


def lifecycle_features(aggs: Sequence[CustomerAggregates], as_of: datetime) -> np.ndarray:
    """Feature rows of many customers, shape ``(len(aggs), len(LIFECYCLE_FEATURES))``.

    Parameters
    ----------
    aggs
        The customers' aggregates at ``as_of`` (training: folded to a snapshot time; serving: as stored).
    as_of
        The scoring time; recency, tenure and the windows are measured from it.

    Returns
    -------
    numpy.ndarray
        float64 rows in ``LIFECYCLE_FEATURES`` order.

    Example
    -------
    >>> lifecycle_features([CustomerAggregates()], datetime.now(UTC)).shape
    (1, 29)
    """
    if not aggs:
        return np.empty((0, len(LIFECYCLE_FEATURES)))
    return np.array([lifecycle_row(a, as_of) for a in aggs], dtype=np.float64)


def repeat_summary(aggs: Sequence[CustomerAggregates], as_of: datetime) -> np.ndarray:
    """``(x, t_x, T, m)`` per customer, in days, as BG/NBD and Gamma-Gamma read them: repeat purchase days ``x``,
    days from the first to the last purchase ``t_x``, days from the first purchase to ``as_of`` ``T``, and the
    mean revenue of a purchase day ``m`` (0 for a customer who never bought: ``T`` is 0 too)."""
    out = np.zeros((len(aggs), 4))
    now = as_of.timestamp()
    for i, agg in enumerate(aggs):
        ages, revenue = _days_before(agg, now)
        if not ages.size:
            continue
        first, last = ages.max(), ages.min()
        out[i] = (ages.size - 1, first - last, first, revenue.mean())
    return out


def product_intervals(agg: CustomerAggregates) -> dict[str, tuple[float, int]]:
    """Per product bought on two or more occasions with a known first purchase: the customer's mean days between
    its purchases and how many intervals that mean is of."""
    out = {}
    for pid, rec in agg.product_purchases.items():
        if len(rec) > 3 and rec[0] >= 2 and rec[1] > rec[3]:
            out[pid] = ((rec[1] - rec[3]) / DAY_S / (rec[0] - 1), rec[0] - 1)
    return out


def population_intervals(aggs: Sequence[CustomerAggregates], min_customers: int = 3) -> tuple[dict[str, float], float]:
    """Each product's median repurchase interval (days) over the customers who bought it on two or more occasions
    (products with at least ``min_customers`` of them), and the median over every such customer and product: the
    intervals a customer's own is shrunk toward."""
    per_product: dict[str, list[float]] = {}
    for agg in aggs:
        for pid, (days, _) in product_intervals(agg).items():
            per_product.setdefault(pid, []).append(days)
    every = [d for v in per_product.values() for d in v]
    overall = float(np.median(every)) if every else 30.0
    medians = {p: round(float(np.median(v)), 2) for p, v in per_product.items() if len(v) >= min_customers}
    return medians, round(overall, 2)
