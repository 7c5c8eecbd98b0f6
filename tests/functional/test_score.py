"""Scoring on embedded AWS: events in through the API, the score function with a model published to S3,
recommendations out through the API, identical to what training-side code computes for the same history."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kairos.customers.aggregates import CustomerAggregates, fold_events
from kairos.customers.schemas import Event
from kairos.models.adapters.model_store import publish_model
from kairos.models.serving import CustomerInput, KairosModel
from kairos_local.demo import load_sample
from kairos_local.embedded import embedded_aws
from training.fit import TrainConfig, fit
from training.history import History
from training.io import load_events

DATA = Path(__file__).parents[1] / "data"
FAST = TrainConfig(time_rounds=30, product_rounds=20, max_snapshots=6, product_snapshots=2, threads=1)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    data = load_events([str(DATA / "online_retail_sample.csv.gz")])
    history = History(data.events, data.profiles)
    out = tmp_path_factory.mktemp("model")
    fit(history, history.end + timedelta(seconds=1), FAST).save(out)
    return out


@pytest.fixture
def runtime():
    # The sample's history is two years long: keep it all.
    with embedded_aws(api_key="test-key", parameters={"EventRetentionDays": "800"}) as rt:
        yield rt


def _score_everybody(runtime, shards: int = 2) -> int:
    runtime.invoke("ScoreFunction", {"fallbacks": True})
    scored = 0
    for shard in range(shards):
        cursor, done = None, False
        while not done:
            out = runtime.invoke(
                "ScoreFunction", {"shard": shard, "total_shards": shards, "cursor": cursor, "page_size": 7}
            )
            assert (out["shard"], out["total_shards"]) == (shard, shards)
            cursor, done, scored = out["cursor"], out["done"], scored + out["scored"]
    return scored


def test_score_function_serves_what_training_code_computes(runtime, client, model_dir):
    # GIVEN 12 real customers ingested through the API, and a model published to the models bucket
    events, profiles = load_sample(12, seed=3, data_dir=DATA)
    for p in profiles:
        assert (
            client.request(
                "PUT", f"/v1/customers/{p['customer_id']}", {"timezone": p["timezone"], "attributes": p["attributes"]}
            ).status
            == 200
        )
    for i in range(0, len(events), 500):
        body = client.post_events(events[i : i + 500]).json()
        assert not body["rejected"], body["rejected"][:3]
    publish_model(
        model_dir, runtime.dep.physical["ModelsBucket"], "20261122T000000Z-test", runtime.session.client("s3")
    )
    client.request(
        "PUT", "/v1/customers/newcomer", {"timezone": "Europe/London", "attributes": {"country": "United Kingdom"}}
    )
    # WHEN every customer is scored by parallel scan shards, page by page, resuming from cursors
    scored = _score_everybody(runtime)
    # THEN every customer got an answer, and it is what the model gives for training-side aggregates
    assert scored == len(profiles) + 1
    model = KairosModel.load(model_dir)
    for p in profiles[:5]:
        rec = client.request("GET", f"/v1/customers/{p['customer_id']}/recommendation").json()
        assert rec["scored"] is True and rec["confidence"]["level"] == "personal"
        assert len(rec["hour_scores"]) == 168 and sum(rec["hour_scores"]) == pytest.approx(1.0)
        mine = [Event.model_validate(e) for e in events if e["customer_id"] == p["customer_id"]]
        agg, _ = fold_events(CustomerAggregates(timezone=p["timezone"]), mine, set())
        [expected] = model.recommend(
            [CustomerInput(p["customer_id"], agg, p["attributes"])], datetime.fromisoformat(rec["as_of"])
        )
        assert rec["hour_scores"] == pytest.approx(expected.hour_scores, rel=1e-9, abs=1e-12)
        assert rec["best_hour_of_week"] == expected.best_hour_of_week
        assert rec["send_scores"] == pytest.approx(expected.send_scores, rel=1e-6, abs=1e-9)
        assert [x["product_id"] for x in rec["next_products"]] == [x["product_id"] for x in expected.next_products]
        life = rec["lifecycle"]
        assert life["purchase_probability_90d"] == pytest.approx(expected.lifecycle["purchase_probability_90d"])
        assert life["expected_spend_90d"] == pytest.approx(expected.lifecycle["expected_spend_90d"])
        assert life["next_purchase_at"] == expected.lifecycle["next_purchase_at"]
    # AND a customer without history gets a prior-based answer that says so
    cold = client.request("GET", "/v1/customers/newcomer/recommendation").json()
    assert cold["confidence"]["level"] in ("segment", "population") and cold["confidence"]["moments"] == 0


def test_recommendation_before_scoring_falls_back_and_unknown_is_404(runtime, client, model_dir):
    # GIVEN a published model and stored fallbacks, and a customer created after the last scoring run
    publish_model(
        model_dir, runtime.dep.physical["ModelsBucket"], "20261122T000000Z-test", runtime.session.client("s3")
    )
    assert client.request("GET", "/v1/customers/late/recommendation").status == 404
    client.request("PUT", "/v1/customers/late", {"timezone": "Europe/Paris", "attributes": {"country": "France"}})
    assert client.request("GET", "/v1/customers/late/recommendation").status == 404  # nothing scored yet
    runtime.invoke("ScoreFunction", {"fallbacks": True})
    # WHEN its recommendation is asked for
    rec = client.request("GET", "/v1/customers/late/recommendation").json()
    # THEN it is the segment (or population) answer, marked as not scored
    assert rec["scored"] is False and rec["confidence"]["level"] in ("segment", "population")
    assert rec["model_version"] == json.loads((model_dir / "metadata.json").read_text())["model_version"]
    # AND scoring by id fills it in
    out = runtime.invoke("ScoreFunction", {"customer_ids": ["late", "ghost"]})
    assert out["scored"] == 1 and out["missing"] == ["ghost"]
    assert client.request("GET", "/v1/customers/late/recommendation").json()["scored"] is True
    assert datetime.fromisoformat(rec["as_of"]) <= datetime.now(UTC)


def test_score_all_state_machine_scores_everybody(runtime, client, model_dir):
    # GIVEN customers with history and a published model
    from kairos_local.stepfunctions import local_stepfunctions

    events, profiles = load_sample(6, seed=5, data_dir=DATA)
    for p in profiles:
        client.request("PUT", f"/v1/customers/{p['customer_id']}", {"timezone": p["timezone"]})
    client.post_events(events[:500])
    publish_model(
        model_dir, runtime.dep.physical["ModelsBucket"], "20261122T000000Z-test", runtime.session.client("s3")
    )
    # WHEN the real ScoreAll state machine of the template runs (Map over 3 scan shards, cursor loops)
    with local_stepfunctions(runtime) as sfn:
        desc = sfn.run("ScoreAllStateMachine", {"total_shards": 3}, timeout_s=120)
    # THEN it succeeds and every customer has a recommendation
    assert desc["status"] == "SUCCEEDED", desc
    for p in profiles:
        rec = client.request("GET", f"/v1/customers/{p['customer_id']}/recommendation").json()
        assert rec["scored"] is True, rec
