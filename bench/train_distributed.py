"""The client's memory when training on a cluster, against the training rows that stay on the workers.

Histories are generated as in ``bench/train_memory.py`` (Online Retail II customers copied under new ids). Each
size is trained by ``python -m training train --cluster local --workers N`` in its own process, which prints the
client's peak resident memory (``resource.getrusage``: the client process alone, with the local cluster's
scheduler in it; the workers are other processes) with the rows of the largest shard and of all shards, and the
largest worker's peak. With ``--single`` each size is also trained on one machine (peak from ``/usr/bin/time``).

Usage::

    python bench/train_distributed.py                        # 100k and 400k events, two workers
    python bench/train_distributed.py --sizes 100000 1000000 --single

The last line states the client's peak at the largest size against one shard's rows.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from train_memory import generate, run_train, train  # noqa: E402 - bench/ is not a package

# The last line of `train --cluster`: training/__main__.py client_memory_line.
LINE = re.compile(
    r"client peak RSS: (?P<client>[\d,]+) MB; largest shard rows: (?P<shard_rows>[\d,]+) \((?P<shard_mb>[\d,]+) MB\); "
    r"all shards: (?P<rows>[\d,]+) rows \((?P<rows_mb>[\d,]+) MB\) on (?P<workers>\d+) workers "
    r"\(largest worker peak RSS: (?P<worker>[\d,]+) MB\)"
)


def train_cluster(events_dir: Path, workers: int, extra: list[str]) -> tuple[float, dict[str, int]]:
    """Seconds and the client's memory line of one ``train --cluster local`` process."""
    seconds, _, stdout = run_train(
        events_dir, ["--cluster", "local", "--workers", str(workers), *extra], "model-cluster"
    )
    match = LINE.search(stdout.strip().splitlines()[-1])
    if match is None:
        raise SystemExit(f"no client memory line in:\n{stdout}")
    return seconds, {k: int(v.replace(",", "")) for k, v in match.groupdict().items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 400_000])
    parser.add_argument("--workers", type=int, default=2, help="local worker processes (LightGBM machines)")
    parser.add_argument("--time-rounds", type=int, default=100, help="boosting rounds (the default model uses 250)")
    parser.add_argument("--single", action="store_true", help="also train each size on one machine")
    args = parser.parse_args(argv)
    rounds = ["--time-rounds", str(args.time_rounds), "--product-rounds", "50"]
    runs: list[tuple[int, dict[str, int]]] = []
    with tempfile.TemporaryDirectory(prefix="kairos-bench-") as tmp:
        for n in sorted(args.sizes):
            d = Path(tmp) / str(n)
            d.mkdir()
            events, customers = generate(n, d)
            if args.single:
                seconds, peak = train(d, rounds)
                head = f"one machine   {events:>10,} events {customers:>7,} customers {seconds:>6,.0f} s"
                print(f"{head}  peak {peak:>6,.0f} MB", flush=True)
            seconds, m = train_cluster(d, args.workers, rounds)
            print(
                f"local cluster {events:>10,} events {customers:>7,} customers {seconds:>6,.0f} s  "
                f"client peak {m['client']:>6,} MB  largest worker {m['worker']:>6,} MB  "
                f"rows: largest shard {m['shard_rows']:>10,} ({m['shard_mb']:,} MB), all {m['rows']:>10,} "
                f"({m['rows_mb']:,} MB)",
                flush=True,
            )
            runs.append((events, m))
    print(f"cores: {os.cpu_count()}, workers: {args.workers}")
    if runs:
        # The client's peak is mostly Python, the libraries and Dask (the first size shows it); what grows with the
        # history is the priors and item table, not the rows.
        (e0, m0), (events, m) = runs[0], runs[-1]
        growth = f" ({m['client'] - m0['client']:+,} MB from {e0:,} events)" if len(runs) > 1 else ""
        print(
            f"client peak RSS: {m['client']:,} MB at {events:,} events{growth}; largest shard rows: "
            f"{m['shard_rows']:,} ({m['shard_mb']:,} MB; all shards {m['rows_mb']:,} MB, on the workers)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
