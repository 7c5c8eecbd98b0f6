"""Calibrated send-time probabilities and the decision rule that reads them."""

from __future__ import annotations

import numpy as np
import pytest

from kairos.models.features.calibration import (
    DEFAULT_WINDOW,
    Calibration,
    best_hours,
    day_hits,
    fit_calibration,
    open_window,
    window_scores,
)
from kairos.models.timing import window_value

RNG = np.random.default_rng(3)


def _population() -> np.ndarray:
    p = np.full(168, 1.0)
    p[np.arange(7) * 24 + 12] = 20.0
    return p / p.sum()


def _draw(dists: np.ndarray, n: int) -> np.ndarray:
    return np.stack([RNG.multinomial(n, d) for d in dists]).astype(float)


def test_noise_from_the_model_gets_no_weight_and_the_prior_keeps_its_likelihood():
    # GIVEN customers who behave like the population, and a model that is confidently random
    prior = np.tile(_population(), (300, 1))
    counts = _draw(prior, 5)
    rates = RNG.gamma(0.2, size=(300, 168))
    # WHEN calibrated
    cal, report = fit_calibration(rates, prior, counts, [5] * 300)
    # THEN the bucket's weight on the model is (near) zero and its likelihood is the prior's or better
    assert cal.of("3-9")[1] <= 0.05
    assert report["3-9"]["log_likelihood"] >= report["3-9"]["prior_log_likelihood"]


def test_a_model_that_knows_the_customer_gets_weight_and_beats_the_prior():
    # GIVEN customers each with their own peak hour, which the model's rates know
    peaks = RNG.integers(0, 168, size=300)
    truth = np.full((300, 168), 0.2 / 167)
    truth[np.arange(300), peaks] = 0.8
    counts = _draw(truth, 5)
    prior = np.tile(_population(), (300, 1))
    # WHEN calibrated
    cal, report = fit_calibration(truth * 3.0, prior, counts, [20] * 300)
    # THEN most weight goes to the model and the held-out likelihood is far above the prior's
    temperature, weight = cal.of("10+")
    assert weight >= 0.7
    assert report["10+"]["log_likelihood"] > report["10+"]["prior_log_likelihood"] + 1.0
    # AND the calibrated rows are distributions
    probs = cal.apply(truth, prior, [20] * 300)
    assert np.allclose(probs.sum(axis=1), 1.0) and (probs > 0).all()


def test_an_uncalibrated_model_is_the_identity_and_survives_metadata():
    rates = RNG.gamma(1.0, size=(4, 168))
    probs = Calibration().apply(rates, _population(), [0, 1, 5, 50])
    assert np.allclose(probs, rates / rates.sum(axis=1, keepdims=True))
    cal = Calibration({"0": (1.0, 0.0), "10+": (1.3, 0.55)})
    assert Calibration.from_dict(cal.to_dict()) == cal


def test_the_window_rule_is_the_same_in_numpy_and_in_the_send_path():
    # GIVEN probabilities and a learned email window reaching three hours after the send
    probs = RNG.dirichlet(np.ones(168))
    window = open_window([0.5, 1.5, 2.2, 2.9, 0.1])
    # WHEN the value of every hour is computed by the serving (numpy) and the planning (pure Python) code
    numpy_values = window_scores(probs[None, :], window)[0]
    python_values = [window_value(probs.tolist(), h, window) for h in range(168)]
    # THEN they agree, and the window never wraps past midnight
    assert numpy_values == pytest.approx(python_values)
    lone = np.zeros(168)
    lone[24] = 1.0  # Tuesday 00:00
    assert window_scores(lone, DEFAULT_WINDOW)[23] == 0.0  # Monday 23:00 does not see Tuesday


def test_a_lone_peak_is_chosen_itself_not_its_earlier_neighbour():
    probs = np.full((1, 168), 1e-6)
    probs[0, 60] = 1.0
    assert best_hours(probs)[0] == 60


def test_without_delays_the_window_is_one_hour_either_side():
    assert open_window([]) == DEFAULT_WINDOW
    offset, weights = open_window([0.2, 0.4])
    assert offset == -1 and weights == pytest.approx((1.0, 1.0, 1.0))


def _habits(n: int) -> np.ndarray:
    """Customers who each keep to one hour of their own (most of their week there), the rest spread thin."""
    dists = np.full((n, 168), 0.2)
    own = RNG.integers(0, 24, n)
    for i, h in enumerate(own):
        dists[i, np.arange(7) * 24 + h] = 30.0
    return dists / dists.sum(axis=1, keepdims=True)


def test_where_the_ranking_misses_the_customers_habit_the_decision_leans_on_their_smoothed_counts():
    # GIVEN customers with two past moments at their own hour, a model whose ranking only knows the population,
    # and what they did next
    truth = _habits(400)
    past = _draw(truth, 2)
    counts = _draw(truth, 6)
    prior = np.tile(_population(), (400, 1))
    rates = np.tile(_population(), (400, 1)) * 3.0
    # WHEN the calibration (with the decision blend) is fitted
    cal, report = fit_calibration(rates, prior, counts, [2] * 400, past)
    share, pseudo = cal.decision["1-2"]
    # THEN the decision leans on the smoothed counts and picks at least as well as they do alone
    assert share > 0 and pseudo in (1.0, 3.0, 10.0, 30.0)
    row = report["1-2"]
    assert row["hit_rate_blend"] >= row["hit_rate_smoothed_count"] > row["hit_rate_model"]
    # AND on fresh customers of the same kind the blended ranking beats the model's
    truth2 = _habits(400)
    past2, next2 = _draw(truth2, 2), _draw(truth2, 6)
    blended = cal.decide(rates, past2, prior, [2] * 400)
    assert day_hits(blended, next2) > day_hits(rates / rates.sum(axis=1, keepdims=True), next2) * 1.5
    np.testing.assert_allclose(blended.sum(axis=1), 1.0)


def test_a_good_ranking_keeps_the_decision_and_old_models_read_back_unblended():
    # GIVEN a model whose ranking is the truth
    truth = _habits(300)
    past, counts = _draw(truth, 2), _draw(truth, 6)
    prior = np.tile(_population(), (300, 1))
    cal, _ = fit_calibration(truth * 5.0, prior, counts, [2] * 300, past)
    # THEN it keeps (almost) all the weight, and the blend survives the model's metadata
    assert cal.decision["1-2"][0] <= 0.3
    assert Calibration.from_dict(cal.to_dict()) == cal
    # AND a calibration stored before the blend existed ranks by the normalized rates alone
    old = Calibration.from_dict({"1-2": {"temperature": 1.0, "weight": 0.5}})
    rates = RNG.gamma(1.0, size=(3, 168))
    np.testing.assert_allclose(old.decide(rates, past[:3], prior[:3], [2] * 3), rates / rates.sum(axis=1)[:, None])
