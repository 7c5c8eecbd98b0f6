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
