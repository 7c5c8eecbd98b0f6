"""The score path (``KairosModel.recommend``) next to the raw ``Booster.predict`` calls on the same feature rows.

Usage::

    python bench/score.py [--model models/default] [--customers 2000] [--repeats 7] [--threads N]

Customers are the committed Online Retail cut (``tests/data``) folded into aggregates, repeated to the batch
size. The raw side is the two boosters' ``predict`` on the feature rows of those customers, built beforehand; the
score path is the whole ``recommend`` call (features, predict, calibration, product ranking and the answers).
Both use the same model, the same rows and the same LightGBM threads (``SCORE_THREADS``, what the score function
uses, unless ``--threads``). Each repeat times both, back to back, alternating which goes first; the ratio is the
median over repeats of the per-repeat ratio of CPU time (``time.process_time``: all of the process's threads,
and unmoved by other work on the machine); wall-clock figures are printed beside it. The last line is the ratio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kairos.models.features import product_candidates, time_features  # noqa: E402
from kairos.models.scoring import SCORE_THREADS  # noqa: E402
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


def _timed(fn) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - cpu, time.perf_counter() - wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "models" / "default"))
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=SCORE_THREADS, help="LightGBM num_threads, both sides")
    args = parser.parse_args()

    model = KairosModel.load(args.model)
    inputs, as_of = customers(args.customers)
    aggs = [c.aggregates for c in inputs]
    x_time = time_features(aggs, as_of, model.priors, model.segments(inputs), model.items)
    x_prod = product_candidates(aggs, as_of, model.items).features
    print(
        f"{len(inputs)} customers, {x_time.shape[0]} send-time rows, {x_prod.shape[0]} product rows "
        f"({x_prod.shape[0] / len(inputs):.0f} candidates per customer), LightGBM threads: {args.threads}"
    )

    def raw() -> None:
        model.time_booster.predict(x_time, num_threads=args.threads)
        if model.product_booster is not None:
            model.product_booster.predict(x_prod, num_threads=args.threads)

    def score() -> None:
        model.recommend(inputs, as_of, threads=args.threads)

    raw(), score()  # warm both (zone conversions, lazy imports, allocator)
    times: dict[str, list[tuple[float, float]]] = {"raw": [], "score": []}
    for i in range(args.repeats):
        order = ("raw", "score") if i % 2 == 0 else ("score", "raw")
        for name in order:
            times[name].append(_timed(raw if name == "raw" else score))

    n = len(inputs)
    for label, name in (("raw Booster.predict (both models)", "raw"), ("score path (KairosModel.recommend)", "score")):
        cpu = statistics.median(t[0] for t in times[name])
        wall = statistics.median(t[1] for t in times[name])
        print(f"{label:35s} {cpu / n * 1e3:6.3f} ms CPU per customer  ({wall / n * 1e3:6.3f} ms wall)")
    cpu_ratios = [s[0] / r[0] for s, r in zip(times["score"], times["raw"], strict=True)]
    wall_ratios = [s[1] / r[1] for s, r in zip(times["score"], times["raw"], strict=True)]
    print("per repeat, CPU: " + ", ".join(f"{r:.3f}" for r in cpu_ratios))
    print(
        "per repeat, wall: "
        + ", ".join(f"{r:.3f}" for r in wall_ratios)
        + f" (median {statistics.median(wall_ratios):.2f})"
    )
    print(f"score path / raw predict: {statistics.median(cpu_ratios):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
