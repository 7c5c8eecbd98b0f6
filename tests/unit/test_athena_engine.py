"""The Athena engine adapter on moto (start in the workgroup, poll the state, typed rows without the header row) and,
with a Stubber, what moto cannot make: a failed query's reason, throttling, pages of results."""

from __future__ import annotations

from datetime import UTC, datetime

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws
from moto.athena.models import QueryResults, athena_backends
from moto.moto_api import state_manager

from kairos.core.errors import StoreError, ThrottledError
from kairos.insights import sql
from kairos.insights.adapters.athena_engine import AthenaArchive

NOW = datetime(2026, 3, 2, 12, tzinfo=UTC)
REGION = "eu-west-1"


def _column(name: str, kind: str) -> dict:
    return {"CatalogName": "hive", "SchemaName": "", "TableName": "", "Name": name, "Label": name, "Type": kind}


def _row(*values: str | None) -> dict:
    return {"Data": [{"VarCharValue": v} if v is not None else {} for v in values]}


@pytest.fixture
def athena(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        client = boto3.client("athena", region_name=REGION)
        client.create_work_group(
            Name="kairos-analytics",
            Configuration={"ResultConfiguration": {"OutputLocation": "s3://results/analytics-results/"}},
        )
        yield client
    state_manager.unset_transition("athena::execution")


def test_a_query_starts_in_the_workgroup_runs_then_answers_typed_rows(athena):
    # GIVEN an execution that is queued, then running, then done, with preset cohort rows
    state_manager.set_transition("athena::execution", {"progression": "manual", "times": 1})
    athena_backends["123456789012"][REGION].query_results_queue.append(
        QueryResults(
            rows=[
                _row("cohort", "period", "customers", "revenue"),  # Athena's header row
                _row("24315", "0", "3", "120.5"),
                _row("24315", "1", "1", None),
            ],
            column_info=[
                _column("cohort", "integer"),
                _column("period", "integer"),
                _column("customers", "bigint"),
                _column("revenue", "double"),
            ],
        )
    )
    engine = AthenaArchive("kairos-analytics", "kairos_analytics", client=athena)
    # WHEN the cohorts query starts and is polled
    query = sql.cohorts_query(NOW, dialect="athena")
    execution_id = engine.start(query.sql, columns=query.columns, last_day=query.last_day)
    states = [engine.execution(execution_id).state for _ in range(3)]
    # THEN it ran in the workgroup against the database, and its rows come typed without the header
    got = athena.get_query_execution(QueryExecutionId=execution_id)["QueryExecution"]
    assert got["WorkGroup"] == "kairos-analytics"
    assert got["QueryExecutionContext"] == {"Database": "kairos_analytics"}
    assert "from_iso8601_timestamp" in got["Query"]
    assert states[0] == "running" and states[-1] == "succeeded"
    rows = engine.rows(execution_id)
    assert rows == [
        {"cohort": 24315, "period": 0, "customers": 3, "revenue": 120.5},
        {"cohort": 24315, "period": 1, "customers": 1, "revenue": None},
    ]
    # AND the rows read into the matrix the API answers
    matrix = sql.cohort_matrix_from_rows(rows, as_of=NOW.date())
    assert matrix["cohorts"][0]["cohort"] == "2026-04" and matrix["cohorts"][0]["values"][:2] == [3, 1]


def test_an_unknown_workgroup_is_a_store_error(athena):
    engine = AthenaArchive("nowhere", "kairos_analytics", client=athena)
    with pytest.raises(StoreError, match="start_query_execution"):
        engine.start(sql.rfm_thresholds_query(NOW, dialect="athena").sql)


def test_a_failed_query_gives_its_reason_and_bytes_and_run_raises_it():
    # GIVEN Athena failing a query past the workgroup's cutoff
    client = boto3.client("athena", region_name=REGION)
    engine = AthenaArchive("wg", "db", client=client)
    failed = {
        "QueryExecution": {
            "QueryExecutionId": "q1",
            "Status": {"State": "FAILED", "StateChangeReason": "Bytes scanned limit was exceeded"},
            "Statistics": {"DataScannedInBytes": 10_737_418_240},
        }
    }
    with Stubber(client) as stub:
        stub.add_response("get_query_execution", failed, {"QueryExecutionId": "q1"})
        stub.add_response("start_query_execution", {"QueryExecutionId": "q1"})
        stub.add_response("get_query_execution", failed, {"QueryExecutionId": "q1"})
        # WHEN polled THEN the state is failed with Athena's reason and the bytes it billed
        state = engine.execution("q1")
        assert (state.state, state.bytes_scanned) == ("failed", 10_737_418_240)
        assert "limit was exceeded" in state.reason
        # AND run (which waits) raises it
        with pytest.raises(StoreError, match="limit was exceeded"):
            engine.run("SELECT 1", columns=("customer_id",), sleep=lambda s: None)


def test_throttling_is_a_throttled_error_and_results_are_read_page_by_page():
    client = boto3.client("athena", region_name=REGION)
    engine = AthenaArchive("wg", "db", client=client)
    meta = {"ColumnInfo": [{"Name": "n", "Type": "bigint"}, {"Name": "r20", "Type": "double"}]}
    with Stubber(client) as stub:
        stub.add_client_error("start_query_execution", "TooManyRequestsException", http_status_code=400)
        stub.add_response(
            "get_query_results",
            {"ResultSet": {"Rows": [_row("n", "r20"), _row("5", "1.5")], "ResultSetMetadata": meta}, "NextToken": "t"},
        )
        stub.add_response("get_query_results", {"ResultSet": {"Rows": [_row("6", "2.5")], "ResultSetMetadata": meta}})
        with pytest.raises(ThrottledError):
            engine.start(sql.rfm_thresholds_query(NOW, dialect="athena").sql)
        assert engine.rows("q1") == [{"n": 5, "r20": 1.5}, {"n": 6, "r20": 2.5}]


def test_run_waits_for_the_rows_and_the_price_follows_the_bytes(athena):
    engine = AthenaArchive("kairos-analytics", "kairos_analytics", client=athena)
    run = engine.run("SELECT 1", columns=("customer_id",), sleep=lambda s: None)
    assert run.rows == [] and run.bytes_scanned == 0
    # Athena bills at least 10 MB a query: $5 per TB
    assert sql.athena_price(run.bytes_scanned) == pytest.approx(10 * 1024**2 / 1024**4 * 5)
