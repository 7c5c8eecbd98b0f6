"""The demo report: numbers, intervals, uplift; a self-contained HTML page and report.json."""

from __future__ import annotations

import json

import pytest

from kairos_local.report import format_table, summary, wilson, write_report


def results():
    arm = {
        "optimized": {
            "customers": 100,
            "messaged": 95,
            "opened": 40,
            "clicked": 12,
            "purchased": 6,
            "by_step": {"email": {"sent": 95, "opened": 30}, "push": {"sent": 50, "opened": 10}},
            "expected_first_open": 0.31,
        },
        "fixed": {
            "customers": 80,
            "messaged": 76,
            "opened": 24,
            "clicked": 6,
            "purchased": 3,
            "by_step": {"email": {"sent": 76, "opened": 20}},
            "expected_first_open": 0.22,
        },
        "control": {
            "customers": 50,
            "messaged": 0,
            "opened": 0,
            "clicked": 0,
            "purchased": 1,
            "by_step": {},
            "expected_first_open": None,
        },
    }
    rounds = [
        {
            "name": "round 1",
            "model": {"model_version": "kairos-1"},
            "fixed_hour": 12,
            "arms": arm,
            "oracle_first_open": 0.4,
        },
        {
            "name": "round 2",
            "model": {"model_version": "kairos-2"},
            "fixed_hour": 12,
            "arms": arm,
            "oracle_first_open": 0.4,
        },
    ]
    curve = [1.0 / 168] * 168
    return {
        "config": {"customers": 230, "seed": 7},
        "rounds": rounds,
        "seconds": 12.0,
        "customers": [{"customer_id": "sim-1", "timezone": "UTC", "true_rhythm": curve, "learned": curve}],
    }


def test_summary_rates_intervals_and_uplift():
    (r1, _) = summary(results())
    opt = r1["arms"]["optimized"]
    assert opt["opened_rate"] == pytest.approx(0.40)
    assert opt["opened_uplift"] == pytest.approx(0.40)  # control never opens: it gets nothing
    assert opt["purchased_uplift"] == pytest.approx(0.06 - 0.02)
    lo, hi = opt["opened_ci"]
    assert lo < 0.40 < hi and (lo, hi) == wilson(40, 100)
    assert wilson(0, 50)[0] == 0.0 and wilson(0, 50)[1] > 0


def test_table_and_html_report(tmp_path):
    text = format_table(results())
    for word in ("optimized", "fixed", "control", "oracle", "40.0%", "after retraining"):
        assert word in text
    with_ope = results()
    with_ope["rounds"][1]["model"]["off_policy"] = {
        "sends": 120,
        "estimates": [
            {
                "policy": "model",
                "ips": 0.3,
                "ips_low": 0.2,
                "ips_high": 0.4,
                "snips": 0.31,
                "snips_low": 0.21,
                "snips_high": 0.41,
                "matched": 40,
                "rows": 120,
            },
        ],
    }
    page = write_report(with_ope, tmp_path / "report.html")
    html = page.read_text()
    assert html.count("<img") == 4 and "optimized" in html
    # the numbers are tables, not text with Markdown pipes: two rounds of arms and one of estimates
    from html.parser import HTMLParser

    class Cells(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.tables, self.cells, self.inside = 0, [], False

        def handle_starttag(self, tag, attrs):
            self.tables += tag == "table"
            self.inside = tag in ("td", "th")

        def handle_data(self, data):
            if self.inside:
                self.cells.append(data)

    parsed = Cells()
    parsed.feed(html)
    assert parsed.tables == 3 and "|" not in html.split("<body>")[1].split("<img")[0]
    assert {"optimized", "40.0%", "model", "30.0%", "40 of 120"} <= set(parsed.cells)
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["summary"][0]["arms"]["fixed"]["opened_rate"] == pytest.approx(0.3)


def test_uplift_interval_contains_the_difference_and_narrows_with_size():
    from kairos_local.report import uplift_interval

    lo, hi = uplift_interval(30, 100, 10, 100)
    assert lo < 0.2 < hi and lo > 0
    lo2, hi2 = uplift_interval(300, 1000, 100, 1000)
    assert hi2 - lo2 < hi - lo
