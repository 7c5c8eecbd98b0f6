"""Time-split evaluation: train on the history before a cut-off, test on the following days.

Kairos is trained with ``training.fit.fit(history, end=cutoff)`` and scored through
``KairosModel.recommend`` on the aggregates folded up to the cut-off, the same path the score
function serves. Baselines use the same aggregates. Test engagements are engagement moments (one per
customer per clock hour) in ``[cutoff, cutoff + test_days)``; test products are the distinct products
each customer bought in that window. Results are split by the customer's history length at the
cut-off (past engagement moments). See ``training.metrics`` for the metric definitions.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from kairos.models.features import day_window, local_hours_of_week
from kairos.models.features.calibration import window_scores
from kairos.models.serving import CustomerInput
from training import baselines, progress
from training.fit import TrainConfig, fit
from training.history import Folder
from training.lifecycle_eval import evaluate_lifecycle, render_lifecycle
from training.metrics import (
    HISTORY_BUCKETS,
    history_bucket,
    hit_rate_at_k,
    hits_within_one_hour,
    log_likelihoods,
    ndcg_at_k,
)
from training.ope import Estimate, evaluate_policies, render_table

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from kairos.models.serving import KairosModel
    from training.history import History

TIME_BASELINES = ("global best hour", "modal hour (Braze-style)", "smoothed histogram")
# The customer's counts plus the population's hour distribution (10 pseudo-moments), picking the hour with the
# most mass within one hour: the floor where history is thin (Kairos's decision blends it in per bucket), and
# how much of Kairos's gain the window alone explains.
TIME_ABLATION = "smoothed count, ±1 h window"
TIME_UNCALIBRATED = "Kairos, rates before calibration"
TIME_CALIBRATED_PICK = "Kairos, picking by the calibrated probabilities"
TIME_ORACLES = ("oracle: one hour of day per customer", "oracle: best hour per weekday")
TIME_METHODS = (*TIME_BASELINES, TIME_ABLATION, TIME_UNCALIBRATED, TIME_CALIBRATED_PICK, "Kairos", *TIME_ORACLES)
PRODUCT_METHODS = ("popularity", "co-occurrence", "repeat purchases", "Kairos")
PRODUCT_BASELINES = PRODUCT_METHODS[:3]
BUCKETS = tuple(b[0] for b in HISTORY_BUCKETS)
TOP_K = 10


def evaluate(
    history: History,
    cutoff: datetime,
    test_days: int,
    cfg: TrainConfig | None = None,
    message_rows: Sequence[dict[str, Any]] | None = None,
    trainer: Callable[[datetime], KairosModel] | None = None,
) -> dict[str, Any]:
    """Train on ``[start, cutoff)``, test on ``[cutoff, cutoff + test_days)``; return all metrics.

    Parameters
    ----------
    history
        Events and profiles; events after the test window are ignored.
    cutoff
        End of the training history.
    test_days
        Length of the test window.
    cfg
        Training settings.
    trainer
        Trains the model on the history before a time (default: ``training.fit.fit`` on this machine;
        ``training.distributed.fit_distributed`` on a cluster).
    message_rows
        Labelled sends of the message log (:func:`training.io.message_training_rows`): when given, the
        off-policy estimates of the candidate send-time policies on them (``off_policy``).

    Returns
    -------
    dict
        ``split``, ``time``, ``products``, ``calibration``, ``off_policy`` and ``lifecycle`` sections (see
        :func:`render_markdown`; ``lifecycle``: :func:`training.lifecycle_eval.evaluate_lifecycle`).
    """
    t0 = time.monotonic()
    test_end = cutoff + timedelta(days=test_days)
    folder = Folder(history)
    progress.step("evaluation at %s: training on the history before it", f"{cutoff:%Y-%m-%d}")
    model = trainer(cutoff) if trainer is not None else fit(history, cutoff, cfg, folder=folder)
    train_s = time.monotonic() - t0
    aggs = folder.advance(cutoff)

    # ---- send time --------------------------------------------------------------------------
    cids = history.active(cutoff, test_end)
    progress.step("evaluation: send times of %s test customers against the baselines", f"{len(cids):,}")
    inputs = [CustomerInput(c, aggs[c], history.attributes(c)) for c in cids]
    recs = model.recommend(inputs, cutoff, top_k=TOP_K)
    kairos_probs = np.array([r.hour_scores for r in recs]).reshape(len(cids), -1)
    kairos_ranking = np.array([r.send_scores for r in recs]).reshape(len(cids), -1)
    agg_list = [aggs[c] for c in cids]
    rows_l, hows_l = [], []
    for i, c in enumerate(cids):
        m = history.window_moments(c, cutoff, test_end)
        rows_l.append(np.full(m.size, i))
        # The zone the customer is served in at the cut-off (a profile's, or inferred from the offsets so far);
        # a customer first seen in the test window, the zone their test moments imply.
        tz = history.timezone(c, cutoff if aggs[c].engagement_moments else test_end)
        hows_l.append(local_hours_of_week(m, tz))
    rows = np.concatenate(rows_l) if rows_l else np.empty(0, dtype=np.int64)
    hows = np.concatenate(hows_l) if hows_l else np.empty(0, dtype=np.int64)
    test_counts = np.zeros((len(cids), 168))
    np.add.at(test_counts, (rows, hows), 1.0)
    priors = model.priors
    smoothed = baselines.smoothed_histogram_scores(agg_list, priors)
    # name -> (scores whose per-weekday argmax is the pick, distribution for the log-likelihood or None).
    # Kairos picks by its decision rule (the window over its ranking, send_scores) and is scored for likelihood
    # on its calibrated probabilities (hour_scores); the normalized rates show what the calibration adds to the
    # likelihood, and the window over the probabilities what the decision would be without the ranking.
    rates = model.hour_rates(agg_list, [history.segment(c) for c in cids], cutoff)
    methods = {
        "global best hour": (baselines.global_scores(agg_list, priors),) * 2,
        "modal hour (Braze-style)": (baselines.modal_hour_scores(agg_list, priors), None),
        "smoothed histogram": (smoothed, smoothed),
        TIME_ABLATION: (day_window(smoothed), smoothed),
        TIME_UNCALIBRATED: (window_scores(rates), rates),
        TIME_CALIBRATED_PICK: (window_scores(kairos_probs), kairos_probs),
        "Kairos": (window_scores(kairos_ranking), kairos_probs),
        TIME_ORACLES[0]: (baselines.oracle_hour_of_day_scores(test_counts, priors), None),
        TIME_ORACLES[1]: (baselines.oracle_scores(test_counts, priors), None),
    }
    cust_bucket = np.array([history_bucket(a.engagement_moments) for a in agg_list])
    moment_bucket = cust_bucket[rows] if rows.size else np.empty(0, dtype=str)
    time_res: dict[str, Any] = {"methods": {}, "counts": {}}
    for name, (pick, dist) in methods.items():
        hits = hits_within_one_hour(pick, rows, hows)
        time_res["methods"][name] = {
            "hit_within_1h": _by_bucket(hits, moment_bucket),
            "log_likelihood": None if dist is None else _by_bucket(log_likelihoods(dist, rows, hows), moment_bucket),
        }
    for b in (*BUCKETS, "overall"):
        sel = moment_bucket == b if b != "overall" else np.ones(rows.size, bool)
        time_res["counts"][b] = {"moments": int(sel.sum()), "customers": int(np.unique(rows[sel]).size)}

    # ---- next product -----------------------------------------------------------------------
    buyers, relevant = [], []
    for c in history.customers:
        bought = history.window_products(c, cutoff, test_end)
        if bought:
            buyers.append(c)
            relevant.append(set(bought))
    b_aggs = [aggs[c] for c in buyers]
    progress.step("evaluation: next products of %s test buyers against the baselines", f"{len(buyers):,}")
    kairos_lists = [[p for p, _ in ranked] for ranked in model.rank_products(b_aggs, cutoff, TOP_K)]
    popular = baselines.popularity_ranking(model.items, TOP_K * 3)
    lists = {
        "popularity": [popular[:TOP_K]] * len(buyers),
        "co-occurrence": [baselines.cooccurrence_ranking(a, model.items, TOP_K, popular) for a in b_aggs],
        "repeat purchases": [baselines.repeat_ranking(a, TOP_K, popular) for a in b_aggs],
        "Kairos": kairos_lists,
    }
    buyer_bucket = np.array([history_bucket(a.engagement_moments) for a in b_aggs])
    prod_res: dict[str, Any] = {"methods": {}, "counts": {}}
    for name, ranked in lists.items():
        hr = np.array([hit_rate_at_k(r, rel, TOP_K) for r, rel in zip(ranked, relevant, strict=True)])
        nd = np.array([ndcg_at_k(r, rel, TOP_K) for r, rel in zip(ranked, relevant, strict=True)])
        prod_res["methods"][name] = {
            "hr_at_10": _by_bucket(hr, buyer_bucket),
            "ndcg_at_10": _by_bucket(nd, buyer_bucket),
        }
    for b in (*BUCKETS, "overall"):
        n = int((buyer_bucket == b).sum()) if b != "overall" else len(buyers)
        prod_res["counts"][b] = {"customers": n}

    return {
        "split": {
            "train_start": history.start.isoformat() if history.start else None,
            "cutoff": cutoff.isoformat(),
            "test_end": test_end.isoformat(),
            "test_days": test_days,
            "training_seconds": round(train_s, 1),
            "seconds": round(time.monotonic() - t0, 1),
        },
        "time": time_res,
        "products": prod_res,
        "model_metadata": {
            k: model.metadata.get(k) for k in ("snapshots", "time_examples", "product_examples", "engine")
        },
        "calibration": model.metadata.get("calibration_fit", {}),
        "off_policy": (
            {"sends": len(message_rows), "estimates": [asdict(e) for e in evaluate_policies(message_rows)]}
            if message_rows
            else None
        ),
        "lifecycle": evaluate_lifecycle(history, model, cutoff, dict(aggs), folder),
    }


def _by_bucket(values: np.ndarray, buckets: np.ndarray) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for b in BUCKETS:
        sel = buckets == b
        out[b] = float(values[sel].mean()) if sel.any() else None
    out["overall"] = float(values.mean()) if values.size else None
    return out


def strongest_baseline(result: dict[str, Any]) -> tuple[str, float]:
    """The time baseline with the best overall hit rate, and that rate."""
    methods = result["time"]["methods"]
    name = max(TIME_BASELINES, key=lambda m: methods[m]["hit_within_1h"]["overall"] or 0.0)
    return name, methods[name]["hit_within_1h"]["overall"]


def _ratio_lines(t: dict[str, Any]) -> list[str]:
    """Kairos's hit rate as a multiple of each customer's most frequent hour and of the smoothed count, per bucket."""
    kairos = t["methods"]["Kairos"]["hit_within_1h"]
    out = []
    for name in ("modal hour (Braze-style)", TIME_ABLATION):
        base = t["methods"][name]["hit_within_1h"]
        cells = [f"{c} {kairos[c] / base[c]:.3f}×" for c in (*BUCKETS, "overall") if kairos[c] and base[c]]
        out.append(f"Kairos / {name}: " + ", ".join(cells) + ".")
    return ["", *out]


def _fmt(v: float | None, digits: int = 3) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def render_markdown(result: dict[str, Any]) -> str:
    """Markdown tables of an :func:`evaluate` result."""
    split = result["split"]
    cols = (*BUCKETS, "overall")
    head = "| method | " + " | ".join(f"{c} past moments" if c != "overall" else "overall" for c in cols) + " |"
    rule = "|---|" + "---:|" * len(cols)
    t = result["time"]
    lines = [
        f"Split: train {split['train_start'][:10]} .. {split['cutoff'][:10]}, "
        f"test {split['cutoff'][:10]} .. {split['test_end'][:10]} ({split['test_days']} days).",
        "",
        "**Send time: share of test engagements within one hour of the predicted best hour**",
        "",
        head,
        rule,
    ]
    for name in TIME_METHODS:
        vals = t["methods"][name]["hit_within_1h"]
        label = f"**{name}**" if name == "Kairos" else name
        lines.append(f"| {label} | " + " | ".join(_fmt(vals[c]) for c in cols) + " |")
    lines.append(
        "| *test moments (customers)* | "
        + " | ".join(f"{t['counts'][c]['moments']} ({t['counts'][c]['customers']})" for c in cols)
        + " |"
    )
    base_name, base = strongest_baseline(result)
    kairos_hit = t["methods"]["Kairos"]["hit_within_1h"]["overall"]
    if base and kairos_hit is not None:
        lines += ["", f"Kairos vs strongest baseline ({base_name}): {100 * (kairos_hit / base - 1):+.1f}% relative."]
    lines += _ratio_lines(t)
    lines += ["", "**Send time: mean log-likelihood of the test hours (nats, higher is better)**", "", head, rule]
    for name in TIME_METHODS:
        vals = t["methods"][name]["log_likelihood"]
        label = f"**{name}**" if name == "Kairos" else name
        lines.append(f"| {label} | " + " | ".join(_fmt(None if vals is None else vals[c]) for c in cols) + " |")
    cal = result.get("calibration") or {}
    if cal:
        lines += [
            "",
            "**Send-time calibration and decision blend** (fitted on the label window after the last snapshot, which "
            "a first booster never saw; per history bucket: the weight on the model's own distribution vs the segment "
            "prior and the log-likelihood of each; the smoothed count's share of the decision ranking and its prior's "
            "pseudo-moments, and the window's hit rates of the booster alone, the smoothed count alone and the blend)",
            "",
            "| past moments | temperature | weight | calibrated LL | prior LL | window moments "
            "| smoothed share (k) | hits: booster / smoothed / blend |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for b in BUCKETS:
            if b in cal:
                c = cal[b]
                blend = (
                    (
                        f"{c['smoothed_share']} ({c['pseudo_moments']:g}) | {c['hit_rate_model']:.3f} / "
                        f"{c['hit_rate_smoothed_count']:.3f} / {c['hit_rate_blend']:.3f}"
                    )
                    if "smoothed_share" in c
                    else "— | —"
                )
                lines.append(
                    f"| {b} | {c.get('temperature', 1.0)} | {c.get('weight', 1.0)} | "
                    f"{_fmt(c.get('log_likelihood'))} | {_fmt(c.get('prior_log_likelihood'))} | "
                    f"{c.get('moments', '—')} | {blend} |"
                )
    ope = result.get("off_policy")
    if ope:
        lines += [
            "",
            f"**Off-policy value of send-time policies** on {ope['sends']} logged sends (engagement per send)",
            "",
            render_table([Estimate(**e) for e in ope["estimates"]]),
        ]
    p = result["products"]
    for metric, title in (("hr_at_10", "HR@10"), ("ndcg_at_10", "NDCG@10")):
        lines += [
            "",
            f"**Next product: {title}** (relevant = distinct products bought in the test window)",
            "",
            head,
            rule,
        ]
        for name in PRODUCT_METHODS:
            vals = p["methods"][name][metric]
            label = f"**{name}**" if name == "Kairos" else name
            lines.append(f"| {label} | " + " | ".join(_fmt(vals[c]) for c in cols) + " |")
        lines.append("| *test customers* | " + " | ".join(str(p["counts"][c]["customers"]) for c in cols) + " |")
    if result.get("lifecycle"):
        lines += ["", render_lifecycle(result["lifecycle"])]
    return "\n".join(lines) + "\n"
