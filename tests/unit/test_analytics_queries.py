"""Archive questions asked without waiting (kairos.insights.analytics) on DuckDB over a small generated archive:
the answers equal what the measures compute from the customers' aggregates; the cache per archive state; a new
data version asks anew; a failed query says why. Also the local engine's copy of the archive bucket (moto S3), and
the bounded read of customers (sampling)."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from moto import mock_aws

from kairos.audiences.sampling import CustomerSample
from kairos.core.errors import InvalidInputError, NotFoundError, StoreError
from kairos.customers.adapters.archive import encode_lines
from kairos.customers.domain import CustomerRecord
from kairos.insights import analytics
from kairos.insights.adapters.duckdb_engine import DuckDbArchive, S3DuckDbEngine
from kairos.insights.measures import cohort_matrix, forecast, rfm_thresholds, rfm_values
from kairos.insights.ports import AnalyticsEngine, Execution
from kairos.insights.sql import ArchiveQuery, cohorts_query
from tests.fakes import InMemoryCustomerStore, InMemoryInsightStore
from tests.unit.test_analytics_sql import NOW, _events, _fold, _write_archive

if TYPE_CHECKING:
    from pathlib import Path


class DirDuckDbEngine(AnalyticsEngine):
    """DuckDB over a local archive folder, 'running' for ``polls`` polls before it reports what it ran."""

    dialect = "duckdb"
    table = "events"

    def __init__(self, root: Path, polls: int = 0) -> None:
        self.archive = DuckDbArchive(root, threads=1)
        self.polls = polls
        self.started: list[ArchiveQuery] = []
        self.seen: dict[str, int] = {}
        self.fail: str | None = None

    def start(self, sql: str, *, columns, first_day, last_day) -> str:
        self.started.append(ArchiveQuery("q", sql, tuple(columns), first_day, last_day))
        return f"x{len(self.started)}"

    def execution(self, execution_id: str) -> Execution:
        self.seen[execution_id] = self.seen.get(execution_id, 0) + 1
        if self.seen[execution_id] <= self.polls:
            return Execution("running")
        if self.fail:
            return Execution("failed", 0, self.fail)
        return Execution("succeeded", 1234)

    def rows(self, execution_id: str) -> list[dict[str, Any]]:
        q = self.started[int(execution_id[1:]) - 1]
        return self.archive.run(q.sql, columns=q.columns, first_day=q.first_day, last_day=q.last_day).rows


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    root = tmp_path_factory.mktemp("archive")
    events = _events(120, seed=5)
    _write_archive(root, events)
    return root, events


def _until_done(qid: str, engine: AnalyticsEngine, store: InMemoryInsightStore) -> analytics.Answer:
    for _ in range(10):
        answer = analytics.poll(qid, engine, store)
        if answer.done:
            return answer
    raise AssertionError("never done")


def test_ask_starts_a_query_the_poll_answers_the_aggregates_matrix_and_the_same_question_is_cached(archive):
    # GIVEN 120 customers' events in the archive, an engine that runs for two polls, and no answer yet
    root, events = archive
    engine, store = DirDuckDbEngine(root, polls=2), InMemoryInsightStore()
    question = analytics.cohorts_question("retention", 24)
    # WHEN cohorts are asked
    asked = analytics.ask(*question, engine, store, NOW)
    # THEN a query started and the question is running
    assert not asked.done and len(engine.started) == 1
    assert not analytics.poll(asked.query_id, engine, store).done
    # WHEN polled until done THEN the answer is the matrix of the customers' aggregates
    done = _until_done(asked.query_id, engine, store)
    expected = cohort_matrix(
        ((a, None) for a in _fold(events, NOW)), "first_purchase_month", "retention", 24, NOW.date()
    )
    assert {k: done.result[k] for k in expected} == expected
    assert done.result["query"]["bytes_scanned"] == 1234 and done.result["query"]["cost_usd"] == 0.0
    # AND asking again the same day over the same archive answers at once, without a query
    again = analytics.ask(*question, engine, store, NOW + timedelta(hours=1))
    assert again.done and again.result == done.result and len(engine.started) == 1
    # AND another day is another question
    assert not analytics.ask(*question, engine, store, NOW + timedelta(days=1)).done


def test_a_new_data_version_asks_anew_and_a_running_query_is_not_started_twice(archive):
    root, _ = archive
    engine, store = DirDuckDbEngine(root, polls=5), InMemoryInsightStore()
    question = analytics.rfm_thresholds_question()
    first = analytics.ask(*question, engine, store, NOW)
    # WHEN asked again while it runs THEN the same query answers, none started
    assert analytics.ask(*question, engine, store, NOW).query_id == first.query_id and len(engine.started) == 1
    # WHEN the archive changes THEN the question is a new query
    version = analytics.note_archive_change(store, NOW)
    assert analytics.archive_version(store) == version != analytics.NO_VERSION
    second = analytics.ask(*question, engine, store, NOW)
    assert second.query_id != first.query_id and len(engine.started) == 2


def test_rfm_thresholds_and_the_forecast_equal_the_measures(archive):
    root, events = archive
    engine, store = DirDuckDbEngine(root), InMemoryInsightStore()
    aggs = _fold(events, NOW)
    # WHEN RFM thresholds and the forecast of every customer are asked and polled
    rfm = _until_done(analytics.ask(*analytics.rfm_thresholds_question(), engine, store, NOW).query_id, engine, store)
    start, end = NOW.date() + timedelta(days=10), NOW.date() + timedelta(days=40)
    question = analytics.forecast_question(start, end, 3, 3)
    fc = _until_done(analytics.ask(*question, engine, store, NOW).query_id, engine, store)
    # THEN each equals the measures over the folded aggregates
    expected = rfm_thresholds((v for a in aggs if (v := rfm_values(a, NOW)) is not None), NOW).to_dict()
    assert {k: rfm.result[k] for k in expected} == expected
    assert {k: v for k, v in fc.result.items() if k != "query"} == forecast(aggs, start, end, NOW)


def test_a_failed_query_raises_with_its_reason_and_is_asked_anew(tmp_path):
    engine, store = DirDuckDbEngine(tmp_path, polls=0), InMemoryInsightStore()
    engine.fail = "Query exhausted the bytes scanned limit"
    asked = analytics.ask(*analytics.cohorts_question("revenue", 6), engine, store, NOW)
    with pytest.raises(analytics.AnalyticsQueryFailedError, match="bytes scanned limit"):
        analytics.poll(asked.query_id, engine, store)
    # a poll after that answers the same failure without asking the engine again
    with pytest.raises(analytics.AnalyticsQueryFailedError):
        analytics.poll(asked.query_id, engine, store)
    again = analytics.ask(*analytics.cohorts_question("revenue", 6), engine, store, NOW)
    assert again.query_id == asked.query_id and len(engine.started) == 2
    with pytest.raises(NotFoundError):
        analytics.poll("0" * 32, engine, store)
    with pytest.raises(InvalidInputError):
        analytics.forecast_question(NOW.date(), NOW.date() + timedelta(days=1), 0, 0)


@mock_aws
def test_the_local_engine_copies_the_bucket_and_follows_its_changes(tmp_path, monkeypatch):
    # GIVEN an archive bucket with one day of events
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="archive")
    events = [e.to_record() for e in _events(30, seed=3)]
    day = NOW.date().isoformat()

    def put(name: str, records: list[dict[str, Any]]) -> None:
        s3.put_object(Bucket="archive", Key=f"events/dt={day}/{name}.jsonl.gz", Body=encode_lines(records))

    purchases = [dict(r, timestamp=f"{day}T00:00:01+00:00") for r in events if r["type"] == "purchase"]
    put("a", purchases[:5])
    engine = S3DuckDbEngine("archive", root=tmp_path, client=s3)
    count = cohorts_query(NOW + timedelta(hours=1))

    def size() -> int:
        execution_id = engine.start(count.sql, columns=count.columns, first_day=None, last_day=count.last_day)
        assert engine.execution(execution_id).state == "succeeded"
        return sum(r["customers"] for r in engine.rows(execution_id) if r["period"] == 0)

    # WHEN queried, then after an object is added, and after one is deleted
    first = size()
    put("b", purchases[5:10])
    second = size()
    s3.delete_object(Bucket="archive", Key=f"events/dt={day}/a.jsonl.gz")
    third = size()
    # THEN each query reads the bucket as it is
    customers = lambda rs: len({r["customer_id"] for r in rs})  # noqa: E731
    assert (first, second, third) == (
        customers(purchases[:5]),
        customers(purchases[:10]),
        customers(purchases[5:10]),
    )
    # AND an unknown execution is a failure that says to ask again
    assert engine.execution("nope").state == "failed"
    with pytest.raises(StoreError):
        engine.rows("nope")


def _record(cid: str) -> CustomerRecord:
    return CustomerRecord(customer_id=cid)


def test_a_store_over_the_limit_is_read_as_a_sample_scaled_to_the_store():
    # GIVEN 1,000 customers and a read limited to 100
    store = InMemoryCustomerStore()
    for i in range(1000):
        store.customers[f"c{i:04d}"] = _record(f"c{i:04d}")
    sample = CustomerSample(store, limit=100, page_size=30)
    # WHEN read
    read = list(sample)
    # THEN one scan segment of ten was read, no more than the limit, and counts scale to the store
    assert sample.sampled and sample.segments == 10 and len(read) == sample.read <= 100
    assert sample.estimate(sample.read) == pytest.approx(1000, rel=0.35)
    assert sample.view()["sample_size"] == sample.read
    # AND a small store is read whole
    small = CustomerSample(store, limit=5000)
    assert len(list(small)) == 1000 and not small.sampled and small.estimate(7) == 7
