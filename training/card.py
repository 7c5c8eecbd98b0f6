"""Write ``MODEL_CARD.md`` and its plot for a model directory from evaluation results."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from kairos.models.serving import METADATA_FILE
from training.evaluate import BUCKETS, TIME_ABLATION, TIME_BASELINES, render_markdown, strongest_baseline
from training.lifecycle_card import lifecycle_section

if TYPE_CHECKING:
    from pathlib import Path

PLOT_FILE = "hit_rate_by_history.png"
SPLIT_TITLES = {"main": "Main split", "holdout": "Holdout split (earlier year, never used to choose settings)"}


def plot_hit_rates(results: dict[str, dict[str, Any]], path: Path) -> None:
    """Bar chart: hit-within-one-hour by history bucket, per method, one panel per split."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = (*TIME_BASELINES, TIME_ABLATION, "Kairos")
    cols = (*BUCKETS, "overall")
    fig, axes = plt.subplots(1, len(results), figsize=(6.5 * len(results), 4.2), squeeze=False, sharey=True)
    width = 0.8 / len(methods)
    for ax, (name, res) in zip(axes[0], results.items(), strict=True):
        for i, m in enumerate(methods):
            vals = [res["time"]["methods"][m]["hit_within_1h"][c] or 0.0 for c in cols]
            ax.bar([x + (i - (len(methods) - 1) / 2) * width for x in range(len(cols))], vals, width, label=m)
        ax.set_xticks(range(len(cols)), [f"{c}\n(n={res['time']['counts'][c]['moments']})" for c in cols])
        ax.set_xlabel("past engagement moments at the cut-off (test moments)")
        ax.set_title(f"{SPLIT_TITLES.get(name, name)}\ncut-off {res['split']['cutoff'][:10]}", fontsize=10)
        ax.set_ylim(0.3, 0.55)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("test engagements within 1 h of best hour")
    axes[0][0].legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _summary(res: dict[str, Any]) -> dict[str, Any]:
    base_name, base = strongest_baseline(res)
    kairos = res["time"]["methods"]["Kairos"]["hit_within_1h"]
    return {
        "split": res["split"],
        "strongest_time_baseline": base_name,
        "strongest_time_baseline_hit_within_1h": base,
        "kairos_hit_within_1h": kairos,
        "relative_gain_overall": (kairos["overall"] / base - 1) if base else None,
        "time": res["time"],
        "products": res["products"],
        "calibration": res.get("calibration"),
        "off_policy": res.get("off_policy"),
        "lifecycle": res.get("lifecycle"),
    }


def write_card(model_dir: Path, results: dict[str, dict[str, Any]]) -> None:
    """Write ``MODEL_CARD.md`` and the plot into ``model_dir`` and add the metrics to ``metadata.json``.

    Parameters
    ----------
    model_dir
        The model directory (must hold ``metadata.json``).
    results
        Split name -> :func:`training.evaluate.evaluate` result; ``main`` and ``holdout`` are expected.
    """
    meta_path = model_dir / METADATA_FILE
    meta = json.loads(meta_path.read_text())
    meta["metrics"] = {name: _summary(res) for name, res in results.items()}
    meta_path.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    plot_hit_rates(results, model_dir / PLOT_FILE)

    window = meta.get("training_window", {})
    lines = [
        "# Kairos default model",
        "",
        f"Version `{meta.get('model_version')}`, trained {meta.get('trained_at', '?')[:10]} on events from "
        f"{window.get('start', '?')[:10]} to {window.get('end', '?')[:10]}.",
        "",
        "## What it does",
        "",
        "- **Send time**: a LightGBM Poisson model predicts, for each customer and each of the 168 local hours of "
        "the week, how many engagement moments (clock hours with a session, open, click or purchase of the "
        "customer's own; an event naming a message is that message's answer, not a moment) the customer "
        "will have there in the next 92 days. `hour_scores` are those rates turned into calibrated probabilities: "
        "per history bucket, a temperature and a weight blend the model's distribution with the customer's "
        "segment prior, fitted on a label window a first booster never saw (table below each split). The decision "
        "is separate: the best hour is the one whose hour and neighbours on the same day hold the most of the "
        "decision ranking (`send_scores`), or, for a channel whose messages are opened hours later, the "
        "hours after the send (a window learned from the message log). The ranking is the model's normalized "
        "rates, blended per history bucket with the customer's own counts smoothed by their prior (the share and "
        "the prior's pseudo-moments fitted on that unseen window to pick its hours best), so where history "
        "is thin the decision is at least the smoothed count's. A customer without a profile zone is placed in "
        "the zone their events' UTC offsets imply, as ingestion infers it, for features, labels and the served "
        "hour.",
        "- **Channels**: with a message log (`--messages`), each channel's engagement per send (inverse-propensity "
        "weighted), by local hour of day, and its decision window; a customer's channel ranking shrinks their "
        "own sends and engagements toward those rates. Opens come at the hour a message was sent, so counted as "
        "the customer's own hours they would teach the model its past choices: they are learned only here, "
        "weighted by the inverse of the chosen hour's propensity. Off-policy estimates of send-time policies "
        "on the logged first sends of an exploring policy (the retrained model deciding each send again, with "
        "the same candidate hours and rule) are printed and kept in `metadata.json` (`off_policy`).",
        "- **Next product**: a LightGBM lambdarank model ranks candidates from the customer's own past purchases, "
        "co-purchase neighbours of recent products and popular products.",
        "- Features come only from the per-customer aggregates the ingest API keeps (`kairos.models.features`), the "
        "population/segment (country) priors and the item table; training and serving share that code.",
        "",
        "## Training data",
        "",
        "Online Retail II (UCI ML Repository, id 502): invoices of a UK online giftware wholesaler, Dec 2009 - "
        "Dec 2011, both yearly files, overlap removed, cancellations dropped, guests dropped. Licence CC BY 4.0. "
        "Cite: Chen, D., Sain, S. L., & Guo, K. (2012). *Data mining for the online retail industry: a case study "
        "of RFM model-based customer segmentation using data mining*. Journal of Database Marketing & Customer "
        "Strategy Management, 19(3), 197-208.",
        "",
        f"Customers: {meta.get('customers')}; training rows: {meta.get('time_examples')} (send time), "
        f"{meta.get('product_examples')} (next product); snapshots: {len(meta.get('snapshots', []))}; "
        f"customers sampled for training rows: {100 * (meta.get('sampling') or {}).get('customers', 1.0):.0f}%, "
        f"zero-label rows kept: {100 * (meta.get('sampling') or {}).get('zero_rows_kept', 0.25):.0f}% (reweighted).",
        "",
        "## Evaluation",
        "",
        "Time split: the model is retrained on the events before the cut-off and tested on the next 92 days "
        "(engagement moments: one per customer per clock hour). *Hit within one hour*: for a test moment on local "
        "weekday d at hour h, the method's best hour for d is the argmax of its scores over d's 24 hours; a hit "
        "when |h - best| <= 1. Log-likelihood: of the test hour of week under the method's distribution. HR@10 / "
        "NDCG@10: against the distinct products the customer bought in the test window. Buckets: the customer's "
        "past engagement moments at the cut-off.",
        "",
        f"![hit rate by history]({PLOT_FILE})",
        "",
    ]
    for name, res in results.items():
        lines += [f"### {SPLIT_TITLES.get(name, name)}", "", render_markdown(res)]
    lines += lifecycle_section(results, SPLIT_TITLES)
    lines += [
        "## Limitations",
        "",
        "- The shop's customers are mostly businesses ordering in UK office hours; the hour-of-day signal is "
        "weak (the best constant hour already gets ~0.43) and most of it is shared by everyone. Expect different "
        "numbers for consumer e-mail engagement.",
        "- There are no sends, opens or clicks in this data: purchases stand in for engagement, so the model "
        "has never seen channel behaviour.",
        "- Customers' countries come from their invoices; every customer is in the shop's UK time zone.",
        "- Durable-goods suppression is data-driven (repeat-purchase rate < 5%); almost no product of this "
        "wholesaler qualifies.",
        "",
        "## Versions",
        "",
        "```json",
        json.dumps(meta.get("libraries", {}), indent=2),
        "```",
        "",
    ]
    (model_dir / "MODEL_CARD.md").write_text("\n".join(lines))
