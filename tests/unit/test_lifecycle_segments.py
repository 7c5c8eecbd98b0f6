"""Lifecycle answers on the profile: written by scoring (the catalogue's consumable flags), read by segment filters
and journey conditions, and a journey entry a few days before a consumable's next purchase."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pytest

from kairos.audiences.domain import Filter
from kairos.audiences.matching import field_value, matches, next_change
from kairos.customers.domain import CustomerRecord
from kairos.journeys.condition_domain import Condition
from kairos.journeys.results import journey_results
from kairos.models.features.lifecycle import LIFECYCLE_FEATURES
from kairos.models.lifecycle import Isotonic, LifecycleModel
from kairos.models.scoring import score_customers
from kairos.models.serving import KairosModel
from tests.fakes import InMemoryProductCatalogue
from tests.unit.conftest import NOW, make_event
from tests.unit.journey_world import example, jl

MODEL_DIR = Path(__file__).resolve().parents[2] / "models" / "default"


def _record(lifecycle: dict[str, Any] | None) -> CustomerRecord:
    return CustomerRecord("c1", exists=True, recommendation={"lifecycle": lifecycle} if lifecycle else {})


LIFE = {
    "purchase_probability_90d": 0.72,
    "expected_spend_90d": 180.5,
    "next_purchase_at": {"tea": (NOW + timedelta(days=10)).date().isoformat(), "soap": "2999-01-01"},
}


def test_lifecycle_filter_fields_read_the_latest_answer():
    # GIVEN a customer whose answer expects a purchase (tea in 10 days), and one scored by an older model
    scored, unscored = _record(LIFE), _record(None)
    day = NOW.replace(hour=0, minute=0, second=0, microsecond=0)
    # WHEN the lifecycle fields are read
    # THEN they are the answer's values; days to the next purchase count to the soonest date; none: no match
    assert field_value(scored, "lifecycle.purchase_probability_90d", NOW) == 0.72
    assert field_value(scored, "lifecycle.expected_spend_90d", NOW) == 180.5
    assert field_value(scored, "lifecycle.days_to_next_purchase", day) == 10.0
    likely = [Filter.model_validate({"field": "lifecycle.purchase_probability_90d", "op": "gte", "value": 0.5})]
    soon = [Filter.model_validate({"field": "lifecycle.days_to_next_purchase", "op": "lte", "value": 3})]
    assert matches(scored, likely, NOW) and not matches(unscored, likely, NOW)
    assert not matches(scored, soon, day) and matches(scored, soon, day + timedelta(days=7))
    # AND time alone moves a days-to condition: the membership is looked at again when 3 days are left
    assert next_change(scored, soon, day) == day + timedelta(days=7, seconds=1)
    # AND a filter compares them with numbers only, and journey splits read the same fields
    with pytest.raises(ValueError, match="compares with a number"):
        Filter.model_validate({"field": "lifecycle.expected_spend_90d", "op": "gt", "value": "a lot"})
    assert Condition.model_validate({"field": "lifecycle.expected_spend_90d", "op": "gt", "value": 100})


def _with_lifecycle(model: KairosModel) -> KairosModel:
    """The bundled model with a small lifecycle model (whatever it predicts: these tests read where it goes)."""
    x = np.random.default_rng(0).random((200, len(LIFECYCLE_FEATURES)))
    params = {"objective": "binary", "verbose": -1, "num_threads": 1, "min_data_in_leaf": 5}
    booster = lgb.train(params, lgb.Dataset(x, label=(x[:, 0] > 0.5).astype(float)), num_boost_round=3)
    return replace(model, lifecycle=LifecycleModel(booster, booster, Isotonic(), {"SKU1": 14.0, "SKU2": 14.0}, 30.0))


def test_scoring_writes_lifecycle_with_the_catalogues_consumable_flags(customers, add_customer, ingest):
    # GIVEN a customer who bought two products weekly, the model knowing neither, the catalogue saying tea is
    # consumable and the vase is not
    model = _with_lifecycle(KairosModel.load(MODEL_DIR))
    add_customer("c1", timezone="Europe/London")
    ingest(
        [
            make_event(f"p{i}{sku}", "c1", "purchase", NOW - timedelta(days=7 * i, hours=2), product_id=sku, amount=3)
            for i in range(1, 5)
            for sku in ("SKU1", "SKU2")
        ]
    )
    catalogue = InMemoryProductCatalogue()
    catalogue.put_product({"product_id": "SKU1", "name": "Tea", "consumable": True})
    catalogue.put_product({"product_id": "SKU2", "name": "Vase", "consumable": False})
    # WHEN scored with the catalogue
    score_customers(["c1"], customers, model, NOW, "test", catalogue)
    # THEN the profile's answer has the lifecycle, with a next purchase of the consumable only: its weekly interval
    # shrunk toward the product's 14 days, (3 x 7 + 5 x 14) / 8 = 11.375 days after the last purchase
    life = customers.get_customer("c1").recommendation["lifecycle"]
    assert 0 <= life["purchase_probability_90d"] <= 1 and life["expected_spend_90d"] >= 0
    assert list(life["next_purchase_at"]) == ["SKU1"]
    last = NOW - timedelta(days=7, hours=2)
    assert life["next_purchase_at"]["SKU1"] == (last + timedelta(days=11.375)).date().isoformat()


def test_replenish_journey_enters_days_before_the_next_purchase_and_names_the_product(world, add_customer):
    # GIVEN the replenish example, a customer expected to buy tea in 5 days, and one with no lifecycle answer
    catalogue = {"tea": {"product_id": "tea", "name": "Earl Grey", "url": "https://shop.example/tea"}}
    deps = world.deps
    world.deps = lambda: replace(deps(), products=lambda ids: {i: catalogue[i] for i in ids if i in catalogue})
    due = (world.now + timedelta(days=5)).date().isoformat()
    world.customers.put_recommendation("c1", {"lifecycle": {**LIFE, "next_purchase_at": {"tea": due}}})
    add_customer("c2")
    jid = world.journey(example("replenish_consumables"))
    # WHEN the hourly scan runs through three days
    for _ in range(72):
        jl.scan_entries(world.active(), world.entrance(), world.now)
        world.drain()
        world.now += timedelta(hours=1)
    # THEN c1 entered once, three days before the date, and the message names the product from the catalogue
    paths = world.store.journey_paths(jid)
    assert [p["customer_id"] for p in paths] == ["c1"]
    assert journey_results(jid, world.store, world.messages)["entries"] == 1
    (message,) = [m for m, *_ in world.providers["email"].sent]
    assert "Earl Grey" in message.subject and "https://shop.example/tea" in message.body
