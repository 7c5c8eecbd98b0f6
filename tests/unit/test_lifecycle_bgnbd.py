"""BG/NBD and Gamma-Gamma fits recover the parameters of simulated customers."""

from __future__ import annotations

import numpy as np

from training.bgnbd import BgNbd, fit_bgnbd, fit_gamma_gamma


def simulate_bgnbd(params: BgNbd, n: int, horizon: float, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """``(x, t_x, T)`` of ``n`` customers observed for ``horizon`` (each from their first purchase)."""
    lam = rng.gamma(params.r, 1.0 / params.alpha, n)
    p = rng.beta(params.a, params.b, n)
    x = np.zeros(n)
    t_x = np.zeros(n)
    T = np.full(n, horizon)
    for i in range(n):
        t = 0.0
        while True:
            t += rng.exponential(1.0 / lam[i])
            if t > horizon:
                break
            x[i] += 1
            t_x[i] = t
            if rng.random() < p[i]:
                break
    return x, t_x, T


def test_fit_bgnbd_recovers_simulated_parameters():
    # GIVEN customers drawn from known parameters (CDNOW's, in weeks: Fader, Hardie and Lee 2005)
    truth = BgNbd(r=0.25, alpha=4.4, a=0.8, b=2.4)
    x, t_x, T = simulate_bgnbd(truth, 8000, 39.0, np.random.default_rng(3))
    # WHEN fitted
    fitted = fit_bgnbd(x, t_x, T)
    # THEN each parameter is near the truth, and the fit explains the data at least as well as the truth
    for name in ("r", "alpha", "a", "b"):
        assert abs(getattr(fitted, name) / getattr(truth, name) - 1) < 0.3, (name, fitted)
    expected = fitted.expected_purchases(39.0, np.zeros(1), np.zeros(1), np.zeros(1))
    assert expected[0] > 0


def test_bgnbd_predictions_behave():
    # GIVEN a fitted model
    model = BgNbd(r=0.25, alpha=4.4, a=0.8, b=2.4)
    x = np.array([0.0, 5.0, 5.0])
    t_x = np.array([0.0, 30.0, 5.0])
    T = np.array([32.0, 32.0, 32.0])
    # WHEN asked who is alive and who buys
    alive = model.p_alive(x, t_x, T)
    buy = model.p_purchase(10.0, x, t_x, T)
    # THEN a customer without a repeat purchase is alive; a recent buyer beats one silent since long ago
    assert alive[0] == 1.0 and alive[1] > alive[2]
    assert buy[1] > buy[2] and np.all((buy >= 0) & (buy <= 1))
    assert np.all(model.expected_purchases(10.0, x, t_x, T) >= buy)


def test_fit_gamma_gamma_recovers_simulated_parameters():
    # GIVEN customers whose transaction values are Gamma(p, nu) with nu ~ Gamma(q, v)
    rng = np.random.default_rng(5)
    p, q, v = 6.0, 4.0, 15.0
    x = rng.integers(1, 10, 6000).astype(float)
    nu = rng.gamma(q, 1.0 / v, x.size)
    m = np.array([rng.gamma(p, 1.0 / n, int(k)).mean() for n, k in zip(nu, x, strict=True)])
    # WHEN fitted
    fitted = fit_gamma_gamma(x, m)
    # THEN the parameters and the population mean value come back
    assert abs(fitted.p / p - 1) < 0.25 and abs(fitted.q / q - 1) < 0.25 and abs(fitted.v / v - 1) < 0.3
    assert abs(fitted.expected_value(np.zeros(1), np.zeros(1))[0] / (p * v / (q - 1)) - 1) < 0.15
