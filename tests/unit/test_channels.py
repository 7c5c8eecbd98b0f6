"""The best channel: where a customer engages most, smoothed so that little history does not decide alone."""

from __future__ import annotations

from kairos.aggregates import CustomerAggregates
from kairos.features.channels import channel_ranking, channel_scores


def test_no_history_keeps_the_default_order():
    assert channel_ranking(CustomerAggregates()) == ["email", "push", "sms", "messenger"]


def test_engagement_moves_a_channel_first_and_scores_are_a_distribution():
    agg = CustomerAggregates(channel_engagements={"push": 3, "email": 1})
    assert channel_ranking(agg)[:2] == ["push", "email"]
    scores = channel_scores(agg)
    assert abs(sum(scores.values()) - 1) < 1e-9 and scores["push"] == 4 / 8


def test_one_engagement_on_a_later_channel_outranks_none():
    assert channel_ranking(CustomerAggregates(channel_engagements={"sms": 1}))[0] == "sms"
