"""Throughput of ``KairosModel.recommend`` next to raw ``Booster.predict`` on the same feature rows.

Usage::

    python bench/score.py [--model models/default] [--customers 2000] [--repeats 5]

Customers are the committed Online Retail cut (``tests/data``) folded into aggregates, repeated to
the batch size. Each repeat times the raw predict of both boosters (features built beforehand) and
then the full ``recommend`` call (features + predict + output), back to back, so both see the same
machine state; the medians and the ratio are printed. Target: ratio <= 1.5.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kairos.models.features import product_candidates, time_features  # noqa: E402
from kairos.models.serving import CustomerInput, KairosModel  # noqa: E402
from training.history import Folder, History  # noqa: E402
from training.io import load_events  # noqa: E402

SAMPLE = ROOT / "tests" / "data" / "online_retail_sample.csv.gz"


def customers(n: int) -> tuple[list[CustomerInput], object]:
    data = load_events([str(SAMPLE)])
    history = History(data.events, data.profiles)
    as_of = history.end + timedelta(hours=1)
    aggs = Folder(history).advance(as_of)
    base = [CustomerInput(c, aggs[c], history.attributes(c)) for c in history.customers]
    return [base[i % len(base)] for i in range(n)], as_of


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "models" / "default"))
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    model = KairosModel.load(args.model)
    inputs, as_of = customers(args.customers)
    aggs = [c.aggregates for c in inputs]
    segments = model.segments(inputs)
    x_time = time_features(aggs, as_of, model.priors, segments, model.items)
    x_prod = product_candidates(aggs, as_of, model.items).features
    print(
        f"{len(inputs)} customers, {x_time.shape[0]} send-time rows, {x_prod.shape[0]} product rows "
        f"({x_prod.shape[0] / len(inputs):.0f} candidates per customer)"
    )
    model.recommend(inputs[:50], as_of)  # warm caches (zone conversions, lazy imports)

    raw, full = [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        model.time_booster.predict(x_time)
        if model.product_booster is not None:
            model.product_booster.predict(x_prod)
        raw.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        model.recommend(inputs, as_of)
        full.append(time.perf_counter() - t0)
    raw_s, full_s = statistics.median(raw), statistics.median(full)
    ratios = np.array(full) / np.array(raw)
    print(f"raw Booster.predict (both models): {len(inputs) / raw_s:10.0f} customers/s  (median {raw_s * 1e3:.0f} ms)")
    print(
        f"KairosModel.recommend:             {len(inputs) / full_s:10.0f} customers/s  (median {full_s * 1e3:.0f} ms)"
    )
    per_repeat = ", ".join(f"{r:.2f}" for r in ratios)
    print(f"ratio recommend / raw: median {statistics.median(ratios):.2f} (per repeat: {per_repeat})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
