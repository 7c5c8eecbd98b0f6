"""The archive SQL (kairos.insights.sql) on DuckDB gives what the product computes from folded aggregates.

The skew check: the same events go into the archive (``encode_lines`` by UTC date, as the archiver writes them)
and through ``fold_events``; cohorts, RFM thresholds and period outcomes from DuckDB equal ``cohort_matrix``,
``rfm_thresholds`` and ``period_outcome`` over the aggregates. Also on the benchmark's generated archive, whose
lines must be valid archive records.
"""

from __future__ import annotations

import importlib.util
import random
import sys
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from kairos.customers.adapters.archive import decode_lines, encode_lines, event_date
from kairos.customers.aggregates import CustomerAggregates, fold_events
from kairos.customers.schemas import Event
from kairos.insights import sql
from kairos.insights.adapters.duckdb_engine import RECORD_COLUMNS, DuckDbArchive, compact_to_parquet
from kairos.insights.measures import (
    cohort_matrix,
    comparable_periods,
    forecast,
    period_outcome,
    rfm_thresholds,
    rfm_values,
    split_by_history,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

ROOT = Path(__file__).resolve().parents[2]
# A clock's now, with a fraction of a second: events of the same day after it are not "as of" it.
NOW = datetime(2026, 3, 2, 12, 0, 0, 500_000, tzinfo=UTC)
ZONES = [UTC, timezone(timedelta(hours=3)), timezone(timedelta(hours=-7)), timezone(timedelta(hours=5, minutes=30))]


def _events(customers: int, seed: int) -> list[Event]:
    """Customers with what the definitions turn on: several lines in one hour, purchases without an amount,
    refunds, local times on another UTC date, fractions of seconds, buyers and non-buyers, events after NOW."""
    rng = random.Random(seed)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    span = (NOW - start).total_seconds()
    out = []
    for c in range(customers):
        cid, tz = f"c{c:04d}", rng.choice(ZONES)
        arrived = start + timedelta(seconds=span * rng.random() ** 0.7)
        left = (NOW - arrived).total_seconds() + 3 * 86_400  # up to three days past NOW
        made: list[tuple[datetime, str, dict[str, Any]]] = []
        for _ in range(rng.choice([0, 0, 1, 1, 2, 3, 5, 8])):
            order = arrived + timedelta(seconds=left * rng.random() ** 1.5)
            hour = order.replace(minute=0, second=0, microsecond=0)
            for _ in range(rng.choice([1, 1, 2, 4])):  # lines of one order: one purchase moment
                at = hour + timedelta(seconds=rng.randrange(3600), microseconds=rng.choice([0, 0, 123_456]))
                amount = rng.choice([None, -5.0] + [round(rng.lognormvariate(3, 0.8), 2) for _ in range(8)])
                made.append((at, "purchase", {"amount": amount, "product_id": f"p{rng.randrange(50)}", "quantity": 1}))
        for _ in range(rng.randrange(12)):
            made.append((arrived + timedelta(seconds=left * rng.random()), rng.choice(["session", "message_open"]), {}))
        out += [
            Event(event_id=f"e{i}", customer_id=cid, type=kind, timestamp=at.astimezone(tz), **extra)
            for i, (at, kind, extra) in enumerate(made)
        ]
    return out


def _write_archive(root: Path, events: Iterable[Event], batches: int = 2) -> None:
    """One object per UTC date and batch, as ``S3Archive.write_batch`` writes a stream batch."""
    objects: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for ev in events:
        record = ev.to_record()
        objects[(event_date(record), int(ev.customer_id[1:]) % batches)].append(record)
    for (day, batch), records in objects.items():
        folder = root / "events" / f"dt={day}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"batch{batch}.jsonl.gz").write_bytes(encode_lines(records))


def _fold(events: Iterable[Event], until: datetime) -> list[CustomerAggregates]:
    """Every customer's aggregates from their events before ``until`` (as training folds history)."""
    by_customer: dict[str, list[Event]] = defaultdict(list)
    for ev in sorted(events, key=lambda e: e.timestamp):
        if ev.timestamp < until:
            by_customer[ev.customer_id].append(ev)
    return [fold_events(CustomerAggregates(), evs, set())[0] for _, evs in sorted(by_customer.items())]


def _periods(now: datetime) -> list[tuple[date, date]]:
    start = now.date() + timedelta(days=10)
    comparable = comparable_periods(start, start + timedelta(days=30), now.date(), years=3, previous=3)
    # and windows that cut the first purchases and the NOW day
    extra = [(date(2024, 1, 1), date(2024, 3, 1)), (now.date(), now.date() + timedelta(days=1))]
    return [(p["start"], p["end"]) for p in comparable] + extra


def _assert_same_answers(engine: Any, events: Sequence[Event], now: datetime) -> None:
    aggs = _fold(events, now)
    for metric, max_periods in (("retention", 24), ("revenue", 24), ("retention", 5)):
        matrix, _ = sql.archive_cohorts(engine, now, metric, max_periods)
        assert matrix == cohort_matrix(
            ((a, None) for a in aggs), "first_purchase_month", metric, max_periods, now.date()
        )
    thresholds, _ = sql.archive_rfm_thresholds(engine, now)
    assert thresholds == rfm_thresholds((v for a in aggs if (v := rfm_values(a, now)) is not None), now)
    periods = _periods(now)
    got, _ = sql.archive_period_outcomes(engine, periods, now)
    assert got["outcomes"] == [period_outcome(aggs, s, e) for s, e in periods]
    assert got["audience"] == len(aggs)
    assert got["earliest"] == min(date.fromisoformat(min(a.purchase_days)) for a in aggs if a.purchase_days)


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Event]]:
    root = tmp_path_factory.mktemp("archive")
    events = _events(300, seed=11)
    _write_archive(root, events)
    return root, events


def test_archive_sql_on_duckdb_equals_the_measures_over_folded_aggregates(archive):
    # GIVEN 300 customers' events in the archive's layout and format
    root, events = archive
    # WHEN cohorts, RFM thresholds and period outcomes run as SQL on DuckDB
    # THEN each equals what the measures compute from the same events folded into aggregates
    _assert_same_answers(DuckDbArchive(root, threads=1), events, NOW)


def test_archive_sql_feeds_the_forecasts_comparable_periods(archive):
    # GIVEN the archive and the forecast the product computes from aggregates
    root, events = archive
    aggs = _fold(events, NOW)
    start, end = NOW.date() + timedelta(days=10), NOW.date() + timedelta(days=40)
    expected = forecast(aggs, start, end, NOW)
    # WHEN the comparable periods' outcomes come from the archive, those the data does not stand behind dropped
    comparable = comparable_periods(start, end, NOW.date())
    periods = [(p["start"], p["end"]) for p in comparable]
    got, _ = sql.archive_period_outcomes(DuckDbArchive(root, threads=1), periods, NOW)
    stands, left_out = split_by_history(comparable, got["earliest"])
    kept = [(p, o) for p, o in zip(comparable, got["outcomes"], strict=True) if p in stands]
    assert [p["kind"] for p in left_out] == [p["kind"] for p in expected["left_out"]]
    # THEN they are the forecast's observed periods, on the same audience
    observed = [(p["customers"], p["observed_conversions"], p["observed_revenue"]) for p in expected["periods"]]
    assert [(o["customers"], o["conversions"], o["revenue"]) for _, o in kept] == observed
    assert got["audience"] == expected["audience"]


def test_an_earlier_as_of_reads_only_its_partitions_and_equals_the_fold_until_then(archive):
    # GIVEN the archive and a time in the middle of its history (mid-day: part of that day's events are after it)
    root, events = archive
    engine = DuckDbArchive(root, threads=1)
    earlier = datetime(2025, 1, 15, 13, 30, tzinfo=UTC)
    # WHEN the queries run as of then
    _, full = sql.archive_cohorts(engine, NOW)
    _, pruned = sql.archive_cohorts(engine, earlier)
    # THEN only partitions up to that day are read, and the answers are those of the fold until then
    assert pruned.partitions[-1] == "2025-01-15" and full.partitions[-1] > "2025-01-15"
    assert 0 < pruned.bytes_scanned < full.bytes_scanned
    assert pruned.bytes_scanned == sum(f.size for f in engine.files(last_day="2025-01-15"))
    _assert_same_answers(engine, events, earlier)


def test_a_parquet_copy_gives_the_same_answers_for_fewer_billed_bytes(archive, tmp_path):
    # GIVEN the archive compacted to Parquet in the same layout
    root, events = archive
    json_engine = DuckDbArchive(root, threads=1)
    compact_to_parquet(json_engine, tmp_path)
    engine = DuckDbArchive(tmp_path, "parquet", threads=1)
    # WHEN the queries run on it  THEN the answers are the same, and only the columns read are billed
    _assert_same_answers(engine, events, NOW)
    _, run = sql.archive_rfm_thresholds(engine, NOW)
    assert 0 < run.bytes_scanned < sum(f.size for f in engine.files())


def test_an_empty_archive_answers_like_no_customers(tmp_path):
    # GIVEN no archived event
    engine = DuckDbArchive(tmp_path, threads=1)
    # WHEN the queries run  THEN the answers are those of no customers, and nothing is scanned
    matrix, run = sql.archive_cohorts(engine, NOW)
    assert matrix == cohort_matrix([], as_of=NOW.date()) and run.bytes_scanned == 0
    assert sql.archive_rfm_thresholds(engine, NOW)[0] == rfm_thresholds([], NOW)
    got, _ = sql.archive_period_outcomes(engine, _periods(NOW), NOW)
    assert got["outcomes"] == [period_outcome([], s, e) for s, e in _periods(NOW)]
    assert got["audience"] == 0 and got["earliest"] is None


def _bench() -> Any:
    spec = importlib.util.spec_from_file_location("bench_analytics", ROOT / "bench" / "analytics.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_analytics"] = module
    spec.loader.exec_module(module)
    return module


def test_the_benchmarks_archive_holds_valid_records_and_gives_the_same_answers(tmp_path):
    # GIVEN the benchmark's generator, for 200 customers in two chunks (two objects a day)
    bench = _bench()
    bench.generate_archive(tmp_path, 200, seed=3, chunk=100)
    # WHEN its objects are read back as the archive's records
    events = []
    for path in sorted((tmp_path / "events").glob("dt=*/*.jsonl.gz")):
        for record in decode_lines(path.read_bytes()):
            event = Event.model_validate(record)
            # THEN each line is an event as the API accepts it, written as the archiver writes it, in its partition
            assert event.to_record() == record
            assert path.parent.name == f"dt={event_date(record)}"
            events.append(event)
    assert len({e.customer_id for e in events}) == 200
    assert any(e.timestamp.utcoffset() for e in events) and any(e.type == "purchase" for e in events)
    # AND the SQL on it equals the measures over the same events folded
    _assert_same_answers(DuckDbArchive(tmp_path, threads=1), events, bench.NOW)


def test_athena_sql_parses_times_with_trinos_functions_and_reads_the_same_table():
    # GIVEN each query in both dialects
    periods = _periods(NOW)
    for build in (
        lambda d: sql.cohorts_query(NOW, 24, d),
        lambda d: sql.rfm_thresholds_query(NOW, d),
        lambda d: sql.period_outcomes_query(periods, NOW, d),
    ):
        duck, athena = build("duckdb"), build("athena")
        # THEN only the time parsing differs, and both prune the same partitions
        assert "from_iso8601_timestamp" in athena.sql and "TIMESTAMPTZ" not in athena.sql
        assert athena.sql.replace(sql.epoch_seconds("athena"), sql.epoch_seconds("duckdb")) == duck.sql
        assert (athena.first_day, athena.last_day) == (duck.first_day, duck.last_day) == (None, "2026-03-02")
    with pytest.raises(ValueError, match="dialect"):
        sql.cohorts_query(NOW, dialect="spark")
    with pytest.raises(ValueError, match="table"):
        sql.cohorts_query(NOW, table="events; DROP TABLE x")


def test_athena_price_bills_at_least_ten_megabytes_rounded_up_to_the_megabyte():
    assert sql.athena_price(0) == sql.athena_price(10 * sql.MB) == 10 * sql.MB / sql.TB * 5
    assert sql.athena_price(sql.TB) == 5.0
    assert sql.athena_price(11 * sql.MB + 1) == 12 * sql.MB / sql.TB * 5


def test_the_parquet_copy_keeps_every_field_of_an_event():
    # GIVEN the columns the compaction writes  THEN they are the event schema's fields, none dropped
    assert set(RECORD_COLUMNS) == set(Event.model_fields)
