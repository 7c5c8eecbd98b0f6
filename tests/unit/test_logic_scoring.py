"""Scoring with the bundled default model into the in-memory store: by id, by scan shard, and the fallbacks."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from kairos.customers.domain import CustomerRecord
from kairos.models.recommendations import POPULATION_KEY, SEGMENT_KEY_PREFIX, get_recommendation
from kairos.models.scoring import score_customers, score_records, score_shard, store_fallbacks
from kairos.models.serving import KairosModel
from kairos.models.timing import DEFAULT_WINDOW, window_value
from tests.unit.conftest import NOW, make_event

MODEL_DIR = Path(__file__).resolve().parents[2] / "models" / "default"
SOURCE = "s3://models/default"


@pytest.fixture(scope="module")
def model() -> KairosModel:
    return KairosModel.load(MODEL_DIR)


def _check_answer(rec: dict, model: KairosModel) -> None:
    """A stored answer: 168 probabilities summing to 1, a best hour no other hour's window beats, from this
    model, at NOW."""
    assert len(rec["hour_scores"]) == 168
    assert sum(rec["hour_scores"]) == pytest.approx(1.0)
    values = [window_value(rec["send_scores"], h, DEFAULT_WINDOW) for h in range(168)]
    assert values[rec["best_hour_of_week"]] == pytest.approx(max(values))
    assert rec["model_version"] == model.version
    assert rec["as_of"] == NOW.isoformat() and rec["model_source"] == SOURCE
    assert "customer_id" not in rec


def test_score_customers_writes_answers_and_reports_missing(customers, add_customer, ingest, model):
    # GIVEN a customer with history, a new French customer, and an id that does not exist
    add_customer("c1", timezone="Europe/London")
    ingest(
        [
            make_event(f"p{i}", "c1", "purchase", NOW - timedelta(days=7 * i, hours=2), product_id="SKU1", amount=3)
            for i in range(1, 6)
        ]
    )
    add_customer("c2", attributes={"country": "France"})
    # WHEN they are scored
    out = score_customers(["c1", "c2", "ghost"], customers, model, NOW, SOURCE)
    # THEN the two customers have answers on their records, and the missing id is reported, not created
    assert out == {"scored": 2, "missing": ["ghost"]}
    c1 = customers.get_customer("c1").recommendation
    c2 = customers.get_customer("c2").recommendation
    _check_answer(c1, model)
    _check_answer(c2, model)
    assert c1["confidence"]["level"] == "personal" and c1["confidence"]["moments"] == 5
    assert c2["confidence"]["level"] == "segment"
    assert customers.get_customer("ghost") is None
    # AND the API now reads them as scored
    assert get_recommendation("c1", customers)["scored"] is True


def test_score_records_leaves_an_erased_customer_erased(customers, model):
    # GIVEN a record read by a scan whose customer was erased before the answer is written
    gone = CustomerRecord("gone", exists=True)
    # WHEN it is scored
    written = score_records([gone], customers, model, NOW, SOURCE)
    # THEN the answer is computed but nobody is re-created
    assert written == 1 and customers.get_customer("gone") is None


def test_score_shard_resumes_from_its_cursor_until_done(customers, add_customer, model):
    # GIVEN 12 customers over two scan shards
    for i in range(12):
        add_customer(f"c{i:02d}", attributes={"country": "Germany" if i % 2 else "Japan"})
    in_shard = {r.customer_id for r in customers.scan_customers(0, 2, None, 1000)[0]}
    assert 2 < len(in_shard) < 12
    # WHEN shard 0 is scored two customers at a time, each call out of time after its first page
    out = score_shard(customers, model, NOW, 0, 2, None, lambda: 0, page_size=2, model_source=SOURCE)
    calls, scored = 1, out["scored"]
    while not out["done"]:
        assert out["cursor"] is not None and out["scored"] == 2
        assert (out["shard"], out["total_shards"]) == (0, 2)
        out = score_shard(customers, model, NOW, 0, 2, out["cursor"], lambda: 0, page_size=2, model_source=SOURCE)
        calls += 1
        scored += out["scored"]
    # THEN every customer of the shard was scored once over several calls, and no other customer
    assert calls == -(-len(in_shard) // 2)
    assert scored == len(in_shard) and out["cursor"] is None
    have = {c for c, rec in customers.customers.items() if rec.recommendation is not None}
    assert have == in_shard
    for c in in_shard:
        _check_answer(customers.get_customer(c).recommendation, model)


def test_score_shard_with_time_left_scores_the_whole_shard_in_one_call(customers, add_customer, model):
    # GIVEN 6 customers in one shard
    for i in range(6):
        add_customer(f"c{i}")
    # WHEN it is scored with plenty of time left
    out = score_shard(customers, model, NOW, 0, 1, None, lambda: 10**9, page_size=2)
    # THEN one call scored everybody
    assert (out["scored"], out["done"], out["cursor"]) == (6, True, None)
    assert all(customers.get_customer(f"c{i}").recommendation is not None for i in range(6))


def test_store_fallbacks_stores_population_and_segments(customers, add_customer, model):
    # GIVEN an unscored French customer and an unscored customer of an unknown country
    add_customer("fr", attributes={"country": "France"})
    add_customer("xx", attributes={"country": "Atlantis"})
    # WHEN the fallbacks are stored
    n = store_fallbacks(customers, model, NOW, SOURCE)
    # THEN there is one per known segment plus the population, each naming the segment attribute
    assert n == 1 + len(model.priors.segments)
    assert set(customers.fallbacks) == {POPULATION_KEY} | {f"{SEGMENT_KEY_PREFIX}{s}" for s in model.priors.segments}
    population = customers.get_recommendation(POPULATION_KEY)
    france = customers.get_recommendation(f"{SEGMENT_KEY_PREFIX}France")
    assert population["segment_attribute"] == france["segment_attribute"] == model.priors.segment_attribute
    assert population["confidence"]["level"] == "population" and france["confidence"]["level"] == "segment"
    _check_answer({k: v for k, v in population.items() if k != "segment_attribute"}, model)
    # AND fallbacks are not customers: a scan never returns them
    assert {r.customer_id for r in customers.scan_customers(0, 1)[0]} == {"fr", "xx"}
    # AND unscored customers read their segment's answer, else the population's
    fr = get_recommendation("fr", customers)
    xx = get_recommendation("xx", customers)
    assert fr["scored"] is False and fr["hour_scores"] == france["hour_scores"]
    assert xx["scored"] is False and xx["hour_scores"] == population["hour_scores"]


def test_score_shard_leaves_a_customer_with_nothing_new_as_scored_and_writes_nothing(
    customers, add_customer, ingest, model
):
    # GIVEN two customers scored last night
    add_customer("quiet")
    add_customer("busy")
    last_night = NOW + timedelta(hours=1)
    score_shard(customers, model, last_night, 0, 1, None, lambda: 10**9)
    writes = []
    put = customers.put_recommendation
    customers.put_recommendation = lambda cid, rec: (writes.append(cid), put(cid, rec))
    # WHEN one of them does something, and the next night's run comes
    tonight = last_night + timedelta(days=1)
    ingest([make_event("e1", "busy", "session", ts=NOW + timedelta(hours=2))], at=NOW + timedelta(hours=2))
    out = score_shard(customers, model, tonight, 0, 1, None, lambda: 10**9)
    # THEN both were handled, only the busy one scored and written again
    assert out["scored"] == 2 and writes == ["busy"]
    assert customers.get_customer("quiet").recommendation["as_of"] == last_night.isoformat()
    assert customers.get_customer("busy").recommendation["as_of"] == tonight.isoformat()
    # AND a week on, or with another model, everybody is scored again
    week = last_night + timedelta(days=8)
    writes.clear()
    score_shard(customers, model, week, 0, 1, None, lambda: 10**9)
    assert sorted(writes) == ["busy", "quiet"]


def test_plan_shards_fans_out_by_the_number_of_customers(customers, add_customer):
    from kairos.models.scoring import CUSTOMERS_PER_SHARD, MAX_SCORE_SHARDS, plan_shards

    # GIVEN a few customers THEN the run keeps its fewest shards
    add_customer("c1")
    assert plan_shards(customers, 4) == {"total_shards": 4, "customers": 1}
    # AND with millions it adds a shard per CUSTOMERS_PER_SHARD, up to MAX_SCORE_SHARDS at once
    customers.approximate_count = lambda: 3 * CUSTOMERS_PER_SHARD + 1
    assert plan_shards(customers, 1)["total_shards"] == 4
    customers.approximate_count = lambda: 10_000_000
    assert plan_shards(customers, 4)["total_shards"] == MAX_SCORE_SHARDS == 40
