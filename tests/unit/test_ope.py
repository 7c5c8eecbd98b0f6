"""Off-policy estimates recover what another send hour would have achieved, from logged sends."""

from __future__ import annotations

import random

from training.ope import candidate_policies, estimate, evaluate_policies, render_table


def _logged(n: int, seed: int = 3) -> list[dict]:
    """A logging policy that sends at noon half the time and at a uniform hour otherwise; customers engage
    with probability 0.30 at 19:00, 0.10 at any other hour. The model recommended 19:00 to everyone."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        hour = 12 if rng.random() < 0.5 else rng.randrange(24)
        p = 0.5 + 0.5 / 24 if hour == 12 else 0.5 / 24
        truth = 0.30 if hour == 19 else 0.10
        rows.append(
            {
                "message_id": f"m{i}",
                "hour_of_week": 24 * rng.randrange(7) + hour,
                "propensity": p,
                "engaged": rng.random() < truth,
                "features": {"best_hour_of_week": 19},
            }
        )
    return rows


def test_ips_and_snips_recover_the_true_rates_within_their_intervals():
    rows = _logged(20000)
    by = {e.policy: e for e in evaluate_policies(rows)}
    for name, truth in (("fixed 19:00", 0.30), ("fixed 12:00", 0.10), ("model best hour", 0.30)):
        e = by[name]
        assert e.ips_low <= truth <= e.ips_high, (name, e)
        assert e.snips_low <= truth <= e.snips_high, (name, e)
    # the logged policy is mostly noon: its realised rate is about 0.10 + a little
    assert 0.09 < by["logged"].ips < 0.13
    assert "| model best hour |" in render_table(list(by.values()))


def test_no_propensities_no_estimate():
    e = estimate([{"hour_of_week": 3, "engaged": True}], "fixed 09:00", candidate_policies()["fixed 09:00"])
    assert e.ips is None and e.rows == 0


def test_policies_are_compared_on_first_sends_of_an_exploring_policy_and_the_new_model_on_its_exact_hour():
    # GIVEN a journey's email and its follow-up to the same customer, a fixed-hour send, and a send explored at
    # Tuesday 10:00 while the retrained model would have chosen Monday 10:00 (same hour of day, another day)
    def row(mid, customer, sent_at, how, policy, p, engaged):
        return {
            "message_id": mid,
            "campaign_id": "k",
            "customer_id": customer,
            "sent_at": sent_at,
            "hour_of_week": how,
            "policy": policy,
            "propensity": p,
            "engaged": engaged,
        }

    rows = [
        row("a0", "a", "2026-01-05T09:00:00+00:00", 9, "optimized", 0.9, True),
        row("a1", "a", "2026-01-06T09:00:00+00:00", 33, "optimized", 0.9, False),
        row("b0", "b", "2026-01-05T12:00:00+00:00", 12, "fixed", 1.0, False),
        row("c0", "c", "2026-01-06T10:00:00+00:00", 34, "explore", 0.1, True),
    ]
    decided = {"a0": 9, "a1": 9, "b0": 9, "c0": 10}
    # WHEN the policies are estimated
    by = {e.policy: e for e in evaluate_policies(rows, candidate_policies(decided))}
    # THEN only the first sends of the exploring policy count: a's email and c's explored send
    assert by["logged"].rows == 2 and by["logged"].ips == 1.0
    # AND the retrained model is credited only where it would have sent at that very hour of week
    assert (by["retrained model"].matched, by["retrained model"].snips) == (1, 1.0)
    assert by["retrained model"].ips == (1 / 0.9) / 2
