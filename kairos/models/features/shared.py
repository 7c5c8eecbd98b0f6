"""What the send-time and next-product features both read: time units, the stand-in for "never", and
turning counts into a distribution.

They live here, below both feature modules, so that :mod:`kairos.models.features.send_time` and
:mod:`kairos.models.features.products` never import each other.
"""

from __future__ import annotations

from itertools import chain, repeat
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from kairos.customers.aggregates import CustomerAggregates

HOURS_PER_DAY = 24
DAY_S = 86_400
# Stand-in for "never" in day-valued features; LightGBM also handles NaN, but a large finite number
# keeps the feature monotone ("longer ago") for the trees.
NEVER_DAYS = 9999.0


def normalize(x: np.ndarray) -> np.ndarray:
    """``x`` scaled to sum to 1 along its last axis; a row of zeros stays zeros."""
    total = x.sum(axis=-1, keepdims=True)
    return x / np.where(total > 0, total, 1.0)


def purchased_rows(aggs: Sequence[CustomerAggregates], index: Mapping[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """Every ``product_purchases`` entry of a batch as ``(owner, row)``: the customer's position in ``aggs`` and the
    product's row in ``index`` (-1: a product the table does not know), customer after customer, each in its
    dictionary's order. One pass in C over the whole batch instead of a Python loop per customer."""
    sizes = np.fromiter((len(a.product_purchases) for a in aggs), dtype=np.int64, count=len(aggs))
    rows = np.fromiter(
        chain.from_iterable(map(index.get, a.product_purchases, repeat(-1)) for a in aggs),
        dtype=np.int64,
        count=int(sizes.sum()),
    )
    return np.repeat(np.arange(len(aggs), dtype=np.int64), sizes), rows


def group_ranks(groups: np.ndarray, n: int) -> np.ndarray:
    """Position of each element within its group, for ``groups`` sorted (0..n-1, each group's elements together)."""
    counts = np.bincount(groups, minlength=n)
    starts = np.cumsum(counts) - counts
    return np.arange(groups.size, dtype=np.int64) - starts[groups]


def ranks_within(groups: np.ndarray, scores: np.ndarray, n: int) -> np.ndarray:
    """Rank of each element within its group (0..n-1): highest score first, equal scores in the order they come.

    What a stable ``np.lexsort((-scores, groups))`` gives, several times faster: the group, the score's place among
    the distinct scores and the position are packed into one integer per element, and those are sorted once.
    """
    size = groups.size
    if size == 0:
        return np.zeros(0, dtype=np.int64)
    # Each score's place among the distinct scores, highest first (equal scores share it).
    order = np.argsort(-scores)
    ordered = -scores[order]
    desc = np.empty(size, dtype=np.int64)
    desc[order] = np.cumsum(np.r_[False, ordered[1:] != ordered[:-1]])
    n_scores = int(desc[order[-1]]) + 1
    if n * n_scores * size < 2**62:  # exact (Python integers): the packed key fits an int64
        order = np.sort((groups * n_scores + desc) * size + np.arange(size, dtype=np.int64)) % size
    else:
        order = np.lexsort((desc, groups))
    ranks = np.empty(size, dtype=np.int64)
    ranks[order] = group_ranks(groups[order], n)
    return ranks


def top_within(groups: np.ndarray, scores: np.ndarray, k: int, n: int) -> np.ndarray:
    """Mask of each group's ``k`` highest scores, equal scores in the order they come (``groups`` sorted, 0..n-1;
    scores finite): ``ranks_within(...) < k``, a few times faster when groups are long. Each group's k-th highest
    score comes from one partial sort of a (groups, longest group) matrix, built a block of groups at a time so
    that it stays small whatever the batch."""
    size = groups.size
    counts = np.bincount(groups, minlength=n)
    if size == 0 or int(counts.max()) <= k:
        return np.ones(size, dtype=bool)
    if k <= 0:
        return np.zeros(size, dtype=bool)
    width = int(counts.max())
    pos = group_ranks(groups, n)
    ends = np.cumsum(counts)
    kth = np.empty(n)
    step = max(1, _TOP_BLOCK // width)
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        a, b = int(ends[lo] - counts[lo]), int(ends[hi - 1])
        pad = np.full((hi - lo, width), -np.inf)
        pad[groups[a:b] - lo, pos[a:b]] = scores[a:b]
        kth[lo:hi] = np.partition(pad, width - k, axis=1)[:, width - k]
    threshold = kth[groups]
    keep = scores > threshold
    # Scores equal to a group's k-th: the first ones, as many as there is room for.
    ties = np.flatnonzero(scores == threshold)
    room = k - np.bincount(groups[keep], minlength=n)
    keep[ties[group_ranks(groups[ties], n) < room[groups[ties]]]] = True
    return keep


# Cells of the padded matrix top_within partially sorts at a time (8 MB of float64).
_TOP_BLOCK = 1 << 20


def sort_with_order(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``keys`` (non-negative integers) sorted, and the stable permutation that sorts them: one sort of
    ``key * size + position`` instead of a stable argsort, which is several times slower."""
    size = keys.size
    if size and (int(keys.max()) + 1) * size < 2**62:
        packed = np.sort(keys * size + np.arange(size, dtype=np.int64))
        return packed // size, packed % size
    order = np.argsort(keys, kind="stable")
    return keys[order], order


__all__ = [
    "DAY_S",
    "HOURS_PER_DAY",
    "NEVER_DAYS",
    "group_ranks",
    "normalize",
    "purchased_rows",
    "ranks_within",
    "sort_with_order",
    "top_within",
]
