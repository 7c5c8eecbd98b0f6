"""Whole-batch scoring: every customer of a batch gets the rows, candidates and answers it gets alone."""

from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

import kairos.models.features.shared as shared
import kairos.models.serving as serving
from kairos.customers.aggregates import CustomerAggregates
from kairos.models.features import product_candidates, time_features
from kairos.models.features.channels import ChannelResponse, channel_ranking, channel_rankings
from kairos.models.features.shared import group_ranks, ranks_within, sort_with_order, top_within
from kairos.models.serving import CustomerInput, KairosModel
from training.history import Folder, History
from training.io import load_events

ROOT = Path(__file__).parents[2]
SAMPLE = ROOT / "tests" / "data" / "online_retail_sample.csv.gz"


@pytest.fixture(scope="module")
def scored():
    data = load_events([str(SAMPLE)])
    history = History(data.events, data.profiles)
    as_of = history.end + timedelta(hours=1)
    aggs = Folder(history).advance(as_of)
    inputs = [CustomerInput(c, aggs[c], history.attributes(c)) for c in history.customers]
    inputs += [
        CustomerInput("new", CustomerAggregates("Europe/Paris"), {"country": "France"}),
        CustomerInput("unknown-products", CustomerAggregates(product_purchases={"nope": [2, 1300000000, 2]})),
    ]
    return KairosModel.load(ROOT / "models" / "default"), inputs, as_of


def test_ranks_within_equal_a_stable_lexsort():
    # GIVEN groups and scores with many ties
    rng = np.random.default_rng(3)
    groups = np.sort(rng.integers(0, 40, 3000))
    scores = rng.integers(0, 6, 3000).astype(np.float64)
    # WHEN ranked
    got = ranks_within(groups, scores, 40)
    # THEN best first within each group, equal scores in the order they come
    order = np.lexsort((np.arange(3000), -scores, groups))
    want = np.empty(3000, dtype=np.int64)
    want[order] = group_ranks(groups[order], 40)
    assert np.array_equal(got, want)


@pytest.mark.parametrize("block", [64, 1 << 20])
@pytest.mark.parametrize("k", [0, 1, 3, 50, 10_000])
def test_top_within_keeps_each_groups_k_best(monkeypatch, k, block):
    # GIVEN groups of very different lengths, ties included, partially sorted a few groups at a time or all at once
    monkeypatch.setattr(shared, "_TOP_BLOCK", block)
    rng = np.random.default_rng(k)
    groups = np.sort(np.concatenate([rng.integers(0, 30, 2000), np.full(300, 7)]))
    scores = rng.integers(0, 9, groups.size).astype(np.float64)
    # WHEN / THEN the mask is the ranks below k
    assert np.array_equal(top_within(groups, scores, k, 30), ranks_within(groups, scores, 30) < k)


def test_sort_with_order_is_a_stable_argsort():
    keys = np.random.default_rng(1).integers(0, 50, 5000)
    ordered, order = sort_with_order(keys)
    assert np.array_equal(order, np.argsort(keys, kind="stable"))
    assert np.array_equal(ordered, keys[order])


def test_product_candidates_of_a_batch_are_each_customers_own(scored):
    # GIVEN real customers, a new one and one whose products the model does not know
    model, inputs, as_of = scored
    aggs = [c.aggregates for c in inputs]
    # WHEN candidates are built for the batch and for each customer alone
    batch = product_candidates(aggs, as_of, model.items)
    # THEN each customer's slice is what it gets alone
    for i, agg in enumerate(aggs):
        alone = product_candidates([agg], as_of, model.items)
        lo, hi = batch.offsets[i], batch.offsets[i + 1]
        assert np.array_equal(batch.items[lo:hi], alone.items)
        assert np.array_equal(batch.features[lo:hi], alone.features)
    assert batch.features.shape == (batch.offsets[-1], batch.features.shape[1])


def test_time_features_of_a_batch_are_each_customers_own(scored):
    model, inputs, as_of = scored
    aggs = [c.aggregates for c in inputs]
    segments = model.segments(inputs)
    batch = time_features(aggs, as_of, model.priors, segments, model.items)
    for i in (0, 7, len(aggs) - 2, len(aggs) - 1):
        alone = time_features([aggs[i]], as_of, model.priors, [segments[i]], model.items)
        assert np.array_equal(batch[i * 168 : (i + 1) * 168], alone, equal_nan=True)


def test_recommend_answers_the_same_in_any_chunks(monkeypatch, scored):
    # GIVEN the default model and a batch
    model, inputs, as_of = scored
    whole = [r.to_dict() for r in model.recommend(inputs, as_of, threads=1)]
    # WHEN the batch is built and predicted 7 customers at a time
    monkeypatch.setattr(serving, "PREDICT_CHUNK", 7)
    chunked = [r.to_dict() for r in model.recommend(inputs, as_of, threads=1)]
    # THEN every answer is the same
    assert chunked == whole
    assert [len(r["next_products"]) for r in whole[:-2]] == [10] * (len(whole) - 2)


def test_channel_rankings_equal_each_customers_ranking():
    response = ChannelResponse(rates={"email": 0.3, "push": 0.1, "sms": 0.05, "messenger": 0.05})
    aggs = [
        CustomerAggregates(),
        CustomerAggregates(channel_engagements={"push": 2}),
        CustomerAggregates(channel_engagements={"sms": 1, "messenger": 1}),
    ]
    sends = [None, {"email": 10, "push": 3}, {}]
    assert channel_rankings(aggs, sends, response) == [
        channel_ranking(a, s, response) for a, s in zip(aggs, sends, strict=True)
    ]
    assert channel_rankings(aggs, sends, response)[1][0] == "push"
