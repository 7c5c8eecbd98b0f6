"""Evaluation metrics of the send-time and next-product models.

Send time, per test engagement moment (one per customer per clock hour) at local weekday ``d`` and
hour ``h``, given a method's 168 scores for that customer:

- *hit within one hour*: the method's best hour for weekday ``d`` is the argmax of its 24 scores of
  that day (ties: the earliest hour); a hit when ``|h - best| <= 1``.
- *log-likelihood*: ``log p[d*24 + h]`` under the method's scores read as a distribution over the
  168 hours, floored at ``LL_FLOOR`` (mixed with the uniform distribution) so no method gets -inf.

Next product, per test customer with a relevant set ``R`` (distinct products bought in the test window):

- ``HR@k``: 1 when any of the top ``k`` products is in ``R``.
- ``NDCG@k``: ``sum_{i<=k} [rank i in R] / log2(i + 1)`` divided by the same sum for a perfect list.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from kairos.models.features.calibration import HISTORY_BUCKETS, best_hours_by_day, history_bucket

__all__ = [
    "HISTORY_BUCKETS",
    "LL_FLOOR",
    "best_hours_by_day",
    "hit_rate_at_k",
    "history_bucket",
    "hits_within_one_hour",
    "log_likelihoods",
    "ndcg_at_k",
]

if TYPE_CHECKING:
    from collections.abc import Collection, Sequence

LL_FLOOR = 1e-3


def hits_within_one_hour(scores: np.ndarray, rows: np.ndarray, hows: np.ndarray) -> np.ndarray:
    """Hit (1.0) or miss (0.0) of each test moment.

    Parameters
    ----------
    scores
        (n_customers, 168) method scores.
    rows
        Row in ``scores`` of each test moment's customer.
    hows
        Local hour of week of each test moment.

    Returns
    -------
    numpy.ndarray
        Float array aligned with ``rows``.
    """
    best = best_hours_by_day(scores)
    day, hour = np.divmod(np.asarray(hows), 24)
    return (np.abs(best[np.asarray(rows), day] - hour) <= 1).astype(np.float64)


def log_likelihoods(scores: np.ndarray, rows: np.ndarray, hows: np.ndarray) -> np.ndarray:
    """Log-probability of each test moment's hour of week under the row's normalized scores (floored)."""
    p = scores / scores.sum(axis=1, keepdims=True)
    p = (1 - LL_FLOOR) * p + LL_FLOOR / p.shape[1]
    return np.log(p[np.asarray(rows), np.asarray(hows)])


def hit_rate_at_k(ranked: Sequence[str], relevant: Collection[str], k: int = 10) -> float:
    """1.0 when any of the first ``k`` of ``ranked`` is relevant, else 0.0."""
    return 1.0 if any(p in relevant for p in ranked[:k]) else 0.0


def ndcg_at_k(ranked: Sequence[str], relevant: Collection[str], k: int = 10) -> float:
    """Binary-relevance NDCG of the first ``k`` of ``ranked`` (0.0 when nothing is relevant)."""
    if not relevant:
        return 0.0
    dcg = sum(1.0 / math.log2(i + 2) for i, p in enumerate(ranked[:k]) if p in relevant)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(k, len(relevant))))
    return dcg / ideal
