"""Baselines the evaluation compares Kairos with, computed from the same aggregates at the cut-off.

Send time (each returns ``(n, 168)`` scores whose per-weekday argmax is the method's best hour):

- ``global``: one best hour for everybody, the population's busiest hour of each weekday.
- ``modal hour``: each customer's most frequent past hour of day, any weekday, with the global best
  hour as fallback for customers without history. This is how per-user "intelligent timing" features
  are documented to work (e.g. Braze Intelligent Timing: the hour the user most often engaged, else
  the app's most popular hour).
- ``smoothed histogram``: the customer's hour-of-week counts plus ``alpha`` pseudo-moments spread as
  the population distribution (a Dirichlet posterior mean).
- oracles: know each customer's test-window hours and pick, with hindsight, the hour of day that
  covers the most of them within one hour (one hour for every weekday, or one per weekday): the
  headroom, not methods.

Next product (each returns the top ``k`` product ids):

- ``popularity``: most customers buying in the last 90 days before the cut-off (all-time buyers break ties).
- ``co-occurrence``: summed cosine co-purchase similarity with the customer's recent products,
  popularity to fill.
- ``repeat``: the customer's own most often bought products (then most recent), popularity to fill.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from kairos.models.features import HOURS_PER_DAY, day_window
from kairos.models.features.calibration import smoothed_counts

if TYPE_CHECKING:
    from collections.abc import Sequence

    from kairos.customers.aggregates import CustomerAggregates
    from kairos.models.features import ItemTable, Priors

SMOOTHING_ALPHA = 10.0
# Tie-breaks: a tiny multiple of the population prior, far below one count.
_TIE = 1e-6


def _counts(aggs: Sequence[CustomerAggregates]) -> np.ndarray:
    return np.array([a.how_counts for a in aggs], dtype=np.float64).reshape(len(aggs), -1)


def global_scores(aggs: Sequence[CustomerAggregates], priors: Priors) -> np.ndarray:
    return np.tile(priors.population_dist, (len(aggs), 1))


def modal_hour_scores(aggs: Sequence[CustomerAggregates], priors: Priors) -> np.ndarray:
    counts = _counts(aggs)
    hod = counts.reshape(len(aggs), 7, HOURS_PER_DAY).sum(axis=1)
    pop_hod = priors.population_dist.reshape(7, HOURS_PER_DAY).sum(axis=0)
    personal = np.tile(hod + _TIE * pop_hod, (1, 7))
    has = counts.sum(axis=1) > 0
    return np.where(has[:, None], personal, priors.population_dist[None, :])


def smoothed_histogram_scores(
    aggs: Sequence[CustomerAggregates], priors: Priors, alpha: float = SMOOTHING_ALPHA
) -> np.ndarray:
    return smoothed_counts(_counts(aggs), priors.population_dist, alpha)


def oracle_scores(test_counts: np.ndarray, priors: Priors) -> np.ndarray:
    # The window sum makes the oracle's pick the hour that covers the most test moments within one hour.
    return day_window(test_counts) + _TIE * priors.population_dist


def oracle_hour_of_day_scores(test_counts: np.ndarray, priors: Priors) -> np.ndarray:
    hod = test_counts.reshape(test_counts.shape[0], 7, HOURS_PER_DAY).sum(axis=1)
    pop_hod = priors.population_dist.reshape(7, HOURS_PER_DAY).sum(axis=0)
    return np.tile(day_window(hod) + _TIE * pop_hod, (1, 7))


def popularity_ranking(items: ItemTable, k: int) -> list[str]:
    order = np.lexsort((np.arange(len(items)), -items.buyers, -items.recent_buyers))[:k]
    return [items.product_ids[i] for i in order]


def cooccurrence_ranking(agg: CustomerAggregates, items: ItemTable, k: int, popular: list[str]) -> list[str]:
    seeds = {items.index[e[0]] for e in agg.recent_products if e[0] in items.index}
    scores: dict[int, float] = {}
    for s in seeds:
        for j, v in zip(items.neighbors[s], items.neighbor_scores[s], strict=True):
            if j >= 0:
                scores[int(j)] = scores.get(int(j), 0.0) + float(v)
    ranked = [items.product_ids[j] for j, _ in sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:k]]
    return _fill(ranked, popular, k)


def repeat_ranking(agg: CustomerAggregates, k: int, popular: list[str]) -> list[str]:
    own = sorted(agg.product_purchases.items(), key=lambda kv: (-kv[1][0], -kv[1][1], kv[0]))
    return _fill([p for p, _ in own[:k]], popular, k)


def _fill(ranked: list[str], popular: list[str], k: int) -> list[str]:
    out = list(ranked)
    seen = set(out)
    for p in popular:
        if len(out) >= k:
            break
        if p not in seen:
            out.append(p)
            seen.add(p)
    return out
