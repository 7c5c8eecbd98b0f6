"""Lifecycle predictions end to end on the committed data cut: train, save, load, serve, predict, evaluate."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kairos.models.lifecycle import LIFECYCLE_FILE, PURCHASE_MODEL_FILE, SPEND_MODEL_FILE
from kairos.models.serving import CustomerInput, KairosModel
from training.__main__ import main
from training.evaluate import evaluate, render_markdown
from training.fit import TrainConfig, fit
from training.history import Folder, History
from training.io import load_events
from training.lifecycle_card import lifecycle_section
from training.lifecycle_eval import LIFECYCLE_METHODS

SAMPLE = Path(__file__).parents[1] / "data" / "online_retail_sample.csv.gz"
FAST = TrainConfig(time_rounds=20, product_rounds=10, max_snapshots=4, product_snapshots=1, threads=1)


@pytest.fixture(scope="module")
def history():
    data = load_events([str(SAMPLE)])
    return History(data.events, data.profiles)


@pytest.fixture(scope="module")
def trained(history, tmp_path_factory):
    end = history.end + timedelta(seconds=1)
    out = tmp_path_factory.mktemp("model")
    fit(history, end, FAST).save(out)
    aggs = Folder(history).advance(end)
    inputs = [CustomerInput(c, aggs[c], history.attributes(c)) for c in history.customers]
    return out, inputs, end


def test_trained_model_saves_loads_and_serves_lifecycle(trained):
    # GIVEN a model directory trained on the sample
    directory, inputs, as_of = trained
    assert {LIFECYCLE_FILE, PURCHASE_MODEL_FILE, SPEND_MODEL_FILE} <= {p.name for p in directory.iterdir()}
    model = KairosModel.load(directory)
    # WHEN every customer is scored
    recs = model.recommend(inputs, as_of)
    # THEN each answer carries a calibrated probability, a spend and next purchase dates not before the scoring day
    for rec in recs:
        life = rec.to_dict()["lifecycle"]
        assert set(life) == {"purchase_probability_90d", "expected_spend_90d", "next_purchase_at"}
        assert 0.0 <= life["purchase_probability_90d"] <= 1.0 and life["expected_spend_90d"] >= 0.0
        assert all(d >= as_of.date().isoformat() for d in life["next_purchase_at"].values())
    assert any(r.lifecycle["next_purchase_at"] for r in recs)
    assert len({r.lifecycle["purchase_probability_90d"] for r in recs}) > 5
    meta = json.loads((directory / "metadata.json").read_text())
    assert meta["lifecycle"]["rows"] > 100


def test_model_directory_without_lifecycle_files_still_loads_and_serves(trained, tmp_path):
    # GIVEN a model directory as models trained before lifecycle predictions were
    directory, inputs, as_of = trained
    old = tmp_path / "old"
    shutil.copytree(directory, old)
    for name in (LIFECYCLE_FILE, PURCHASE_MODEL_FILE, SPEND_MODEL_FILE):
        (old / name).unlink()
    # WHEN loaded and asked
    model = KairosModel.load(old)
    recs = model.recommend(inputs[:3], as_of)
    # THEN it serves everything else, with no lifecycle answer
    assert model.lifecycle is None
    assert all(r.lifecycle is None and r.to_dict()["lifecycle"] is None and len(r.hour_scores) == 168 for r in recs)


def test_predict_writes_lifecycle_in_every_line(trained, tmp_path):
    # GIVEN the trained model / WHEN predicting for everyone as of mid-2011
    directory, _, _ = trained
    out = tmp_path / "pred.jsonl"
    args = ["-q", "predict", "--model", str(directory), "--events", str(SAMPLE), "--as-of", "2011-07-01"]
    assert main([*args, "--out", str(out)]) == 0
    # THEN every line has the nested lifecycle object
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 120
    for rec in lines:
        assert set(rec["lifecycle"]) == {"purchase_probability_90d", "expected_spend_90d", "next_purchase_at"}
        assert all(d >= "2011-07-01" for d in rec["lifecycle"]["next_purchase_at"].values())


def test_evaluate_reports_lifecycle_against_rfm_and_bgnbd(history):
    # GIVEN the sample split at 2011-06-01 / WHEN evaluated
    result = evaluate(history, datetime(2011, 6, 1, tzinfo=UTC), 92, FAST)
    life = result["lifecycle"]
    # THEN every method has an AUC better than chance and a spend rank correlation; the probabilities a Brier score
    assert life["customers"] > 50 and 0 < life["purchase_rate"] < 1
    for name in LIFECYCLE_METHODS:
        assert 0.6 < life["methods"][name]["auc"] <= 1.0, (name, life["methods"][name])
        assert -1 <= life["methods"][name]["spend_spearman"] <= 1
    assert life["methods"]["Kairos"]["brier"] < 0.25 and life["methods"]["RFM score"]["brier"] is None
    assert sum(r["customers"] for r in life["reliability"]["Kairos"]) == life["customers"]
    errors = life["next_purchase"]
    assert len({e["products"] for e in errors.values()}) == 1  # the baselines date what the served rule dates
    assert all(e["mae_days"] is not None and e["mae_days"] >= 0 for e in errors.values())
    # AND the report and the model card show it
    assert "purchase AUC" in render_markdown(result)
    card = "\n".join(lifecycle_section({"main": result}, {"main": "Main split"}))
    assert "## Lifecycle predictions" in card and "**Default**" in card
