"""The closed loop end to end, small: ingest over HTTP, train, score, launch three arms, respond, retrain, again.

Numbers are read back from report.json, as a reader of the report would. The optimized arm is compared
with the fixed arm on the expected first-message open probability of the hours each chose (the simulated
customers' true response curve, so no sampling noise at this size), over the two launches of the run (a
Monday, then the next Monday: both arms under the same weekly rhythm), and against
control on realized engagement. The start is fixed so the run is the same whenever the test runs.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from kairos_local.closed_loop import Config, run

pytestmark = pytest.mark.e2e


def test_small_closed_loop_optimized_beats_fixed_and_control(tmp_path):
    start = datetime(2026, 3, 2, 7, tzinfo=UTC)  # a Monday morning
    run(Config(customers=70, seed=7, rounds=2, out=tmp_path, time_rounds=60, start=start))
    report = json.loads((tmp_path / "report.json").read_text())
    assert (tmp_path / "report.html").read_text().count("<img") >= 3
    rounds = report["summary"]
    assert len(rounds) == 2
    for rnd in rounds:
        opt, fixed, control = rnd["arms"]["optimized"], rnd["arms"]["fixed"], rnd["arms"]["control"]
        assert opt["customers"] > 0 and fixed["customers"] > 0 and control["customers"] > 0
        assert opt["messaged"] > 0.8 * opt["customers"]  # everybody with consent got at least the email
        assert control["messaged"] == 0  # the control group is never messaged
        # no arm beats the oracle that picks each customer's true best hour in the same window
        assert opt["expected_first_open"] <= opt["oracle_first_open"] + 1e-9
        assert rnd["oracle_first_open"] <= rnd["oracle_any_hour_first_open"] + 1e-9
        # realized: messaged customers engage more than the held-out control group
        assert opt["opened_rate"] > control["opened_rate"]
        assert opt["opened_uplift"] > 0.05
    # the hours Kairos chose beat one hour for everybody over the run's launches
    mean = {arm: sum(r["arms"][arm]["expected_first_open"] for r in rounds) / 2 for arm in ("optimized", "fixed")}
    assert mean["optimized"] > mean["fixed"]
    # the product's own campaign results agree with what the simulation measured: the control group and its
    # purchases, the customers messaged, and the message log's sends
    for raw in report["rounds"]:
        api = raw["results"]["optimized"]
        assert api["control"]["customers"] == raw["arms"]["control"]["customers"] > 0
        assert api["control"]["converted"] == raw["arms"]["control"]["purchased"]
        skipped = api["audience"]["skipped"]
        assert api["treatment"]["customers"] + skipped == raw["arms"]["optimized"]["customers"]
        assert api["treatment"]["converted"] <= raw["arms"]["optimized"]["purchased"]
        by_channel = {s["channel"]: s["sent"] for s in api["steps"]}
        assert by_channel["email"] == raw["arms"]["optimized"]["by_step"]["email"]["sent"]
        assert api["uplift"]["conversion"]["interval"] is not None
    # every round trained a model on the archive (history came in over HTTP) and scored everyone
    model = report["rounds"][0]["model"]
    assert model["events"] >= report["ingest"]["accepted"] > 0
