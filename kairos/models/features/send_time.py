"""Send-time features: one row per (customer, local hour of week), computed from ``CustomerAggregates`` only.

This module is the single code path for features: ``training`` folds archived events into
aggregates with ``kairos.customers.aggregates.fold_events`` and calls these functions, and the score function
calls them on the aggregates the ingest API keeps in DynamoDB. A feature that cannot be computed
from the aggregates (plus model-level artifacts: :class:`Priors`, :class:`ItemTable`; the ``as_of``
time; optional profile attributes) does not exist.

One row per (customer, local hour of week), ``TIME_FEATURES``; the model predicts the expected number of
engagement moments at that hour in the coming weeks. The next-product features are
:mod:`kairos.models.features.products`; what both read is :mod:`kairos.models.features.shared`.

Everything is vectorized over customers so that the score function pays for numpy calls, not for
Python loops per hour or per product.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from kairos.core.constants import HOURS_PER_WEEK
from kairos.core.timeutil import HOUR, zone
from kairos.models.features.shared import HOURS_PER_DAY, NEVER_DAYS, normalize, purchased_rows

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from kairos.customers.aggregates import CustomerAggregates
    from kairos.models.features.products import ItemTable

DAYS = 7
SEGMENT_ATTRIBUTE = "country"
# A segment prior is shrunk toward the population with this many pseudo-moments, so a country
# with a handful of customers does not get a spiky prior.
SEGMENT_PSEUDO_MOMENTS = 200.0
# Half-lives of the recency-weighted hour counts: a quarter and a year.
RECENCY_HALF_LIFE_DAYS = (90.0, 365.0)

TIME_FEATURES: tuple[str, ...] = (
    "hour_of_day",
    "day_of_week",
    "is_weekend",
    "own_how",
    "own_how_win",
    "own_hod",
    "own_hod_win",
    "own_daytype_hod_win",
    "own_dow",
    "share_how_win",
    "share_hod_win",
    "share_daytype_hod_win",
    "share_dow",
    "rel_hod_win",
    "rec90_how_win",
    "rec90_hod_win_share",
    "rec365_hod_win_share",
    "last_hod_dist",
    "mean_hod_dist",
    "hod_std",
    "moments_log",
    "distinct_hods",
    "max_hod_share",
    "days_since_last",
    "days_since_oldest_recent",
    "recent90_moments",
    "pop_how_win",
    "pop_hod_win",
    "popc_how_win",
    "seg_how_win",
    "seg_hod_win",
    "seg_daytype_hod_win",
    "seg_moments_log",
    "prod_hod_win",
    "prod_products",
    "basket_value_log",
    "lines_per_purchase",
)


# ----------------------------------------------------------------------------------------------
# Time helpers
# ----------------------------------------------------------------------------------------------

_LOCAL_HOW_CACHE: dict[str, dict[int, int]] = {}


def local_hours_of_week(epoch_hours: np.ndarray, tz: str) -> np.ndarray:
    """Local hour of week (0 = Monday 00:00) of UTC epoch hours, in zone ``tz``.

    Daylight-saving safe: each distinct epoch hour is converted once with ``zoneinfo`` and cached,
    so a warm score function converts only hours it has not seen.

    Parameters
    ----------
    epoch_hours
        Integer array of whole hours since 1970-01-01T00:00Z.
    tz
        IANA zone name, or a fixed offset ``UTC+hh:mm``.

    Returns
    -------
    numpy.ndarray
        Int array of the same shape, values in 0..167.
    """
    epoch_hours = np.asarray(epoch_hours, dtype=np.int64)
    if epoch_hours.size == 0:
        return np.zeros(epoch_hours.shape, dtype=np.int64)
    cache = _LOCAL_HOW_CACHE.setdefault(tz, {})
    uniq, inverse = np.unique(epoch_hours, return_inverse=True)
    info = zone(tz)
    out = np.empty(uniq.shape, dtype=np.int64)
    for i, h in enumerate(uniq.tolist()):
        how = cache.get(h)
        if how is None:
            local = datetime.fromtimestamp(h * HOUR, UTC).astimezone(info)
            how = cache[h] = local.weekday() * HOURS_PER_DAY + local.hour
        out[i] = how
    return out[inverse].reshape(epoch_hours.shape)


def day_window(x: np.ndarray) -> np.ndarray:
    """Sum of each hour and its two neighbours within the same local day.

    The send-time metric forgives one hour either way, so the value of sending at hour ``h`` is the
    engagement expected at ``h-1``, ``h`` and ``h+1`` of that day (midnight does not wrap).

    Parameters
    ----------
    x
        Array whose last axis is 168 hours of week or 24 hours of day.

    Returns
    -------
    numpy.ndarray
        Same shape as ``x``.
    """
    shape = x.shape
    days = x.reshape(*shape[:-1], -1, HOURS_PER_DAY)
    out = days.copy()
    out[..., 1:] += days[..., :-1]
    out[..., :-1] += days[..., 1:]
    return out.reshape(shape)


def _by_hod(x: np.ndarray) -> np.ndarray:
    """(N, 168) -> (N, 24): pooled over the seven weekdays."""
    return x.reshape(x.shape[0], DAYS, HOURS_PER_DAY).sum(axis=1)


def _by_daytype(x: np.ndarray) -> np.ndarray:
    """(N, 168) -> (N, 168): each hour's count pooled over weekdays (Mon-Fri) or the weekend (Sat, Sun)."""
    days = x.reshape(x.shape[0], DAYS, HOURS_PER_DAY)
    week = days[:, :5].sum(axis=1, keepdims=True)
    weekend = days[:, 5:].sum(axis=1, keepdims=True)
    return np.concatenate([np.repeat(week, 5, axis=1), np.repeat(weekend, 2, axis=1)], axis=1).reshape(x.shape)


def _tile_hod(x: np.ndarray) -> np.ndarray:
    """(N, 24) -> (N, 168): the hour-of-day value at every weekday."""
    return np.tile(x, (1, DAYS))


def _safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1.0), 0.0)


HOD = np.tile(np.arange(HOURS_PER_DAY), DAYS)
DOW = np.repeat(np.arange(DAYS), HOURS_PER_DAY)


# ----------------------------------------------------------------------------------------------
# Population and segment priors
# ----------------------------------------------------------------------------------------------


@dataclass
class Priors:
    """Hour-of-week engagement priors of the whole population and of each segment.

    ``population`` and ``segments`` hold engagement-moment counts per local hour of week (so heavy
    customers weigh more); ``population_customers`` averages each customer's own distribution (so
    every customer weighs the same, closer to what a new customer looks like).
    """

    population: np.ndarray
    population_customers: np.ndarray
    segments: dict[str, np.ndarray] = field(default_factory=dict)
    segment_attribute: str = SEGMENT_ATTRIBUTE

    def __post_init__(self) -> None:
        self.population = np.asarray(self.population, dtype=np.float64)
        self.population_customers = np.asarray(self.population_customers, dtype=np.float64)
        self.segments = {k: np.asarray(v, dtype=np.float64) for k, v in self.segments.items()}
        self._pop = normalize(self.population + 1e-3)
        self._popc = normalize(self.population_customers + 1e-6)
        self._seg = {k: normalize(v + SEGMENT_PSEUDO_MOMENTS * self._pop) for k, v in self.segments.items()}

    @property
    def population_dist(self) -> np.ndarray:
        """The population's moment-weighted distribution over the 168 hours (sums to 1)."""
        return self._pop

    def segment_dist(self, segment: str | None) -> np.ndarray:
        """A segment's distribution shrunk toward the population; the population when unknown."""
        return self._seg.get(segment, self._pop) if segment is not None else self._pop

    def segment_moments(self, segment: str | None) -> float:
        counts = self.segments.get(segment) if segment is not None else None
        return float(counts.sum()) if counts is not None else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "segment_attribute": self.segment_attribute,
            "population": self.population.round(6).tolist(),
            "population_customers": self.population_customers.round(6).tolist(),
            "segments": {k: v.round(6).tolist() for k, v in sorted(self.segments.items())},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Priors:
        return cls(
            population=np.asarray(data["population"]),
            population_customers=np.asarray(data["population_customers"]),
            segments={k: np.asarray(v) for k, v in data.get("segments", {}).items()},
            segment_attribute=data.get("segment_attribute", SEGMENT_ATTRIBUTE),
        )


def build_priors(
    aggs: Sequence[CustomerAggregates],
    segments: Sequence[str | None],
    min_segment_customers: int = 5,
    segment_attribute: str = SEGMENT_ATTRIBUTE,
) -> Priors:
    """Population and segment priors from many customers' aggregates.

    Parameters
    ----------
    aggs
        Aggregates of the customers known at the time the priors stand for.
    segments
        Each customer's segment (e.g. country), or ``None``.
    min_segment_customers
        Segments with fewer customers with history get no prior of their own.
    segment_attribute
        The profile attribute the segments come from.

    Returns
    -------
    Priors
    """
    return priors_from_stats(prior_stats(aggs, segments), min_segment_customers, segment_attribute)


def prior_stats(aggs: Sequence[CustomerAggregates], segments: Sequence[str | None]) -> dict[str, dict[str, Any]]:
    """The sums :func:`build_priors` is made of; sums over disjoint sets of customers add up
    (``kairos.models.features.products.merge_counts``), so shards of customers can compute them apart."""
    counts = np.array([a.how_counts for a in aggs], dtype=np.float64).reshape(-1, HOURS_PER_WEEK)
    totals = counts.sum(axis=1)
    has = totals > 0
    seg_counts: dict[str, np.ndarray] = {}
    seg_customers: dict[str, int] = {}
    for seg, row, total in zip(segments, counts, totals, strict=True):
        if seg is None or total == 0:
            continue
        seg_counts[seg] = seg_counts.get(seg, np.zeros(HOURS_PER_WEEK)) + row
        seg_customers[seg] = seg_customers.get(seg, 0) + 1
    return {
        "population": {
            "moments": counts.sum(axis=0),
            "customers": normalize(counts[has]).sum(axis=0) if has.any() else np.zeros(HOURS_PER_WEEK),
        },
        "segment_moments": seg_counts,
        "segment_customers": seg_customers,
    }


def priors_from_stats(
    stats: Mapping[str, Mapping[str, Any]], min_segment_customers: int = 5, segment_attribute: str = SEGMENT_ATTRIBUTE
) -> Priors:
    """Priors from (merged) :func:`prior_stats`."""
    pop = stats.get("population") or {}
    customers = stats.get("segment_customers") or {}
    kept = {
        k: np.asarray(v, dtype=np.float64)
        for k, v in (stats.get("segment_moments") or {}).items()
        if customers.get(k, 0) >= min_segment_customers
    }
    return Priors(
        np.asarray(pop.get("moments", np.zeros(HOURS_PER_WEEK)), dtype=np.float64),
        np.asarray(pop.get("customers", np.zeros(HOURS_PER_WEEK)), dtype=np.float64),
        kept,
        segment_attribute,
    )


def segment_of(attributes: Mapping[str, Any] | None, attribute: str = SEGMENT_ATTRIBUTE) -> str | None:
    """The segment named by a profile's attributes (``None`` when absent)."""
    if not attributes:
        return None
    value = attributes.get(attribute)
    return None if value is None or value == "" else str(value)


# ----------------------------------------------------------------------------------------------
# Send-time features
# ----------------------------------------------------------------------------------------------


def _as_of_hours(as_of: datetime) -> float:
    if as_of.tzinfo is None:
        raise ValueError("as_of must carry a UTC offset")
    return as_of.timestamp() / HOUR


def time_features(
    aggs: Sequence[CustomerAggregates],
    as_of: datetime,
    priors: Priors,
    segments: Sequence[str | None],
    items: ItemTable | None = None,
) -> np.ndarray:
    """Send-time feature rows: 168 per customer, hour of week 0..167 in the customer's zone.

    Parameters
    ----------
    aggs
        Each customer's aggregates (``how_counts`` are in local hours: the profile's zone, or each moment's own
        UTC offset while the zone is inferred; recent moments are placed in ``agg.effective_timezone``).
    as_of
        The time the prediction is made (aware datetime); recency is measured from it.
    priors
        Population and segment priors of the model.
    segments
        Each customer's segment, aligned with ``aggs`` (see :func:`segment_of`).
    items
        The model's item table: the hours at which the customer's products sell are a prior on the
        customer's own hours. Without it those features are 0.

    Returns
    -------
    numpy.ndarray
        Float64 array of shape ``(len(aggs) * 168, len(TIME_FEATURES))``; rows of a customer are
        contiguous, in hour-of-week order. Stored column-major (LightGBM reads either order as is).

    Example
    -------
    >>> x = time_features([agg], datetime.now(UTC), priors, ["United Kingdom"])
    >>> x.shape
    (168, 37)
    """
    n_cust = len(aggs)
    now_h = _as_of_hours(as_of)
    counts = np.array([a.how_counts for a in aggs], dtype=np.float64).reshape(n_cust, HOURS_PER_WEEK)
    moments = np.array([a.engagement_moments for a in aggs], dtype=np.float64)
    total = counts.sum(axis=1)

    # Recency-weighted counts from the most recent moments (the aggregates keep the last 64).
    rec = [np.zeros((n_cust, HOURS_PER_WEEK)) for _ in RECENCY_HALF_LIFE_DAYS]
    last_hod = np.full(n_cust, np.nan)
    last_h = np.full(n_cust, np.nan)
    oldest_h = np.full(n_cust, np.nan)
    recent90 = np.zeros(n_cust)
    by_tz: dict[str, list[int]] = {}
    for i, a in enumerate(aggs):
        if a.recent_moments:
            by_tz.setdefault(a.effective_timezone, []).append(i)
    for tz, idx in by_tz.items():
        lengths = np.array([len(aggs[i].recent_moments) for i in idx])
        flat = np.fromiter((m for i in idx for m in aggs[i].recent_moments), dtype=np.int64, count=lengths.sum())
        owner = np.repeat(np.asarray(idx), lengths)
        how = local_hours_of_week(flat, tz)
        age_days = np.maximum(now_h - flat, 0.0) / HOURS_PER_DAY
        for arr, half_life in zip(rec, RECENCY_HALF_LIFE_DAYS, strict=True):
            np.add.at(arr, (owner, how), 0.5 ** (age_days / half_life))
        ends = np.cumsum(lengths) - 1
        starts = ends - lengths + 1
        last_hod[idx] = how[ends] % HOURS_PER_DAY
        last_h[idx] = flat[ends]
        oldest_h[idx] = flat[starts]
        np.add.at(recent90, owner, (age_days <= 90).astype(np.float64))

    hod_counts = _by_hod(counts)
    hod_win = day_window(hod_counts)
    how_win = day_window(counts)
    daytype_win = day_window(_by_daytype(counts))
    dow_counts = counts.reshape(n_cust, DAYS, HOURS_PER_DAY).sum(axis=2)
    tot = total[:, None]

    hod_share = _safe_div(hod_counts, tot)
    hours = np.arange(HOURS_PER_DAY, dtype=np.float64)
    mean_hod = (hod_share * hours).sum(axis=1)
    hod_std = np.sqrt(np.maximum((hod_share * hours**2).sum(axis=1) - mean_hod**2, 0.0))
    has_hist = total > 0
    mean_hod = np.where(has_hist, mean_hod, np.nan)
    hod_std = np.where(has_hist, hod_std, np.nan)

    rec90, rec365 = rec
    rec90_hod_win = day_window(_by_hod(rec90))
    rec365_hod_win = day_window(_by_hod(rec365))

    pop_win = day_window(priors.population_dist)
    popc_win = day_window(priors._popc)
    pop_hod_win = day_window(_by_hod(priors.population_dist[None, :]))[0]
    seg_keys = list(segments)
    uniq_segs = sorted({s for s in seg_keys if s is not None and s in priors.segments})
    seg_rows = {s: j + 1 for j, s in enumerate(uniq_segs)}
    seg_table = np.stack([priors.population_dist] + [priors.segment_dist(s) for s in uniq_segs])
    seg_idx = np.array([seg_rows.get(s, 0) if s is not None else 0 for s in seg_keys], dtype=np.int64)
    seg_dist = seg_table[seg_idx]
    seg_moments = np.array([priors.segment_moments(s) for s in [None, *uniq_segs]])[seg_idx]

    # The hours at which the customer's products sell (mean of the products' hour distributions).
    prod_hod = np.zeros((n_cust, HOURS_PER_DAY))
    prod_n = np.zeros(n_cust)
    if items is not None and len(items):
        owner, rows = purchased_rows(aggs, items.index)
        # Sorted by table row within each customer: dict order follows arrival order, and float sums must not.
        codes = np.sort((owner * len(items) + rows)[rows >= 0])
        prod_rows = codes % len(items)
        prod_counts = np.bincount(codes // len(items), minlength=n_cust)
        prod_has = prod_counts > 0
        if prod_has.any():
            # One gather and one segmented sum for the whole batch; rows are added in the same (sorted) order
            # as a per-customer ``hour_dist[idx].mean(axis=0)``, so the result is the same to the bit.
            prod_starts = np.concatenate(([0], np.cumsum(prod_counts)[:-1]))[prod_has]
            prod_sums = np.add.reduceat(items.hour_dist[prod_rows], prod_starts, axis=0)
            prod_hod[prod_has] = prod_sums / prod_counts[prod_has, None]
            prod_n[prod_has] = prod_counts[prod_has]
    purchases = np.array([a.purchase_count for a in aggs], dtype=np.float64)
    monetary = np.array([a.monetary_total for a in aggs], dtype=np.float64)
    lines = np.array([a.event_counts.get("purchase", 0) for a in aggs], dtype=np.float64)

    hod = HOD[None, :]
    cols = {
        "hour_of_day": np.broadcast_to(hod, (n_cust, HOURS_PER_WEEK)),
        "day_of_week": np.broadcast_to(DOW[None, :], (n_cust, HOURS_PER_WEEK)),
        "is_weekend": np.broadcast_to((DOW >= 5)[None, :].astype(np.float64), (n_cust, HOURS_PER_WEEK)),
        "own_how": counts,
        "own_how_win": how_win,
        "own_hod": _tile_hod(hod_counts),
        "own_hod_win": _tile_hod(hod_win),
        "own_daytype_hod_win": daytype_win,
        "own_dow": np.repeat(dow_counts, HOURS_PER_DAY, axis=1),
        "share_how_win": _safe_div(how_win, tot),
        "share_hod_win": _tile_hod(_safe_div(hod_win, tot)),
        "share_daytype_hod_win": _safe_div(daytype_win, tot),
        "share_dow": np.repeat(_safe_div(dow_counts, tot), HOURS_PER_DAY, axis=1),
        "rel_hod_win": _tile_hod(_safe_div(hod_win, hod_win.max(axis=1, keepdims=True))),
        "rec90_how_win": day_window(rec90),
        "rec90_hod_win_share": _tile_hod(_safe_div(rec90_hod_win, rec90.sum(axis=1, keepdims=True))),
        "rec365_hod_win_share": _tile_hod(_safe_div(rec365_hod_win, rec365.sum(axis=1, keepdims=True))),
        "last_hod_dist": np.abs(hod - last_hod[:, None]),
        "mean_hod_dist": np.abs(hod - mean_hod[:, None]),
        "hod_std": hod_std[:, None],
        "moments_log": np.log1p(moments)[:, None],
        "distinct_hods": (hod_counts > 0).sum(axis=1)[:, None],
        "max_hod_share": hod_share.max(axis=1)[:, None],
        "days_since_last": np.where(np.isnan(last_h), NEVER_DAYS, (now_h - last_h) / HOURS_PER_DAY)[:, None],
        "days_since_oldest_recent": np.where(np.isnan(oldest_h), NEVER_DAYS, (now_h - oldest_h) / HOURS_PER_DAY)[
            :, None
        ],
        "recent90_moments": recent90[:, None],
        "pop_how_win": pop_win[None, :],
        "pop_hod_win": _tile_hod(pop_hod_win[None, :]),
        "popc_how_win": popc_win[None, :],
        "seg_how_win": day_window(seg_dist),
        "seg_hod_win": _tile_hod(day_window(_by_hod(seg_dist))),
        "seg_daytype_hod_win": day_window(_by_daytype(seg_dist)) / np.where(DOW < 5, 5.0, 2.0)[None, :],
        "seg_moments_log": np.log1p(seg_moments)[:, None],
        "prod_hod_win": _tile_hod(day_window(prod_hod)),
        "prod_products": prod_n[:, None],
        "basket_value_log": np.log1p(np.maximum(_safe_div(monetary, purchases), 0.0))[:, None],
        "lines_per_purchase": _safe_div(lines, purchases)[:, None],
    }
    # Filled a feature at a time into column-major memory (each write is contiguous; into a row-major matrix every
    # one is strided and costs ten times as much) and handed out as its transpose: the same (rows, features)
    # matrix, Fortran-ordered, which LightGBM reads without a copy.
    out = np.empty((len(TIME_FEATURES), n_cust, HOURS_PER_WEEK), dtype=np.float64)
    for j, name in enumerate(TIME_FEATURES):
        out[j] = cols[name]
    return out.reshape(len(TIME_FEATURES), n_cust * HOURS_PER_WEEK).T


# ----------------------------------------------------------------------------------------------
# Next-product features
# ----------------------------------------------------------------------------------------------
