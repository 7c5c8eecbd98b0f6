"""python -m training insights: RFM, cohorts and forecast of the committed data cut, JSON and HTML report."""

import base64
import json
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from kairos.insights.measures import RFM_GROUPS
from training.__main__ import main
from training.history import History
from training.insights import compute_insights
from training.io import load_events

SAMPLE = Path(__file__).parents[1] / "data" / "online_retail_sample.csv.gz"
MID = datetime(2011, 1, 1, tzinfo=UTC)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def history():
    data = load_events([str(SAMPLE)])
    return History(data.events, data.profiles)


def test_insights_rfm_counts_every_customer_with_a_purchase_before_as_of(history):
    # GIVEN an as-of time in the middle of the data, and the customers with a purchase before it
    buyers = {
        cid for cid, h in history.customers.items() if any(e.type == "purchase" and e.timestamp < MID for e in h.events)
    }
    # WHEN computing the insights as of then
    rfm = compute_insights(history, MID)["rfm"]
    # THEN the RFM groups and the grid each count exactly those customers, and some customers came later
    assert 0 < len(buyers) < len(history.customers)
    assert rfm["customers"] == len(buyers)
    assert sum(g["customers"] for g in rfm["groups"]) == len(buyers)
    assert sum(c["customers"] for c in rfm["grid"]) == len(buyers)
    assert [g["group"] for g in rfm["groups"]] == list(RFM_GROUPS)


@pytest.mark.parametrize("by", ["first_purchase_month", "attributes.country"])
def test_insights_cohort_period_zero_retention_is_the_cohort_size(history, by):
    # GIVEN / WHEN cohorts by first purchase month or by a profile attribute
    cohorts = compute_insights(history, history.end + timedelta(seconds=1), by=by)["cohorts"]
    retention, revenue = cohorts["retention"], cohorts["revenue"]
    # THEN every cohort's first period holds all its customers, the sizes add up to the purchasers, and the
    # revenue matrix has the same cohorts
    assert retention["by"] == by and retention["cohorts"]
    for row in retention["cohorts"]:
        assert row["values"][0] == row["size"]
        assert row["rates"][0] == 1.0
    assert sum(r["size"] for r in retention["cohorts"]) == len(history.customers)
    assert [(r["cohort"], r["size"]) for r in revenue["cohorts"]] == [
        (r["cohort"], r["size"]) for r in retention["cohorts"]
    ]


def test_insights_forecast_cases_are_ordered(history):
    # GIVEN a 30-day period starting at the as-of day, with comparable periods in the data
    fc = compute_insights(history, MID, forecast_start=date(2011, 1, 1), forecast_days=30)["forecast"]
    # WHEN / THEN pessimistic <= neutral <= optimistic, for conversions and revenue
    assert (fc["start"], fc["end"]) == ("2011-01-01", "2011-01-31")
    assert fc["periods"]
    conv = [fc[case]["conversions"] for case in ("pessimistic", "neutral", "optimistic")]
    revenue = [fc[case]["revenue"] for case in ("pessimistic", "neutral", "optimistic")]
    assert conv[0] <= conv[1] <= conv[2]
    assert revenue[0] <= revenue[1] <= revenue[2]
    assert fc["audience"] == compute_insights(history, MID)["rfm"]["customers"]


def test_insights_cli_writes_json_and_html_report(tmp_path, capsys):
    # GIVEN output paths for the JSON and the report
    out_json, out_html = tmp_path / "insights.json", tmp_path / "report.html"
    # WHEN running the command on the data cut with the default as-of time
    code = main(["insights", "--events", str(SAMPLE), "--json", str(out_json), "--html", str(out_html)])
    # THEN it succeeds, prints the Markdown summary, and writes valid JSON with every part
    assert code == 0
    stdout = capsys.readouterr().out
    assert "## RFM groups" in stdout and "## Forecast" in stdout
    result = json.loads(out_json.read_text())
    assert set(result) >= {"as_of", "rfm", "cohorts", "forecast"}
    assert set(result["cohorts"]) == {"retention", "revenue"}
    assert result["as_of"] == "2011-12-08T14:39:01+00:00"
    # AND the report embeds its plots as base64 PNGs and names every RFM group
    page = out_html.read_text()
    images = re.findall(r'<img[^>]+src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == page.count("<img") >= 4
    assert all(base64.b64decode(img).startswith(PNG_MAGIC) for img in images)
    assert all(name in page for name in RFM_GROUPS)
    assert "http://" not in page and "https://" not in page


def test_insights_cli_rejects_an_unknown_cohort_key(capsys):
    # GIVEN / WHEN a cohort key that is neither the first purchase month nor a profile attribute
    with pytest.raises(SystemExit) as exit_info:
        main(["insights", "--events", str(SAMPLE), "--by", "country"])
    # THEN argparse refuses it
    assert exit_info.value.code == 2
    assert "attributes.<name>" in capsys.readouterr().err
