"""Metric functions of the evaluation, on hand-computed cases."""

import math

import numpy as np
import pytest

from training.metrics import (
    LL_FLOOR,
    best_hours_by_day,
    history_bucket,
    hit_rate_at_k,
    hits_within_one_hour,
    log_likelihoods,
    ndcg_at_k,
)


def _scores_with_peak(day_hours: dict[int, int]) -> np.ndarray:
    scores = np.zeros((1, 168))
    for day, hour in day_hours.items():
        scores[0, day * 24 + hour] = 1.0
    return scores


def test_hits_within_one_hour_counts_neighbours_on_the_same_weekday():
    # GIVEN best hour 12 on Monday and 9 on Tuesday
    scores = _scores_with_peak({0: 12, 1: 9})
    # WHEN test moments fall at Mon 11, Mon 13, Mon 14, Tue 9, Tue 12
    hows = np.array([11, 13, 14, 24 + 9, 24 + 12])
    hits = hits_within_one_hour(scores, np.zeros(5, dtype=int), hows)
    # THEN only those within one hour of that weekday's best hour hit
    assert hits.tolist() == [1.0, 1.0, 0.0, 1.0, 0.0]


def test_best_hours_by_day_breaks_ties_by_earliest_hour():
    # GIVEN flat scores
    scores = np.ones((2, 168))
    # WHEN picking each weekday's best hour
    best = best_hours_by_day(scores)
    # THEN it is midnight everywhere
    assert best.shape == (2, 7)
    assert (best == 0).all()


def test_log_likelihoods_normalize_and_floor():
    # GIVEN a customer putting all mass on hour 0 (unnormalized)
    scores = np.zeros((1, 168))
    scores[0, 0] = 5.0
    # WHEN scoring a moment at hour 0 and one at hour 1
    ll = log_likelihoods(scores, np.array([0, 0]), np.array([0, 1]))
    # THEN hour 0 gets (1 - floor) + floor/168 and hour 1 only the floor share
    assert ll[0] == pytest.approx(math.log(1 - LL_FLOOR + LL_FLOOR / 168))
    assert ll[1] == pytest.approx(math.log(LL_FLOOR / 168))


def test_hit_rate_at_k_is_one_when_any_top_k_is_relevant():
    # GIVEN a ranking whose 3rd item was bought
    ranked = ["a", "b", "c", "d"]
    # WHEN / THEN
    assert hit_rate_at_k(ranked, {"c"}, k=3) == 1.0
    assert hit_rate_at_k(ranked, {"d"}, k=3) == 0.0


def test_ndcg_at_k_hand_computed():
    # GIVEN relevant items at ranks 1 and 3, two relevant in total
    ranked = ["a", "x", "b", "y"]
    relevant = {"a", "b"}
    # WHEN
    value = ndcg_at_k(ranked, relevant, k=10)
    # THEN DCG = 1 + 1/log2(4), ideal = 1 + 1/log2(3)
    assert value == pytest.approx((1 + 0.5) / (1 + 1 / math.log2(3)))


def test_ndcg_at_k_perfect_and_empty():
    # GIVEN / WHEN / THEN a perfect list scores 1, nothing relevant scores 0
    assert ndcg_at_k(["a", "b"], {"a", "b"}, k=10) == pytest.approx(1.0)
    assert ndcg_at_k(["a"], set(), k=10) == 0.0


@pytest.mark.parametrize(("moments", "bucket"), [(0, "0"), (1, "1-2"), (2, "1-2"), (3, "3-9"), (9, "3-9"), (10, "10+")])
def test_history_bucket_boundaries(moments, bucket):
    # GIVEN a moment count / WHEN bucketing / THEN the documented bucket
    assert history_bucket(moments) == bucket
