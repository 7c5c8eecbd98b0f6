"""The closed loop end to end, small: ingest over HTTP, train, score, launch three arms, respond, measure.

Numbers are read back from report.json, as a reader of the report would. The optimized arm is compared
with the fixed arm on the expected first-message open probability of the hours each chose (the simulated
customers' true response curve, so no sampling noise at this size) and, against control, on realized
engagement.
"""

from __future__ import annotations

import json

import pytest

from kairos.local.closed_loop import Config, run

pytestmark = pytest.mark.e2e


def test_small_closed_loop_optimized_beats_fixed_and_control(tmp_path):
    run(Config(customers=80, seed=7, rounds=1, out=tmp_path, time_rounds=60))
    report = json.loads((tmp_path / "report.json").read_text())
    assert (tmp_path / "report.html").read_text().count("<img") >= 3
    (rnd,) = report["summary"]
    arms = rnd["arms"]
    opt, fixed, control = arms["optimized"], arms["fixed"], arms["control"]
    assert opt["customers"] > 0 and fixed["customers"] > 0 and control["customers"] > 0
    assert opt["messaged"] > 0.8 * opt["customers"]  # everybody with consent got at least the email
    assert control["messaged"] == 0  # the control group is never messaged
    # the hours Kairos chose are better than one hour for everybody, and no better than the oracle
    assert opt["expected_first_open"] > fixed["expected_first_open"]
    assert opt["expected_first_open"] <= rnd["oracle_first_open"]
    # realized: messaged customers engage more than the held-out control group
    assert opt["opened_rate"] > control["opened_rate"]
    assert opt["opened_uplift"] > 0.05
    # every round trained a model on the archive (history came in over HTTP) and scored everyone
    model = report["rounds"][0]["model"]
    assert model["events"] >= report["ingest"]["accepted"] > 0
