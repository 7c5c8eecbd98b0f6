"""RFM, cohorts and forecasts from the customers' aggregates."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from kairos.customers.aggregates import CustomerAggregates, fold_events
from kairos.customers.schemas import Event
from kairos.insights.measures import (
    RFM_GRID,
    RFM_GROUPS,
    RfmSummary,
    cohort_matrix,
    forecast,
    quantile,
    rfm_of_customers,
)

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def _customer(*purchases: tuple[int, float], extra: list[Event] | None = None) -> CustomerAggregates:
    """Aggregates of a customer with purchases ``(days before NOW, amount)``."""
    events = [
        Event(
            event_id=f"p{i}",
            customer_id="c",
            type="purchase",
            timestamp=NOW - timedelta(days=d),
            amount=amount,
        )
        for i, (d, amount) in enumerate(purchases)
    ]
    agg, _ = fold_events(CustomerAggregates(), events + (extra or []), set())
    return agg


def test_the_grid_names_every_cell_with_a_documented_group():
    assert {name for row in RFM_GRID.values() for name in row} == set(RFM_GROUPS)
    assert all(len(row) == 5 for row in RFM_GRID.values())


def test_quantiles_match_numpys_linear_rule():
    assert quantile([1, 2, 3, 4, 5], 0.2) == pytest.approx(1.8)
    assert quantile([10], 0.8) == 10


def test_rfm_counts_every_purchaser_once_and_names_the_champion():
    # GIVEN a frequent recent big spender, a long-lapsed one-off, and a customer who never bought
    aggs = {f"mid{i}": _customer((30 + 10 * i, 50.0), (90 + 10 * i, 50.0)) for i in range(8)}
    aggs["champion"] = _customer(*[(d, 200.0) for d in (1, 8, 15, 22, 29, 36)])
    aggs["lost"] = _customer((400, 5.0))
    aggs["browser"] = CustomerAggregates(event_counts={"session": 3})
    # WHEN RFM is computed
    thresholds, scores, summary = rfm_of_customers(aggs, NOW)
    # THEN only purchasers are scored, and the counts add up to them
    assert set(scores) == set(aggs) - {"browser"}
    assert summary.customers == 10 == sum(g["customers"] for g in summary.view()["groups"])
    assert sum(cell["customers"] for cell in summary.view()["grid"]) == 10
    # AND the frequent recent big spender is a champion with top scores; the one-off long ago is lost
    assert scores["champion"]["group"] == "champions"
    assert (scores["champion"]["r"], scores["champion"]["f"], scores["champion"]["m"]) == (5, 5, 5)
    assert scores["lost"]["group"] == "lost" and scores["lost"]["r"] == 1
    # AND revenue by group sums to the purchasers' revenue
    assert sum(g["revenue"] for g in summary.view()["groups"]) == pytest.approx(8 * 100 + 1200 + 5)


def test_movement_since_the_previous_run_and_partial_summaries_add_up():
    a = RfmSummary()
    a.add({"group": "champions", "r": 5, "f": 5, "monetary": 10.0}, "loyal")
    b = RfmSummary()
    b.add({"group": "lost", "r": 1, "f": 1, "monetary": 1.0}, None)
    b.add({"group": "champions", "r": 5, "f": 4, "monetary": 2.0}, "loyal")
    merged = a.merge(b)
    assert merged.customers == 3
    assert merged.movement == {"loyal": {"champions": 2}, "none": {"lost": 1}}
    assert RfmSummary.from_dict(merged.to_dict()) == merged


def test_a_run_summary_stored_with_segments_reads_as_groups():
    # GIVEN a part of a run's summary as stored before the RFM group was named "group"
    stored = {"customers": 2, "segments": {"loyal": {"customers": 2, "revenue": 30.0}}, "grid": {"4,4": 2}}
    # WHEN it is read  THEN its counts are the group's
    view = RfmSummary.from_dict(stored).view()
    assert {g["group"]: g["customers"] for g in view["groups"] if g["customers"]} == {"loyal": 2}


def test_a_purchase_clears_an_abandoned_cart_in_any_order():
    abandon = Event(event_id="a", customer_id="c", type="cart_abandon", timestamp=NOW - timedelta(days=2), amount=9)
    bought = _customer((1, 9.0), extra=[abandon])
    assert bought.last_cart_abandon_s is None
    later = Event(event_id="b", customer_id="c", type="cart_abandon", timestamp=NOW, amount=9)
    assert _customer((1, 9.0), extra=[later]).last_cart_abandon_s == int(NOW.timestamp())


def test_orders_sum_the_lines_of_one_purchase_moment():
    agg = _customer((3, 10.0), (3, 5.0), (1, 7.5))
    assert [amount for _, amount in agg.orders] == [15.0, 7.5]
    assert agg.purchase_count == 2


def test_the_first_cohort_column_is_each_cohorts_size():
    # GIVEN customers first buying in three months, some coming back
    jan, feb = datetime(2026, 1, 10, tzinfo=UTC), datetime(2026, 2, 10, tzinfo=UTC)
    customers = []
    for i in range(5):
        days = [(NOW - jan).days] + ([(NOW - jan).days - 31] if i < 2 else [])
        customers.append((_customer(*[(d, 10.0) for d in days]), {"source": "contest"}))
    for _ in range(3):
        customers.append((_customer(((NOW - feb).days, 20.0)), {"source": "search ads"}))
    customers.append((CustomerAggregates(), {"source": "contest"}))  # never bought: in no cohort
    # WHEN the retention matrix is built by first purchase month and by an attribute
    by_month = cohort_matrix(customers, "first_purchase_month", "retention")
    by_source = cohort_matrix(customers, "attributes.source", "revenue")
    # THEN period 0 is the cohort's size, and the January cohort kept two of five in February
    assert [(c["cohort"], c["size"], c["values"][0]) for c in by_month["cohorts"]] == [
        ("2026-01", 5, 5),
        ("2026-02", 3, 3),
    ]
    assert by_month["cohorts"][0]["values"][1] == 2 and by_month["cohorts"][0]["rates"][1] == 0.4
    # AND as of mid-February, the February cohort has no month 1 yet: no rate rather than a false zero
    early = cohort_matrix(customers, "first_purchase_month", "retention", as_of=date(2026, 2, 15))
    assert early["cohorts"][1]["reachable"][:2] == [3, 0] and early["cohorts"][1]["rates"][1] is None
    # AND February is marked partial for both cohorts (half over), January complete
    assert early["cohorts"][0]["partial"][:2] == [False, True] and early["cohorts"][1]["partial"][0] is True
    # AND as of 1 March, February is complete and March, with no day of data yet, has no rate (not 0%)
    boundary = cohort_matrix(customers, "first_purchase_month", "retention", as_of=date(2026, 3, 1))
    assert boundary["cohorts"][1]["reachable"][:2] == [3, 0] and boundary["cohorts"][1]["rates"][1] is None
    assert not any(boundary["cohorts"][0]["partial"])
    # AND revenue by acquisition source sums each period's purchases
    contest = next(c for c in by_source["cohorts"] if c["cohort"] == "contest")
    assert contest["values"][:2] == [50.0, 20.0]


def test_forecast_takes_min_mean_max_of_comparable_periods():
    # GIVEN an audience that bought in the same week of the last two years: 2 customers, then 4
    aggs = [
        _customer(((NOW - datetime(2025, 11, 27, tzinfo=UTC)).days, 10.0)),
        _customer(((NOW - datetime(2025, 11, 28, tzinfo=UTC)).days, 10.0)),
        _customer(((NOW - datetime(2024, 11, 28, tzinfo=UTC)).days, 30.0)),
        _customer(((NOW - datetime(2024, 11, 29, tzinfo=UTC)).days, 30.0)),
        _customer(((NOW - datetime(2024, 11, 27, tzinfo=UTC)).days, 30.0)),
        _customer(
            ((NOW - datetime(2024, 11, 26, tzinfo=UTC)).days, 30.0),
            ((NOW - datetime(2025, 11, 26, tzinfo=UTC)).days, 5.0),
        ),
    ]
    # WHEN the same week of this year is forecast, looking two years back and at no recent period
    out = forecast(aggs, date(2026, 11, 24), date(2026, 12, 1), NOW, years=2, previous=0)
    # THEN the cases come from last year's week (3 of the 6 bought); the week two years ago is the week the data
    # begins, where every customer bought by definition: it is left out, and says why
    assert [p["kind"] for p in out["periods"]] == ["1 year before"]
    assert [p["observed_conversions"] for p in out["periods"]] == [3]
    assert [p["customers"] for p in out["periods"]] == [6]
    assert [(p["kind"], p["start"]) for p in out["left_out"]] == [("2 years before", "2024-11-24")]
    assert "bought by definition" in out["left_out"][0]["reason"]
    assert out["pessimistic"]["conversions"] == out["optimistic"]["conversions"] == 3
    assert out["neutral"]["conversions"] == 3 and out["optimistic"]["revenue"] == 25.0
    # AND a past campaign to a similar audience counts, scaled to this one
    with_campaign = forecast(
        aggs,
        date(2026, 11, 24),
        date(2026, 12, 1),
        NOW,
        [{"campaign_id": "bf", "customers": 60, "conversions": 60}],
        2,
        0,
    )
    assert with_campaign["optimistic"]["conversions"] == 6


def test_a_forecast_needs_a_period():
    with pytest.raises(ValueError, match="end must be after start"):
        forecast([], date(2026, 12, 2), date(2026, 12, 1), NOW)
