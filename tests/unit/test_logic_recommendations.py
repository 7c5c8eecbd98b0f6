"""Reading a recommendation: the customer's own score, else its segment's fallback, else the population's."""

from __future__ import annotations

import pytest

from kairos.core.errors import NotFoundError
from kairos.models.recommendations import POPULATION_KEY, SEGMENT_KEY_PREFIX, get_recommendation


def _answer(best: int, level: str, version: str = "m1") -> dict:
    scores = [0.0] * 168
    scores[best] = 1.0
    return {
        "best_hour_of_week": best,
        "hour_scores": scores,
        "next_products": [{"product_id": f"SKU{best}", "score": 1.0}],
        "confidence": {"level": level, "moments": 0},
        "model_version": version,
        "as_of": "2026-03-02T00:00:00+00:00",
    }


@pytest.fixture
def fallbacks(customers):
    customers.put_fallback(POPULATION_KEY, {**_answer(10, "population"), "segment_attribute": "country"})
    customers.put_fallback(f"{SEGMENT_KEY_PREFIX}France", {**_answer(20, "segment"), "segment_attribute": "country"})


def test_get_recommendation_returns_the_scored_answer(customers, add_customer, fallbacks):
    # GIVEN a scored customer (in a segment that has a fallback too)
    add_customer("c1", attributes={"country": "France"})
    customers.put_recommendation("c1", _answer(42, "personal"))
    # WHEN its recommendation is read
    rec = get_recommendation("c1", customers)
    # THEN it is its own answer, marked scored
    assert rec["customer_id"] == "c1" and rec["scored"] is True
    assert rec["best_hour_of_week"] == 42 and rec["confidence"]["level"] == "personal"


def test_get_recommendation_falls_back_to_the_customers_segment(customers, add_customer, fallbacks):
    # GIVEN an unscored customer whose segment attribute has a stored fallback
    add_customer("c1", attributes={"country": "France"})
    # WHEN its recommendation is read
    rec = get_recommendation("c1", customers)
    # THEN it is the segment's answer, not scored, without the internal segment attribute
    assert rec["customer_id"] == "c1" and rec["scored"] is False
    assert rec["best_hour_of_week"] == 20 and rec["confidence"]["level"] == "segment"
    assert "segment_attribute" not in rec


@pytest.mark.parametrize("attributes", [{"country": "Narnia"}, {}, {"country": 7}])
def test_get_recommendation_falls_back_to_the_population(customers, add_customer, fallbacks, attributes):
    # GIVEN an unscored customer of an unknown segment, without the attribute, or with a non-text value
    add_customer("c1", attributes=attributes)
    # WHEN its recommendation is read
    rec = get_recommendation("c1", customers)
    # THEN it is the population's answer
    assert rec["scored"] is False and rec["best_hour_of_week"] == 10
    assert rec["confidence"]["level"] == "population" and "segment_attribute" not in rec


def test_get_recommendation_unknown_customer_is_not_found(customers, fallbacks):
    # GIVEN fallbacks but no customer c1
    # WHEN / THEN
    with pytest.raises(NotFoundError):
        get_recommendation("c1", customers)


def test_get_recommendation_before_any_scoring_is_not_found(customers, add_customer):
    # GIVEN a customer and no model run yet (no population answer)
    add_customer("c1")
    # WHEN / THEN
    with pytest.raises(NotFoundError):
        get_recommendation("c1", customers)
