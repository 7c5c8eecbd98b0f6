"""Next-product features: one row per (customer, candidate product), from ``CustomerAggregates`` only.

Candidates come from the customer's own purchases, item-to-item co-purchase and popularity
(:func:`product_candidates`); :class:`ItemTable` holds the model-level product statistics they need.
Like the send-time features, this is the one code path of training and scoring.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from kairos.models.features.shared import DAY_S, HOURS_PER_DAY, NEVER_DAYS, normalize

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from datetime import datetime

    from kairos.customers.aggregates import CustomerAggregates

PRODUCT_FEATURES: tuple[str, ...] = (
    "own_moments",
    "own_units_log",
    "own_days_since",
    "own_share",
    "own_due_ratio",
    "recent_count",
    "recent_days_since",
    "cooc_score",
    "cooc_hits",
    "cooc_rank",
    "pop_buyers_log",
    "pop_recent_log",
    "pop_rank",
    "repeat_rate",
    "cust_purchases_log",
    "cust_days_since_purchase",
    "cust_products",
    "cust_moments_log",
)

# Candidate sources, per customer: own purchases (most recent first), co-purchase neighbours of the
# recent products, and the most popular products of the last quarter before the item table was built.
OWN_CANDIDATES = 100
COOC_CANDIDATES = 50
POPULAR_CANDIDATES = 30
# A product is durable when few of its buyers ever buy it again. Durable products a customer bought
# within this many days are not offered again (see ItemTable.repeat_rate).
DURABLE_REPEAT_RATE = 0.05
DURABLE_COOLDOWN_DAYS = 180.0
PRODUCT_HOUR_PSEUDO = 5.0


@dataclass
class ItemTable:
    """Model-level product statistics: popularity, repeat-purchase rate and co-purchase neighbours.

    Attributes
    ----------
    product_ids
        Product ids; the index of a product in this list is its row in the arrays.
    buyers
        Customers who bought the product (any time before the table was built).
    recent_buyers
        Customers whose last purchase of the product is within 90 days of ``built_at``.
    repeat_rate
        Share of the product's buyers who bought it on two or more separate moments, shrunk toward
        the catalogue's rate. Consumables (reordered) score high, durable goods near 0.
    neighbors, neighbor_scores
        Up to K co-purchased products per product (``-1`` pads) and their cosine similarity over
        purchase baskets (one customer's purchases in one clock hour).
    built_at
        Unix seconds of the history end the table stands for.
    hour_counts
        (n, 24) purchase moments of the product by local hour of day: which time of day its buyers
        shop. A customer's products then hint at their hours before their own history does.
    """

    product_ids: list[str]
    buyers: np.ndarray
    recent_buyers: np.ndarray
    repeat_rate: np.ndarray
    neighbors: np.ndarray
    neighbor_scores: np.ndarray
    built_at: int
    hour_counts: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.buyers = np.asarray(self.buyers, dtype=np.float64)
        self.recent_buyers = np.asarray(self.recent_buyers, dtype=np.float64)
        self.repeat_rate = np.asarray(self.repeat_rate, dtype=np.float64)
        self.neighbors = np.asarray(self.neighbors, dtype=np.int64).reshape(len(self.product_ids), -1)
        self.neighbor_scores = np.asarray(self.neighbor_scores, dtype=np.float64).reshape(self.neighbors.shape)
        self.index = {p: i for i, p in enumerate(self.product_ids)}
        order = np.lexsort((np.arange(len(self.product_ids)), -self.buyers, -self.recent_buyers))
        self.popular = order[:POPULAR_CANDIDATES]
        self.pop_rank = np.empty(len(self.product_ids), dtype=np.float64)
        self.pop_rank[order] = np.arange(len(self.product_ids))
        self.buyers_log = np.log1p(self.buyers)
        self.recent_log = np.log1p(self.recent_buyers)
        self.durable = self.repeat_rate < DURABLE_REPEAT_RATE
        counts = np.zeros((len(self.product_ids), HOURS_PER_DAY))
        if self.hour_counts is not None:
            counts = np.asarray(self.hour_counts, dtype=np.float64).reshape(len(self.product_ids), HOURS_PER_DAY)
        self.hour_counts = counts
        # Each product's hour-of-day distribution, shrunk toward the catalogue's with 5 pseudo-moments.
        catalogue = normalize(counts.sum(axis=0) + 1e-9)
        self.hour_dist = (counts + PRODUCT_HOUR_PSEUDO * catalogue) / (
            counts.sum(axis=1, keepdims=True) + PRODUCT_HOUR_PSEUDO
        )

    def __len__(self) -> int:
        return len(self.product_ids)

    def to_dict(self) -> dict[str, Any]:
        return {
            "built_at": self.built_at,
            "product_ids": self.product_ids,
            "buyers": self.buyers.astype(int).tolist(),
            "recent_buyers": self.recent_buyers.astype(int).tolist(),
            "repeat_rate": self.repeat_rate.round(4).tolist(),
            "neighbors": self.neighbors.tolist(),
            "neighbor_scores": self.neighbor_scores.round(4).tolist(),
            "hour_counts": self.hour_counts.astype(int).tolist(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ItemTable:
        return cls(
            product_ids=list(data["product_ids"]),
            buyers=np.asarray(data["buyers"]),
            recent_buyers=np.asarray(data["recent_buyers"]),
            repeat_rate=np.asarray(data["repeat_rate"]),
            neighbors=np.asarray(data["neighbors"]),
            neighbor_scores=np.asarray(data["neighbor_scores"]),
            built_at=int(data["built_at"]),
            hour_counts=np.asarray(data["hour_counts"]) if "hour_counts" in data else None,
        )


def build_item_table(
    aggs: Sequence[CustomerAggregates],
    baskets: Sequence[Sequence[str]],
    built_at: datetime,
    neighbors: int = 20,
    recent_days: float = 90.0,
    min_buyers: int = 1,
    repeat_prior: float = 10.0,
    hour_counts: Mapping[str, Sequence[float]] | None = None,
) -> ItemTable:
    """Product statistics from customers' aggregates and co-purchase from baskets.

    Parameters
    ----------
    aggs
        Aggregates of all customers at ``built_at`` (their ``product_purchases`` give buyers and repeats).
    baskets
        Purchase baskets before ``built_at``: the product ids one customer bought in one clock hour.
    built_at
        The end of the history the table stands for.
    neighbors
        How many co-purchase neighbours to keep per product.
    recent_days
        Window of ``recent_buyers``.
    min_buyers
        Products with fewer buyers are left out.
    repeat_prior
        Pseudo-buyers that shrink a product's repeat rate toward the catalogue's rate.
    hour_counts
        Product id -> 24 purchase-moment counts by local hour of day, before ``built_at``.

    Returns
    -------
    ItemTable
    """
    stats = item_stats(aggs, built_at, recent_days)
    return item_table_from_stats(stats, baskets, built_at, neighbors, min_buyers, repeat_prior, hour_counts)


def item_stats(
    aggs: Iterable[CustomerAggregates], built_at: datetime, recent_days: float = 90.0
) -> dict[str, dict[str, int]]:
    """Per product: buyers, repeat buyers and recent buyers among ``aggs``. Sums of these over disjoint sets
    of customers (:func:`merge_counts`) are the statistics of their union: shards of customers add up."""
    horizon = int(built_at.timestamp()) - recent_days * DAY_S
    buyers: dict[str, int] = {}
    repeaters: dict[str, int] = {}
    recent: dict[str, int] = {}
    for agg in aggs:
        for pid, rec in agg.product_purchases.items():
            buyers[pid] = buyers.get(pid, 0) + 1
            if rec[0] >= 2:
                repeaters[pid] = repeaters.get(pid, 0) + 1
            if rec[1] >= horizon:
                recent[pid] = recent.get(pid, 0) + 1
    return {"buyers": buyers, "repeaters": repeaters, "recent": recent}


def merge_counts(parts: Iterable[Mapping[str, Mapping[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Add up dictionaries of counts (or of arrays) key by key, per named table."""
    out: dict[str, dict[str, Any]] = {}
    for part in parts:
        for name, table in part.items():
            mine = out.setdefault(name, {})
            for k, v in table.items():
                mine[k] = mine[k] + v if k in mine else v
    return out


def item_table_from_stats(
    stats: Mapping[str, Mapping[str, int]],
    baskets: Sequence[Sequence[str]],
    built_at: datetime,
    neighbors: int = 20,
    min_buyers: int = 1,
    repeat_prior: float = 10.0,
    hour_counts: Mapping[str, Sequence[float]] | None = None,
) -> ItemTable:
    """The item table from (merged) :func:`item_stats`, baskets and hour counts."""
    built_s = int(built_at.timestamp())
    buyers, repeaters, recent = stats["buyers"], stats["repeaters"], stats["recent"]
    ids = sorted(p for p, b in buyers.items() if b >= min_buyers)
    index = {p: i for i, p in enumerate(ids)}
    b = np.array([buyers[p] for p in ids], dtype=np.float64)
    r = np.array([repeaters.get(p, 0) for p in ids], dtype=np.float64)
    base = r.sum() / max(b.sum(), 1.0)
    repeat_rate = (r + repeat_prior * base) / (b + repeat_prior)
    nb, ns = _cooccurrence_neighbors(baskets, index, neighbors)
    return ItemTable(
        product_ids=ids,
        buyers=b,
        recent_buyers=np.array([recent.get(p, 0) for p in ids], dtype=np.float64),
        repeat_rate=repeat_rate,
        neighbors=nb,
        neighbor_scores=ns,
        built_at=built_s,
        hour_counts=np.array(
            [hour_counts.get(p, [0.0] * HOURS_PER_DAY) if hour_counts else [0.0] * HOURS_PER_DAY for p in ids],
            dtype=np.float64,
        ).reshape(len(ids), HOURS_PER_DAY),
    )


# Above this many product pairs the co-purchase counts are kept sparse instead of in a dense matrix.
_DENSE_PAIRS = 40_000_000
_TOP_K_BLOCK = 512
_PAIRS_AT_ONCE = 2_000_000


def _cooccurrence_neighbors(
    baskets: Sequence[Sequence[str]], index: Mapping[str, int], k: int
) -> tuple[np.ndarray, np.ndarray]:
    n = len(index)
    nb = np.full((n, k), -1, dtype=np.int64)
    ns = np.zeros((n, k), dtype=np.float64)
    sizes = np.fromiter((len(b) for b in baskets), dtype=np.int64, count=len(baskets))
    flat = np.fromiter((index.get(p, -1) for b in baskets for p in b), dtype=np.int64, count=int(sizes.sum()))
    basket_of = np.repeat(np.arange(len(baskets), dtype=np.int64), sizes)
    known = flat >= 0
    # One (basket, product) pair per product in a basket, sorted by basket then product.
    codes = np.unique(basket_of[known] * n + flat[known])
    if codes.size == 0 or n == 0:
        return nb, ns
    basket_of, item = np.divmod(codes, n)
    item_baskets = np.bincount(item, minlength=n).astype(np.float64)
    starts = np.flatnonzero(np.r_[True, basket_of[1:] != basket_of[:-1]])
    lengths = np.diff(np.r_[starts, basket_of.size])
    # Pairs (i < j) of every basket, built per basket length so each length is one array operation.
    groups = np.unique(lengths[lengths > 1]).tolist()
    if not groups:
        return nb, ns

    def pairs_of(length: int, chunk: slice = slice(None)) -> np.ndarray:
        rows = item[starts[lengths == length][chunk][:, None] + np.arange(length)[None, :]]
        iu, ju = np.triu_indices(length, 1)
        return (rows[:, iu] * n + rows[:, ju]).ravel()

    if n * n <= _DENSE_PAIRS:
        # Counted into one n x n float32 matrix a basket length at a time (a wholesale basket of 300 lines
        # has 45,000 pairs: all pairs at once would outweigh the matrix), both ways, then scaled in place;
        # the top k a block of rows at a time.
        cosine = np.zeros((n, n), dtype=np.float32)
        flat_view = cosine.reshape(-1)
        for length in groups:
            per_basket = length * (length - 1) // 2
            step = max(1, _PAIRS_AT_ONCE // per_basket)
            for lo in range(0, int((lengths == length).sum()), step):
                codes = pairs_of(length, slice(lo, lo + step))
                np.add.at(flat_view, codes, 1.0)
                left, right = np.divmod(codes, n)
                np.add.at(flat_view, right * n + left, 1.0)
                del codes, left, right
        norm = np.sqrt(item_baskets).astype(np.float32)
        with np.errstate(divide="ignore", invalid="ignore"):
            cosine /= norm[:, None]
            cosine /= norm[None, :]
        cosine[~np.isfinite(cosine)] = 0.0
        kk = min(k, n - 1) if n > 1 else 0
        if kk == 0:
            return nb, ns
        for lo in range(0, n, _TOP_K_BLOCK):
            block = cosine[lo : lo + _TOP_K_BLOCK]
            top = np.argpartition(-block, kk - 1, axis=1)[:, :kk]
            top_scores = np.take_along_axis(block, top, axis=1).astype(np.float64)
            order = np.lexsort((top, -top_scores), axis=1)
            top = np.take_along_axis(top, order, axis=1)
            top_scores = np.take_along_axis(top_scores, order, axis=1)
            present = top_scores > 0
            nb[lo : lo + len(block), :kk] = np.where(present, top, -1)
            ns[lo : lo + len(block), :kk] = np.where(present, top_scores, 0.0)
        return nb, ns
    pairs = np.concatenate([pairs_of(length) for length in groups])
    codes, pair_counts = np.unique(pairs, return_counts=True)
    left, right = np.divmod(codes, n)
    left, right = np.concatenate([left, right]), np.concatenate([right, left])
    pair_counts = np.concatenate([pair_counts, pair_counts])
    cosine = pair_counts / np.sqrt(item_baskets[left] * item_baskets[right])
    # Top k per product: sort by (product, -score, neighbour) and take each product's first k.
    order = np.lexsort((right, -cosine, left))
    left, right, cosine = left[order], right[order], cosine[order]
    first = np.searchsorted(left, np.arange(n))
    rank = np.arange(left.size) - first[left]
    sel = rank < k
    nb[left[sel], rank[sel]] = right[sel]
    ns[left[sel], rank[sel]] = cosine[sel]
    return nb, ns


@dataclass
class ProductCandidates:
    """Candidate products and their feature rows for a batch of customers.

    ``items[offsets[i]:offsets[i + 1]]`` are customer ``i``'s candidates (ItemTable rows) and the
    same slice of ``features`` their rows.
    """

    items: np.ndarray
    offsets: np.ndarray
    features: np.ndarray

    def group_sizes(self) -> np.ndarray:
        return np.diff(self.offsets)


def product_candidates(aggs: Sequence[CustomerAggregates], as_of: datetime, items: ItemTable) -> ProductCandidates:
    """Candidates and next-product feature rows for each customer.

    Candidates are the union of the customer's own purchases (the ``OWN_CANDIDATES`` most recent),
    co-purchase neighbours of the products in ``recent_products`` (the ``COOC_CANDIDATES`` best) and
    the table's ``POPULAR_CANDIDATES`` most popular products. Durable products (repeat rate below
    ``DURABLE_REPEAT_RATE``) the customer bought within ``DURABLE_COOLDOWN_DAYS`` are removed.

    Parameters
    ----------
    aggs
        Customers' aggregates.
    as_of
        Prediction time (aware datetime).
    items
        The model's item table.

    Returns
    -------
    ProductCandidates
        Feature rows in ``PRODUCT_FEATURES`` order.
    """
    now_s = as_of.timestamp()
    n_items = len(items)
    index = items.index
    all_items: list[np.ndarray] = []
    all_feats: list[np.ndarray] = []
    offsets = [0]
    # Dense per-product scratch arrays, reused across customers: only the touched entries are reset,
    # so a customer costs in proportion to their own products, not to the catalogue.
    zeros = np.zeros(n_items)
    cooc = hits = zeros
    own_moments = np.zeros(n_items)
    own_units = np.zeros(n_items)
    own_last = np.full(n_items, np.nan)
    rp_count = np.zeros(n_items)
    rp_last = np.full(n_items, -np.inf)
    mark = np.zeros(n_items, dtype=bool)
    for agg in aggs:
        # Own purchases.
        own_ids = [(index.get(p), rec) for p, rec in agg.product_purchases.items()]
        own_ids = [(i, rec) for i, rec in own_ids if i is not None]
        if len(own_ids) > OWN_CANDIDATES:
            own_ids.sort(key=lambda t: (-t[1][1], t[0]))
            own_ids = own_ids[:OWN_CANDIDATES]
        own_idx = np.array([i for i, _ in own_ids], dtype=np.int64)
        own_rec = np.array([rec[:3] for _, rec in own_ids], dtype=np.float64).reshape(-1, 3)

        # Recent product events (purchases, cart adds, views) and their co-purchase neighbours.
        rp_idx = np.array([index.get(e[0], -1) for e in agg.recent_products], dtype=np.int64)
        rp_time = np.array([e[2] for e in agg.recent_products], dtype=np.float64)
        known = rp_idx >= 0
        rp_idx, rp_time = rp_idx[known], rp_time[known]
        # Few recent products: a Python set is cheaper than np.unique on a handful of numbers.
        seeds = np.array(sorted(set(rp_idx.tolist())), dtype=np.int64)
        cooc_top = np.empty(0, dtype=np.int64)
        if seeds.size:
            nb = items.neighbors[seeds].ravel()
            sc = items.neighbor_scores[seeds].ravel()
            ok = nb >= 0
            nb, sc = nb[ok], sc[ok]
            # bincount sums repeated neighbours like np.add.at, several times faster.
            cooc = np.bincount(nb, weights=sc, minlength=n_items)
            hits = np.bincount(nb, minlength=n_items).astype(np.float64)
            touched = np.flatnonzero(hits)  # the distinct neighbours, sorted, as np.unique(nb) gives them
            if touched.size > COOC_CANDIDATES:
                part = np.argpartition(-cooc[touched], COOC_CANDIDATES - 1)[:COOC_CANDIDATES]
                cooc_top = touched[part]
            else:
                cooc_top = touched
        mark[own_idx] = True
        mark[cooc_top] = True
        mark[items.popular] = True
        cand = np.flatnonzero(mark)
        mark[cand] = False

        if own_idx.size:
            own_moments[own_idx] = own_rec[:, 0]
            own_last[own_idx] = own_rec[:, 1]
            own_units[own_idx] = own_rec[:, 2]
        c_own_days = np.where(np.isnan(own_last[cand]), NEVER_DAYS, (now_s - own_last[cand]) / DAY_S)
        drop = items.durable[cand] & (c_own_days < DURABLE_COOLDOWN_DAYS)
        if drop.any():
            cand = cand[~drop]
            c_own_days = c_own_days[~drop]

        if rp_idx.size:
            np.add.at(rp_count, rp_idx, 1.0)
            np.maximum.at(rp_last, rp_idx, rp_time)
        c_rp_days = np.where(np.isfinite(rp_last[cand]), (now_s - rp_last[cand]) / DAY_S, NEVER_DAYS)

        c_cooc = cooc[cand]
        # Rank of the co-purchase score among this customer's candidates (0 = best).
        cooc_rank = np.empty(cand.size)
        cooc_rank[np.lexsort((cand, -c_cooc))] = np.arange(cand.size)
        purchases = float(agg.purchase_count)
        last_purchase_days = (now_s - agg.last_purchase_s) / DAY_S if agg.last_purchase_s is not None else NEVER_DAYS
        # Days since the customer's first purchase spread over their purchase moments of the product:
        # a crude repurchase cycle; due_ratio > 1 means a repurchase is "due".
        tenure = (now_s - agg.first_purchase_s) / DAY_S if agg.first_purchase_s is not None else 0.0
        om = own_moments[cand]
        pos = om > 0
        with np.errstate(divide="ignore", invalid="ignore"):  # one context, the same values as _safe_div
            cycle = np.where(pos, tenure / np.where(pos, om, 1.0), 0.0)
            due = np.where(pos, np.where(cycle > 0, c_own_days / np.where(cycle > 0, cycle, 1.0), 0.0), 0.0)

        feats = np.empty((cand.size, len(PRODUCT_FEATURES)), dtype=np.float64)
        feats[:, 0] = om
        feats[:, 1] = np.log1p(own_units[cand])
        feats[:, 2] = c_own_days
        feats[:, 3] = om / purchases if purchases > 0 else 0.0
        feats[:, 4] = due
        feats[:, 5] = rp_count[cand]
        feats[:, 6] = c_rp_days
        feats[:, 7] = c_cooc
        feats[:, 8] = hits[cand]
        feats[:, 9] = cooc_rank
        feats[:, 10] = items.buyers_log[cand]
        feats[:, 11] = items.recent_log[cand]
        feats[:, 12] = items.pop_rank[cand]
        feats[:, 13] = items.repeat_rate[cand]
        feats[:, 14] = math.log1p(purchases)
        feats[:, 15] = last_purchase_days
        feats[:, 16] = len(agg.product_purchases)
        feats[:, 17] = math.log1p(agg.engagement_moments)
        all_items.append(cand)
        all_feats.append(feats)
        offsets.append(offsets[-1] + cand.size)
        if seeds.size:
            cooc = zeros
            hits = zeros
        own_moments[own_idx] = 0.0
        own_units[own_idx] = 0.0
        own_last[own_idx] = np.nan
        rp_count[rp_idx] = 0.0
        rp_last[rp_idx] = -np.inf
    return ProductCandidates(
        items=np.concatenate(all_items) if all_items else np.empty(0, dtype=np.int64),
        offsets=np.asarray(offsets, dtype=np.int64),
        features=np.concatenate(all_feats) if all_feats else np.empty((0, len(PRODUCT_FEATURES))),
    )
