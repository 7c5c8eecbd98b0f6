"""The model card view: what a model's metadata holds, and nothing it does not."""

from __future__ import annotations

import json

import pytest

from kairos.core.errors import NotFoundError
from kairos.models.cards import model_card
from kairos_local.template import ROOT


def test_model_card_of_the_bundled_model_holds_its_figures():
    # GIVEN the bundled model's metadata
    meta = json.loads((ROOT / "models" / "default" / "metadata.json").read_text())
    # WHEN it is viewed
    card = model_card(("bundled", meta))
    # THEN every evaluation split is there with Kairos, the baselines and the lifecycle methods
    assert set(card.evaluations) == set(meta["metrics"])
    main = card.evaluations["main"]
    assert (
        main.send_time["Kairos"].hit_within_1h["overall"] == meta["metrics"]["main"]["kairos_hit_within_1h"]["overall"]
    )
    assert meta["metrics"]["main"]["strongest_time_baseline"] in main.send_time
    assert {"Kairos", "BG/NBD + Gamma-Gamma", "RFM score"} <= set(main.lifecycle.methods)
    assert main.lifecycle.methods["RFM score"].brier is None
    assert main.buckets["overall"]["moments"] == meta["metrics"]["main"]["time"]["counts"]["overall"]["moments"]


def test_model_card_without_a_card_has_no_evaluations():
    # GIVEN a model trained without `training card`
    card = model_card(("20261122T000000Z-x", {"model_version": "kairos-x", "trained_at": "2026-11-22T00:00:00+00:00"}))
    # THEN it is named, published, and has nothing to evaluate
    assert card.version == "kairos-x" and card.source == "published" and card.evaluations == {}
    assert card.lifecycle is None


def test_model_card_of_no_model_is_not_found():
    with pytest.raises(NotFoundError):
        model_card(None)
