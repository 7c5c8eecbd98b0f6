"""The best channel: engagement per send by channel, shrunk toward each channel's learned response rate."""

from __future__ import annotations

import pytest

from kairos.customers.aggregates import CustomerAggregates
from kairos.models.features.channels import PRIOR_SENDS, ChannelResponse, channel_ranking, channel_scores
from training.response import fit_response


def test_no_history_keeps_the_default_order():
    assert channel_ranking(CustomerAggregates()) == ["email", "push", "sms", "messenger"]


def test_engagement_moves_a_channel_first():
    agg = CustomerAggregates(channel_engagements={"push": 3, "email": 1})
    assert channel_ranking(agg)[:2] == ["push", "email"]


def test_one_engagement_on_a_later_channel_outranks_none():
    assert channel_ranking(CustomerAggregates(channel_engagements={"sms": 1}))[0] == "sms"


def test_ignored_sends_move_a_channel_down_and_the_learned_rate_is_the_prior():
    # GIVEN email answers 30% of sends and push 10% across the message log
    response = ChannelResponse(rates={"email": 0.3, "push": 0.1, "sms": 0.05, "messenger": 0.05})
    # WHEN a customer has no sends, THEN the scores are the channels' rates and email leads
    fresh = channel_scores(CustomerAggregates(), {}, response)
    assert fresh["email"] == pytest.approx(0.3)
    assert channel_ranking(CustomerAggregates(), {}, response)[0] == "email"
    # WHEN a customer ignored ten emails and opened two of three pushes
    agg = CustomerAggregates(channel_engagements={"push": 2})
    scores = channel_scores(agg, {"email": 10, "push": 3}, response)
    # THEN push leads, each score being the shrunk rate per send
    assert scores["email"] == pytest.approx(PRIOR_SENDS * 0.3 / (10 + PRIOR_SENDS))
    assert scores["push"] == pytest.approx((2 + PRIOR_SENDS * 0.1) / (3 + PRIOR_SENDS))
    assert channel_ranking(agg, {"email": 10, "push": 3}, response)[0] == "push"


def _row(channel, hour, engaged, propensity=1.0, minutes=None):
    return {
        "channel": channel,
        "hour_of_week": hour,
        "engaged": engaged,
        "weight": 1.0 / propensity,
        "minutes_to_engage": minutes,
    }


def test_response_model_weights_by_inverse_propensity_and_learns_the_open_delay():
    # GIVEN email sends: the policy sent at 09:00 with propensity 0.9 (engaged half the time) and explored
    # 20:00 with propensity 0.1 (engaged always, two hours after the send)
    rows = [_row("email", 9, i % 2 == 0, 0.9, 30.0 if i % 2 == 0 else None) for i in range(18)]
    rows += [_row("email", 20, True, 0.1, 150.0) for _ in range(2)]
    # WHEN the response model is fitted
    response = fit_response(rows)
    # THEN the rate is self-normalised IPS: (9/0.9 + 2/0.1) / (18/0.9 + 2/0.1) = 30 / 40
    assert response.rate("email") == pytest.approx(30 / 40)
    # AND the 20:00 rate is shrunk toward it, above the 09:00 rate
    assert response.hour_rates["email"][20] > response.hour_rates["email"][9]
    # AND the decision window reaches two hours past the send (offsets -1 .. +3 carry weight)
    offset, weights = response.window("email")
    assert offset == -1 and weights[4] > 0 and sum(weights) == pytest.approx(3.0)
    # AND it survives the model's metadata
    assert ChannelResponse.from_dict(response.to_dict()).to_dict() == response.to_dict()
