"""KairosModel: load, batch recommend, cold start; on a real model trained on the committed data cut."""

from datetime import timedelta
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest

from kairos.customers.aggregates import CustomerAggregates
from kairos.models.serving import LEVEL_PERSONAL, LEVEL_POPULATION, LEVEL_SEGMENT, CustomerInput, KairosModel
from kairos.models.timing import DEFAULT_WINDOW, window_value
from training.fit import TrainConfig, fit
from training.history import Folder, History
from training.io import load_events
from training.response import learn_from_messages

SAMPLE = Path(__file__).parents[1] / "data" / "online_retail_sample.csv.gz"
FAST = TrainConfig(time_rounds=30, product_rounds=20, max_snapshots=6, product_snapshots=2, threads=1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    data = load_events([str(SAMPLE)])
    history = History(data.events, data.profiles)
    end = history.end + timedelta(seconds=1)
    model = fit(history, end, FAST)
    out = tmp_path_factory.mktemp("model")
    model.save(out)
    aggs = Folder(history).advance(end)
    inputs = [CustomerInput(c, aggs[c], history.attributes(c)) for c in history.customers]
    return KairosModel.load(out), inputs, end


def test_recommend_returns_valid_answers_for_every_customer(trained):
    # GIVEN a loaded model and customers with history
    model, inputs, as_of = trained
    # WHEN scoring them in one batch
    recs = model.recommend(inputs, as_of)
    # THEN each has 168 probabilities summing to 1, a best hour no other hour's window beats, ranked products and
    # a personal level
    assert [r.customer_id for r in recs] == [c.customer_id for c in inputs]
    for rec, cust in zip(recs, inputs, strict=True):
        assert len(rec.hour_scores) == 168
        assert sum(rec.hour_scores) == pytest.approx(1.0)
        assert min(rec.hour_scores) >= 0
        values = [window_value(rec.send_scores, h, DEFAULT_WINDOW) for h in range(168)]
        assert values[rec.best_hour_of_week] == pytest.approx(max(values))
        assert 0 < len(rec.next_products) <= 10
        scores = [p["score"] for p in rec.next_products]
        assert scores == sorted(scores, reverse=True)
        assert rec.confidence == {
            "level": LEVEL_PERSONAL,
            "moments": cust.aggregates.engagement_moments,
            "best_day_share": pytest.approx(rec.confidence["best_day_share"]),
        }
        assert rec.model_version == model.version


def test_recommend_batch_equals_one_by_one(trained):
    # GIVEN / WHEN scoring 5 customers together and separately
    model, inputs, as_of = trained
    together = model.recommend(inputs[:5], as_of)
    alone = [model.recommend([c], as_of)[0] for c in inputs[:5]]
    # THEN the answers agree
    for a, b in zip(together, alone, strict=True):
        assert a.best_hour_of_week == b.best_hour_of_week
        assert np.allclose(a.hour_scores, b.hour_scores)
        assert [p["product_id"] for p in a.next_products] == [p["product_id"] for p in b.next_products]


def test_recommend_cold_start_uses_segment_or_population(trained):
    # GIVEN customers without history: one in a known country, one unknown, one without attributes
    model, _, as_of = trained
    country = next(iter(model.priors.segments))
    empty = CustomerAggregates(timezone="Europe/London")
    cold = [
        CustomerInput("new-1", empty, {"country": country}),
        CustomerInput("new-2", empty, {"country": "Atlantis"}),
        CustomerInput("new-3", empty),
    ]
    # WHEN
    recs = model.recommend(cold, as_of)
    # THEN they still get full answers, labelled by where they come from
    assert [r.confidence["level"] for r in recs] == [LEVEL_SEGMENT, LEVEL_POPULATION, LEVEL_POPULATION]
    assert all(r.confidence["moments"] == 0 for r in recs)
    assert all(sum(r.hour_scores) == pytest.approx(1.0) for r in recs)
    assert all(len(r.next_products) == 10 for r in recs)
    # unknown and absent segments are the same population answer
    assert recs[1].hour_scores == recs[2].hour_scores


def test_recommend_empty_batch(trained):
    # GIVEN / WHEN / THEN
    model, _, as_of = trained
    assert model.recommend([], as_of) == []


def test_load_uses_lightgbm_boosters_and_checks_features(trained, tmp_path):
    # GIVEN a saved model whose time booster was trained on other features
    model, _, _ = trained
    assert isinstance(model.time_booster, lgb.Booster)
    model.save(tmp_path)
    other = lgb.train(
        {"objective": "poisson", "verbose": -1},
        lgb.Dataset(np.random.default_rng(0).random((50, 2)), label=np.ones(50), feature_name=["a", "b"]),
        num_boost_round=1,
    )
    other.save_model(str(tmp_path / "time_model.txt"))
    # WHEN / THEN loading refuses it
    with pytest.raises(ValueError, match="TIME_FEATURES"):
        KairosModel.load(tmp_path)


def test_model_version_is_a_digest_of_what_was_learned(trained):
    model, _, end = trained
    data = load_events([str(SAMPLE)])
    history = History(data.events, data.profiles)
    again = fit(history, end, FAST)
    assert again.version == model.version  # same data, same settings: the same model, the same version
    assert again.version.startswith(f"kairos-{end:%Y%m%d}-")
    shorter = fit(history, end - timedelta(days=30), FAST)
    assert shorter.version != model.version
    fewer_rounds = fit(
        history, end, TrainConfig(time_rounds=20, product_rounds=20, max_snapshots=6, product_snapshots=2, threads=1)
    )
    assert fewer_rounds.version != model.version


def test_a_model_retrained_with_the_message_log_serves_what_it_learned(tmp_path):
    # GIVEN a model trained on the data cut and a message log: email opened two hours after most sends,
    # push ignored
    data = load_events([str(SAMPLE)])
    history = History(data.events, data.profiles)
    end = history.end + timedelta(seconds=1)
    model = fit(history, end, FAST)
    rows = [
        {
            "channel": "email",
            "hour_of_week": 9 + (i % 5),
            "engaged": i % 2 == 0,
            "minutes_to_engage": 130.0 if i % 2 == 0 else None,
            "propensity": 0.8,
            "weight": 1.25,
            "features": {"best_hour_of_week": 9},
        }
        for i in range(40)
    ] + [
        {"channel": "push", "hour_of_week": 10, "engaged": False, "propensity": 0.8, "weight": 1.25, "features": {}}
        for _ in range(40)
    ]
    # WHEN it learns from the log, is saved and loaded again
    estimates = learn_from_messages(model, rows)
    model.save(tmp_path)
    loaded = KairosModel.load(tmp_path)
    # THEN the off-policy estimates cover the logged policy, the model's hour and fixed hours
    assert {e.policy for e in estimates} >= {"logged", "model best hour", "fixed 12:00"}
    assert loaded.metadata["off_policy"]["sends"] == 80
    # AND a new customer is offered email before push, with an email window reaching past the send
    [rec] = loaded.recommend([CustomerInput("new", CustomerAggregates())], end)
    assert rec.channel_ranking.index("email") < rec.channel_ranking.index("push")
    offset, weights = rec.send_windows["email"]
    assert offset == -1 and len(weights) > 3 and weights[3] > 0  # two hours after the send counts
    assert rec.send_windows["push"] == [-1, [1.0, 1.0, 1.0]]  # nothing engaged on push: the default
    # AND the calibration fitted in training is in the metadata, one entry per bucket with held-out data
    assert loaded.metadata["calibration"] and set(loaded.metadata["calibration"]) <= {"0", "1-2", "3-9", "10+"}
