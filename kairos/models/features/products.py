"""Next-product features: one row per (customer, candidate product), from ``CustomerAggregates`` only.

Candidates come from the customer's own purchases, item-to-item co-purchase and popularity
(:func:`product_candidates`); :class:`ItemTable` holds the model-level product statistics they need.
Like the send-time features, this is the one code path of training and scoring.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import chain, repeat
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import numpy as np

from kairos.models.features.shared import (
    DAY_S,
    HOURS_PER_DAY,
    NEVER_DAYS,
    normalize,
    purchased_rows,
    ranks_within,
    sort_with_order,
    top_within,
)

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
        Feature rows in ``PRODUCT_FEATURES`` order (stored column-major), a customer's candidates by table row.
    """
    now_s = as_of.timestamp()
    n_cust, n_items = len(aggs), len(items)
    if n_cust == 0 or n_items == 0:
        return ProductCandidates(
            items=np.empty(0, dtype=np.int64),
            offsets=np.zeros(n_cust + 1, dtype=np.int64),
            features=np.empty((0, len(PRODUCT_FEATURES))),
        )
    # The whole batch at once: a (customer, product) pair is the code ``customer * n_items + row``, so sorted codes
    # run customer by customer and, within a customer, by table row. A batch costs in proportion to the customers'
    # own products and events, never to the catalogue, and in a few numpy calls instead of a loop per customer.
    index = items.index
    customer_ids = np.arange(n_cust, dtype=np.int64)

    # Own purchases: [moments, last purchase, units] of each known product; a customer's OWN_CANDIDATES most
    # recent (ties by table row).
    owner, rows = purchased_rows(aggs, index)
    vals = _purchase_values(aggs, owner.size)
    known = rows >= 0
    own_codes = owner[known] * n_items + rows[known]
    order = np.argsort(own_codes)  # distinct codes: no ties
    own_codes, own_vals = own_codes[order], vals[known][order]
    if own_codes.size and np.bincount(owner[known], minlength=n_cust).max() > OWN_CANDIDATES:
        recent = top_within(own_codes // n_items, own_vals[:, 1], OWN_CANDIDATES, n_cust)
        own_codes, own_vals = own_codes[recent], own_vals[recent]

    # Recent product events (purchases, cart adds, views): per (customer, product) how many and the latest.
    rp_sizes = np.fromiter((len(a.recent_products) for a in aggs), dtype=np.int64, count=n_cust)
    n_rp = int(rp_sizes.sum())
    rp_rows = np.fromiter(
        chain.from_iterable(map(index.get, map(_EVENT_PRODUCT, a.recent_products), repeat(-1)) for a in aggs),
        dtype=np.int64,
        count=n_rp,
    )
    rp_time = np.fromiter(
        chain.from_iterable(map(_EVENT_SECONDS, a.recent_products) for a in aggs), dtype=np.float64, count=n_rp
    )
    known = rp_rows >= 0
    rp_codes, rp_inv, rp_counts = np.unique(
        np.repeat(customer_ids, rp_sizes)[known] * n_items + rp_rows[known], return_inverse=True, return_counts=True
    )
    rp_last = np.full(rp_codes.size, -np.inf)
    np.maximum.at(rp_last, rp_inv, rp_time[known])

    # Co-purchase neighbours of each customer's distinct recent products (the seeds, by table row). bincount adds a
    # pair's scores in the order they come, seed after seed: the sums one customer at a time would give, to the bit.
    seed_owner, seed_rows = np.divmod(rp_codes, n_items)
    nb = items.neighbors[seed_rows]
    ok = nb >= 0
    pairs, order = sort_with_order(np.broadcast_to(seed_owner[:, None], nb.shape)[ok] * n_items + nb[ok])
    first = np.r_[True, pairs[1:] != pairs[:-1]][: pairs.size]
    co_codes = pairs[first]
    co_inv = np.empty(pairs.size, dtype=np.int64)
    co_inv[order] = np.cumsum(first) - 1
    co_score = np.bincount(co_inv, weights=items.neighbor_scores[seed_rows][ok], minlength=co_codes.size)
    co_hits = np.bincount(co_inv, minlength=co_codes.size).astype(np.float64)
    co_owner = co_codes // n_items
    # The COOC_CANDIDATES best of each customer (ties by table row).
    co_top = co_codes[top_within(co_owner, co_score, COOC_CANDIDATES, n_cust)]

    popular = (customer_ids[:, None] * n_items + items.popular[None, :]).ravel()
    cand = np.sort(np.concatenate([own_codes, co_top, popular]))
    cand = cand[np.r_[True, cand[1:] != cand[:-1]]]

    at, found = _find(own_codes, cand)
    own_last = _gather(own_vals[:, 1], at, found, np.nan)
    c_own_days = np.where(np.isnan(own_last), NEVER_DAYS, (now_s - own_last) / DAY_S)
    cand_owner, cand_rows = np.divmod(cand, n_items)
    keep = ~(items.durable[cand_rows] & (c_own_days < DURABLE_COOLDOWN_DAYS))
    if not keep.all():
        cand, cand_owner, cand_rows, c_own_days = cand[keep], cand_owner[keep], cand_rows[keep], c_own_days[keep]
        at, found = at[keep], found[keep]
    om = _gather(own_vals[:, 0], at, found, 0.0)
    own_units = _gather(own_vals[:, 2], at, found, 0.0)

    at, found = _find(rp_codes, cand)
    c_rp_count = _gather(rp_counts.astype(np.float64), at, found, 0.0)
    c_rp_last = _gather(rp_last, at, found, -np.inf)
    c_rp_days = np.where(np.isfinite(c_rp_last), (now_s - c_rp_last) / DAY_S, NEVER_DAYS)
    at, found = _find(co_codes, cand)
    c_cooc = _gather(co_score, at, found, 0.0)
    c_hits = _gather(co_hits, at, found, 0.0)
    # Rank of the co-purchase score among the customer's candidates (0 = best; ties by table row).
    cooc_rank = ranks_within(cand_owner, c_cooc, n_cust).astype(np.float64)

    # Per customer, then spread over the customer's candidates.
    purchases = np.array([float(a.purchase_count) for a in aggs])
    last_purchase_days = np.array(
        [(now_s - a.last_purchase_s) / DAY_S if a.last_purchase_s is not None else NEVER_DAYS for a in aggs]
    )
    tenure = np.array([(now_s - a.first_purchase_s) / DAY_S if a.first_purchase_s is not None else 0.0 for a in aggs])
    c_purchases = purchases[cand_owner]
    # Days since the customer's first purchase spread over their purchase moments of the product:
    # a crude repurchase cycle; due_ratio > 1 means a repurchase is "due".
    pos = om > 0
    with np.errstate(divide="ignore", invalid="ignore"):  # one context, the same values as _safe_div
        cycle = np.where(pos, tenure[cand_owner] / np.where(pos, om, 1.0), 0.0)
        due = np.where(pos, np.where(cycle > 0, c_own_days / np.where(cycle > 0, cycle, 1.0), 0.0), 0.0)
        share = np.where(c_purchases > 0, om / np.where(c_purchases > 0, c_purchases, 1.0), 0.0)

    cols = {
        "own_moments": om,
        "own_units_log": np.log1p(own_units),
        "own_days_since": c_own_days,
        "own_share": share,
        "own_due_ratio": due,
        "recent_count": c_rp_count,
        "recent_days_since": c_rp_days,
        "cooc_score": c_cooc,
        "cooc_hits": c_hits,
        "cooc_rank": cooc_rank,
        "pop_buyers_log": items.buyers_log[cand_rows],
        "pop_recent_log": items.recent_log[cand_rows],
        "pop_rank": items.pop_rank[cand_rows],
        "repeat_rate": items.repeat_rate[cand_rows],
        "cust_purchases_log": np.array([math.log1p(p) for p in purchases.tolist()])[cand_owner],
        "cust_days_since_purchase": last_purchase_days[cand_owner],
        "cust_products": np.array([float(len(a.product_purchases)) for a in aggs])[cand_owner],
        "cust_moments_log": np.array([math.log1p(a.engagement_moments) for a in aggs])[cand_owner],
    }
    # Column-major, like the send-time rows: one contiguous write per feature.
    feats = np.empty((len(PRODUCT_FEATURES), cand.size), dtype=np.float64)
    for j, name in enumerate(PRODUCT_FEATURES):
        feats[j] = cols[name]
    return ProductCandidates(
        items=cand_rows,
        offsets=np.concatenate(([0], np.cumsum(np.bincount(cand_owner, minlength=n_cust)))).astype(np.int64),
        features=feats.T,
    )


# A recent product event is [product_id, event type, unix seconds, quantity].
_EVENT_PRODUCT = itemgetter(0)
_EVENT_SECONDS = itemgetter(2)


def _purchase_values(aggs: Sequence[CustomerAggregates], n: int) -> np.ndarray:
    """[moments, last purchase, units] of the batch's ``n`` product purchases, in :func:`purchased_rows` order."""
    flat = np.fromiter(
        chain.from_iterable(chain.from_iterable(a.product_purchases.values() for a in aggs)), dtype=np.float64
    )
    if flat.size != 3 * n:  # a record longer than the three numbers: read the first three of each
        flat = np.fromiter(
            chain.from_iterable(v[:3] for a in aggs for v in a.product_purchases.values()), dtype=np.float64
        )
    return flat.reshape(n, 3)


def _find(keys: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each of ``queries`` is in the sorted, distinct ``keys``, and whether it is there at all."""
    if keys.size == 0:
        return np.zeros(queries.size, dtype=np.int64), np.zeros(queries.size, dtype=bool)
    at = np.minimum(np.searchsorted(keys, queries), keys.size - 1)
    return at, keys[at] == queries


def _gather(values: np.ndarray, at: np.ndarray, found: np.ndarray, default: float) -> np.ndarray:
    out = np.full(at.size, default, dtype=np.float64)
    out[found] = values[at[found]]
    return out
