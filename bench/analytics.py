"""Cohorts, RFM thresholds and the forecast's period outcomes as SQL over the event archive, on DuckDB.

Usage::

    python bench/analytics.py                         # 1,000,000 customers, archive kept under the temp dir
    python bench/analytics.py --customers 100000 --dir /data/kairos-archive

Generates an archive of ``--customers`` customers' events over two years in the archive's own format (gzip JSON
Lines, ``events/dt=YYYY-MM-DD/<batch>.jsonl.gz``, one line per event with the keys ``Event.to_record()`` writes,
sorted as ``encode_lines`` sorts them), or reuses the one in ``--dir``; then times the three queries of
``kairos.insights.sql`` on DuckDB over the JSON and over a Parquet copy of it (the same layout), and prints per
query the seconds (the fastest of ``--repeats`` runs: the machine may be shared), the bytes scanned and what
Athena would charge for them ($5/TB, 10 MB minimum).

Customers arrive over the two years (more of them lately); 65% buy, a geometric number of orders (mean 2.2)
spaced by about 75 days, each order 1 to a few lines in one clock hour (one purchase moment); sessions, product
views, opens and clicks come on top, more for those who buy. Times carry one of eight UTC offsets per customer.
Generation is vectorised (numpy for the values, DuckDB to write the lines), a chunk of customers at a time, so
memory stays within ``--memory`` plus a few hundred MB.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kairos.insights import sql  # noqa: E402
from kairos.insights.adapters.duckdb_engine import DuckDbArchive, compact_to_parquet  # noqa: E402
from kairos.insights.measures import comparable_periods  # noqa: E402

START = datetime(2024, 1, 1, tzinfo=UTC)
END = datetime(2026, 1, 1, tzinfo=UTC)
# The analyses run a few hours into the day after the last events, with a fraction of a second as a clock has.
NOW = END + timedelta(hours=6, microseconds=250_000)
DAY_S = 86_400
OFFSETS = np.array([0, 60, 120, -300, -360, -480, 330, 600], dtype=np.int64)  # minutes east of UTC
OFFSET_SHARES = np.array([0.3, 0.2, 0.1, 0.15, 0.05, 0.1, 0.05, 0.05])
ENGAGEMENT = np.array(["session", "product_view", "message_open", "message_click"])
ENGAGEMENT_SHARES = np.array([0.45, 0.3, 0.15, 0.1])
CHANNELS = np.array(["email", "sms", "push"])
COMPLETE = ".complete"


def chunk_events(rng: np.random.Generator, first_id: int, n: int) -> dict[str, np.ndarray]:
    """The events of customers ``first_id`` .. ``first_id + n - 1`` as columns (``-1``: the field is absent)."""
    start_s, end_s = START.timestamp(), END.timestamp()
    acquired = start_s + (end_s - start_s) * rng.random(n) ** 0.7
    offset = rng.choice(OFFSETS, size=n, p=OFFSET_SHARES)
    orders = np.where(rng.random(n) < 0.65, rng.geometric(0.45, n), 0)

    # Orders: the first within a day or so of arriving, the next ones about 75 days apart (a segmented cumsum).
    owner = np.repeat(np.arange(n), orders)
    first = np.repeat(np.cumsum(orders) - orders, orders)
    gaps = rng.exponential(75 * DAY_S, owner.size)
    gaps[np.arange(owner.size) == first] = rng.exponential(DAY_S, int((orders > 0).sum()))
    cum = np.cumsum(gaps)
    at = acquired[owner] + cum - cum[first] + gaps[first]
    kept = at < end_s
    owner, hour = owner[kept], np.floor(at[kept] / 3600) * 3600
    bought = np.bincount(owner, minlength=n)

    # Lines of an order: in its clock hour (one purchase moment), each a product with a price in cents.
    lines = 1 + rng.poisson(0.8, owner.size)
    p_owner = np.repeat(owner, lines)
    p_time = np.minimum(np.repeat(hour, lines) + rng.integers(0, 3600, p_owner.size), end_s - 1)
    cents = np.round(np.exp(rng.normal(3.2, 0.8, p_owner.size)) * 100).astype(np.int64)

    # Engagement between arrival and the end, more for those who buy.
    engaged = rng.poisson(6 + 6 * bought)
    e_owner = np.repeat(np.arange(n), engaged)
    e_time = acquired[e_owner] + (end_s - acquired[e_owner]) * rng.random(e_owner.size)
    e_type = rng.choice(len(ENGAGEMENT), size=e_owner.size, p=ENGAGEMENT_SHARES)
    messaged = e_type >= 2

    count_p, count_e = p_owner.size, e_owner.size
    none = np.full(count_e, -1, dtype=np.int64)
    return {
        "customer": first_id + np.concatenate([p_owner, e_owner]).astype(np.int64),
        "ts": np.floor(np.concatenate([p_time, e_time])).astype(np.int64),
        "offset_min": offset[np.concatenate([p_owner, e_owner])],
        "type": np.concatenate([np.full(count_p, "purchase"), ENGAGEMENT[e_type]]).astype(object),
        "channel": np.concatenate(
            [np.full(count_p, ""), np.where(messaged, CHANNELS[rng.integers(0, 3, count_e)], "")]
        ),
        "message": np.concatenate([np.full(count_p, -1), np.where(messaged, rng.integers(0, 5000, count_e), -1)]),
        "product": np.concatenate(
            [rng.zipf(1.6, count_p) % 20_000, np.where(e_type == 1, rng.zipf(1.6, count_e) % 20_000, -1)]
        ).astype(np.int64),
        "quantity": np.concatenate([1 + rng.poisson(0.3, count_p), none]).astype(np.int64),
        "cents": np.concatenate([cents, none]),
        "channel_set": np.concatenate([np.zeros(count_p, bool), messaged]),
    }


# One line per event, keys sorted and absent fields left out, as ``encode_lines(Event.to_record() ...)`` writes.
LINE = """
'{' || concat_ws(',',
  CASE WHEN cents >= 0 THEN '"amount":' || CAST(cents / 100 AS DOUBLE) END,
  CASE WHEN channel_set THEN '"channel":"' || channel || '"' END,
  CASE WHEN cents >= 0 THEN '"currency":"EUR"' END,
  '"customer_id":"c' || lpad(CAST(customer AS VARCHAR), 8, '0') || '"',
  '"event_id":"e' || CAST(customer AS VARCHAR) || '-' || CAST(row AS VARCHAR) || '"',
  CASE WHEN message >= 0 THEN '"message_id":"m' || CAST(message AS VARCHAR) || '"' END,
  CASE WHEN product >= 0 THEN '"product_id":"p' || CAST(product AS VARCHAR) || '"' END,
  CASE WHEN quantity >= 0 THEN '"quantity":' || CAST(quantity AS VARCHAR) END,
  '"timestamp":"' || strftime(make_timestamp((ts + offset_min * 60) * 1000000), '%Y-%m-%dT%H:%M:%S')
    || CASE WHEN offset_min = 0 THEN 'Z'
       ELSE (CASE WHEN offset_min > 0 THEN '+' ELSE '-' END) || lpad(CAST(abs(offset_min) // 60 AS VARCHAR), 2, '0')
         || ':' || lpad(CAST(abs(offset_min) % 60 AS VARCHAR), 2, '0') END || '"',
  '"type":"' || type || '"'
) || '}'
"""


def generate_archive(root: Path, customers: int, seed: int = 7, chunk: int = 100_000, memory: str = "2GB") -> int:
    """Write the archive of ``customers`` customers under ``root/events``; return the events written."""
    import duckdb
    import pyarrow as pa

    events = 0
    root.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute(f"SET memory_limit = '{memory}'")
    con.execute("SET preserve_insertion_order = false")
    try:
        for i, first_id in enumerate(range(0, customers, chunk)):
            cols = chunk_events(np.random.default_rng([seed, i]), first_id, min(chunk, customers - first_id))
            table = pa.table({**cols, "row": np.arange(cols["ts"].size, dtype=np.int64)})
            con.register("chunk", table)
            # One object per day per chunk, as a stream batch writes one object per UTC date.
            con.execute(
                f"COPY (SELECT {LINE} AS line, strftime(make_timestamp(ts * 1000000), '%Y-%m-%d') AS dt FROM chunk) "
                f"TO '{root / 'events'}' (FORMAT CSV, HEADER false, QUOTE '', ESCAPE '', DELIMITER '\\t', "
                f"COMPRESSION gzip, PARTITION_BY (dt), FILENAME_PATTERN 'batch{i:04d}_{{i}}', "
                "FILE_EXTENSION 'jsonl.gz', OVERWRITE_OR_IGNORE)"
            )
            con.unregister("chunk")
            events += table.num_rows
            print(f"  generated {min(first_id + chunk, customers):,} customers, {events:,} events", flush=True)
    finally:
        con.close()
    return events


def forecast_periods(now: datetime) -> list[tuple]:
    """The comparable periods of a 30-day forecast starting in two weeks (``measures.comparable_periods``)."""
    start = now.date() + timedelta(days=14)
    return [(p["start"], p["end"]) for p in comparable_periods(start, start + timedelta(days=30), now.date())]


def run_all(engine: DuckDbArchive, label: str, repeats: int) -> dict[str, object]:
    """Time the three queries on one engine (the fastest of ``repeats`` runs) and print a line per query."""
    periods = forecast_periods(NOW)
    out: dict[str, object] = {}
    for name, call in (
        ("cohorts", lambda: sql.archive_cohorts(engine, NOW, "retention")),
        ("rfm", lambda: sql.archive_rfm_thresholds(engine, NOW)),
        ("forecast", lambda: sql.archive_period_outcomes(engine, periods, NOW)),
    ):
        answer, run = call()
        for _ in range(repeats - 1):
            again = call()[1]
            run = again if again.seconds < run.seconds else run
        out[name] = run
        print(
            f"{label:8s} {name:9s} {run.seconds:7.1f} s  {run.bytes_scanned / 1e6:9.1f} MB scanned  "
            f"{run.files:6d} files  Athena ${sql.athena_price(run.bytes_scanned):.5f}",
            flush=True,
        )
        out[f"{name}_answer"] = answer
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--dir", help="where the archive is kept (default: under the temp dir, reused if present)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--memory", default="2GB", help="DuckDB's memory limit")
    parser.add_argument("--repeats", type=int, default=3, help="runs per query; the fastest is reported")
    parser.add_argument("--fresh", action="store_true", help="generate again even if the archive exists")
    args = parser.parse_args()

    root = Path(args.dir or Path(tempfile.gettempdir()) / f"kairos-analytics-{args.customers}-{args.seed}")
    marker = root / COMPLETE
    if args.fresh or not marker.exists():
        shutil.rmtree(root / "events", ignore_errors=True)
        shutil.rmtree(root / "parquet", ignore_errors=True)
        root.mkdir(parents=True, exist_ok=True)
        print(f"generating {args.customers:,} customers under {root}", flush=True)
        t0 = time.perf_counter()
        events = generate_archive(root, args.customers, args.seed, memory=args.memory)
        marker.write_text(f"{events}\n")
        print(f"generated {events:,} events in {time.perf_counter() - t0:.0f} s", flush=True)
    events = int(marker.read_text())
    json_engine = DuckDbArchive(root, "json", threads=args.threads, memory_limit=args.memory)
    files = json_engine.files()
    print(
        f"archive: {args.customers:,} customers, {events:,} events, {len(files):,} objects, "
        f"{sum(f.size for f in files) / 1e6:,.0f} MB gzip JSON Lines, {files[0].dt} .. {files[-1].dt}"
    )

    parquet_root = root / "parquet"
    if not (parquet_root / COMPLETE).exists():
        shutil.rmtree(parquet_root, ignore_errors=True)
        run = compact_to_parquet(json_engine, parquet_root)
        (parquet_root / COMPLETE).write_text("done\n")
        print(f"compacted to Parquet in {run.seconds:.0f} s")
    parquet_engine = DuckDbArchive(parquet_root, "parquet", threads=args.threads, memory_limit=args.memory)
    pq_files = parquet_engine.files()
    print(f"parquet: {len(pq_files):,} objects, {sum(f.size for f in pq_files) / 1e6:,.0f} MB (Zstandard)")

    print(f"{'format':8s} {'query':9s} {'seconds':>9s}  {'scanned':>12s}")
    json_runs = run_all(json_engine, "json", args.repeats)
    pq_runs = run_all(parquet_engine, "parquet", args.repeats)
    for name in ("cohorts", "rfm", "forecast"):
        if json_runs[f"{name}_answer"] != pq_runs[f"{name}_answer"]:
            print(f"warning: {name} differs between JSON and Parquet")
    rfm = pq_runs["rfm_answer"]
    print(f"rfm thresholds over {rfm.customers:,} purchasers: R {rfm.recency_days} F {rfm.frequency} M {rfm.monetary}")

    queries = ("cohorts", "rfm", "forecast")

    def price(runs: dict[str, object], scale: float = 1.0) -> float:
        """The dearest query's Athena price, its bytes scaled."""
        return max(sql.athena_price(int(runs[n].bytes_scanned * scale)) for n in queries)  # type: ignore[attr-defined]

    scale = 10_000_000 / args.customers
    print(
        f"at 10,000,000 customers (bytes x {scale:g}): Athena ≈ ${price(pq_runs, scale):.4f} per query on Parquet, "
        f"${price(json_runs, scale):.4f} on the gzip JSON"
    )
    secs = {n: pq_runs[n].seconds for n in queries}  # type: ignore[attr-defined]
    print(
        f"analytics on {args.customers:,} customers: cohorts {secs['cohorts']:.1f} s, rfm {secs['rfm']:.1f} s, "
        f"forecast {secs['forecast']:.1f} s (DuckDB, Parquet); Athena ≈ ${price(pq_runs):.5f} per query "
        f"(${price(json_runs):.5f} on the gzip JSON)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
