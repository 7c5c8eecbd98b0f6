"""Time-split evaluation of the lifecycle predictions against RFM and BG/NBD with Gamma-Gamma.

Every customer with a purchase before the cut-off is scored at the cut-off from their aggregates folded to it;
the truth is the same customer folded to ``cutoff + 90 days``: whether their purchase moments grew, and how much
their revenue did. Nothing after the cut-off reaches a prediction: BG/NBD and Gamma-Gamma are fitted on the
purchasers' ``(x, t_x, T, m)`` at the cut-off, RFM's quintiles on their values at the cut-off.

- AUC of the purchase within 90 days (Kairos's calibrated probability; BG/NBD's probability of a purchase; the
  RFM score R + F + M, ties by R then F then M).
- Brier score and a reliability table (ten bins of the predicted probability) of the two probabilities.
- Spearman rank correlation of the predicted and the actual 90-day spend (Kairos; BG/NBD expected purchases
  times Gamma-Gamma's expected order value; RFM).
- Next purchase dates: mean absolute error in days, over the consumable products a customer bought again
  within the 90 days, of the predicted date against the first purchase of the product in the window (Kairos's
  shrunk interval; the product's median interval alone; the customer's own mean interval alone).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.stats import rankdata, spearmanr

from kairos.insights import measures as insights
from kairos.models.features.lifecycle import lifecycle_features, repeat_summary
from kairos.models.features.products import DURABLE_REPEAT_RATE
from kairos.models.features.shared import DAY_S
from training import progress
from training.bgnbd import fit_bgnbd, fit_gamma_gamma

if TYPE_CHECKING:
    from datetime import datetime

    from kairos.customers.aggregates import CustomerAggregates
    from kairos.models.serving import KairosModel
    from training.history import Folder, History

HORIZON_DAYS = 90
LIFECYCLE_METHODS = ("Kairos", "BG/NBD + Gamma-Gamma", "RFM score")
INTERVAL_METHODS = (
    "Kairos (own interval shrunk to the product's median)",
    "product median interval",
    "own interval (the median after one purchase)",
)


def auc(score: np.ndarray, label: np.ndarray) -> float | None:
    """Area under the ROC curve (ties count one half), ``None`` with a single class."""
    pos = label > 0
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if not n_pos or not n_neg:
        return None
    ranks = rankdata(score)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def reliability(prob: np.ndarray, label: np.ndarray, bins: int = 10) -> list[dict[str, Any]]:
    """Customers, mean predicted probability and observed purchase rate per tenth of the probability scale."""
    which = np.minimum((prob * bins).astype(int), bins - 1)
    out = []
    for b in range(bins):
        sel = which == b
        if sel.any():
            out.append(
                {
                    "bin": f"{b / bins:.1f}-{(b + 1) / bins:.1f}",
                    "customers": int(sel.sum()),
                    "predicted": round(float(prob[sel].mean()), 4),
                    "observed": round(float(label[sel].mean()), 4),
                }
            )
    return out


def _rfm_scores(aggs: list[CustomerAggregates], cutoff: datetime) -> np.ndarray:
    values = [insights.rfm_values(a, cutoff) for a in aggs]
    cuts = insights.rfm_thresholds([v for v in values if v is not None], cutoff)
    scores = []
    for v in values:
        s = insights.rfm_score(v, cuts) if v is not None else {"r": 0, "f": 0, "m": 0}
        # R + F + M, ties broken by R, then F, then M (the order RFM grids read them).
        scores.append((s["r"] + s["f"] + s["m"]) * 1000 + s["r"] * 100 + s["f"] * 10 + s["m"])
    return np.array(scores, dtype=float)


def _interval_errors(
    model: KairosModel, history: History, cids: list[str], aggs: list[CustomerAggregates], cutoff: datetime
) -> dict[str, dict[str, Any]]:
    """Absolute errors (days) of each interval method's next purchase dates, over repurchased consumables."""
    lifecycle = model.lifecycle
    assert lifecycle is not None
    items = model.items

    def consumable(pid: str) -> bool:
        row = items.index.get(pid)
        return row is not None and bool(items.repeat_rate[row] >= DURABLE_REPEAT_RATE)

    # The baselines date every product the served rule dates (none of them lapses a product).
    variants = {
        INTERVAL_METHODS[0]: lifecycle,
        INTERVAL_METHODS[1]: replace(lifecycle, shrink=1e12, lapsed_intervals=float("inf"), max_next_purchases=10**9),
        INTERVAL_METHODS[2]: replace(lifecycle, shrink=1e-9, lapsed_intervals=float("inf"), max_next_purchases=10**9),
    }
    errors: dict[str, list[float]] = {name: [] for name in variants}
    start, end = cutoff.timestamp(), cutoff.timestamp() + HORIZON_DAYS * DAY_S
    names = history.table.product_ids
    for cid, agg in zip(cids, aggs, strict=True):
        times, products = history._purchases_of(cid)  # noqa: SLF001 (times and products, in time order)
        lo, hi = np.searchsorted(times, start), np.searchsorted(times, end)
        first: dict[str, float] = {}
        for t, p in zip(times[lo:hi].tolist(), products[lo:hi].tolist(), strict=True):
            first.setdefault(names[p], t)
        if not first:
            continue
        predicted = {name: v.next_purchases(agg, cutoff, consumable) for name, v in variants.items()}
        common = set(first).intersection(predicted[INTERVAL_METHODS[0]])
        for name, dates in predicted.items():
            errors[name] += [abs(dates[p] - first[p]) / DAY_S for p in common]
    return {
        name: {"products": len(e), "mae_days": round(float(np.mean(e)), 2) if e else None} for name, e in errors.items()
    }


def evaluate_lifecycle(
    history: History, model: KairosModel, cutoff: datetime, at_cutoff: dict[str, CustomerAggregates], folder: Folder
) -> dict[str, Any] | None:
    """The lifecycle section of ``evaluate`` (``None`` for a model without lifecycle predictions).

    ``at_cutoff`` is a copy of the aggregates folded to the cut-off; ``folder`` is advanced past the window.
    """
    if model.lifecycle is None:
        return None
    progress.step("evaluation: lifecycle predictions against RFM and BG/NBD")
    cids = [c for c, a in at_cutoff.items() if a.purchase_count > 0]
    if len(cids) < 10:
        return None
    after = folder.advance(cutoff + timedelta(days=HORIZON_DAYS))
    aggs = [at_cutoff[c] for c in cids]
    bought = np.array([after[c].purchase_count > at_cutoff[c].purchase_count for c in cids], dtype=float)
    spend = np.array([max(0.0, after[c].monetary_total - at_cutoff[c].monetary_total) for c in cids])

    x = lifecycle_features(aggs, cutoff)
    prob = model.lifecycle.purchase_probability(x)
    raw = model.lifecycle.purchase_booster.predict(x)
    kairos_spend = model.lifecycle.expected_spend(x)
    summary = repeat_summary(aggs, cutoff)
    rx, t_x, big_t, m = summary.T
    bg = fit_bgnbd(rx, t_x, big_t)
    gg = fit_gamma_gamma(rx, m)
    bg_prob = bg.p_purchase(HORIZON_DAYS, rx, t_x, big_t)
    # Gamma-Gamma's expected order value; a one-time buyer's own first order still tells (as ``lifetimes`` does,
    # fitted on repeat buyers, applied with x = 1 and their one order).
    value = gg.expected_value(np.maximum(rx, 1.0), m)
    bg_spend = bg.expected_purchases(HORIZON_DAYS, rx, t_x, big_t) * value
    rfm = _rfm_scores(aggs, cutoff)
    probs = {"Kairos": prob, "BG/NBD + Gamma-Gamma": bg_prob}
    spends = {"Kairos": kairos_spend, "BG/NBD + Gamma-Gamma": bg_spend, "RFM score": rfm}
    methods = {}
    for name in LIFECYCLE_METHODS:
        p = probs.get(name)
        methods[name] = {
            "auc": _round(auc(p if p is not None else rfm, bought)),
            "brier": _round(float(np.mean((p - bought) ** 2))) if p is not None else None,
            "spend_spearman": _round(float(spearmanr(spends[name], spend).statistic)),
            "spend_mae": _round(float(np.mean(np.abs(spends[name] - spend))), 2) if name != "RFM score" else None,
        }
    return {
        "horizon_days": HORIZON_DAYS,
        "customers": len(cids),
        "purchase_rate": _round(float(bought.mean())),
        "actual_spend_mean": _round(float(spend.mean()), 2),
        "methods": methods,
        "brier_before_calibration": _round(float(np.mean((raw - bought) ** 2))),
        "reliability": {"Kairos": reliability(prob, bought), "BG/NBD + Gamma-Gamma": reliability(bg_prob, bought)},
        "bgnbd": {"r": bg.r, "alpha": bg.alpha, "a": bg.a, "b": bg.b, "p": gg.p, "q": gg.q, "v": gg.v},
        "next_purchase": _interval_errors(model, history, cids, aggs, cutoff),
    }


def _round(v: float | None, digits: int = 4) -> float | None:
    return None if v is None or not np.isfinite(v) else round(v, digits)


def _fmt(v: float | None, digits: int = 3) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def render_lifecycle(res: dict[str, Any] | None) -> str:
    """The lifecycle section as Markdown (empty without one)."""
    if not res:
        return ""
    lines = [
        f"**Lifecycle: purchases and spend in the {res['horizon_days']} days after the cut-off**",
        "",
        f"{res['customers']:,} customers with a purchase before the cut-off; {res['purchase_rate']:.1%} bought "
        f"again within the window (mean spend {res['actual_spend_mean']:,.2f}).",
        "",
        "| method | purchase AUC | Brier | spend Spearman | spend MAE |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, m in res["methods"].items():
        lines.append(
            f"| {name} | {_fmt(m['auc'])} | {_fmt(m['brier'], 4)} | {_fmt(m['spend_spearman'])} "
            f"| {_fmt(m['spend_mae'], 1)} |"
        )
    lines += [
        "",
        f"Kairos's Brier score before the isotonic calibration: {_fmt(res['brier_before_calibration'], 4)}.",
        "",
        "Reliability (customers, mean predicted, observed):",
        "",
        "| predicted | Kairos | BG/NBD |",
        "|---|---|---|",
    ]
    rel = {name: {r["bin"]: r for r in rows} for name, rows in res["reliability"].items()}
    for b in sorted(set(rel["Kairos"]) | set(rel["BG/NBD + Gamma-Gamma"])):
        cells = []
        for name in ("Kairos", "BG/NBD + Gamma-Gamma"):
            r = rel[name].get(b)
            cells.append(f"{r['customers']}: {r['predicted']:.2f} / {r['observed']:.2f}" if r else "")
        lines.append(f"| {b} | {cells[0]} | {cells[1]} |")
    lines += ["", "Next purchase date of consumables bought again in the window:", ""]
    lines += ["| interval | products | MAE (days) |", "|---|---:|---:|"]
    for name, e in res["next_purchase"].items():
        lines.append(f"| {name} | {e['products']:,} | {_fmt(e['mae_days'], 1)} |")
    return "\n".join(lines)
