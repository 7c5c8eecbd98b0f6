"""BG/NBD and Gamma-Gamma: the standard probabilistic customer-lifetime baselines, in numpy and scipy.

BG/NBD (Fader, Hardie and Lee 2005, "Counting your customers the easy way") models each customer's repeat
purchases as Poisson with rate ``lambda ~ Gamma(r, alpha)`` while alive, and a drop-out after each purchase with
probability ``p ~ Beta(a, b)``. Gamma-Gamma (Fader, Hardie and Lee 2005, "RFM and CLV") models the mean value of
a customer's transactions. Both are fitted by maximum likelihood on ``(x, t_x, T)`` (repeat purchases, time of
the last one and age since the first, here in days: :func:`kairos.models.features.lifecycle.repeat_summary`)
and the mean value ``m`` of customers with a repeat purchase, as the ``lifetimes`` package does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import gammaln, hyp2f1


@dataclass(frozen=True)
class BgNbd:
    """Fitted BG/NBD parameters (time unit: days)."""

    r: float
    alpha: float
    a: float
    b: float

    def _odds_dead(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
        # a / (b + x - 1) * ((alpha + T) / (alpha + t_x)) ** (r + x), zero for customers without a repeat purchase
        with np.errstate(divide="ignore", invalid="ignore"):
            log_odds = (
                np.log(self.a)
                - np.log(np.maximum(self.b + x - 1, 1e-12))
                + (self.r + x) * (np.log(self.alpha + T) - np.log(self.alpha + t_x))
            )
        return np.where(x > 0, np.exp(np.minimum(log_odds, 700.0)), 0.0)

    def p_alive(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
        """Probability the customer has not dropped out by ``T``."""
        return 1.0 / (1.0 + self._odds_dead(x, t_x, T))

    def expected_purchases(self, t: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
        """Expected purchases in the next ``t`` days (Fader, Hardie and Lee 2005, equation 10)."""
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        z = t / (alpha + T + t)
        hyp = hyp2f1(r + x, b + x, a + b + x - 1, z)
        head = (a + b + x - 1) / (a - 1)  # both factors change sign together when a < 1
        body = 1.0 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp
        return np.nan_to_num(head * body / (1.0 + self._odds_dead(x, t_x, T)), nan=0.0, posinf=0.0)

    def p_purchase(self, t: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
        """Probability of at least one purchase in the next ``t`` days: alive, and the Poisson rate (posterior
        ``Gamma(r + x, alpha + T)``) gives one (a customer drops out only right after a purchase)."""
        no_purchase = ((self.alpha + T) / (self.alpha + T + t)) ** (self.r + x)
        return self.p_alive(x, t_x, T) * (1.0 - no_purchase)


def bgnbd_log_likelihood(params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Each customer's log-likelihood under ``(r, alpha, a, b)`` (Fader, Hardie and Lee 2005, equation 6)."""
    r, alpha, a, b = params
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x)
    a3 = -(r + x) * np.log(alpha + T)
    with np.errstate(divide="ignore", invalid="ignore"):
        a4 = np.where(x > 0, np.log(a) - np.log(np.maximum(b + x - 1, 1e-12)) - (r + x) * np.log(alpha + t_x), -np.inf)
    return a1 + a2 + np.logaddexp(a3, a4)


def fit_bgnbd(x: np.ndarray, t_x: np.ndarray, T: np.ndarray, penalty: float = 0.0) -> BgNbd:
    """Maximum-likelihood BG/NBD parameters (Nelder-Mead then L-BFGS on the log parameters).

    Parameters
    ----------
    x, t_x, T
        Repeat purchases, time of the last purchase and age since the first (same unit), per customer.
    penalty
        L2 penalty on the parameters (as ``lifetimes``' ``penalizer_coef``); 0: plain maximum likelihood.
    """
    x, t_x, T = (np.asarray(v, dtype=np.float64) for v in (x, t_x, T))
    scale = max(float(T.max()) / 10.0, 1e-9) if T.size else 1.0

    def loss(log_params: np.ndarray) -> float:
        params = np.exp(log_params)
        params_scaled = params.copy()
        params_scaled[1] *= scale  # alpha is in time units: fitted relative to the data's scale
        ll = bgnbd_log_likelihood(params_scaled, x, t_x, T)
        return float(-ll.mean() + penalty * (params**2).sum())

    start = np.log(np.array([1.0, 1.0, 1.0, 1.0]))
    first = minimize(loss, start, method="Nelder-Mead", options={"maxiter": 4000, "xatol": 1e-7, "fatol": 1e-10})
    best = minimize(loss, first.x, method="L-BFGS-B")
    chosen = best.x if best.fun <= first.fun else first.x
    r, alpha, a, b = np.exp(chosen)
    return BgNbd(float(r), float(alpha * scale), float(a), float(b))


@dataclass(frozen=True)
class GammaGamma:
    """Fitted Gamma-Gamma parameters of the mean transaction value."""

    p: float
    q: float
    v: float

    def expected_value(self, x: np.ndarray, m: np.ndarray, population: float | None = None) -> np.ndarray:
        """Expected mean transaction value given ``x`` transactions of mean ``m``; customers with none get the
        population mean ``p v / (q - 1)`` (or ``population`` when given)."""
        mean = population if population is not None else (self.p * self.v / (self.q - 1) if self.q > 1 else 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            own = self.p * (self.v + x * m) / (self.p * x + self.q - 1)
        return np.where(x > 0, own, mean)


def gamma_gamma_log_likelihood(params: np.ndarray, x: np.ndarray, m: np.ndarray) -> np.ndarray:
    p, q, v = params
    return (
        gammaln(p * x + q)
        - gammaln(p * x)
        - gammaln(q)
        + q * np.log(v)
        + (p * x - 1) * np.log(m)
        + p * x * np.log(x)
        - (p * x + q) * np.log(x * m + v)
    )


def fit_gamma_gamma(x: np.ndarray, m: np.ndarray) -> GammaGamma:
    """Maximum-likelihood Gamma-Gamma parameters on customers with ``x > 0`` transactions of positive mean ``m``."""
    x, m = np.asarray(x, dtype=np.float64), np.asarray(m, dtype=np.float64)
    keep = (x > 0) & (m > 0)
    x, m = x[keep], m[keep]
    scale = float(np.median(m)) if m.size else 1.0

    def loss(log_params: np.ndarray) -> float:
        p, q, v = np.exp(log_params)
        return float(-gamma_gamma_log_likelihood(np.array([p, q, v]), x, m / scale).mean())

    res = minimize(loss, np.zeros(3), method="Nelder-Mead", options={"maxiter": 4000, "xatol": 1e-7, "fatol": 1e-10})
    p, q, v = np.exp(res.x)
    return GammaGamma(float(p), float(q), float(v * scale))
