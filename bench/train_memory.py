"""Training throughput and peak memory by history size: events/s, peak resident memory, and what 500M events need.

Histories are generated from Online Retail II: its customers are copied under new ids (each copy's times shifted
by a few days, so copies are not identical) until the wanted number of events is reached, and written as
gzipped JSON Lines (what the archive holds). Each size is trained by ``python -m training train`` in its own
process, on one machine and on a local Dask cluster; peak memory is that process's maximum resident set
(``/usr/bin/time``; on the cluster the largest of the client and its worker processes, whose usage ``wait4``
reports with the client's; ``bench/train_distributed.py`` separates the client from the workers).

Usage::

    python bench/train_memory.py                      # 100k and 1M events
    python bench/train_memory.py --sizes 100000 1000000 5000000

Prints one line per size and the extrapolation to 500M events (10M customers x 50 events).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHARED = ROOT.parent / "shared" / "data" / "online_retail_ii"
TARGET = 500_000_000


def generate(n_events: int, out: Path) -> tuple[int, int]:
    """Write about ``n_events`` events (whole customers) and their profiles; return (events, customers)."""
    from training.adapters import find_online_retail_files, iter_online_retail, online_retail_profiles

    countries: defaultdict[str, Counter[str]] = defaultdict(Counter)
    by_customer: dict[str, list[dict]] = defaultdict(list)
    for rec in iter_online_retail(find_online_retail_files([SHARED]), countries):
        rec.pop("properties", None)
        by_customer[rec["customer_id"]].append(rec)
    profiles = {p["customer_id"]: p for p in online_retail_profiles(countries)}
    written = customers = copy = 0
    with gzip.open(out / "events.jsonl.gz", "wt", encoding="utf-8") as fh, (out / "profiles.jsonl").open("w") as pf:
        while written < n_events:
            shift = timedelta(days=(copy * 3) % 28)
            for cid, records in by_customer.items():
                if written >= n_events:
                    break
                new_id = f"{cid}x{copy}"
                pf.write(json.dumps({**profiles[cid], "customer_id": new_id}) + "\n")
                customers += 1
                for rec in records:
                    ts = (datetime.fromisoformat(rec["timestamp"]) - shift).isoformat()
                    fh.write(json.dumps({**rec, "customer_id": new_id, "timestamp": ts}) + "\n")
                written += len(records)
            copy += 1
    return written, customers


def run_train(events_dir: Path, extra: list[str], model: str = "model") -> tuple[float, float, str]:
    """Seconds, peak resident MB (``/usr/bin/time``: that process alone) and standard output of one ``train``
    process on the histories in ``events_dir``, writing ``events_dir / model``.

    Through ``/usr/bin/time``: a process this (large) one forks starts with its peak, and Linux keeps that peak
    across exec; ``/usr/bin/time`` forks the trainer from a small process.
    """
    report = events_dir / f"time-{model}.txt"
    t0 = time.perf_counter()
    done = subprocess.run(
        [
            "/usr/bin/time",
            "-f",
            "%M",
            "-o",
            str(report),
            sys.executable,
            "-m",
            "training",
            "train",
            "--events",
            str(events_dir / "events.jsonl.gz"),
            "--profiles",
            str(events_dir / "profiles.jsonl"),
            "--out",
            str(events_dir / model),
            *extra,
        ],
        check=True,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - t0
    return seconds, int(report.read_text().split()[-1]) / 1024, done.stdout


def train(events_dir: Path, extra: list[str]) -> tuple[float, float]:
    """Seconds and peak resident MB of one ``train`` process (``/usr/bin/time``: that process alone)."""
    seconds, peak, _ = run_train(events_dir, extra)
    return seconds, peak


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--time-rounds", type=int, default=100, help="boosting rounds (the default model uses 250)")
    parser.add_argument("--machine-gb", type=float, default=16.0, help="memory of one cluster worker, GB")
    parser.add_argument("--cluster-max", type=int, default=1_000_000, help="largest size also run on the cluster")
    args = parser.parse_args(argv)
    rows = []
    paths = {"one machine": [], "local cluster": ["--cluster", "local"]}
    with tempfile.TemporaryDirectory(prefix="kairos-bench-") as tmp:
        for n in sorted(args.sizes):
            d = Path(tmp) / str(n)
            d.mkdir()
            events, customers = generate(n, d)
            for path, extra in paths.items():
                if path != "one machine" and n > args.cluster_max:
                    continue
                rounds = ["--time-rounds", str(args.time_rounds), "--product-rounds", "50"]
                seconds, peak_mb = train(d, [*rounds, *extra])
                if path == "one machine":
                    rows.append((events, customers, seconds, peak_mb))
                print(
                    f"{path:<13} {events:>10,} events {customers:>7,} customers  {events / seconds:>8,.0f} events/s"
                    f"  peak {peak_mb:>7,.0f} MB  ({peak_mb / (events / 1e6):,.0f} MB per million events)",
                    flush=True,
                )
    if len(rows) >= 2:
        (e1, _, s1, m1), (e2, _, s2, m2) = rows[-2], rows[-1]
        mb_per_event = (m2 - m1) / (e2 - e1)
        base_mb = m1 - mb_per_event * e1
        s_per_event = (s2 - s1) / (e2 - e1)
        need_gb = (base_mb + mb_per_event * TARGET) / 1024
        workers = max(1, int(-(-need_gb // (args.machine_gb * 0.7))))
        print(
            f"\nmarginal cost: {mb_per_event * 1e6:,.0f} MB and {s_per_event * 1e6:,.0f} s per million events "
            f"(fixed {base_mb:,.0f} MB)"
        )
        print(
            f"500M events on one machine: {need_gb:,.0f} GB and {s_per_event * TARGET / 3600:,.1f} h; "
            f"sharded by customer over {workers} workers of {args.machine_gb:.0f} GB (70% used): "
            f"{s_per_event * TARGET / workers / 3600:,.1f} h of feature building each; the training rows stay on "
            "the workers, which train the boosters (python bench/train_distributed.py)"
        )
    print(f"cores: {os.cpu_count()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
