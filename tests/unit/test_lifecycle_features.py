"""Lifecycle features, calibration and next purchase dates: one code path for training and serving."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest

from kairos.customers.aggregates import PRODUCT_MEMORY, CustomerAggregates, fold_events
from kairos.models.features import build_item_table
from kairos.models.features.lifecycle import (
    LIFECYCLE_FEATURES,
    lifecycle_features,
    population_intervals,
    product_intervals,
    repeat_summary,
)
from kairos.models.lifecycle import Isotonic, LifecycleModel
from training.history import Folder, History
from training.io import load_events
from training.lifecycle import fit_isotonic

SAMPLE = Path(__file__).parents[1] / "data" / "online_retail_sample.csv.gz"
DAY = 86_400


@pytest.fixture(scope="module")
def history():
    data = load_events([str(SAMPLE)])
    return History(data.events, data.profiles)


def test_lifecycle_features_identical_for_training_fold_and_ingest_batches(history):
    # GIVEN customers' events folded in time order by training's Folder ...
    as_of = datetime(2011, 6, 1, tzinfo=UTC)
    trained = Folder(history).advance(as_of)
    cids = [c for c in history.customers if len(trained[c].product_purchases) < PRODUCT_MEMORY]
    # ... and the same events (before as_of) in random batches and random order, as the ingest API folds them
    rng = random.Random(5)
    served = {}
    for c in cids:
        events = [e for e in history.customers[c].events if e.timestamp < as_of]
        rng.shuffle(events)
        agg, counted = CustomerAggregates(timezone=history.timezone(c)), set()
        for lo in range(0, len(events), 17):
            agg, new = fold_events(agg, events[lo : lo + 17], counted)
            counted |= new
        served[c] = agg
    # WHEN the lifecycle features and the BG/NBD summary are computed from both
    x_train = lifecycle_features([trained[c] for c in cids], as_of)
    x_serve = lifecycle_features([served[c] for c in cids], as_of)
    # THEN they are exactly equal, and so are the products' first purchases the next purchase dates start from
    assert len(cids) > 50 and x_train.shape == (len(cids), len(LIFECYCLE_FEATURES))
    assert np.array_equal(x_train, x_serve, equal_nan=True)
    summaries = [repeat_summary([agg[c] for c in cids], as_of) for agg in (trained, served)]
    assert np.array_equal(*summaries)
    assert all(product_intervals(trained[c]) == product_intervals(served[c]) for c in cids)


def test_product_purchases_keep_the_first_purchase_and_old_records_still_load():
    # GIVEN three purchases of one product, out of order
    events = [_purchase("tea", s) for s in (300 * DAY, 100 * DAY, 200 * DAY)]
    agg, _ = fold_events(CustomerAggregates(), events, set())
    # THEN the record is [purchases, last, units, first], and the mean interval is 100 days over 2 intervals
    assert agg.product_purchases["tea"] == [3, 300 * DAY, 3, 100 * DAY]
    assert product_intervals(agg) == {"tea": (100.0, 2)}
    # AND a record stored before the first purchase was kept (three numbers) loads and gives no own interval
    old = CustomerAggregates.from_dict({"product_purchases": {"tea": [3, 300 * DAY, 3]}})
    assert old.product_purchases["tea"] == [3, 300 * DAY, 3] and product_intervals(old) == {}
    folded, _ = fold_events(old, [_purchase("tea", 400 * DAY)], set())
    assert folded.product_purchases["tea"] == [4, 400 * DAY, 4]


def _purchase(pid: str, secs: int):
    from kairos.customers.schemas import Event

    ts = datetime.fromtimestamp(secs, UTC).isoformat()
    return Event.model_validate(
        {"event_id": f"{pid}-{secs}", "customer_id": "c", "type": "purchase", "timestamp": ts, "product_id": pid}
    )


def test_fit_isotonic_calibrates_overconfident_scores():
    # GIVEN scores whose true probability is their square (an overconfident model)
    rng = np.random.default_rng(1)
    raw = rng.random(20_000)
    y = (rng.random(raw.size) < raw**2).astype(float)
    # WHEN an isotonic map is fitted on half and applied to the other half
    iso = fit_isotonic(raw[:10_000], y[:10_000])
    cal = iso.apply(raw[10_000:])
    # THEN it is non-decreasing, the Brier score drops, and the mean matches the observed rate in each tenth
    assert np.all(np.diff(iso.y) >= 0) and np.all(np.diff(iso.x) >= 0)
    brier = lambda p: float(np.mean((p - y[10_000:]) ** 2))  # noqa: E731
    assert brier(cal) < brier(raw[10_000:]) - 0.01
    for lo in np.arange(0, 1, 0.1):
        sel = (raw[10_000:] >= lo) & (raw[10_000:] < lo + 0.1)
        assert abs(cal[sel].mean() - y[10_000:][sel].mean()) < 0.05


def _lifecycle_model(intervals: dict[str, float]) -> LifecycleModel:
    x = np.random.default_rng(0).random((200, len(LIFECYCLE_FEATURES)))
    y = (x[:, 0] > 0.5).astype(float)
    params = {"objective": "binary", "verbose": -1, "num_threads": 1, "min_data_in_leaf": 5}
    data = lgb.Dataset(x, label=y, feature_name=list(LIFECYCLE_FEATURES))
    booster = lgb.train(params, data, num_boost_round=3)
    return LifecycleModel(booster, booster, Isotonic(), intervals, 30.0)


def test_next_purchase_shrinks_the_customers_interval_toward_the_products_median():
    # GIVEN tea bought every 10 days (3 intervals) where the population's median is 30 days, soap bought once,
    # a sofa (durable) and candles bought long ago
    model = _lifecycle_model({"tea": 30.0, "soap": 20.0, "candles": 10.0})
    now = datetime(2024, 1, 31, tzinfo=UTC)
    last = int((now - timedelta(days=5)).timestamp())
    agg = CustomerAggregates(
        product_purchases={
            "tea": [4, last, 4, last - 30 * DAY],
            "soap": [1, last, 1, last],
            "sofa": [1, last, 1, last],
            "candles": [2, last - 200 * DAY, 2, last - 210 * DAY],
        }
    )
    # WHEN dated with the sofa durable
    dates = model.next_purchases(agg, now, lambda pid: pid != "sofa")
    # THEN soap is due after its median 20 days, tea after (3 x 10 + 5 x 30) / 8 = 22.5 days, no sofa, and the
    # candles (not bought for far more than three intervals) have lapsed
    assert dates == {"soap": last + 20 * DAY, "tea": last + 22.5 * DAY}
    assert list(dates) == ["soap", "tea"]  # soonest first
    # AND a product past its date is expected half an interval from now
    overdue = CustomerAggregates(product_purchases={"soap": [1, last - 20 * DAY, 1, last - 20 * DAY]})
    assert model.next_purchases(overdue, now, lambda pid: True) == {"soap": now.timestamp() + 10 * DAY}


def test_predict_follows_the_catalogue_flag_before_the_learned_repeat_rate():
    # GIVEN an item table where tea is reordered by most of its buyers and a vase by none of its many
    buyers = [CustomerAggregates(product_purchases={"tea": [3, 0, 3, 0], "vase": [1, 0, 1, 0]}) for _ in range(20)]
    buyers += [CustomerAggregates(product_purchases={"vase": [1, 0, 1, 0]}) for _ in range(400)]
    items = build_item_table(buyers, [], datetime(2024, 1, 1, tzinfo=UTC))
    model = _lifecycle_model({})
    now = datetime(2024, 2, 1, tzinfo=UTC)
    last = int((now - timedelta(days=2)).timestamp())
    me = CustomerAggregates(purchase_count=2, product_purchases={"tea": [1, last, 1, last], "vase": [1, last, 1, last]})
    # WHEN predicted without and with the catalogue saying tea is not consumable and the vase is
    (learned,) = model.predict([me], now, items)
    (flagged,) = model.predict([me], now, items, consumable={"tea": False, "vase": True})
    # THEN the learned rate dates tea only, the catalogue's flags the vase only; probabilities are in [0, 1]
    assert list(learned["next_purchase_at"]) == ["tea"]
    assert list(flagged["next_purchase_at"]) == ["vase"]
    assert learned["next_purchase_at"]["tea"] == (now + timedelta(days=28)).date().isoformat()  # default interval
    assert 0.0 <= learned["purchase_probability_90d"] <= 1.0 and learned["expected_spend_90d"] >= 0.0


def test_population_intervals_are_medians_of_customers_own_intervals():
    aggs = [CustomerAggregates(product_purchases={"tea": [2, d * DAY, 2, 0]}) for d in (10, 20, 40)]
    aggs.append(CustomerAggregates(product_purchases={"rare": [2, 5 * DAY, 2, 0]}))
    medians, overall = population_intervals(aggs)
    assert medians == {"tea": 20.0} and overall == 15.0
