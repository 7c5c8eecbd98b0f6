"""python -m training: adapt, train -> predict round trip, evaluate."""

import gzip
import json
import re
from pathlib import Path

import numpy as np
import pytest

from kairos.models.features.calibration import best_hours
from training.__main__ import main

SAMPLE = Path(__file__).parents[1] / "data" / "online_retail_sample.csv.gz"
FAST = ["--time-rounds", "20", "--product-rounds", "10"]


@pytest.fixture(scope="module")
def adapted(tmp_path_factory):
    out = tmp_path_factory.mktemp("adapted")
    assert main(["adapt", "online-retail", "--input", str(SAMPLE), "--out", str(out / "events.jsonl.gz")]) == 0
    return out / "events.jsonl.gz", out / "profiles.jsonl"


def test_adapt_writes_events_and_profiles(adapted):
    # GIVEN the adapted sample / WHEN reading it back
    events_path, profiles_path = adapted
    with gzip.open(events_path, "rt") as fh:
        events = [json.loads(line) for line in fh]
    profiles = [json.loads(line) for line in profiles_path.read_text().splitlines()]
    # THEN there are purchase events of 120 customers, each with a London profile
    assert {e["type"] for e in events} == {"purchase"}
    assert len({e["customer_id"] for e in events}) == len(profiles) == 120
    assert {p["timezone"] for p in profiles} == {"Europe/London"}


def test_train_then_predict_round_trip(adapted, tmp_path, capsys):
    # GIVEN a model trained from the adapted JSON Lines and profiles
    events_path, profiles_path = adapted
    model_dir = tmp_path / "model"
    assert (
        main(["train", "--events", str(events_path), "--profiles", str(profiles_path), "--out", str(model_dir), *FAST])
        == 0
    )
    # WHEN predicting for everyone as of mid-2011
    out = tmp_path / "pred.jsonl"
    args = ["predict", "--model", str(model_dir), "--events", str(events_path), "--profiles", str(profiles_path)]
    assert main([*args, "--as-of", "2011-07-01T00:00:00+01:00", "--out", str(out)]) == 0
    # THEN one valid line per customer
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 120
    for rec in lines:
        scores = np.array(rec["hour_scores"])
        assert scores.shape == (168,)
        assert scores.sum() == pytest.approx(1.0)
        assert rec["best_hour_of_week"] == int(best_hours(np.array([rec["send_scores"]]))[0])
        assert all({"product_id", "score"} == set(p) for p in rec["next_products"])
        assert rec["confidence"]["level"] in {"population", "segment", "personal"}
    # customers whose first purchase is after the as-of time are cold starts
    assert any(rec["confidence"]["moments"] == 0 for rec in lines)
    assert (model_dir / "metadata.json").exists()


def test_evaluate_prints_tables_and_writes_json(tmp_path, capsys):
    # GIVEN the raw CSV sample, read through the adapter in-process
    out = tmp_path / "eval.json"
    # WHEN evaluating a time split
    args = ["evaluate", "--events", str(SAMPLE), "--cutoff", "2011-06-01", "--test-days", "92", "--json", str(out)]
    assert main([*args, *FAST]) == 0
    # THEN the Markdown has every method and the JSON the counts per bucket
    text = capsys.readouterr().out
    for name in ("global best hour", "modal hour", "smoothed histogram", "Kairos", "oracle", "co-occurrence"):
        assert name in text
    result = json.loads(out.read_text())
    counts = result["time"]["counts"]
    assert counts["overall"]["moments"] == sum(counts[b]["moments"] for b in ("0", "1-2", "3-9", "10+"))
    assert 0 <= result["time"]["methods"]["Kairos"]["hit_within_1h"]["overall"] <= 1


def test_train_reports_its_progress_on_stderr_and_its_result_on_stdout(tmp_path, capsys):
    # GIVEN the raw CSV sample
    # WHEN training a model from it
    assert main(["train", "--events", str(SAMPLE), "--out", str(tmp_path / "model"), *FAST]) == 0
    # THEN stderr says what it did and how far, each line with the seconds since the start
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert lines and all(re.match(r"\[\s*\d+\.\d s\] ", line) for line in lines)
    for expected in (
        "reading events: 13,",
        "history: 13,",
        "training rows: snapshot 1 of ",
        "folding history to ",
        "% (120 of 120 customers)",
        "training send-time model: iteration 20/20",
        "training product ranker: iteration 10/10",
        "done",
    ):
        assert any(expected in line for line in lines), expected
    # AND stdout has the result only
    assert captured.out.startswith("model ") and "[" not in captured.out


def test_evaluate_reports_its_progress_unless_quiet(capsys):
    # GIVEN the raw CSV sample and a time split
    args = ["evaluate", "--events", str(SAMPLE), "--cutoff", "2011-06-01", "--test-days", "92", *FAST]
    # WHEN evaluating
    assert main(args) == 0
    # THEN the steps of the evaluation are on stderr
    err = capsys.readouterr().err
    assert "evaluation at 2011-06-01: training on the history before it" in err
    assert "test customers against the baselines" in err and "test buyers against the baselines" in err
    # WHEN evaluating with --quiet
    assert main(["--quiet", *args]) == 0
    # THEN nothing is on stderr
    assert capsys.readouterr().err == ""
