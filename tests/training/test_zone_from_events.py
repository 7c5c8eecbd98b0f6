"""A customer without a profile zone is placed in the zone their events' offsets imply, in training (features and
labels), evaluation and the served hour, so a dataset without profiles scores as it does with them."""

import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from kairos.core.timeutil import hour_of_week
from kairos.customers.aggregates import CustomerAggregates, fold_events, zone_of_offsets
from kairos.customers.schemas import Event
from training.__main__ import main
from training.history import History
from training.io import load_events

SAMPLE = Path(__file__).parents[1] / "data" / "online_retail_sample.csv.gz"
FAST = ["--time-rounds", "40", "--product-rounds", "10", "--threads", "1"]
NEW_YORK = ZoneInfo("America/New_York")


@pytest.fixture(scope="module")
def new_york_copy(tmp_path_factory):
    """The sample's invoices at the same wall-clock times, but in New York (offsets -05:00 / -04:00), with and
    without profiles."""
    out = tmp_path_factory.mktemp("ny")
    assert main(["adapt", "online-retail", "--input", str(SAMPLE), "--out", str(out / "uk.jsonl.gz")]) == 0
    with gzip.open(out / "uk.jsonl.gz", "rt") as fh:
        events = [json.loads(line) for line in fh]
    for e in events:
        wall = datetime.fromisoformat(e["timestamp"]).replace(tzinfo=None)
        e["timestamp"] = wall.replace(tzinfo=NEW_YORK).isoformat()
    with gzip.open(out / "ny.jsonl.gz", "wt") as fh:
        fh.writelines(json.dumps(e) + "\n" for e in events)
    profiles = [json.loads(line) for line in (out / "profiles.jsonl").read_text().splitlines()]
    (out / "ny_profiles.jsonl").write_text(
        "".join(json.dumps({**p, "timezone": "America/New_York"}) + "\n" for p in profiles)
    )
    return out


def _evaluate(copy: Path, tmp_path: Path, name: str, profiles: bool) -> dict:
    args = ["evaluate", "--events", str(copy / "ny.jsonl.gz"), "--cutoff", "2011-06-01", "--test-days", "92"]
    if profiles:
        args += ["--profiles", str(copy / "ny_profiles.jsonl")]
    assert main(["--quiet", *args, "--json", str(tmp_path / f"{name}.json"), *FAST]) == 0
    return json.loads((tmp_path / f"{name}.json").read_text())["time"]


def test_without_profiles_the_events_zone_scores_as_the_profiles_zone(new_york_copy, tmp_path):
    # GIVEN the New York copy, evaluated with profiles that give the zone and without any profile
    given = _evaluate(new_york_copy, tmp_path, "given", profiles=True)
    inferred = _evaluate(new_york_copy, tmp_path, "inferred", profiles=False)
    # THEN the test moments are the same, and so are the hit rate and the log-likelihood, within noise
    assert inferred["counts"] == given["counts"]
    g, i = given["methods"]["Kairos"], inferred["methods"]["Kairos"]
    assert i["hit_within_1h"]["overall"] == pytest.approx(g["hit_within_1h"]["overall"], abs=0.03)
    assert i["log_likelihood"]["overall"] == pytest.approx(g["log_likelihood"]["overall"], abs=0.05)
    # AND both are far better than a model whose clock is off by the zone's offset would be: the hours that
    # customers buy at are where the global baseline puts them, in either run
    for run in (given, inferred):
        assert run["methods"]["global best hour"]["hit_within_1h"]["overall"] > 0.3
        assert (
            run["methods"]["Kairos"]["log_likelihood"]["overall"]
            > run["methods"]["smoothed histogram"]["log_likelihood"]["overall"] - 0.1
        )


def test_labels_and_served_hours_are_in_the_zone_the_offsets_imply(new_york_copy, tmp_path):
    # GIVEN the New York copy without profiles
    history = History(load_events([str(new_york_copy / "ny.jsonl.gz")]).events, {})
    cid = max(history.customers, key=lambda c: len(history.customers[c]))
    # THEN the customer's zone is New York, as ingestion infers it
    assert history.timezone(cid) == "America/New_York"
    # AND a label window counts their moments at New York wall-clock hours, the hours the features count them at
    start, end = (
        datetime.fromisoformat("2009-12-01T00:00:00+00:00"),
        datetime.fromisoformat("2012-01-01T00:00:00+00:00"),
    )
    counts = history.window_how_counts([cid], start, end)[0]
    walls = {
        hour_of_week(datetime.fromisoformat(e.timestamp.isoformat()), "America/New_York")
        for e in history.customers[cid].events
    }
    assert set(np.flatnonzero(counts).tolist()) == walls
    # AND predictions say which zone their hours of week are in
    model_dir = tmp_path / "model"
    assert (
        main(["--quiet", "train", "--events", str(new_york_copy / "ny.jsonl.gz"), "--out", str(model_dir), *FAST]) == 0
    )
    out = tmp_path / "pred.jsonl"
    args = ["predict", "--model", str(model_dir), "--events", str(new_york_copy / "ny.jsonl.gz")]
    assert main(["--quiet", *args, "--as-of", "2011-12-01T00:00:00+00:00", "--out", str(out)]) == 0
    # (one offset alone is a fixed zone, no event before the as-of time none, as ingestion has it)
    zones = {json.loads(line)["timezone"] for line in out.read_text().splitlines()}
    assert "America/New_York" in zones
    assert zones <= {"America/New_York", "UTC-05:00", "UTC-04:00", "UTC"}


def test_the_zone_rule_is_ingestions():
    # GIVEN offsets as ingestion counts them
    # THEN a daylight-saving pair names its zone, a lone offset is a fixed zone, none keeps the default
    assert zone_of_offsets({"-300": 5, "-240": 3}) == "America/New_York"
    assert zone_of_offsets({"180": 2}) == "UTC+03:00"
    assert zone_of_offsets({}) == "UTC"
    agg = CustomerAggregates(offset_counts={"-300": 5, "-240": 3})
    assert agg.effective_timezone == zone_of_offsets(agg.offset_counts)


def test_one_offset_seen_in_one_season_names_the_daylight_saving_zone_that_had_it():
    # GIVEN a customer seen only in winter at -05:00, one only in summer at -05:00, one all year at -05:00
    jan, feb = (
        datetime(2026, 1, 5, 12, tzinfo=UTC).timestamp() // 3600,
        datetime(2026, 2, 20, 12, tzinfo=UTC).timestamp() // 3600,
    )
    jul, aug = (
        datetime(2026, 7, 1, 12, tzinfo=UTC).timestamp() // 3600,
        datetime(2026, 8, 10, 12, tzinfo=UTC).timestamp() // 3600,
    )
    # THEN winter only is New York's standard time, summer only Chicago's daylight time, all year a fixed zone
    assert zone_of_offsets({"-300": 4}, spans={"-300": [int(jan), int(feb)]}) == "America/New_York"
    assert zone_of_offsets({"-300": 4}, spans={"-300": [int(jul), int(aug)]}) == "America/Chicago"
    assert zone_of_offsets({"-300": 9}, spans={"-300": [int(jan), int(aug)]}) == "UTC-05:00"
    # AND an offset no daylight-saving zone had then stays fixed (+03:00 in March: Helsinki was +02:00)
    mar = datetime(2026, 3, 2, 12, tzinfo=UTC).timestamp() // 3600
    assert zone_of_offsets({"180": 3}, spans={"180": [int(mar), int(mar)]}) == "UTC+03:00"
    # AND ingestion's fold keeps the spans that say so
    t = datetime(2026, 1, 5, 20, 0, tzinfo=NEW_YORK)
    events = [
        Event(event_id=f"e{i}", customer_id="c", type="session", timestamp=t + timedelta(days=i)) for i in range(3)
    ]
    agg, _ = fold_events(CustomerAggregates(), events, set())
    assert agg.offset_counts == {"-300": 3} and agg.effective_timezone == "America/New_York"
